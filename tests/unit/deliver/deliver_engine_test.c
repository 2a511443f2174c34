/*
 * The engine and its targets: a delivery loaded before its listener's target is known (at a
 * restart, the engine's first load runs while the targets are still being registered) waits
 * for the target, and is attempted once it is set; it is never dropped. A large backlog of new
 * deliveries is read a few pages per turn, so that the engine's thread stays responsive.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deliver/deliver.h"

typedef struct fx {
    char dir[64];
    weir_store_t *store;
} fx_t;

static void pause_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000}, NULL);
}

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    weir_store_config_t cfg;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/weir-deliver-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    weir_store_config_default(&cfg);
    cfg.data_dir = fx->dir;
    cfg.no_sync = true;
    assert_int_equal(weir_store_open(&cfg, &fx->store, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "ns", NULL, NULL), 0);
    weir_store_listener_t l = {.id = "l1", .ns = "ns", .spec = "{}", .created_us = 1};
    assert_int_equal(weir_store_listener_put(fx->store, &l, NULL), 0);
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

/* Stores one event that listener l1 is to get. */
static void store_matched_event(fx_t *fx)
{
    weir_event_t *ev = weir_ce_new();
    assert_int_equal(weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "id", "e1", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "source", "/test", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "type", "t", WEIR_CE_STRING, NULL), 0);
    weir_store_match_t m = {.listener = "l1", .kind = WEIR_STORE_MATCH_DELIVER};
    weir_store_item_t item = {.ns = "ns", .ev = ev, .matches = &m, .nmatches = 1};
    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    weir_ce_free(ev);
}

/* Stores n events that listener l1 is to get, in writes of up to 1000. */
static void store_matched_events(fx_t *fx, int n)
{
    enum { CHUNK = 1000 };
    static weir_store_item_t items[CHUNK];
    static weir_event_t *evs[CHUNK];
    weir_store_match_t m = {.listener = "l1", .kind = WEIR_STORE_MATCH_DELIVER};
    char id[32];

    for (int done = 0; done < n; done += CHUNK) {
        int k = n - done < CHUNK ? n - done : CHUNK;
        for (int i = 0; i < k; i++) {
            evs[i] = weir_ce_new();
            snprintf(id, sizeof(id), "b%d", done + i);
            weir_ce_set(evs[i], "specversion", "1.0", WEIR_CE_STRING, NULL);
            weir_ce_set(evs[i], "id", id, WEIR_CE_STRING, NULL);
            weir_ce_set(evs[i], "source", "/test", WEIR_CE_STRING, NULL);
            weir_ce_set(evs[i], "type", "t", WEIR_CE_STRING, NULL);
            items[i] = (weir_store_item_t){.ns = "ns", .ev = evs[i], .matches = &m, .nmatches = 1};
        }
        assert_int_equal(weir_store_write_sync(fx->store, items, (size_t)k), 0);
        for (int i = 0; i < k; i++) {
            weir_ce_free(evs[i]);
        }
    }
}

/* The attempts made so far on the one pending delivery; -1 when none is pending. */
static int attempts(fx_t *fx)
{
    weir_store_delivery_t *rows = NULL;
    size_t n = 0;
    assert_int_equal(weir_store_deliveries_new(fx->store, 0, 10, &rows, &n, NULL), 0);
    int a = n == 1 ? (int)rows[0].attempts : -1;
    weir_store_deliveries_free(rows, n);
    return a;
}

static void a_delivery_waits_for_its_target(void **state)
{
    fx_t *fx = *state;
    store_matched_event(fx);

    weir_deliver_config_t cfg;
    weir_deliver_config_default(&cfg);
    cfg.system_events = false;
    weir_deliver_t *d = NULL;
    assert_int_equal(weir_deliver_start(fx->store, &cfg, &d, NULL), 0);
    pause_ms(300); /* the engine's first turns: it loads the delivery, with no target known */
    assert_int_equal(attempts(fx), 0);

    /* A port nothing listens on: the attempt fails and is recorded as a retry. */
    weir_deliver_spec_t spec = {.sink = "http://127.0.0.1:9/",
                                .retry = 5,
                                .backoff = WEIR_BACKOFF_LINEAR,
                                .delay_us = 10000000,
                                .timeout_us = 1000000};
    weir_deliver_target_set(d, "l1", "ns", &spec);
    for (int i = 0; i < 100 && attempts(fx) == 0; i++) {
        pause_ms(20);
    }
    assert_int_equal(attempts(fx), 1);
    weir_deliver_stop(d, 1000);
}

/*
 * 150,000 new deliveries whose target is not known take no slot, so nothing but the page limit
 * ends the scan that reads them. A stop, which the thread notices between turns, must not wait
 * for the whole backlog to be read.
 */
static void a_backlog_is_read_a_few_pages_per_turn(void **state)
{
    fx_t *fx = *state;
    store_matched_events(fx, 150000);

    weir_deliver_config_t cfg;
    weir_deliver_config_default(&cfg);
    cfg.system_events = false;
    weir_deliver_t *d = NULL;
    assert_int_equal(weir_deliver_start(fx->store, &cfg, &d, NULL), 0);
    pause_ms(2); /* the first turn's scan is under way */
    uint64_t t0 = weir_mono_ns();
    weir_deliver_stop(d, 0);
    uint64_t ms = (weir_mono_ns() - t0) / 1000000;
    if (ms > 100) {
        fail_msg("the engine took %llu ms to notice a stop", (unsigned long long)ms);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_delivery_waits_for_its_target, setup, teardown),
        cmocka_unit_test_setup_teardown(a_backlog_is_read_a_few_pages_per_turn, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
