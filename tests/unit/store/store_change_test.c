/*
 * Changes and their follow-ups: a change (namespace, filter, listener, retention) and the event
 * that reports it commit in one transaction, or neither does. The store's sqlite3_step calls
 * (linked with --wrap=sqlite3_step) fail for the insert of an event whose id is "doomed", to see
 * that a follow-up that fails takes its change, and its transaction, with it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <string.h>

#include "fixture.h"

#define OUTBOX_MAX 16

int __real_sqlite3_step(sqlite3_stmt *st);
int __wrap_sqlite3_step(sqlite3_stmt *st);

static bool doomed(sqlite3_stmt *st)
{
    const char *sql = sqlite3_sql(st);
    if (sql == NULL || strncmp(sql, "INSERT INTO events", 18) != 0) {
        return false;
    }
    char *bound = sqlite3_expanded_sql(st);
    bool found = bound != NULL && strstr(bound, "'doomed'") != NULL;
    sqlite3_free(bound);
    return found;
}

int __wrap_sqlite3_step(sqlite3_stmt *st)
{
    if (doomed(st)) {
        return SQLITE_FULL; /* a statement that fails without ending the transaction */
    }
    return __real_sqlite3_step(st);
}

/* A system event of ns to follow a change: one item, born inside. */
typedef struct follow {
    weir_event_t *ev;
    weir_store_item_t item;
    weir_store_write_t w;
} follow_t;

static weir_store_write_t *follow(follow_t *f, const char *ns, const char *id, bool outbox_only)
{
    memset(f, 0, sizeof(*f));
    f->ev = fx_event(id, "/weir/namespaces/x", "io.weir.test", "{}");
    f->item =
        (weir_store_item_t){.ns = ns, .ev = f->ev, .born_inside = true, .outbox_only = outbox_only};
    f->w = (weir_store_write_t){.items = &f->item, .nitems = 1};
    return &f->w;
}

static void follow_free(follow_t *f)
{
    weir_ce_free(f->ev);
}

static int64_t events_in(weir_store_t *store, const char *ns)
{
    int64_t n = -1;
    assert_int_equal(weir_store_count(store, ns, &n, NULL), 0);
    return n;
}

static int64_t outbox_depth(weir_store_t *store)
{
    int64_t depth;
    uint64_t overflowed;
    weir_store_outbox_stats(store, &depth, &overflowed);
    return depth;
}

static bool filter_exists(weir_store_t *store, const char *ns, const char *name)
{
    bool exists = true;
    assert_int_equal(weir_store_filter_exists(store, ns, name, &exists, NULL), 0);
    return exists;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

/* ---- together ------------------------------------------------------------------------- */

static void test_namespace_retention_and_event_in_one(void **state)
{
    fx_t *fx = fx_open_outbox(OUTBOX_MAX);
    weir_store_retention_t keep = {.max_age_us = -1, .max_count = 7};
    weir_store_retention_t got;
    follow_t f;
    bool created = false;
    *state = fx;

    assert_int_equal(weir_store_ns_put(fx->store, "alpha", &keep, follow(&f, "alpha", "c1", false),
                                       &created, NULL),
                     0);
    assert_true(created);
    assert_int_equal(f.w.status, 0);
    assert_true(f.item.seq > 0);
    assert_false(f.item.duplicate);
    assert_null(f.item.json); /* released by the store */
    follow_free(&f);

    /* The event is durable and wakes a live stream like any other. */
    assert_true(weir_store_wait(fx->store, "alpha", 0, 0));
    assert_int_equal(weir_store_durable_seq(fx->store), f.item.seq);

    fx_reopen(fx);
    assert_true(weir_store_ns_exists(fx->store, "alpha"));
    assert_int_equal(weir_store_retention_get(fx->store, "alpha", &got, NULL), 0);
    assert_int_equal(got.max_count, 7);
    assert_int_equal(events_in(fx->store, "alpha"), 1);
    assert_int_equal(outbox_depth(fx->store), 1);

    /* An existing namespace: its retention changes, with an event; nothing is created. */
    keep.max_count = 9;
    assert_int_equal(weir_store_ns_put(fx->store, "alpha", &keep, follow(&f, "alpha", "u1", false),
                                       &created, NULL),
                     0);
    follow_free(&f);
    assert_false(created);
    assert_int_equal(f.w.status, 0);
    assert_int_equal(weir_store_retention_get(fx->store, "alpha", &got, NULL), 0);
    assert_int_equal(got.max_count, 9);
    assert_int_equal(events_in(fx->store, "alpha"), 2);
}

static void test_filter_and_listener_events_wake_listeners(void **state)
{
    fx_t *fx = fx_open_outbox(OUTBOX_MAX);
    weir_store_listener_t l = {.id = "l1", .ns = "alpha", .spec = "{}", .created_us = 1};
    weir_store_listener_t l2 = {.id = "l2", .ns = "alpha", .spec = "{}", .created_us = 2};
    weir_store_match_t wake = {.listener = "l1", .kind = WEIR_STORE_MATCH_DELIVER};
    weir_store_match_t gone = {.listener = "l2", .kind = WEIR_STORE_MATCH_DELIVER};
    follow_t f;
    bool created = false;
    int64_t pending;
    uint64_t dropped;
    *state = fx;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_listener_put(fx->store, &l, NULL), 0);

    follow(&f, "alpha", "f1", false);
    f.item.matches = &wake;
    f.item.nmatches = 1;
    assert_int_equal(weir_store_filter_put_then(fx->store, "alpha", "f", "return event;", 13, &f.w,
                                                &created, NULL),
                     0);
    follow_free(&f);
    assert_true(created);
    assert_true(filter_exists(fx->store, "alpha", "f"));
    weir_store_deliveries_stats(fx->store, &pending, &dropped);
    assert_int_equal(pending, 1);

    /* A listener's creation and deletion; the deleted one's own match is ignored. */
    assert_int_equal(
        weir_store_listener_put_then(fx->store, &l2, follow(&f, "alpha", "l2+", false), NULL), 0);
    follow_free(&f);
    follow(&f, "alpha", "l2-", false);
    f.item.matches = &gone;
    f.item.nmatches = 1;
    assert_int_equal(weir_store_listener_delete_then(fx->store, "alpha", "l2", &f.w, NULL), 0);
    follow_free(&f);
    assert_int_equal(f.w.status, 0);
    weir_store_deliveries_stats(fx->store, &pending, &dropped);
    assert_int_equal(pending, 1);

    assert_int_equal(weir_store_filter_delete_then(fx->store, "alpha", "f",
                                                   follow(&f, "alpha", "f2", false), NULL),
                     0);
    follow_free(&f);
    assert_false(filter_exists(fx->store, "alpha", "f"));
    assert_int_equal(events_in(fx->store, "alpha"), 4);
    assert_int_equal(outbox_depth(fx->store), 4);
}

static void test_namespace_deletion_event_goes_out_only(void **state)
{
    fx_t *fx = fx_open_outbox(OUTBOX_MAX);
    weir_store_outbox_row_t *rows;
    size_t n;
    follow_t f;
    *state = fx;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    fx_write_range(fx->store, "alpha", "e", 0, 3, NULL); /* through the sink: not in the outbox */
    assert_int_equal(
        weir_store_ns_delete_then(fx->store, "alpha", follow(&f, "alpha", "d1", true), NULL), 0);
    follow_free(&f);
    assert_int_equal(f.w.status, 0);
    assert_false(weir_store_ns_exists(fx->store, "alpha"));
    assert_int_equal(events_in(fx->store, NULL), 0);

    assert_int_equal(weir_store_outbox_next(fx->store, 0, 10, &rows, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].ns, "alpha");
    assert_int_equal(rows[0].seq, 0);
    assert_string_equal(fx_json_str(rows[0].json, "id"), "d1");
    weir_store_outbox_free(rows, n);
}

/* ---- a change that fails, a follow-up that fails --------------------------------------- */

static void test_failed_change_writes_no_event(void **state)
{
    fx_t *fx = fx_open_outbox(OUTBOX_MAX);
    weir_store_listener_t l = {.id = "l1", .ns = "alpha", .spec = "{}", .created_us = 1};
    weir_store_retention_t bad = {.max_age_us = -2, .max_count = 0};
    weir_err_t err = {0};
    follow_t f;
    bool created = true;
    *state = fx;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_listener_put(fx->store, &l, NULL), 0);

    assert_int_equal(weir_store_filter_put_then(fx->store, "nowhere", "f", "x", 1,
                                                follow(&f, "alpha", "a", false), &created, &err),
                     WEIR_ENOTFOUND);
    follow_free(&f);
    assert_false(created);
    assert_null(f.item.json);
    assert_int_equal(weir_store_filter_delete_then(fx->store, "alpha", "none",
                                                   follow(&f, "alpha", "b", false), &err),
                     WEIR_ENOTFOUND);
    follow_free(&f);
    assert_int_equal(
        weir_store_listener_put_then(fx->store, &l, follow(&f, "alpha", "c", false), &err),
        WEIR_EEXIST);
    follow_free(&f);
    assert_int_equal(weir_store_listener_delete_then(fx->store, "alpha", "none",
                                                     follow(&f, "alpha", "d", false), &err),
                     WEIR_ENOTFOUND);
    follow_free(&f);
    assert_int_equal(
        weir_store_ns_delete_then(fx->store, "nowhere", follow(&f, "nowhere", "e", true), &err),
        WEIR_ENOTFOUND);
    follow_free(&f);
    assert_int_equal(
        weir_store_ns_put(fx->store, "beta", &bad, follow(&f, "beta", "g", false), NULL, &err),
        WEIR_EINVAL);
    follow_free(&f);
    assert_false(weir_store_ns_exists(fx->store, "beta"));

    assert_int_equal(events_in(fx->store, NULL), 0);
    assert_int_equal(outbox_depth(fx->store), 0);
}

static void test_event_failing_alone_leaves_the_change(void **state)
{
    fx_t *fx = fx_open_outbox(OUTBOX_MAX);
    follow_t f;
    *state = fx;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_filter_put_then(fx->store, "alpha", "f", "x", 1,
                                                follow(&f, "gone", "a", false), NULL, NULL),
                     0);
    follow_free(&f);
    assert_int_equal(f.w.status, WEIR_ENOTFOUND);
    assert_int_equal(f.item.seq, 0);
    assert_true(filter_exists(fx->store, "alpha", "f"));
    assert_int_equal(events_in(fx->store, NULL), 0);
    assert_int_equal(outbox_depth(fx->store), 0);
}

static void test_event_failing_with_eio_takes_the_change(void **state)
{
    fx_t *fx = fx_open(0, 1); /* one job per transaction: a change and its event are one job */
    follow_t f;
    *state = fx;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_filter_put_then(fx->store, "alpha", "f", "x", 1,
                                                follow(&f, "alpha", "doomed", false), NULL, NULL),
                     WEIR_EIO);
    follow_free(&f);
    assert_false(filter_exists(fx->store, "alpha", "f"));

    weir_store_retention_t keep = {.max_age_us = -1, .max_count = 3};
    assert_int_equal(weir_store_ns_put(fx->store, "beta", &keep,
                                       follow(&f, "beta", "doomed", false), NULL, NULL),
                     WEIR_EIO);
    follow_free(&f);
    assert_false(weir_store_ns_exists(fx->store, "beta"));
    assert_int_equal(events_in(fx->store, NULL), 0);

    /* Storage works again at once for what does not fail. */
    assert_int_equal(weir_store_filter_put_then(fx->store, "alpha", "f", "x", 1,
                                                follow(&f, "alpha", "c", false), NULL, NULL),
                     0);
    follow_free(&f);
    assert_int_equal(f.w.status, 0);
    assert_true(weir_store_ready(fx->store));
    fx_reopen(fx);
    assert_false(weir_store_ns_exists(fx->store, "beta"));
    assert_true(filter_exists(fx->store, "alpha", "f"));
    assert_int_equal(events_in(fx->store, NULL), 1);
}

/* ---- queueing ------------------------------------------------------------------------- */

/* A change made on another thread, to queue it behind a closed gate. */
typedef struct change {
    weir_store_t *store;
    const char *ns;
    follow_t f;
    int rc;
    pthread_t thread;
} change_t;

static void *create_ns(void *arg)
{
    change_t *c = arg;
    c->rc = weir_store_ns_put(c->store, c->ns, NULL, &c->f.w, NULL, NULL);
    return NULL;
}

static void change_start(change_t *c, weir_store_t *store, const char *ns, const char *id)
{
    c->store = store;
    c->ns = ns;
    follow(&c->f, ns, id, false);
    assert_int_equal(pthread_create(&c->thread, NULL, create_ns, c), 0);
}

static void change_join(change_t *c)
{
    pthread_join(c->thread, NULL);
    follow_free(&c->f);
}

static void wait_depth(weir_store_t *store, size_t depth)
{
    while (weir_store_queue_depth(store) != depth) {
        sched_yield();
    }
}

/*
 * Queued behind a gate: w0, a change whose event fails, w1 and w2, taken two at a time. The
 * first transaction ends right after the change: its event goes with it and with w0 (which is
 * rolled back with them), not with w1; then a change whose event is stored, between w1 and w2.
 */
static void test_follow_up_is_never_split_from_its_change(void **state)
{
    fx_t *fx = fx_open(0, 2);
    fx_gate_t gate;
    fx_result_t res[3] = {{0}};
    weir_event_t *evs[3];
    weir_store_item_t items[3];
    weir_store_write_t ws[3];
    change_t bad, good;
    *state = fx;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    for (int i = 0; i < 3; i++) {
        char id[8] = {'w', (char)('0' + i), '\0'};
        evs[i] = fx_event(id, "/src", "t", NULL);
        items[i] = (weir_store_item_t){.ns = "alpha", .ev = evs[i]};
        ws[i] = (weir_store_write_t){
            .items = &items[i], .nitems = 1, .done = fx_result_done, .arg = &res[i]};
    }

    fx_gate_close(&gate, fx);
    assert_int_equal(weir_store_submit(fx->store, &ws[0]), 0);
    change_start(&bad, fx->store, "beta", "doomed");
    wait_depth(fx->store, 2); /* a change counts as a write */
    assert_int_equal(weir_store_submit(fx->store, &ws[1]), 0);
    change_start(&good, fx->store, "gamma", "ev");
    wait_depth(fx->store, 4);
    assert_int_equal(weir_store_submit(fx->store, &ws[2]), 0);
    fx_gate_open(&gate);
    change_join(&bad);
    change_join(&good);
    fx_barrier(fx->store);

    assert_int_equal(res[0].status, WEIR_EIO);
    assert_int_equal(bad.rc, WEIR_EIO);
    assert_int_equal(res[1].status, 0);
    assert_int_equal(good.rc, 0);
    assert_int_equal(good.f.w.status, 0);
    assert_int_equal(res[2].status, 0);
    for (int i = 0; i < 3; i++) {
        weir_ce_free(evs[i]);
    }
    assert_true(items[1].seq < good.f.item.seq);
    assert_true(good.f.item.seq < items[2].seq);
    assert_false(weir_store_ns_exists(fx->store, "beta"));
    assert_true(weir_store_ns_exists(fx->store, "gamma"));
    assert_int_equal(events_in(fx->store, "gamma"), 1);
    assert_int_equal(events_in(fx->store, "alpha"), 2);
}

static void test_full_queue_refuses_the_change(void **state)
{
    fx_t *fx = fx_open(2, 0);
    fx_gate_t gate;
    fx_result_t res[2] = {{0}};
    weir_store_write_t ws[2] = {{.done = fx_result_done, .arg = &res[0]},
                                {.done = fx_result_done, .arg = &res[1]}};
    weir_err_t err = {0};
    follow_t f;
    *state = fx;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    fx_gate_close(&gate, fx);
    assert_int_equal(weir_store_submit(fx->store, &ws[0]), 0);
    assert_int_equal(weir_store_submit(fx->store, &ws[1]), 0);
    assert_int_equal(
        weir_store_ns_put(fx->store, "beta", NULL, follow(&f, "beta", "b", false), NULL, &err),
        WEIR_EBUSY);
    follow_free(&f);
    assert_null(f.item.json);
    assert_string_equal(err.msg, "the store queue is full; retry later");
    assert_int_equal(weir_store_filter_put_then(fx->store, "alpha", "f", "x", 1,
                                                follow(&f, "alpha", "a", false), NULL, &err),
                     WEIR_EBUSY);
    follow_free(&f);
    assert_int_equal(weir_store_filter_put(fx->store, "alpha", "g", "x", 1, NULL, &err),
                     WEIR_EBUSY);
    fx_gate_open(&gate);
    fx_barrier(fx->store);

    assert_false(weir_store_ns_exists(fx->store, "beta"));
    assert_false(filter_exists(fx->store, "alpha", "f"));
    assert_false(filter_exists(fx->store, "alpha", "g"));
    assert_int_equal(events_in(fx->store, NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_namespace_retention_and_event_in_one, teardown),
        cmocka_unit_test_teardown(test_filter_and_listener_events_wake_listeners, teardown),
        cmocka_unit_test_teardown(test_namespace_deletion_event_goes_out_only, teardown),
        cmocka_unit_test_teardown(test_failed_change_writes_no_event, teardown),
        cmocka_unit_test_teardown(test_event_failing_alone_leaves_the_change, teardown),
        cmocka_unit_test_teardown(test_event_failing_with_eio_takes_the_change, teardown),
        cmocka_unit_test_teardown(test_follow_up_is_never_split_from_its_change, teardown),
        cmocka_unit_test_teardown(test_full_queue_refuses_the_change, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
