/*
 * The engine and its targets: a delivery loaded before its listener's target is known (at a
 * restart, the engine's first load runs while the targets are still being registered) waits
 * for the target, and is attempted once it is set; it is never dropped.
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_delivery_waits_for_its_target, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
