/* What history needs beyond reads: the durable horizon and waits, replays, and retention. */
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

#define MS 1000000ull

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int setup(void **state)
{
    fx_t *fx = fx_open(0, 0);

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "beta", NULL, NULL), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

/* Writes event "<prefix>-<i>" for i in [from, to) into ns; returns the last seq. */
static int64_t write_range(fx_t *fx, const char *ns, const char *prefix, int from, int to)
{
    int64_t seq = 0;

    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%s-%d", prefix, i);
        weir_event_t *ev = fx_event(id, "/src", "t.hist", "{}");
        assert_int_equal(fx_write(fx->store, ns, ev, &seq), 0);
        weir_ce_free(ev);
    }
    return seq;
}

static int64_t count_of(fx_t *fx, const char *ns)
{
    int64_t n = -1;

    assert_int_equal(weir_store_count(fx->store, ns, &n, NULL), 0);
    return n;
}

/* ---- the horizon and waits ------------------------------------------------------------- */

static void test_horizon_follows_durable_writes(void **state)
{
    fx_t *fx = *state;

    assert_int_equal(weir_store_durable_seq(fx->store), 0);
    int64_t seq = write_range(fx, "alpha", "h", 0, 3);
    /* The done callback runs after the watch is told, so the horizon covers the write. */
    assert_true(weir_store_durable_seq(fx->store) >= seq);
    assert_true(weir_store_wait(fx->store, "alpha", seq - 1, 0));
    assert_false(weir_store_wait(fx->store, "alpha", seq, 10 * MS));
    assert_false(weir_store_wait(fx->store, "beta", 0, 10 * MS));
    assert_false(weir_store_wait(fx->store, NULL, 0, 0));
}

static void test_horizon_survives_reopen(void **state)
{
    fx_t *fx = *state;
    int64_t seq = write_range(fx, "alpha", "r", 0, 4);

    fx_reopen(fx);
    assert_int_equal(weir_store_durable_seq(fx->store), seq);
    /* Events stored before the open never wake a waiter: catch-up reads them. */
    assert_false(weir_store_wait(fx->store, "alpha", 0, 10 * MS));
}

typedef struct later {
    fx_t *fx;
    int64_t seq;
} later_t;

static void *write_later(void *arg)
{
    later_t *l = arg;

    sleep_ms(50);
    l->seq = write_range(l->fx, "alpha", "late", 0, 1);
    return NULL;
}

static void test_wait_wakes_on_a_new_event(void **state)
{
    fx_t *fx = *state;
    int64_t before = write_range(fx, "alpha", "w", 0, 1);
    later_t l = {.fx = fx};
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, write_later, &l), 0);
    uint64_t t0 = weir_mono_ns();
    assert_true(weir_store_wait(fx->store, "alpha", before, 5000 * MS));
    assert_true(weir_mono_ns() - t0 < 4000 * MS);
    pthread_join(t, NULL);
    assert_true(l.seq > before);
    assert_true(weir_store_durable_seq(fx->store) >= l.seq);
}

static void test_deleted_namespace_wakes_nothing(void **state)
{
    fx_t *fx = *state;
    int64_t seq = write_range(fx, "alpha", "d", 0, 1);

    assert_true(weir_store_wait(fx->store, "alpha", seq - 1, 0));
    assert_int_equal(weir_store_ns_delete(fx->store, "alpha", NULL), 0);
    assert_false(weir_store_wait(fx->store, "alpha", seq - 1, 0));
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_false(weir_store_wait(fx->store, "alpha", 0, 0));
    int64_t again = write_range(fx, "alpha", "d", 0, 1);
    assert_true(again > seq);
    assert_true(weir_store_wait(fx->store, "alpha", seq, 0));
}

static void *delete_later(void *arg)
{
    fx_t *fx = arg;

    sleep_ms(50);
    assert_int_equal(weir_store_ns_delete(fx->store, "alpha", NULL), 0);
    return NULL;
}

/* A stream waiting on a namespace learns of its deletion at once, and finds it gone. */
static void test_deletion_ends_waits(void **state)
{
    fx_t *fx = *state;
    int64_t seq = write_range(fx, "alpha", "x", 0, 1);
    pthread_t t;

    assert_int_equal(pthread_create(&t, NULL, delete_later, fx), 0);
    uint64_t t0 = weir_mono_ns();
    assert_false(weir_store_wait(fx->store, "alpha", seq, 5000 * MS));
    assert_true(weir_mono_ns() - t0 < 4000 * MS);
    assert_false(weir_store_ns_exists(fx->store, "alpha"));
    pthread_join(t, NULL);
}

/* ---- replays --------------------------------------------------------------------------- */

static void test_replay_adds_no_row(void **state)
{
    fx_t *fx = *state;
    int64_t seq = write_range(fx, "alpha", "p", 0, 2);
    weir_event_t *ev = fx_event("p-1", "/src", "t.hist", "{}");
    weir_store_item_t item = {.ns = "alpha", .ev = ev, .replay = true};

    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    assert_int_equal(item.seq, seq);
    assert_false(item.duplicate);
    assert_int_equal(count_of(fx, "alpha"), 2);
    /* A replay is no new event: a live stream is not woken by it. */
    assert_false(weir_store_wait(fx->store, "alpha", seq, 10 * MS));
    weir_ce_free(ev);
}

static void test_replay_of_a_missing_event_fails_alone(void **state)
{
    fx_t *fx = *state;
    weir_event_t *gone = fx_event("nope", "/src", "t.hist", "{}");
    weir_event_t *fresh = fx_event("fresh", "/src", "t.hist", "{}");
    weir_store_item_t items[2] = {{.ns = "alpha", .ev = fresh},
                                  {.ns = "alpha", .ev = gone, .replay = true}};

    /* A write is all or nothing: the fresh event goes with the failed replay. */
    assert_int_equal(weir_store_write_sync(fx->store, items, 2), WEIR_ENOTFOUND);
    assert_int_equal(count_of(fx, "alpha"), 0);
    items[0].replay = true;
    items[0].ns = "nowhere";
    assert_int_equal(weir_store_write_sync(fx->store, items, 1), WEIR_ENOTFOUND);
    weir_ce_free(gone);
    weir_ce_free(fresh);
}

/* ---- retention ------------------------------------------------------------------------- */

static void test_retention_settings(void **state)
{
    fx_t *fx = *state;
    weir_store_retention_t r;
    weir_err_t err;

    assert_int_equal(weir_store_retention_get(fx->store, "alpha", &r, NULL), 0);
    assert_int_equal(r.max_age_us, -1);
    assert_int_equal(r.max_count, -1);

    weir_store_retention_t set = {.max_age_us = 7200000000LL, .max_count = 0};
    assert_int_equal(weir_store_retention_set(fx->store, "alpha", &set, NULL), 0);
    assert_int_equal(weir_store_retention_get(fx->store, "alpha", &r, NULL), 0);
    assert_int_equal(r.max_age_us, 7200000000LL);
    assert_int_equal(r.max_count, 0);
    assert_int_equal(weir_store_retention_get(fx->store, "beta", &r, NULL), 0);
    assert_int_equal(r.max_age_us, -1);

    assert_int_equal(weir_store_retention_set(fx->store, "nowhere", &set, &err), WEIR_ENOTFOUND);
    assert_int_equal(weir_store_retention_get(fx->store, "nowhere", &r, &err), WEIR_ENOTFOUND);
    set.max_count = -2;
    assert_int_equal(weir_store_retention_set(fx->store, "alpha", &set, &err), WEIR_EINVAL);

    /* Deleting a namespace takes its settings along. */
    assert_int_equal(weir_store_ns_delete(fx->store, "alpha", NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_retention_get(fx->store, "alpha", &r, NULL), 0);
    assert_int_equal(r.max_age_us, -1);
    assert_int_equal(r.max_count, -1);

    fx_reopen(fx);
    set = (weir_store_retention_t){.max_age_us = -1, .max_count = 5};
    assert_int_equal(weir_store_retention_set(fx->store, "beta", &set, NULL), 0);
    fx_reopen(fx);
    assert_int_equal(weir_store_retention_get(fx->store, "beta", &r, NULL), 0);
    assert_int_equal(r.max_age_us, -1);
    assert_int_equal(r.max_count, 5);
}

/* The seqs of ns's events, oldest first, into seqs (at most max); returns how many. */
static size_t seqs_of(fx_t *fx, const char *ns, int64_t *seqs, size_t max)
{
    weir_store_page_t page;

    assert_int_equal(weir_store_since(fx->store, ns, 0, max, 0, &page, NULL), 0);
    for (size_t i = 0; i < page.n; i++) {
        seqs[i] = page.recs[i].seq;
    }
    size_t n = page.n;
    weir_store_page_free(&page);
    return n;
}

/* Cuts ns for policy now, once, and steps through the cut max_rows at a time; returns the
 * rows each step deleted in steps (at most nsteps; the last is below max_rows). */
static size_t trim_all(fx_t *fx, const char *ns, weir_store_retention_t policy, size_t max_rows,
                       size_t *steps, size_t nsteps)
{
    weir_store_cut_t cut;
    size_t deleted = max_rows;
    size_t n = 0;

    assert_int_equal(weir_store_retention_cut(fx->store, ns, &policy, weir_wall_us(), &cut, NULL),
                     0);
    while (deleted == max_rows) {
        assert_true(n < nsteps);
        assert_int_equal(weir_store_trim(fx->store, ns, &cut, max_rows, &deleted, NULL), 0);
        steps[n++] = deleted;
    }
    return n;
}

static void test_trim_by_count_in_steps(void **state)
{
    fx_t *fx = *state;
    weir_store_retention_t keep10 = {.max_age_us = 0, .max_count = 10};
    int64_t before[30];
    int64_t after[30];
    size_t steps[8];

    write_range(fx, "alpha", "c", 0, 30);
    write_range(fx, "beta", "c", 0, 5);
    assert_int_equal(seqs_of(fx, "alpha", before, 30), 30);
    assert_int_equal(trim_all(fx, "alpha", keep10, 8, steps, 8), 3);
    assert_int_equal(steps[0], 8);
    assert_int_equal(steps[1], 8);
    assert_int_equal(steps[2], 4);
    assert_int_equal(seqs_of(fx, "alpha", after, 30), 10);
    assert_memory_equal(after, &before[20], 10 * sizeof(int64_t));
    assert_int_equal(count_of(fx, "beta"), 5);

    /* At the bound, or below it, nothing goes. */
    assert_int_equal(trim_all(fx, "alpha", keep10, 8, steps, 8), 1);
    assert_int_equal(steps[0], 0);
    keep10.max_count = 11;
    assert_int_equal(trim_all(fx, "alpha", keep10, 8, steps, 8), 1);
    assert_int_equal(steps[0], 0);
    assert_int_equal(count_of(fx, "alpha"), 10);
}

/* Events that arrive between the cut and its steps are newer than the cut: kept, even when
 * the namespace is over its count again by then (the next sweep takes those). */
static void test_trim_cut_holds_while_events_arrive(void **state)
{
    fx_t *fx = *state;
    weir_store_retention_t keep5 = {.max_age_us = 0, .max_count = 5};
    weir_store_cut_t cut;
    size_t deleted = 0;
    int64_t left[40];

    int64_t fifth = write_range(fx, "alpha", "a", 0, 15) - 5;
    assert_int_equal(
        weir_store_retention_cut(fx->store, "alpha", &keep5, weir_wall_us(), &cut, NULL), 0);
    assert_int_equal(cut.before_us, INT64_MIN);
    assert_int_equal(cut.through_seq, fifth);
    write_range(fx, "alpha", "b", 0, 10);
    assert_int_equal(weir_store_trim(fx->store, "alpha", &cut, 500, &deleted, NULL), 0);
    assert_int_equal(deleted, 10);
    assert_int_equal(seqs_of(fx, "alpha", left, 40), 15);
    assert_true(left[0] > fifth);

    /* A cut of another namespace's seqs removes nothing here. */
    assert_int_equal(weir_store_trim(fx->store, "beta", &cut, 500, &deleted, NULL), 0);
    assert_int_equal(deleted, 0);
}

static void test_trim_by_age(void **state)
{
    fx_t *fx = *state;
    size_t steps[4];
    int64_t left[20];

    write_range(fx, "alpha", "old", 0, 6);
    sleep_ms(30);
    int64_t mid = weir_wall_us();
    sleep_ms(30);
    int64_t newest = write_range(fx, "alpha", "new", 0, 4);

    weir_store_retention_t policy = {.max_age_us = weir_wall_us() - mid, .max_count = 0};
    assert_int_equal(trim_all(fx, "alpha", policy, 500, steps, 4), 1);
    assert_int_equal(steps[0], 6);
    assert_int_equal(seqs_of(fx, "alpha", left, 20), 4);
    assert_int_equal(left[3], newest);

    /* Nothing kept forever is removed; an incomplete policy or cut is refused. */
    policy = (weir_store_retention_t){.max_age_us = 0, .max_count = 0};
    assert_int_equal(trim_all(fx, "alpha", policy, 500, steps, 4), 1);
    assert_int_equal(steps[0], 0);
    weir_store_cut_t cut;
    size_t deleted = 7;
    policy.max_count = -1;
    assert_int_equal(
        weir_store_retention_cut(fx->store, "alpha", &policy, weir_wall_us(), &cut, NULL),
        WEIR_EINVAL);
    cut = (weir_store_cut_t){.before_us = INT64_MAX, .through_seq = -1};
    assert_int_equal(weir_store_trim(fx->store, "alpha", &cut, 500, &deleted, NULL), WEIR_EINVAL);
    assert_int_equal(deleted, 0);
    assert_int_equal(count_of(fx, "alpha"), 4);
}

/* With both set, an event goes when either removes it: too old, or beyond the newest count. */
static void test_trim_by_age_and_count(void **state)
{
    fx_t *fx = *state;
    size_t steps[8];
    int64_t left[40];

    write_range(fx, "alpha", "old", 0, 10);
    sleep_ms(30);
    int64_t mid = weir_wall_us();
    sleep_ms(30);
    int64_t first_new = write_range(fx, "alpha", "new", 0, 1);
    int64_t newest = write_range(fx, "alpha", "new", 1, 10);
    write_range(fx, "beta", "old", 0, 3);

    /* The count alone would keep 15, the age alone the 10 new: the age decides. */
    weir_store_retention_t policy = {.max_age_us = weir_wall_us() - mid, .max_count = 15};
    assert_int_equal(trim_all(fx, "alpha", policy, 4, steps, 8), 3);
    assert_int_equal(steps[0] + steps[1] + steps[2], 10);
    assert_int_equal(seqs_of(fx, "alpha", left, 40), 10);
    assert_int_equal(left[0], first_new);

    /* Now the count removes more than the age does; the two share each step's rows. */
    policy = (weir_store_retention_t){.max_age_us = weir_wall_us() - mid, .max_count = 3};
    assert_int_equal(trim_all(fx, "alpha", policy, 4, steps, 8), 2);
    assert_int_equal(steps[0] + steps[1], 7);
    assert_int_equal(seqs_of(fx, "alpha", left, 40), 3);
    assert_int_equal(left[2], newest);
    assert_int_equal(count_of(fx, "beta"), 3);
}

/* What retention removed is kept per namespace, read with a stream's page, across a reopen. */
static void test_trim_is_remembered_for_streams(void **state)
{
    fx_t *fx = *state;
    weir_store_retention_t keep4 = {.max_age_us = 0, .max_count = 4};
    weir_store_page_t page;
    size_t steps[4];

    int64_t last = write_range(fx, "alpha", "t", 0, 10);
    write_range(fx, "beta", "t", 0, 2);
    assert_int_equal(weir_store_since(fx->store, "alpha", 0, 100, 0, &page, NULL), 0);
    assert_int_equal(page.trimmed, 0);
    weir_store_page_free(&page);

    assert_int_equal(trim_all(fx, "alpha", keep4, 500, steps, 4), 1);
    assert_int_equal(steps[0], 6);
    fx_reopen(fx);
    assert_int_equal(weir_store_since(fx->store, "alpha", 0, 100, 0, &page, NULL), 0);
    assert_int_equal(page.n, 4);
    assert_int_equal(page.trimmed, last - 4);
    assert_int_equal(page.recs[0].seq, last - 3);
    weir_store_page_free(&page);
    assert_int_equal(weir_store_since(fx->store, "beta", 0, 100, 0, &page, NULL), 0);
    assert_int_equal(page.trimmed, 0);
    weir_store_page_free(&page);

    /* It only grows; a namespace created again starts afresh. */
    keep4.max_count = 8;
    assert_int_equal(trim_all(fx, "alpha", keep4, 500, steps, 4), 1);
    assert_int_equal(weir_store_since(fx->store, "alpha", 0, 100, 0, &page, NULL), 0);
    assert_int_equal(page.trimmed, last - 4);
    weir_store_page_free(&page);
    assert_int_equal(weir_store_ns_delete(fx->store, "alpha", NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_since(fx->store, "alpha", 0, 100, 0, &page, NULL), 0);
    assert_int_equal(page.n, 0);
    assert_int_equal(page.trimmed, 0);
    weir_store_page_free(&page);
}

static void test_retainer_applies_defaults_and_overrides(void **state)
{
    fx_t *fx = *state;
    weir_store_retention_t defaults = {.max_age_us = 0, .max_count = 3};
    weir_store_retention_t keep_all = {.max_age_us = -1, .max_count = 0};
    weir_store_retainer_t *r = NULL;

    assert_int_equal(weir_store_retention_set(fx->store, "beta", &keep_all, NULL), 0);
    write_range(fx, "alpha", "d", 0, 1200);
    write_range(fx, "beta", "d", 0, 10);
    assert_int_equal(weir_store_retainer_start(fx->store, &defaults, 20, &r, NULL), 0);
    for (int i = 0; i < 500 && count_of(fx, "alpha") != 3; i++) {
        sleep_ms(10);
    }
    weir_store_retainer_stop(r);
    assert_int_equal(count_of(fx, "alpha"), 3);
    assert_int_equal(count_of(fx, "beta"), 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_horizon_follows_durable_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_horizon_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wait_wakes_on_a_new_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deleted_namespace_wakes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletion_ends_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_adds_no_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_of_a_missing_event_fails_alone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_retention_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_by_count_in_steps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_cut_holds_while_events_arrive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_by_age, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_by_age_and_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_is_remembered_for_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retainer_applies_defaults_and_overrides, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
