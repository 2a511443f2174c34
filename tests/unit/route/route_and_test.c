/*
 * `and` listeners through a real store: sets complete per correlation key, members past their
 * lifespan drop, a duplicate event adds nothing, and listeners survive a reopen.
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

#include "route/route.h"

typedef struct fx {
    char dir[64];
    weir_store_t *store;
    weir_route_t *route;
    char *id;
} fx_t;

static void open_all(fx_t *fx)
{
    weir_store_config_t cfg;
    weir_store_config_default(&cfg);
    cfg.data_dir = fx->dir;
    cfg.no_sync = true;
    assert_int_equal(weir_store_open(&cfg, &fx->store, NULL), 0);
    assert_int_equal(weir_route_open(fx->store, &fx->route, NULL), 0);
}

static void close_all(fx_t *fx)
{
    weir_route_close(fx->route);
    weir_store_close(fx->store);
}

static int setup(void **state)
{
    fx_t *fx = weir_calloc(1, sizeof(*fx));
    const char *spec = "{\"mode\":\"and\",\"events\":[{\"type\":\"a\"},{\"type\":\"b\"}],"
                       "\"lifespan\":\"PT0.3S\",\"correlate\":[\"subject\"]}";
    weir_listener_t *l = NULL;

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/weir-route-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    open_all(fx);
    assert_int_equal(weir_store_ns_create(fx->store, "ns", NULL, NULL), 0);
    assert_int_equal(weir_route_listener_parse(spec, strlen(spec), &l, NULL), 0);
    assert_int_equal(weir_route_add(fx->route, "ns", l, NULL, &fx->id, NULL), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];
    close_all(fx);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    weir_free(fx->id);
    weir_free(fx);
    return 0;
}

/* Stores one event through the listeners, as the ingest path does. */
static void put(fx_t *fx, const char *id, const char *type, const char *subject)
{
    weir_event_t *ev = weir_ce_new();
    weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "id", id, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "source", "/s", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "type", type, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "subject", subject, WEIR_CE_STRING, NULL);
    weir_store_item_t item = {.ns = "ns", .ev = ev};
    weir_route_matches_t m = {NULL, 0};
    weir_route_match(fx->route, "ns", ev, &m);
    item.matches = m.items;
    item.nmatches = m.n;
    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    weir_route_matches_free(&m);
    weir_ce_free(ev);
}

/* Pending deliveries; the caller frees them. */
static weir_store_delivery_t *deliveries(fx_t *fx, size_t *n)
{
    weir_store_delivery_t *list = NULL;
    assert_int_equal(weir_store_deliveries_new(fx->store, 0, 100, &list, n, NULL), 0);
    return list;
}

static void expect_deliveries(fx_t *fx, size_t want)
{
    size_t n = 0;
    weir_store_delivery_t *list = deliveries(fx, &n);
    assert_int_equal(n, want);
    weir_store_deliveries_free(list, n);
}

static void test_set_completes_per_key(void **state)
{
    fx_t *fx = *state;
    put(fx, "1", "a", "k1");
    put(fx, "2", "b", "k2");
    put(fx, "3", "a", "k1"); /* replaces the first a of k1 */
    expect_deliveries(fx, 0);
    put(fx, "4", "b", "k1");

    size_t n = 0;
    weir_store_delivery_t *list = deliveries(fx, &n);
    assert_int_equal(n, 1);
    assert_true(list[0].combined);
    assert_string_equal(list[0].listener, fx->id);
    assert_non_null(strstr(list[0].payload, "\"a\":{"));
    assert_non_null(strstr(list[0].payload, "\"id\":\"3\""));
    assert_non_null(strstr(list[0].payload, "\"id\":\"4\""));
    weir_store_deliveries_free(list, n);

    /* k1 started over; k2 still holds its b */
    weir_store_collected_t *held = NULL;
    assert_int_equal(weir_store_collected(fx->store, fx->id, &held, &n, NULL), 0);
    assert_int_equal(n, 1);
    assert_string_equal(held[0].key, "[\"k2\"]");
    weir_store_collected_free(held, n);
}

static void test_lifespan(void **state)
{
    fx_t *fx = *state;
    put(fx, "1", "a", "k");
    usleep(400000);
    put(fx, "2", "b", "k"); /* the a is past its lifespan */
    expect_deliveries(fx, 0);
    put(fx, "3", "a", "k");
    expect_deliveries(fx, 1);
}

static void test_duplicate_adds_nothing(void **state)
{
    fx_t *fx = *state;
    put(fx, "1", "a", "k");
    put(fx, "2", "b", "k");
    expect_deliveries(fx, 1);
    put(fx, "2", "b", "k"); /* a duplicate: stored once, wakes nobody */
    put(fx, "1", "a", "k");
    expect_deliveries(fx, 1);
}

static void test_survives_reopen(void **state)
{
    fx_t *fx = *state;
    put(fx, "1", "a", "k");
    close_all(fx);
    open_all(fx);
    put(fx, "2", "b", "k");
    expect_deliveries(fx, 1);
    weir_store_listener_t l;
    assert_int_equal(weir_store_listener_get(fx->store, "ns", fx->id, &l, NULL), 0);
    assert_int_equal(l.pending, 1);
    weir_store_listener_clear(&l);
    assert_int_equal(weir_route_remove(fx->route, "ns", fx->id, NULL, NULL), 0);
    expect_deliveries(fx, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_set_completes_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lifespan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_adds_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_survives_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
