/* Reads: history with its filters and cursor, since, get and count. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fixture.h"

#define EVENTS 30
#define HALF   (EVENTS / 2)

typedef struct world {
    fx_t *fx;
    int64_t seqs[EVENTS]; /* seqs[i] is the seq of event "ev-<i>" */
    int64_t mid_us;       /* between the receipt of the first and the second half */
} world_t;

static void sleep_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Event i: every third an order, the others users; odd ones from /a, even from /b. */
static void write_event(world_t *w, int i)
{
    char id[32];
    char data[64];
    const char *note = i == 7 ? "100%_off" : i == 8 ? "100%off" : i == 9 ? "100a_off" : "plain";

    snprintf(id, sizeof(id), "ev-%d", i);
    snprintf(data, sizeof(data), "{\"n\":%d,\"note\":\"%s\"}", i, note);
    weir_event_t *ev =
        fx_event(id, i % 2 ? "/a" : "/b",
                 i % 3 == 0 ? "com.example.order.created" : "com.example.user.seen", data);
    assert_int_equal(fx_write(w->fx->store, "alpha", ev, &w->seqs[i]), 0);
    weir_ce_free(ev);
}

static int setup(void **state)
{
    world_t *w = weir_calloc(1, sizeof(*w));
    weir_event_t *other = fx_event("ev-1", "/a", "com.example.order.created", "{}");

    w->fx = fx_open(0, 0);
    assert_int_equal(weir_store_ns_create(w->fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_ns_create(w->fx->store, "beta", NULL, NULL), 0);
    for (int i = 0; i < EVENTS; i++) {
        if (i == HALF) {
            sleep_ms(3);
            w->mid_us = weir_wall_us();
            sleep_ms(3);
        }
        write_event(w, i);
    }
    /* The same id in another namespace must never show up in alpha. */
    assert_int_equal(fx_write(w->fx->store, "beta", other, NULL), 0);
    weir_ce_free(other);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world_t *w = *state;

    fx_close(w->fx);
    weir_free(w);
    return 0;
}

static weir_store_query_t all_of(const char *ns, size_t limit)
{
    return (weir_store_query_t){.ns = ns,
                                .from_us = INT64_MIN,
                                .until_us = INT64_MAX,
                                .before_seq = INT64_MAX,
                                .limit = limit};
}

static size_t history_count(world_t *w, const weir_store_query_t *q)
{
    weir_store_page_t page;

    assert_int_equal(weir_store_history(w->fx->store, q, &page, NULL), 0);
    for (size_t i = 0; i < page.n; i++) {
        assert_string_equal(page.recs[i].ns, q->ns);
        assert_true(i == 0 || page.recs[i].seq < page.recs[i - 1].seq);
    }
    size_t n = page.n;
    weir_store_page_free(&page);
    return n;
}

static void test_history_newest_first(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 5);
    weir_store_page_t page;

    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 5);
    for (size_t i = 0; i < page.n; i++) {
        assert_int_equal(page.recs[i].seq, w->seqs[EVENTS - 1 - i]);
        assert_false(page.recs[i].born_inside);
        assert_true(page.recs[i].received_us > 0);
    }
    assert_string_equal(fx_json_str(page.recs[0].json, "id"), "ev-29");
    assert_int_equal(page.next, w->seqs[EVENTS - 5]);
    weir_store_page_free(&page);
}

/* A page that holds the last matching event says so: no cursor to an empty page. */
static void test_history_next_is_exact(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", EVENTS);
    weir_store_page_t page;

    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, EVENTS);
    assert_int_equal(page.next, 0);
    weir_store_page_free(&page);

    q.limit = EVENTS - 1;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, EVENTS - 1);
    assert_int_equal(page.next, w->seqs[1]);
    weir_store_page_free(&page);

    q = all_of("alpha", 10);
    q.type = "order"; /* exactly 10 */
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 10);
    assert_int_equal(page.next, 0);
    weir_store_page_free(&page);
}

static void test_history_filters(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 100);

    assert_int_equal(history_count(w, &q), EVENTS);
    q.type = "order";
    assert_int_equal(history_count(w, &q), 10);
    q.type = "com.example.user.seen";
    assert_int_equal(history_count(w, &q), 20);
    q.type = NULL;
    q.source = "/a";
    assert_int_equal(history_count(w, &q), HALF);
    q.source = "/";
    assert_int_equal(history_count(w, &q), 0);
    q.source = "/a";
    q.type = "order";
    assert_int_equal(history_count(w, &q), 5);
    q = all_of("beta", 100);
    assert_int_equal(history_count(w, &q), 1);
    q = all_of("nobody", 100);
    assert_int_equal(history_count(w, &q), 0);
}

static void test_history_text_is_literal(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 100);
    weir_store_page_t page;

    /* With LIKE, '%' and '_' would also match "100%off" and "100a_off". */
    q.text = "100%_off";
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 1);
    assert_string_equal(fx_json_str(page.recs[0].json, "id"), "ev-7");
    weir_store_page_free(&page);

    q.text = "_off";
    assert_int_equal(history_count(w, &q), 2);
    q.text = "com.example.order";
    assert_int_equal(history_count(w, &q), 10);
    q.text = "no such text";
    assert_int_equal(history_count(w, &q), 0);
}

static void test_history_time_range(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 100);

    q.from_us = w->mid_us;
    assert_int_equal(history_count(w, &q), EVENTS - HALF);
    q.from_us = INT64_MIN;
    q.until_us = w->mid_us;
    assert_int_equal(history_count(w, &q), HALF);
    q.from_us = w->mid_us;
    assert_int_equal(history_count(w, &q), 0);
}

/* Pages through q with a cursor; every event is seen once, in order. Returns the events seen,
 * and the pages read in *pages when not NULL. */
static size_t page_through(world_t *w, weir_store_query_t q, bool *seen, size_t *pages)
{
    weir_store_page_t page;
    size_t total = 0;
    size_t count = 0;
    int64_t last = INT64_MAX;

    q.before_seq = INT64_MAX;
    do {
        assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
        assert_true(page.n <= q.limit);
        for (size_t i = 0; i < page.n; i++) {
            int index = 0;
            assert_int_equal(sscanf(fx_json_str(page.recs[i].json, "id"), "ev-%d", &index), 1);
            assert_false(seen[index]);
            seen[index] = true;
            assert_true(page.recs[i].seq < last);
            last = page.recs[i].seq;
        }
        assert_true(page.next == 0 || page.next < q.before_seq);
        q.before_seq = page.next;
        total += page.n;
        count++;
        weir_store_page_free(&page);
    } while (q.before_seq != 0);
    if (pages != NULL) {
        *pages = count;
    }
    return total;
}

static void test_history_cursor_paging(void **state)
{
    world_t *w = *state;
    bool seen[EVENTS] = {false};
    weir_store_query_t q = all_of("alpha", 4);

    assert_int_equal(page_through(w, q, seen, NULL), EVENTS);
    for (int i = 0; i < EVENTS; i++) {
        assert_true(seen[i]);
    }

    memset(seen, 0, sizeof(seen));
    q.type = "order";
    q.limit = 3;
    assert_int_equal(page_through(w, q, seen, NULL), 10);
    for (int i = 0; i < EVENTS; i++) {
        assert_int_equal(seen[i], i % 3 == 0);
    }
}

static void test_history_limits(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 0);
    weir_store_page_t page = {.n = 7, .next = 7};

    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 0);
    assert_int_equal(page.next, 0);
    q.ns = NULL;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), WEIR_EINVAL);
    q = all_of("alpha", 1);
    q.before_seq = w->seqs[0];
    assert_int_equal(history_count(w, &q), 0);
}

/* A page ends at its byte budget, after one event at least; paging still sees every event. */
static void test_history_byte_budget(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 100);
    weir_store_page_t page;
    bool seen[EVENTS] = {false};
    size_t pages = 0;

    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    size_t one = page.recs[0].json_len;
    size_t two = one + page.recs[1].json_len;
    weir_store_page_free(&page);

    q.max_bytes = two;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 2);
    assert_int_equal(page.next, w->seqs[EVENTS - 2]);
    weir_store_page_free(&page);
    q.max_bytes = two - 1;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 1);
    weir_store_page_free(&page);
    q.max_bytes = 1; /* smaller than any event: one a page */
    assert_int_equal(page_through(w, q, seen, &pages), EVENTS);
    assert_int_equal(pages, EVENTS);
}

/* A filtered page examines at most max_scan events and goes on where it stopped, so a page may
 * be short, even empty, and still have a next; paging finds every match once. */
static void test_history_scan_bound(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 100);
    weir_store_page_t page;
    bool seen[EVENTS] = {false};
    size_t pages = 0;

    q.type = "order"; /* ev-0, ev-3, ... ev-27 */
    q.max_scan = 7;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 2); /* ev-27 and ev-24 among ev-29 to ev-23 */
    assert_int_equal(page.next, w->seqs[22] + 1);
    weir_store_page_free(&page);

    assert_int_equal(page_through(w, q, seen, &pages), 10);
    assert_int_equal(pages, 5); /* 30 events, 7 at a time */
    for (int i = 0; i < EVENTS; i++) {
        assert_int_equal(seen[i], i % 3 == 0);
    }

    /* Within a window, a full page goes on after its last event. */
    q.limit = 1;
    q.before_seq = INT64_MAX;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 1);
    assert_int_equal(page.next, w->seqs[27]);
    weir_store_page_free(&page);

    /* A time bound is a filter too; without any filter the page is not bounded by the scan. */
    q = all_of("alpha", 100);
    q.max_scan = 7;
    q.from_us = w->mid_us;
    assert_int_equal(history_count(w, &q), 7);
    q.from_us = INT64_MIN;
    assert_int_equal(history_count(w, &q), EVENTS);
}

/* Keeps the events whose id ends in 5, counting the calls. */
static bool ends_in_5(const char *json, size_t len, void *arg)
{
    const char *id = fx_json_str(json, "id");
    (*(int *)arg)++;
    return id[strlen(id) - 1] == '5';
}

/* A match of the reader's own is one more filter: pages hold only what it keeps, their next is
 * exact, and it counts against the scan bound like the others. */
static void test_history_match(void **state)
{
    world_t *w = *state;
    weir_store_query_t q = all_of("alpha", 2);
    weir_store_page_t page;
    bool seen[EVENTS] = {false};
    int calls = 0;

    q.match = ends_in_5;
    q.match_arg = &calls;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 2); /* ev-25 and ev-15 */
    assert_string_equal(fx_json_str(page.recs[0].json, "id"), "ev-25");
    assert_string_equal(fx_json_str(page.recs[1].json, "id"), "ev-15");
    assert_int_equal(page.next, w->seqs[15]); /* ev-5 is still to come */
    weir_store_page_free(&page);
    assert_true(calls >= 15 && calls <= EVENTS);

    assert_int_equal(page_through(w, q, seen, NULL), 3);
    for (int i = 0; i < EVENTS; i++) {
        assert_int_equal(seen[i], i % 10 == 5);
    }

    q.limit = 100; /* with a type filter too, and a scan of 12: ev-29 to ev-18 hold none */
    q.type = "order";
    q.max_scan = 12;
    assert_int_equal(weir_store_history(w->fx->store, &q, &page, NULL), 0);
    assert_int_equal(page.n, 0);
    assert_int_equal(page.next, w->seqs[17] + 1);
    weir_store_page_free(&page);
}

static void test_since(void **state)
{
    world_t *w = *state;
    weir_store_page_t page;

    assert_int_equal(weir_store_since(w->fx->store, "alpha", w->seqs[9], 5, 0, &page, NULL), 0);
    assert_int_equal(page.n, 5);
    for (size_t i = 0; i < page.n; i++) {
        assert_int_equal(page.recs[i].seq, w->seqs[10 + i]);
    }
    assert_int_equal(page.next, w->seqs[14]);
    weir_store_page_free(&page);

    /* Every event read: next is the durable horizon, past beta's newer event. */
    int64_t horizon = weir_store_durable_seq(w->fx->store);
    assert_true(horizon > w->seqs[EVENTS - 1]);
    assert_int_equal(weir_store_since(w->fx->store, "alpha", 0, 1000, 0, &page, NULL), 0);
    assert_int_equal(page.n, EVENTS);
    assert_int_equal(page.next, horizon);
    weir_store_page_free(&page);
    assert_int_equal(weir_store_since(w->fx->store, "alpha", 0, EVENTS, 0, &page, NULL), 0);
    assert_int_equal(page.n, EVENTS);
    assert_int_equal(page.next, horizon);
    weir_store_page_free(&page);

    assert_int_equal(
        weir_store_since(w->fx->store, "alpha", w->seqs[EVENTS - 1], 10, 0, &page, NULL), 0);
    assert_int_equal(page.n, 0);
    assert_int_equal(page.next, horizon);
    weir_store_page_free(&page);
}

/* A stream's page ends at its byte budget too, and goes on from its last event. */
static void test_since_byte_budget(void **state)
{
    world_t *w = *state;
    weir_store_page_t page;

    assert_int_equal(weir_store_since(w->fx->store, "alpha", 0, 64, 1, &page, NULL), 0);
    assert_int_equal(page.n, 1);
    assert_int_equal(page.next, w->seqs[0]);
    size_t two = page.recs[0].json_len * 2 + 1;
    weir_store_page_free(&page);
    assert_int_equal(weir_store_since(w->fx->store, "alpha", w->seqs[0], 64, two, &page, NULL), 0);
    assert_int_equal(page.n, 2);
    assert_int_equal(page.next, w->seqs[2]);
    weir_store_page_free(&page);
}

static void test_get(void **state)
{
    world_t *w = *state;
    weir_event_t *first = fx_event("a/b/c?d", "/s1", "t", NULL);
    weir_event_t *second = fx_event("a/b/c?d", "/s2", "t", NULL);
    weir_store_record_t rec;
    int64_t seq1 = 0;
    int64_t seq2 = 0;
    weir_err_t err;

    assert_int_equal(fx_write(w->fx->store, "alpha", first, &seq1), 0);
    assert_int_equal(fx_write(w->fx->store, "alpha", second, &seq2), 0);

    assert_int_equal(weir_store_get(w->fx->store, "alpha", "a/b/c?d", NULL, &rec, NULL), 0);
    assert_int_equal(rec.seq, seq2);
    assert_string_equal(fx_json_str(rec.json, "source"), "/s2");
    weir_store_record_clear(&rec);

    assert_int_equal(weir_store_get(w->fx->store, "alpha", "a/b/c?d", "/s1", &rec, NULL), 0);
    assert_int_equal(rec.seq, seq1);
    assert_string_equal(fx_json_str(rec.json, "source"), "/s1");
    weir_store_record_clear(&rec);

    assert_int_equal(weir_store_get(w->fx->store, "alpha", "a/b/c?d", "/s3", &rec, &err),
                     WEIR_ENOTFOUND);
    assert_int_equal(weir_store_get(w->fx->store, "beta", "a/b/c?d", NULL, &rec, NULL),
                     WEIR_ENOTFOUND);
    assert_int_equal(weir_store_get(w->fx->store, "alpha", "a/b/c", NULL, &rec, NULL),
                     WEIR_ENOTFOUND);
    assert_null(rec.json);
    weir_ce_free(first);
    weir_ce_free(second);
}

static void test_count(void **state)
{
    world_t *w = *state;
    int64_t count = 0;

    assert_int_equal(weir_store_count(w->fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, EVENTS);
    assert_int_equal(weir_store_count(w->fx->store, "beta", &count, NULL), 0);
    assert_int_equal(count, 1);
    assert_int_equal(weir_store_count(w->fx->store, NULL, &count, NULL), 0);
    assert_int_equal(count, EVENTS + 1);
}

static void test_born_inside(void **state)
{
    world_t *w = *state;
    weir_event_t *ev = fx_event("inner", "/weir", "t", NULL);
    weir_store_item_t item = {.ns = "beta", .ev = ev, .born_inside = true};
    weir_store_record_t rec;

    assert_int_equal(weir_store_write_sync(w->fx->store, &item, 1), 0);
    assert_int_equal(weir_store_get(w->fx->store, "beta", "inner", NULL, &rec, NULL), 0);
    assert_true(rec.born_inside);
    weir_store_record_clear(&rec);
    weir_ce_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_history_newest_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_next_is_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_filters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_text_is_literal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_time_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_cursor_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_byte_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_scan_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_history_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_byte_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_born_inside, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
