/* Writes: group commit, idempotency, failures that stay alone, back-pressure, draining. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define THREADS     8
#define PER_THREAD  500
#define SMALL_QUEUE 4

static int setup(void **state)
{
    fx_t *fx = fx_open(0, 0);

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

/* ---- many threads at once ------------------------------------------------------------- */

typedef struct producer {
    weir_store_t *store;
    int failures; /* submits that answered neither 0 nor BUSY (cmocka asserts on one thread) */
    weir_event_t *evs[PER_THREAD];
    weir_store_item_t items[PER_THREAD];
    weir_store_write_t writes[PER_THREAD];
    fx_result_t results[PER_THREAD];
} producer_t;

static void producer_prepare(producer_t *p, weir_store_t *store, int index)
{
    char id[32];

    p->store = store;
    for (int i = 0; i < PER_THREAD; i++) {
        snprintf(id, sizeof(id), "t%d-%d", index, i);
        p->evs[i] = fx_event(id, "/producer", "t.load", "{\"n\":1}");
        p->items[i] = (weir_store_item_t){.ns = "alpha", .ev = p->evs[i]};
        p->writes[i] = (weir_store_write_t){
            .items = &p->items[i], .nitems = 1, .done = fx_result_done, .arg = &p->results[i]};
    }
}

static void *produce(void *arg)
{
    producer_t *p = arg;

    for (int i = 0; i < PER_THREAD; i++) {
        int rc;
        while ((rc = weir_store_submit(p->store, &p->writes[i])) == WEIR_EBUSY) {
            sched_yield();
        }
        p->failures += rc != 0;
    }
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a;
    int64_t y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void check_producers(producer_t *ps, int64_t *seqs)
{
    size_t n = 0;

    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(ps[t].failures, 0);
        for (int i = 0; i < PER_THREAD; i++) {
            assert_int_equal(atomic_load(&ps[t].results[i].calls), 1);
            assert_int_equal(ps[t].results[i].status, 0);
            assert_false(ps[t].items[i].duplicate);
            assert_null(ps[t].items[i].json);
            seqs[n++] = ps[t].items[i].seq;
            weir_ce_free(ps[t].evs[i]);
        }
    }
    qsort(seqs, n, sizeof(*seqs), cmp_i64);
    for (size_t i = 1; i < n; i++) {
        assert_true(seqs[i] > seqs[i - 1]);
    }
}

static void test_concurrent_group_commit(void **state)
{
    fx_t *fx = *state;
    producer_t *ps = weir_calloc(THREADS, sizeof(*ps));
    pthread_t threads[THREADS];
    int64_t *seqs = weir_calloc(THREADS * PER_THREAD, sizeof(*seqs));
    int64_t count = 0;

    for (int t = 0; t < THREADS; t++) {
        producer_prepare(&ps[t], fx->store, t);
        assert_int_equal(pthread_create(&threads[t], NULL, produce, &ps[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
    }
    fx_barrier(fx->store);

    check_producers(ps, seqs);
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, THREADS * PER_THREAD);
    assert_int_equal(weir_store_queue_depth(fx->store), 0);
    weir_free(seqs);
    weir_free(ps);
}

/* ---- idempotency ---------------------------------------------------------------------- */

static void test_duplicate_across_writes(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev = fx_event("same", "/src", "t", "{\"v\":1}");
    weir_event_t *changed = fx_event("same", "/src", "t.other", "{\"v\":2}");
    weir_store_item_t item = {.ns = "alpha", .ev = ev};
    int64_t count = 0;

    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    assert_false(item.duplicate);
    int64_t first = item.seq;

    /* The first copy wins, whatever the second carries. */
    item.ev = changed;
    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    assert_true(item.duplicate);
    assert_int_equal(item.seq, first);
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, 1);

    weir_store_record_t rec;
    assert_int_equal(weir_store_get(fx->store, "alpha", "same", NULL, &rec, NULL), 0);
    assert_string_equal(fx_json_str(rec.json, "type"), "t");
    weir_store_record_clear(&rec);
    weir_ce_free(ev);
    weir_ce_free(changed);
}

static void test_duplicate_within_one_write(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev = fx_event("twice", "/src", "t", NULL);
    weir_event_t *other = fx_event("twice", "/other-src", "t", NULL);
    weir_store_item_t items[3] = {
        {.ns = "alpha", .ev = ev}, {.ns = "alpha", .ev = ev}, {.ns = "alpha", .ev = other}};
    int64_t count = 0;

    assert_int_equal(weir_store_write_sync(fx->store, items, 3), 0);
    assert_false(items[0].duplicate);
    assert_true(items[1].duplicate);
    assert_int_equal(items[1].seq, items[0].seq);
    /* Another source makes another event. */
    assert_false(items[2].duplicate);
    assert_true(items[2].seq > items[0].seq);
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, 2);
    weir_ce_free(ev);
    weir_ce_free(other);
}

/* POST / without a filter: one event, one write, every namespace; each stores it whole. */
static void test_one_event_in_several_namespaces(void **state)
{
    fx_t *fx = *state;
    const char *names[3] = {"alpha", "beta", "gamma"};
    weir_event_t *ev = fx_event("fanned", "/src", "t", "{\"n\":1}");
    weir_event_t *other = fx_event("other", "/src", "t", NULL);
    weir_store_item_t items[4] = {{.ns = "alpha", .ev = ev},
                                  {.ns = "beta", .ev = ev},
                                  {.ns = "gamma", .ev = ev},
                                  {.ns = "beta", .ev = other}};

    assert_int_equal(weir_store_ns_create(fx->store, "beta", NULL, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "gamma", NULL, NULL), 0);
    assert_int_equal(weir_store_write_sync(fx->store, items, 4), 0);
    for (int i = 0; i < 4; i++) {
        assert_false(items[i].duplicate);
        assert_null(items[i].json); /* released by the store, once */
    }
    for (int i = 0; i < 3; i++) {
        weir_store_record_t rec = {0};
        assert_int_equal(weir_store_get(fx->store, names[i], "fanned", NULL, &rec, NULL), 0);
        assert_string_equal(fx_json_str(rec.json, "source"), "/src");
        assert_non_null(strstr(rec.json, "\"data\":{\"n\":1}"));
        weir_store_record_clear(&rec);
    }
    weir_store_record_t rec = {0};
    assert_int_equal(weir_store_get(fx->store, "beta", "other", NULL, &rec, NULL), 0);
    weir_store_record_clear(&rec);
    weir_ce_free(ev);
    weir_ce_free(other);
}

static void test_duplicate_within_one_batch(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev = fx_event("batched", "/src", "t", NULL);
    weir_store_item_t items[2] = {{.ns = "alpha", .ev = ev}, {.ns = "alpha", .ev = ev}};
    fx_result_t results[2] = {0};
    weir_store_write_t writes[2];
    fx_gate_t gate;

    fx_gate_close(&gate, fx);
    for (int i = 0; i < 2; i++) {
        writes[i] = (weir_store_write_t){
            .items = &items[i], .nitems = 1, .done = fx_result_done, .arg = &results[i]};
        assert_int_equal(weir_store_submit(fx->store, &writes[i]), 0);
    }
    assert_int_equal(weir_store_queue_depth(fx->store), 2);
    fx_gate_open(&gate);
    fx_barrier(fx->store);

    assert_int_equal(results[0].status, 0);
    assert_int_equal(results[1].status, 0);
    assert_false(items[0].duplicate);
    assert_true(items[1].duplicate);
    assert_int_equal(items[1].seq, items[0].seq);
    weir_ce_free(ev);
}

/* ---- failures that stay alone --------------------------------------------------------- */

static void test_missing_ns_fails_alone(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev[3] = {fx_event("a", "/s", "t", NULL), fx_event("b", "/s", "t", NULL),
                           fx_event("c", "/s", "t", NULL)};
    /* The middle write has one good item and one for a missing namespace: all or nothing. */
    weir_store_item_t items[4] = {{.ns = "alpha", .ev = ev[0]},
                                  {.ns = "alpha", .ev = ev[1]},
                                  {.ns = "missing", .ev = ev[1]},
                                  {.ns = "alpha", .ev = ev[2]}};
    weir_store_write_t writes[3] = {{.items = &items[0], .nitems = 1},
                                    {.items = &items[1], .nitems = 2},
                                    {.items = &items[3], .nitems = 1}};
    fx_result_t results[3] = {0};
    weir_store_record_t rec;
    fx_gate_t gate;
    int64_t count = 0;

    fx_gate_close(&gate, fx);
    for (int i = 0; i < 3; i++) {
        writes[i].done = fx_result_done;
        writes[i].arg = &results[i];
        assert_int_equal(weir_store_submit(fx->store, &writes[i]), 0);
    }
    fx_gate_open(&gate);
    fx_barrier(fx->store);

    assert_int_equal(results[0].status, 0);
    assert_int_equal(results[1].status, WEIR_ENOTFOUND);
    assert_int_equal(results[2].status, 0);
    assert_int_equal(items[1].seq, 0);
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, 2);
    assert_int_equal(weir_store_get(fx->store, "alpha", "b", NULL, &rec, NULL), WEIR_ENOTFOUND);
    assert_true(weir_store_ready(fx->store));
    for (int i = 0; i < 3; i++) {
        weir_ce_free(ev[i]);
    }
}

/* The deletion of a namespace, made on another thread to queue it behind the gate. */
typedef struct deletion {
    weir_store_t *store;
    int rc;
} deletion_t;

static void *delete_alpha(void *arg)
{
    deletion_t *del = arg;
    del->rc = weir_store_ns_delete(del->store, "alpha", NULL);
    return NULL;
}

/*
 * One group: an event into alpha, alpha's deletion, then another event into it. The writer
 * remembers which namespace its transaction found present; the deletion must make it forget.
 */
static void test_namespace_deleted_within_a_group(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev[2] = {fx_event("before", "/s", "t", NULL), fx_event("after", "/s", "t", NULL)};
    weir_store_item_t items[2] = {{.ns = "alpha", .ev = ev[0]}, {.ns = "alpha", .ev = ev[1]}};
    fx_result_t results[2] = {0};
    weir_store_write_t writes[2];
    deletion_t del = {.store = fx->store, .rc = -1};
    pthread_t thread;
    fx_gate_t gate;

    for (int i = 0; i < 2; i++) {
        writes[i] = (weir_store_write_t){
            .items = &items[i], .nitems = 1, .done = fx_result_done, .arg = &results[i]};
    }
    fx_gate_close(&gate, fx);
    assert_int_equal(weir_store_submit(fx->store, &writes[0]), 0);
    assert_int_equal(pthread_create(&thread, NULL, delete_alpha, &del), 0);
    while (weir_store_queue_depth(fx->store) != 2) {
        sched_yield();
    }
    assert_int_equal(weir_store_submit(fx->store, &writes[1]), 0);
    fx_gate_open(&gate);
    pthread_join(thread, NULL);
    fx_barrier(fx->store);

    assert_int_equal(results[0].status, 0);
    assert_int_equal(del.rc, 0);
    assert_int_equal(results[1].status, WEIR_ENOTFOUND);
    assert_false(weir_store_ns_exists(fx->store, "alpha"));
    /* Created again, it holds nothing: neither event outlived the deletion. */
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    int64_t count = -1;
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, 0);
    for (int i = 0; i < 2; i++) {
        weir_ce_free(ev[i]);
    }
}

static void test_submit_rejects_bad_items(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev = weir_ce_new();
    weir_store_item_t item = {.ns = "alpha", .ev = ev};
    weir_store_write_t w = {.items = &item, .nitems = 1, .done = fx_result_done};

    /* No id, source or type: no event the store could key. */
    assert_int_equal(weir_store_submit(fx->store, &w), WEIR_EINVAL);
    item.ev = NULL;
    assert_int_equal(weir_store_submit(fx->store, &w), WEIR_EINVAL);
    w.done = NULL;
    assert_int_equal(weir_store_submit(fx->store, &w), WEIR_EINVAL);
    weir_ce_free(ev);
}

/* ---- back-pressure -------------------------------------------------------------------- */

static void test_queue_full_is_busy(void **state)
{
    fx_t *fx = fx_open(SMALL_QUEUE, 0);
    weir_event_t *ev = fx_event("q", "/s", "t", NULL);
    weir_store_item_t items[SMALL_QUEUE + 1];
    weir_store_write_t writes[SMALL_QUEUE + 1];
    fx_result_t results[SMALL_QUEUE + 1] = {0};
    fx_gate_t gate;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    fx_gate_close(&gate, fx);
    for (int i = 0; i <= SMALL_QUEUE; i++) {
        items[i] = (weir_store_item_t){.ns = "alpha", .ev = ev};
        writes[i] = (weir_store_write_t){
            .items = &items[i], .nitems = 1, .done = fx_result_done, .arg = &results[i]};
        int rc = weir_store_submit(fx->store, &writes[i]);
        assert_int_equal(rc, i < SMALL_QUEUE ? 0 : WEIR_EBUSY);
    }
    assert_int_equal(weir_store_queue_depth(fx->store), SMALL_QUEUE);
    assert_null(items[SMALL_QUEUE].json);

    fx_gate_open(&gate);
    fx_barrier(fx->store);
    for (int i = 0; i < SMALL_QUEUE; i++) {
        assert_int_equal(atomic_load(&results[i].calls), 1);
    }
    assert_int_equal(atomic_load(&results[SMALL_QUEUE].calls), 0);
    assert_int_equal(weir_store_queue_depth(fx->store), 0);
    weir_ce_free(ev);
    fx_close(fx);
}

/* ---- draining at close ---------------------------------------------------------------- */

#define DRAIN_WRITES 300

typedef struct drain {
    weir_store_t *store;
    weir_store_write_t writes[DRAIN_WRITES];
    weir_store_item_t items[DRAIN_WRITES];
    weir_event_t *evs[DRAIN_WRITES];
    int status[DRAIN_WRITES];
    int calls[DRAIN_WRITES];
    int late_submit; /* what a submit from a done callback during close returned */
} drain_t;

static void drain_done(weir_store_write_t *w, int status, void *arg)
{
    drain_t *d = arg;
    size_t i = (size_t)(w - d->writes);
    static weir_store_write_t late = {.done = drain_done};

    d->status[i] = status;
    d->calls[i]++;
    if (i == DRAIN_WRITES - 1) {
        late.arg = d;
        d->late_submit = weir_store_submit(d->store, &late);
    }
}

static void test_close_drains(void **state)
{
    fx_t *fx = *state;
    drain_t *d = weir_calloc(1, sizeof(*d));
    char id[32];
    int64_t count = 0;

    d->store = fx->store;
    for (int i = 0; i < DRAIN_WRITES; i++) {
        snprintf(id, sizeof(id), "drain-%d", i);
        d->evs[i] = fx_event(id, "/s", "t", NULL);
        d->items[i] = (weir_store_item_t){.ns = "alpha", .ev = d->evs[i]};
        d->writes[i] =
            (weir_store_write_t){.items = &d->items[i], .nitems = 1, .done = drain_done, .arg = d};
        assert_int_equal(weir_store_submit(fx->store, &d->writes[i]), 0);
    }
    weir_store_close(fx->store);
    fx->store = NULL;

    for (int i = 0; i < DRAIN_WRITES; i++) {
        assert_int_equal(d->calls[i], 1);
        assert_int_equal(d->status[i], 0);
        weir_ce_free(d->evs[i]);
    }
    assert_int_equal(d->late_submit, WEIR_ECLOSED);
    fx_reopen(fx);
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, DRAIN_WRITES);
    weir_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_across_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_within_one_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_within_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_event_in_several_namespaces, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_ns_fails_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_namespace_deleted_within_a_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_rejects_bad_items, setup, teardown),
        cmocka_unit_test(test_queue_full_is_busy),
        cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
