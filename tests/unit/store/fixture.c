#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"

static weir_store_t *open_in(const char *dir, size_t queue_max, size_t batch_max, size_t outbox_max)
{
    weir_store_config_t cfg;
    weir_store_t *store = NULL;
    weir_err_t err;

    weir_store_config_default(&cfg);
    cfg.data_dir = dir;
    if (queue_max > 0) {
        cfg.queue_max = queue_max;
    }
    if (batch_max > 0) {
        cfg.batch_max = batch_max;
    }
    cfg.outbox_max = outbox_max;
    int rc = weir_store_open(&cfg, &store, &err);
    if (rc != 0) {
        fail_msg("weir_store_open: %s", err.msg);
    }
    return store;
}

fx_t *fx_open(size_t queue_max, size_t batch_max)
{
    fx_t *fx = weir_calloc(1, sizeof(*fx));

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/weir-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->store = open_in(fx->dir, queue_max, batch_max, 0);
    return fx;
}

fx_t *fx_open_outbox(size_t outbox_max)
{
    fx_t *fx = weir_calloc(1, sizeof(*fx));

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/weir-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->outbox_max = outbox_max;
    fx->store = open_in(fx->dir, 0, 0, outbox_max);
    return fx;
}

void fx_reopen(fx_t *fx)
{
    weir_store_close(fx->store);
    fx->store = open_in(fx->dir, 0, 0, fx->outbox_max);
}

void fx_close(fx_t *fx)
{
    char path[512];
    DIR *d;
    struct dirent *e;

    weir_store_close(fx->store);
    d = opendir(fx->dir);
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", fx->dir, e->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(fx->dir);
    weir_free(fx);
}

weir_event_t *fx_event(const char *id, const char *source, const char *type, const char *data)
{
    weir_event_t *ev = weir_ce_new();

    assert_int_equal(weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "id", id, WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "source", source, WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "type", type, WEIR_CE_STRING, NULL), 0);
    if (data != NULL) {
        assert_int_equal(
            weir_ce_set(ev, "datacontenttype", "application/json", WEIR_CE_STRING, NULL), 0);
        weir_ce_set_data(ev, WEIR_CE_DATA_JSON, data, strlen(data));
    }
    return ev;
}

int fx_write(weir_store_t *store, const char *ns, const weir_event_t *ev, int64_t *seq)
{
    weir_store_item_t item = {.ns = ns, .ev = ev};

    int rc = weir_store_write_sync(store, &item, 1);
    if (seq != NULL) {
        *seq = item.seq;
    }
    return rc;
}

int64_t fx_write_range(weir_store_t *store, const char *ns, const char *prefix, int from, int to,
                       const char *data)
{
    size_t n = (size_t)(to - from);
    weir_store_item_t *items = weir_calloc(n, sizeof(*items));
    weir_event_t **evs = weir_calloc(n, sizeof(*evs));

    for (size_t i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof(id), "%s-%d", prefix, from + (int)i);
        evs[i] = fx_event(id, "/src", "t.range", data);
        items[i] = (weir_store_item_t){.ns = ns, .ev = evs[i]};
    }
    assert_int_equal(weir_store_write_sync(store, items, n), 0);
    int64_t last = items[n - 1].seq;
    for (size_t i = 0; i < n; i++) {
        weir_ce_free(evs[i]);
    }
    weir_free(evs);
    weir_free(items);
    return last;
}

void fx_barrier(weir_store_t *store)
{
    int rc;

    /* A tiny queue may still be full of what the barrier waits for. */
    while ((rc = weir_store_write_sync(store, NULL, 0)) == WEIR_EBUSY) {
        sched_yield();
    }
    assert_int_equal(rc, 0);
}

static void gate_done(weir_store_write_t *w, int status, void *arg)
{
    fx_gate_t *g = arg;
    atomic_fetch_add(&g->calls, 1);
}

void fx_gate_close(fx_gate_t *g, fx_t *fx)
{
    char path[128];

    memset(g, 0, sizeof(*g));
    snprintf(path, sizeof(path), "%s/weir.db", fx->dir);
    assert_int_equal(sqlite3_open(path, &g->db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(g->db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    g->w.done = gate_done;
    g->w.arg = g;
    assert_int_equal(weir_store_submit(fx->store, &g->w), 0);
    while (weir_store_queue_depth(fx->store) > 0) {
        sched_yield(); /* until the writer has taken the gate's write and waits on the lock */
    }
}

void fx_gate_open(fx_gate_t *g)
{
    assert_int_equal(sqlite3_exec(g->db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(g->db);
    g->db = NULL;
}

void fx_result_done(weir_store_write_t *w, int status, void *arg)
{
    fx_result_t *r = arg;

    r->status = status;
    atomic_fetch_add(&r->calls, 1);
}

const char *fx_json_str(const char *json, const char *name)
{
    static char value[256];
    cJSON *obj = cJSON_Parse(json);

    assert_non_null(obj);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, name);
    assert_true(cJSON_IsString(item));
    snprintf(value, sizeof(value), "%s", item->valuestring);
    cJSON_Delete(obj);
    return value;
}
