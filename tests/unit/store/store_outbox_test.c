/* The outbox: what is queued and what is not, removal, the bound, and a reopen. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fixture.h"

#define BOUND 4

/* The store's fdatasync calls (linked with --wrap=fdatasync) wait while the gate is shut. */
static pthread_mutex_t sync_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cond = PTHREAD_COND_INITIALIZER;
static bool sync_shut;

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);

int __wrap_fdatasync(int fd)
{
    pthread_mutex_lock(&sync_lock);
    while (sync_shut) {
        pthread_cond_wait(&sync_cond, &sync_lock);
    }
    pthread_mutex_unlock(&sync_lock);
    return __real_fdatasync(fd);
}

static void sync_gate(bool shut)
{
    pthread_mutex_lock(&sync_lock);
    sync_shut = shut;
    pthread_cond_broadcast(&sync_cond);
    pthread_mutex_unlock(&sync_lock);
}

static int setup(void **state)
{
    fx_t *fx = fx_open_outbox(BOUND);
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    sync_gate(false); /* a failed test may leave it shut: the close would wait for ever */
    fx_close(*state);
    return 0;
}

/* Writes one event with the item's flags; returns the status. */
static int put(weir_store_t *store, const char *id, bool born_inside, bool replay, bool outbox_only)
{
    weir_event_t *ev = fx_event(id, "/outbox", "t.out", "{\"n\":1}");
    weir_store_item_t item = {.ns = "alpha",
                              .ev = ev,
                              .born_inside = born_inside,
                              .replay = replay,
                              .outbox_only = outbox_only};
    int rc = weir_store_write_sync(store, &item, 1);
    weir_ce_free(ev);
    return rc;
}

static int64_t depth(weir_store_t *store, uint64_t *overflowed)
{
    int64_t d = -1;
    uint64_t o = 0;
    weir_store_outbox_stats(store, &d, &o);
    if (overflowed != NULL) {
        *overflowed = o;
    }
    return d;
}

/* The ids of the events waiting, in order, joined by ','. */
static const char *waiting(weir_store_t *store)
{
    static char out[256];
    weir_store_outbox_row_t *rows = NULL;
    size_t n = 0;
    assert_int_equal(weir_store_outbox_next(store, 0, 100, &rows, &n, NULL), 0);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(out, i ? "," : "");
        strcat(out, fx_json_str(rows[i].json, "id"));
        assert_string_equal(rows[i].ns, "alpha");
    }
    weir_store_outbox_free(rows, n);
    return out;
}

static void remove_first(weir_store_t *store, size_t count)
{
    weir_store_outbox_row_t *rows = NULL;
    size_t n = 0;
    assert_int_equal(weir_store_outbox_next(store, 0, count, &rows, &n, NULL), 0);
    int64_t ids[16];
    for (size_t i = 0; i < n; i++) {
        ids[i] = rows[i].id;
    }
    weir_store_outbox_free(rows, n);
    fx_result_t res = {0};
    weir_store_write_t w = {
        .outbox_sent = ids, .noutbox_sent = n, .done = fx_result_done, .arg = &res};
    assert_int_equal(weir_store_submit(store, &w), 0);
    fx_barrier(store);
    assert_int_equal(res.status, 0);
}

static void only_events_born_inside_are_queued(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(put(fx->store, "sink", false, false, false), 0);
    assert_int_equal(put(fx->store, "inside", true, false, false), 0);
    assert_int_equal(put(fx->store, "inside", true, false, false), 0); /* a duplicate */
    assert_int_equal(put(fx->store, "sink", false, true, false), 0);   /* a replay */
    assert_string_equal(waiting(fx->store), "inside,sink");
    assert_int_equal(depth(fx->store, NULL), 2);

    remove_first(fx->store, 1);
    assert_string_equal(waiting(fx->store), "sink");
    assert_int_equal(depth(fx->store, NULL), 1);
}

static void a_full_outbox_stores_but_does_not_queue(void **state)
{
    fx_t *fx = *state;
    char id[16];
    uint64_t overflowed = 0;
    for (int i = 0; i < BOUND + 2; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        assert_int_equal(put(fx->store, id, true, false, false), 0);
    }
    assert_true(weir_store_outbox_full(fx->store));
    assert_int_equal(depth(fx->store, &overflowed), BOUND);
    assert_int_equal(overflowed, 2);
    assert_string_equal(waiting(fx->store), "e0,e1,e2,e3");
    int64_t stored = 0;
    assert_int_equal(weir_store_count(fx->store, "alpha", &stored, NULL), 0);
    assert_int_equal(stored, BOUND + 2);

    remove_first(fx->store, 2);
    assert_false(weir_store_outbox_full(fx->store));
    assert_int_equal(put(fx->store, "later", true, false, false), 0);
    assert_string_equal(waiting(fx->store), "e2,e3,later");
}

static void outbox_only_items_keep_no_history(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(weir_store_ns_delete(fx->store, "alpha", NULL), 0);
    assert_int_equal(put(fx->store, "gone", true, false, true), 0);
    assert_string_equal(waiting(fx->store), "gone");
    int64_t stored = -1;
    assert_int_equal(weir_store_count(fx->store, NULL, &stored, NULL), 0);
    assert_int_equal(stored, 0);
}

static void a_failed_write_queues_nothing(void **state)
{
    fx_t *fx = *state;
    weir_event_t *a = fx_event("a", "/outbox", "t.out", NULL);
    weir_event_t *b = fx_event("b", "/outbox", "t.out", NULL);
    weir_store_item_t items[2] = {{.ns = "alpha", .ev = a, .born_inside = true},
                                  {.ns = "missing", .ev = b, .born_inside = true}};
    assert_int_equal(weir_store_write_sync(fx->store, items, 2), WEIR_ENOTFOUND);
    weir_ce_free(a);
    weir_ce_free(b);
    assert_string_equal(waiting(fx->store), "");
    assert_int_equal(depth(fx->store, NULL), 0);
    assert_int_equal(put(fx->store, "c", true, false, false), 0);
    assert_int_equal(depth(fx->store, NULL), 1);
}

static void the_outbox_survives_a_reopen(void **state)
{
    fx_t *fx = *state;
    assert_int_equal(put(fx->store, "x", true, false, false), 0);
    assert_int_equal(put(fx->store, "y", true, false, false), 0);
    fx_reopen(fx);
    assert_int_equal(depth(fx->store, NULL), 2);
    assert_string_equal(waiting(fx->store), "x,y");
}

static void no_outbox_queues_nothing(void **state)
{
    fx_t *fx = fx_open(0, 0);
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(put(fx->store, "x", true, false, false), 0);
    assert_int_equal(depth(fx->store, NULL), 0);
    assert_false(weir_store_outbox_full(fx->store));
    assert_string_equal(waiting(fx->store), "");
    fx_close(fx);
}

/* Events stored in alpha. */
static int64_t stored(weir_store_t *store)
{
    int64_t n = -1;
    assert_int_equal(weir_store_count(store, "alpha", &n, NULL), 0);
    return n;
}

/* A broadcast of more events than the outbox has room for is refused whole: nothing of it is
 * stored or queued, and nothing is counted as left out. */
static void a_write_that_must_go_out_fails_whole_when_the_outbox_is_full(void **state)
{
    fx_t *fx = *state;
    char id[16];
    for (int i = 0; i < BOUND - 1; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        assert_int_equal(put(fx->store, id, true, false, false), 0);
    }
    weir_event_t *a = fx_event("a", "/outbox", "t.out", NULL);
    weir_event_t *b = fx_event("b", "/outbox", "t.out", NULL);
    weir_store_item_t items[2] = {
        {.ns = "alpha", .ev = a, .born_inside = true, .must_go_out = true},
        {.ns = "alpha", .ev = b, .born_inside = true, .must_go_out = true}};
    assert_int_equal(weir_store_write_sync(fx->store, items, 2), WEIR_EBUSY);
    assert_int_equal(items[0].seq, 0);
    uint64_t overflowed = 1;
    assert_int_equal(depth(fx->store, &overflowed), BOUND - 1);
    assert_int_equal(overflowed, 0);
    assert_int_equal(stored(fx->store), BOUND - 1);
    assert_string_equal(waiting(fx->store), "e0,e1,e2");

    /* One fits; then a replay that must go out is refused too. */
    assert_int_equal(weir_store_write_sync(fx->store, items, 1), 0);
    assert_string_equal(waiting(fx->store), "e0,e1,e2,a");
    weir_store_item_t replay = {
        .ns = "alpha", .ev = a, .born_inside = true, .replay = true, .must_go_out = true};
    assert_int_equal(weir_store_write_sync(fx->store, &replay, 1), WEIR_EBUSY);
    /* A duplicate goes nowhere, so the outbox's bound does not concern it. */
    assert_int_equal(weir_store_write_sync(fx->store, items, 1), 0);
    assert_true(items[0].duplicate);
    assert_int_equal(stored(fx->store), BOUND);
    assert_string_equal(waiting(fx->store), "e0,e1,e2,a");
    weir_ce_free(a);
    weir_ce_free(b);
}

typedef struct one_write {
    weir_event_t *ev;
    weir_store_item_t item;
    weir_store_write_t w;
    fx_result_t res;
} one_write_t;

/* Writes committed together in one group share the room that is left: of many broadcasts
 * queued at once, as many succeed as there is room, and the others are refused, not left out. */
static void writes_of_one_group_share_the_room(void **state)
{
    fx_t *fx = *state;
    enum { N = BOUND + 3 };
    one_write_t writes[N];
    char id[16];
    fx_gate_t gate;

    fx_gate_close(&gate, fx);
    for (int i = 0; i < N; i++) {
        one_write_t *o = &writes[i];
        snprintf(id, sizeof(id), "c%d", i);
        memset(o, 0, sizeof(*o));
        o->ev = fx_event(id, "/outbox", "t.out", NULL);
        o->item = (weir_store_item_t){
            .ns = "alpha", .ev = o->ev, .born_inside = true, .must_go_out = true};
        o->w = (weir_store_write_t){
            .items = &o->item, .nitems = 1, .done = fx_result_done, .arg = &o->res};
        assert_int_equal(weir_store_submit(fx->store, &o->w), 0);
    }
    fx_gate_open(&gate);
    fx_barrier(fx->store);

    int taken = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(atomic_load(&writes[i].res.calls), 1);
        assert_true(writes[i].res.status == 0 || writes[i].res.status == WEIR_EBUSY);
        taken += writes[i].res.status == 0;
        weir_ce_free(writes[i].ev);
    }
    assert_int_equal(taken, BOUND);
    assert_string_equal(waiting(fx->store), "c0,c1,c2,c3");
    assert_int_equal(stored(fx->store), BOUND);
    uint64_t overflowed = 1;
    assert_int_equal(depth(fx->store, &overflowed), BOUND);
    assert_int_equal(overflowed, 0);
}

/* An event left out for lack of room is counted only when its write commits. */
static void a_failed_write_counts_no_overflow(void **state)
{
    fx_t *fx = *state;
    char id[16];
    for (int i = 0; i < BOUND; i++) {
        snprintf(id, sizeof(id), "e%d", i);
        assert_int_equal(put(fx->store, id, true, false, false), 0);
    }
    weir_event_t *a = fx_event("a", "/outbox", "t.out", NULL);
    weir_store_item_t items[2] = {{.ns = "alpha", .ev = a, .born_inside = true},
                                  {.ns = "missing", .ev = a, .born_inside = true}};
    assert_int_equal(weir_store_write_sync(fx->store, items, 2), WEIR_ENOTFOUND);
    uint64_t overflowed = 1;
    depth(fx->store, &overflowed);
    assert_int_equal(overflowed, 0);
    assert_int_equal(weir_store_write_sync(fx->store, items, 1), 0);
    depth(fx->store, &overflowed);
    assert_int_equal(overflowed, 1);
    weir_ce_free(a);
}

/* A row is read only once its commit is durable: until the syncer's fsync returned, a power
 * loss could take it back, and the source must not have sent it. */
static void only_durable_rows_are_read(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev = fx_event("early", "/outbox", "t.out", NULL);
    weir_store_item_t item = {.ns = "alpha", .ev = ev, .born_inside = true};
    fx_result_t res = {0};
    weir_store_write_t w = {.items = &item, .nitems = 1, .done = fx_result_done, .arg = &res};

    sync_gate(true);
    assert_int_equal(weir_store_submit(fx->store, &w), 0);
    for (int i = 0; i < 500 && depth(fx->store, NULL) == 0; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    int64_t committed = depth(fx->store, NULL);
    char before[64];
    snprintf(before, sizeof(before), "%s", waiting(fx->store));
    int answered = atomic_load(&res.calls);
    /* Open before asserting: w lives on this stack until the store is done with it. */
    sync_gate(false);
    fx_barrier(fx->store);
    weir_ce_free(ev);

    assert_int_equal(committed, 1); /* committed, and visible to readers */
    assert_string_equal(before, "");
    assert_int_equal(answered, 0);
    assert_int_equal(res.status, 0);
    assert_string_equal(waiting(fx->store), "early");
}

/* The same for deliveries: the engine must not send one whose event a power loss could undo. */
static void only_durable_deliveries_are_read(void **state)
{
    fx_t *fx = *state;
    weir_store_listener_t l = {.id = "l1", .ns = "alpha", .spec = "{}"};
    weir_store_match_t m = {.listener = "l1", .kind = WEIR_STORE_MATCH_DELIVER};
    weir_event_t *ev = fx_event("delivered-early", "/d", "t.d", NULL);
    weir_store_item_t item = {.ns = "alpha", .ev = ev, .matches = &m, .nmatches = 1};
    fx_result_t res = {0};
    weir_store_write_t w = {.items = &item, .nitems = 1, .done = fx_result_done, .arg = &res};
    weir_store_delivery_t *rows = NULL;
    size_t n_new = 9, n_due = 9, n_after = 0;
    int64_t pending = 0, next = 0;

    assert_int_equal(weir_store_listener_put(fx->store, &l, NULL), 0);
    sync_gate(true);
    assert_int_equal(weir_store_submit(fx->store, &w), 0);
    for (int i = 0; i < 500 && pending == 0; i++) {
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
        assert_int_equal(weir_store_deliveries_pending(fx->store, 0, &pending, &next, NULL), 0);
    }
    int rc_new = weir_store_deliveries_new(fx->store, 0, 10, &rows, &n_new, NULL);
    weir_store_deliveries_free(rows, n_new);
    int rc_due = weir_store_deliveries_due(fx->store, NULL, INT64_MAX / 2, INT64_MIN, 0, 10, &rows,
                                           &n_due, NULL);
    weir_store_deliveries_free(rows, n_due);
    sync_gate(false); /* before asserting: w lives on this stack until the store is done */
    fx_barrier(fx->store);
    weir_ce_free(ev);

    assert_int_equal(pending, 1); /* committed */
    assert_int_equal(rc_new, 0);
    assert_int_equal(n_new, 0);
    assert_int_equal(rc_due, 0);
    assert_int_equal(n_due, 0);
    assert_int_equal(weir_store_deliveries_new(fx->store, 0, 10, &rows, &n_after, NULL), 0);
    assert_int_equal(n_after, 1);
    weir_store_deliveries_free(rows, n_after);
}

static void count_hook(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

/* The engine and the source are woken only by a group that made deliveries or outbox rows
 * durable; the sink's plain events, most of what is stored, wake neither. */
static void commit_hooks_run_for_deliveries_and_outbox_rows(void **state)
{
    fx_t *fx = *state;
    weir_store_listener_t l = {.id = "l1", .ns = "alpha", .spec = "{}"};
    weir_store_match_t m = {.listener = "l1", .kind = WEIR_STORE_MATCH_DELIVER};
    weir_event_t *ev = fx_event("matched", "/d", "t.d", NULL);
    weir_store_item_t item = {.ns = "alpha", .ev = ev, .matches = &m, .nmatches = 1};
    atomic_int calls = 0;

    assert_int_equal(weir_store_listener_put(fx->store, &l, NULL), 0);
    fx_barrier(fx->store);
    assert_int_equal(weir_store_add_commit_hook(fx->store, count_hook, &calls), 0);

    /* Each is followed by a barrier: a later group's answer comes after this group's hooks. */
    assert_int_equal(put(fx->store, "plain", false, false, false), 0);
    fx_barrier(fx->store);
    int after_plain = atomic_load(&calls);
    assert_int_equal(put(fx->store, "born-inside", true, false, false), 0);
    fx_barrier(fx->store);
    int after_outbox = atomic_load(&calls);
    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    fx_barrier(fx->store);
    int after_delivery = atomic_load(&calls);
    weir_store_remove_commit_hook(fx->store, count_hook, &calls);
    weir_ce_free(ev);

    assert_int_equal(after_plain, 0);
    assert_int_equal(after_outbox, 1);
    assert_int_equal(after_delivery, 2);
}

/* Two stores on one directory would each send every outbox row: the second open is refused,
 * and the directory is free again once the first store closed. */
static void a_data_directory_is_opened_once(void **state)
{
    fx_t *fx = *state;
    weir_store_config_t cfg;
    weir_store_config_default(&cfg);
    cfg.data_dir = fx->dir;
    cfg.outbox_max = BOUND;
    weir_store_t *second = NULL;
    weir_err_t err = {0};
    assert_int_equal(weir_store_open(&cfg, &second, &err), WEIR_EBUSY);
    assert_null(second);
    assert_string_equal(err.attr, "data_dir");
    assert_non_null(strstr(err.msg, "in use by another weir process"));
    assert_int_equal(put(fx->store, "still", true, false, false), 0);

    fx_reopen(fx);
    assert_string_equal(waiting(fx->store), "still");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(only_events_born_inside_are_queued, setup, teardown),
        cmocka_unit_test_setup_teardown(a_full_outbox_stores_but_does_not_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(outbox_only_items_keep_no_history, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_write_queues_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(the_outbox_survives_a_reopen, setup, teardown),
        cmocka_unit_test(no_outbox_queues_nothing),
        cmocka_unit_test_setup_teardown(
            a_write_that_must_go_out_fails_whole_when_the_outbox_is_full, setup, teardown),
        cmocka_unit_test_setup_teardown(writes_of_one_group_share_the_room, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_write_counts_no_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(only_durable_rows_are_read, setup, teardown),
        cmocka_unit_test_setup_teardown(only_durable_deliveries_are_read, setup, teardown),
        cmocka_unit_test_setup_teardown(commit_hooks_run_for_deliveries_and_outbox_rows, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_data_directory_is_opened_once, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
