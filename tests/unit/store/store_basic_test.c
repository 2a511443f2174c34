/* The store's life cycle, schema versions and namespaces. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "fixture.h"

static int setup(void **state)
{
    *state = fx_open(0, 0);
    return 0;
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

static int user_version(const char *dir)
{
    char path[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;

    snprintf(path, sizeof(path), "%s/weir.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return version;
}

static void set_user_version(const char *dir, int version)
{
    char path[128];
    char sql[64];
    sqlite3 *db = NULL;

    snprintf(path, sizeof(path), "%s/weir.db", dir);
    snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", version);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_reopen_keeps_data(void **state)
{
    fx_t *fx = *state;
    weir_event_t *ev = fx_event("e1", "/src", "t.one", "{\"a\":1}");
    weir_store_record_t rec;
    int64_t seq = 0;
    int64_t count = 0;

    assert_true(weir_store_ready(fx->store));
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(fx_write(fx->store, "alpha", ev, &seq), 0);
    assert_true(seq > 0);

    fx_reopen(fx);
    assert_true(weir_store_ns_exists(fx->store, "alpha"));
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, 1);
    assert_int_equal(weir_store_get(fx->store, "alpha", "e1", NULL, &rec, NULL), 0);
    assert_int_equal(rec.seq, seq);
    assert_string_equal(rec.ns, "alpha");
    assert_string_equal(fx_json_str(rec.json, "type"), "t.one");
    assert_int_equal(rec.json_len, strlen(rec.json));
    weir_store_record_clear(&rec);
    weir_ce_free(ev);
}

static void test_migrates_an_empty_file(void **state)
{
    fx_t *fx = *state;
    char path[128];
    int64_t count = -1;

    /* An empty file is a valid SQLite database of version 0: every step applies. */
    weir_store_close(fx->store);
    snprintf(path, sizeof(path), "%s/weir.db", fx->dir);
    remove(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);

    fx->store = NULL;
    fx_reopen(fx);
    assert_true(user_version(fx->dir) >= 1);
    assert_int_equal(weir_store_count(fx->store, NULL, &count, NULL), 0);
    assert_int_equal(count, 0);
}

/*
 * The database of the first release, written here as that release wrote it (its schema and
 * user_version 1), must open with its events intact and migrate to the current version.
 */
static const char first_release[] =
    "CREATE TABLE namespaces (name TEXT PRIMARY KEY, created_us INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, ns TEXT NOT NULL,"
    " source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, received_us INTEGER NOT NULL,"
    " born_inside INTEGER NOT NULL, event TEXT NOT NULL, UNIQUE (ns, id, source));"
    "CREATE INDEX events_ns_seq ON events (ns, seq);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
    "INSERT INTO namespaces VALUES ('old', 1700000000000000);"
    "INSERT INTO events (ns, source, id, type, received_us, born_inside, event) VALUES"
    " ('old', '/v1', 'first', 't.v1', 1700000000000001, 0,"
    "  '{\"specversion\":\"1.0\",\"id\":\"first\",\"source\":\"/v1\",\"type\":\"t.v1\"}');"
    /* a newest event since deleted: its seq, 2, is never given again */
    "INSERT INTO events (ns, source, id, type, received_us, born_inside, event) VALUES"
    " ('old', '/v1', 'gone', 't.v1', 1700000000000002, 0, '{}');"
    "DELETE FROM events WHERE id = 'gone';"
    "PRAGMA user_version = 1;";

static void test_migrates_the_first_release(void **state)
{
    fx_t *fx = *state;
    char path[128];
    sqlite3 *db;
    weir_store_record_t rec = {0};
    int64_t seq = 0;

    weir_store_close(fx->store);
    fx->store = NULL;
    snprintf(path, sizeof(path), "%s/weir.db", fx->dir);
    remove(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, first_release, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    fx_reopen(fx);
    assert_true(user_version(fx->dir) > 1);
    assert_true(weir_store_ns_exists(fx->store, "old"));
    assert_int_equal(weir_store_get(fx->store, "old", "first", "/v1", &rec, NULL), 0);
    assert_int_equal(rec.seq, 1);
    assert_string_equal(fx_json_str(rec.json, "type"), "t.v1");
    weir_store_record_clear(&rec);

    /* It goes on working: a new event after the old one, a duplicate of the old one refused. */
    weir_event_t *ev = fx_event("second", "/v1", "t.v1", NULL);
    assert_int_equal(fx_write(fx->store, "old", ev, &seq), 0);
    assert_int_equal(seq, 3);
    weir_ce_free(ev);
    ev = fx_event("first", "/v1", "t.v1", NULL);
    weir_store_item_t item = {.ns = "old", .ev = ev};
    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    assert_true(item.duplicate);
    weir_ce_free(ev);
}

/* Writes one event "id" into ns and returns its seq. */
static int64_t write_one(fx_t *fx, const char *ns, const char *id)
{
    int64_t seq = 0;
    weir_event_t *ev = fx_event(id, "/seq", "t", NULL);
    assert_int_equal(fx_write(fx->store, ns, ev, &seq), 0);
    weir_ce_free(ev);
    return seq;
}

/*
 * A seq names one event for good: a stream's cursor or a delivery that holds it must never find
 * another event under it, even after the newest events were deleted and weir restarted.
 */
static void test_seq_never_given_twice(void **state)
{
    fx_t *fx = *state;
    size_t deleted = 0;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "beta", NULL, NULL), 0);
    assert_int_equal(write_one(fx, "alpha", "a1"), 1);
    assert_int_equal(write_one(fx, "beta", "b1"), 2);
    assert_int_equal(write_one(fx, "beta", "b2"), 3);
    assert_int_equal(weir_store_ns_delete(fx->store, "beta", NULL), 0);
    assert_int_equal(write_one(fx, "alpha", "a2"), 4);
    assert_int_equal(weir_store_ns_delete(fx->store, "alpha", NULL), 0);
    fx_reopen(fx);
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    assert_int_equal(write_one(fx, "alpha", "a3"), 5);

    /* Retention that removes a namespace's every event, the newest of all among them. */
    weir_store_cut_t cut = {.before_us = weir_wall_us() + 1000000, .through_seq = 0};
    assert_int_equal(weir_store_trim(fx->store, "alpha", &cut, 100, &deleted, NULL), 0);
    assert_int_equal(deleted, 1);
    fx_reopen(fx);
    assert_int_equal(write_one(fx, "alpha", "a4"), 6);
}

static void test_refuses_a_newer_schema(void **state)
{
    fx_t *fx = *state;
    weir_store_config_t cfg;
    weir_store_t *store = NULL;
    weir_err_t err;

    weir_store_close(fx->store);
    fx->store = NULL;
    int version = user_version(fx->dir);
    assert_true(version >= 1);
    set_user_version(fx->dir, version + 1);

    weir_store_config_default(&cfg);
    cfg.data_dir = fx->dir;
    assert_int_equal(weir_store_open(&cfg, &store, &err), WEIR_EIO);
    assert_null(store);
    assert_non_null(strstr(err.msg, "newer"));
    /* Refused without touching it. */
    assert_int_equal(user_version(fx->dir), version + 1);
}

static void test_opens_a_missing_directory(void **state)
{
    fx_t *fx = *state;
    weir_store_config_t cfg;
    weir_store_t *store = NULL;
    char dir[128];

    weir_store_config_default(&cfg);
    snprintf(dir, sizeof(dir), "%s/a/b", fx->dir);
    cfg.data_dir = dir;
    assert_int_equal(weir_store_open(&cfg, &store, NULL), 0);
    weir_store_close(store);

    snprintf(dir, sizeof(dir), "%s/a/b/weir.db", fx->dir);
    remove(dir);
    snprintf(dir, sizeof(dir), "%s/a/b", fx->dir);
    remove(dir);
    snprintf(dir, sizeof(dir), "%s/a", fx->dir);
    remove(dir);
}

static void test_ns_valid(void **state)
{
    static const char *const good[] = {"a",    "alpha", "a1",     "my-ns", "x-1-y",
                                       "apis", "weir",  "weirdo", "ab0"};
    static const char *const bad[] = {"",    "A",   "Alpha", "1abc",   "-abc",  "abc-",       "a_b",
                                      "a.b", "a b", "api",   "weir-x", "weir-", "caf\xc3\xa9"};
    char long_name[80];
    weir_err_t err;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(weir_store_ns_valid(good[i], NULL), 0);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(weir_store_ns_valid(bad[i], &err), WEIR_EINVAL);
        assert_string_equal(err.attr, "namespace");
    }
    assert_int_equal(weir_store_ns_valid(NULL, NULL), WEIR_EINVAL);

    memset(long_name, 'a', 63);
    long_name[63] = '\0';
    assert_int_equal(weir_store_ns_valid(long_name, NULL), 0);
    long_name[63] = 'a';
    long_name[64] = '\0';
    assert_int_equal(weir_store_ns_valid(long_name, NULL), WEIR_EINVAL);
}

static void test_ns_lifecycle(void **state)
{
    fx_t *fx = *state;
    weir_store_ns_t *list = NULL;
    weir_event_t *ev = fx_event("e1", "/src", "t", NULL);
    bool created = false;
    size_t n = 0;
    int64_t count = -1;
    weir_err_t err;

    assert_int_equal(weir_store_ns_create(fx->store, "zeta", &created, NULL), 0);
    assert_true(created);
    assert_int_equal(weir_store_ns_create(fx->store, "zeta", &created, NULL), 0);
    assert_false(created);
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", &created, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "Bad", &created, &err), WEIR_EINVAL);
    assert_false(created);
    assert_true(weir_store_ns_exists(fx->store, "zeta"));
    assert_false(weir_store_ns_exists(fx->store, "beta"));

    assert_int_equal(weir_store_ns_list(fx->store, &list, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alpha");
    assert_string_equal(list[1].name, "zeta");
    assert_true(list[0].created_us > 0);
    weir_store_ns_free(list, n);

    assert_int_equal(fx_write(fx->store, "zeta", ev, NULL), 0);
    assert_int_equal(fx_write(fx->store, "alpha", ev, NULL), 0);
    assert_int_equal(weir_store_ns_delete(fx->store, "zeta", NULL), 0);
    assert_false(weir_store_ns_exists(fx->store, "zeta"));
    assert_int_equal(weir_store_count(fx->store, "zeta", &count, NULL), 0);
    assert_int_equal(count, 0);
    assert_int_equal(weir_store_count(fx->store, NULL, &count, NULL), 0);
    assert_int_equal(count, 1);
    assert_int_equal(weir_store_ns_delete(fx->store, "zeta", &err), WEIR_ENOTFOUND);

    /* Recreated, it starts empty, and its events can be written again. */
    assert_int_equal(weir_store_ns_create(fx->store, "zeta", &created, NULL), 0);
    assert_true(created);
    int64_t seq = 0;
    assert_int_equal(fx_write(fx->store, "zeta", ev, &seq), 0);
    assert_true(seq > 0);
    weir_ce_free(ev);
}

static void test_ns_list_survives_reopen(void **state)
{
    fx_t *fx = *state;
    weir_store_ns_t *list = NULL;
    size_t n = 0;

    assert_int_equal(weir_store_ns_create(fx->store, "b", NULL, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "a", NULL, NULL), 0);
    fx_reopen(fx);
    assert_int_equal(weir_store_ns_list(fx->store, &list, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "a");
    assert_string_equal(list[1].name, "b");
    weir_store_ns_free(list, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reopen_keeps_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_an_empty_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_the_first_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_never_given_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refuses_a_newer_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_opens_a_missing_directory, setup, teardown),
        cmocka_unit_test(test_ns_valid),
        cmocka_unit_test_setup_teardown(test_ns_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ns_list_survives_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
