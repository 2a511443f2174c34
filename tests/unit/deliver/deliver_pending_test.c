/*
 * The bound on pending deliveries: past it the oldest deliveries of the listener with the most
 * are given up and counted as failed; other listeners keep theirs, and the count follows only
 * what commits (a namespace deleted, a listener deleted, deliveries finished).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#define BOUND 100

typedef struct fx {
    char dir[64];
    weir_store_t *store;
} fx_t;

static void open_store(fx_t *fx)
{
    weir_store_config_t cfg;
    weir_store_config_default(&cfg);
    cfg.data_dir = fx->dir;
    cfg.no_sync = true;
    cfg.deliveries_max = BOUND;
    assert_int_equal(weir_store_open(&cfg, &fx->store, NULL), 0);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/weir-pending-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    open_store(fx);
    assert_int_equal(weir_store_ns_create(fx->store, "ns", NULL, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "other", NULL, NULL), 0);
    const char *ids[] = {"big", "small", "gone"};
    const char *nss[] = {"ns", "ns", "other"};
    for (int i = 0; i < 3; i++) {
        weir_store_listener_t l = {.id = (char *)ids[i], .ns = (char *)nss[i], .spec = "{}"};
        assert_int_equal(weir_store_listener_put(fx->store, &l, NULL), 0);
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];
    weir_store_close(fx->store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Stores n events of ns, each matched by listener, with ids prefix0, prefix1, ... */
static void store_events(fx_t *fx, const char *ns, const char *listener, const char *prefix, int n)
{
    weir_store_match_t m = {.listener = listener, .kind = WEIR_STORE_MATCH_DELIVER};
    char id[32];
    for (int i = 0; i < n; i++) {
        weir_event_t *ev = weir_ce_new();
        snprintf(id, sizeof(id), "%s%d", prefix, i);
        weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
        weir_ce_set(ev, "id", id, WEIR_CE_STRING, NULL);
        weir_ce_set(ev, "source", "/test", WEIR_CE_STRING, NULL);
        weir_ce_set(ev, "type", "t", WEIR_CE_STRING, NULL);
        weir_store_item_t item = {.ns = ns, .ev = ev, .matches = &m, .nmatches = 1};
        assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
        weir_ce_free(ev);
    }
}

/* The ids of the events whose deliveries to listener are pending, in order. */
static size_t pending_ids(fx_t *fx, const char *listener, char ids[][32], size_t max)
{
    weir_store_delivery_t *rows = NULL;
    size_t n = 0, k = 0;
    assert_int_equal(weir_store_deliveries_new(fx->store, 0, 100000, &rows, &n, NULL), 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].listener, listener) != 0 || k == max) {
            continue;
        }
        cJSON *doc = cJSON_Parse(rows[i].payload);
        snprintf(ids[k++], 32, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(doc, "id")));
        cJSON_Delete(doc);
    }
    weir_store_deliveries_free(rows, n);
    return k;
}

static int64_t pending(fx_t *fx, uint64_t *dropped)
{
    int64_t count = 0;
    uint64_t d = 0;
    weir_store_deliveries_stats(fx->store, &count, &d);
    if (dropped != NULL) {
        *dropped = d;
    }
    return count;
}

static void the_listener_with_the_most_gives_up_its_oldest(void **state)
{
    fx_t *fx = *state;
    char ids[200][32];
    uint64_t dropped = 0;

    store_events(fx, "ns", "small", "s", 20);
    store_events(fx, "ns", "big", "b", 90);
    /* 110 stored: each write past 100 gives up big's oldest, down to 99 (a slack of 1%) */
    int64_t left = pending(fx, &dropped);
    assert_true(left >= BOUND - BOUND / 100 && left <= BOUND);
    assert_int_equal(dropped, 110 - left);
    assert_int_equal(pending_ids(fx, "small", ids, 200), 20);
    size_t n = pending_ids(fx, "big", ids, 200);
    assert_int_equal(n, left - 20);
    char first[32];
    snprintf(first, sizeof(first), "b%llu", (unsigned long long)dropped);
    assert_string_equal(ids[0], first); /* b0 and on went: the oldest */
    assert_string_equal(ids[n - 1], "b89");

    weir_store_listener_t l;
    assert_int_equal(weir_store_listener_get(fx->store, "ns", "big", &l, NULL), 0);
    assert_int_equal(l.failed, dropped);
    assert_int_equal(l.pending, n);
    weir_store_listener_clear(&l);
    assert_int_equal(weir_store_listener_get(fx->store, "ns", "small", &l, NULL), 0);
    assert_int_equal(l.failed, 0);
    assert_int_equal(l.pending, 20);
    weir_store_listener_clear(&l);

    /* the events stay in history */
    int64_t events = 0;
    assert_int_equal(weir_store_count(fx->store, "ns", &events, NULL), 0);
    assert_int_equal(events, 110);
}

static void the_count_follows_deletions_and_a_reopen(void **state)
{
    fx_t *fx = *state;

    store_events(fx, "other", "gone", "g", 30);
    store_events(fx, "ns", "big", "b", 40);
    assert_int_equal(pending(fx, NULL), 70);
    assert_int_equal(weir_store_listener_delete(fx->store, "ns", "big", NULL), 0);
    assert_int_equal(pending(fx, NULL), 30);
    assert_int_equal(weir_store_ns_delete(fx->store, "other", NULL), 0);
    assert_int_equal(pending(fx, NULL), 0);

    store_events(fx, "ns", "small", "s", 15);
    /* a write that fails (its namespace is gone) is undone and not counted */
    weir_store_match_t m = {.listener = "small", .kind = WEIR_STORE_MATCH_DELIVER};
    weir_event_t *ev = weir_ce_new();
    weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "id", "x", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "source", "/test", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "type", "t", WEIR_CE_STRING, NULL);
    weir_store_item_t items[2] = {{.ns = "ns", .ev = ev, .matches = &m, .nmatches = 1},
                                  {.ns = "other", .ev = ev}};
    assert_int_equal(weir_store_write_sync(fx->store, items, 2), WEIR_ENOTFOUND);
    weir_ce_free(ev);
    assert_int_equal(pending(fx, NULL), 15);

    weir_store_close(fx->store);
    open_store(fx);
    assert_int_equal(pending(fx, NULL), 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_listener_with_the_most_gives_up_its_oldest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_count_follows_deletions_and_a_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
