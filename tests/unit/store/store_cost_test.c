/*
 * What queries cost, counted in SQLite's virtual machine steps (not in time), by a sqlite3_step
 * of this program's own that wraps the library's. One step of retention must cost the same
 * whether the namespace keeps a hundred events or thousands, since it runs in a transaction
 * with the events being ingested; history/{id} must find an event through the unique index,
 * whether it is the newest or the oldest of a big namespace.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <string.h>

#include "fixture.h"

static int (*real_step)(sqlite3_stmt *);
static atomic_llong delete_steps; /* VM steps of DELETEs from events, since the last reset */
static atomic_llong get_steps;    /* VM steps of lookups of one event by id */

/* Every call of the store's comes here first, since the program defines the symbol. */
int sqlite3_step(sqlite3_stmt *st)
{
    int rc = real_step(st);
    const char *sql = sqlite3_sql(st);

    if (sql != NULL && strncmp(sql, "DELETE FROM events", 18) == 0) {
        atomic_fetch_add(&delete_steps, sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1));
    } else if (sql != NULL && strstr(sql, "FROM events WHERE ns = ?1 AND id = ?2") != NULL) {
        atomic_fetch_add(&get_steps, sqlite3_stmt_status(st, SQLITE_STMTSTATUS_VM_STEP, 1));
    }
    return rc;
}

/* VM steps of one trim step of ns through the cut that keep makes; *deleted says how many went. */
static long long step_cost(fx_t *fx, int64_t keep, size_t rows, size_t *deleted)
{
    weir_store_retention_t policy = {.max_age_us = 0, .max_count = keep};
    weir_store_cut_t cut;

    assert_int_equal(
        weir_store_retention_cut(fx->store, "alpha", &policy, weir_wall_us(), &cut, NULL), 0);
    atomic_store(&delete_steps, 0);
    assert_int_equal(weir_store_trim(fx->store, "alpha", &cut, rows, deleted, NULL), 0);
    return atomic_load(&delete_steps);
}

static void test_step_cost_follows_rows_not_count(void **state)
{
    fx_t *fx = fx_open(0, 0);
    size_t deleted = 0;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    for (int i = 0; i < 4000; i += 500) {
        fx_write_range(fx->store, "alpha", "e", i, i + 500, "{}");
    }

    long long few = step_cost(fx, 100, 50, &deleted);
    assert_int_equal(deleted, 50);
    long long many = step_cost(fx, 3800, 50, &deleted);
    assert_int_equal(deleted, 50);
    print_message("VM steps for 50 rows: %lld keeping 100, %lld keeping 3800\n", few, many);
    assert_true(few > 0);
    /* Walking the 3800 kept events would cost thousands of steps more. */
    assert_true(many < few + few / 4);

    /* A step with nothing left to remove costs next to nothing. */
    step_cost(fx, 3800, 500, &deleted);
    long long none = step_cost(fx, 3800, 500, &deleted);
    assert_int_equal(deleted, 0);
    assert_true(none < 100);
    fx_close(fx);
}

/* VM steps of history/{id} of one event. */
static long long get_cost(fx_t *fx, const char *id)
{
    weir_store_record_t rec = {0};

    atomic_store(&get_steps, 0);
    assert_int_equal(weir_store_get(fx->store, "alpha", id, NULL, &rec, NULL), 0);
    assert_string_equal(fx_json_str(rec.json, "id"), id);
    weir_store_record_clear(&rec);
    return atomic_load(&get_steps);
}

static void test_get_by_id_uses_the_unique_index(void **state)
{
    fx_t *fx = fx_open(0, 0);

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    for (int i = 0; i < 4000; i += 500) {
        fx_write_range(fx->store, "alpha", "e", i, i + 500, "{}");
    }
    long long newest = get_cost(fx, "e-3999");
    long long oldest = get_cost(fx, "e-0");
    print_message("VM steps of history/{id}: %lld for the newest, %lld for the oldest\n", newest,
                  oldest);
    /* A walk of the namespace by seq would cost thousands for the oldest. */
    assert_true(newest < 200);
    assert_true(oldest < 200);
    fx_close(fx);
}

int main(void)
{
    real_step = (int (*)(sqlite3_stmt *))dlsym(RTLD_NEXT, "sqlite3_step");
    if (real_step == NULL) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_cost_follows_rows_not_count),
        cmocka_unit_test(test_get_by_id_uses_the_unique_index),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
