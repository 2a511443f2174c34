/*
 * listeners.c: the backend-neutral part of listeners and deliveries: listener changes go
 * through the writer queue (so that they commit in order with the events around them, and with
 * their follow-up), reads go straight to the backend.
 */
#include <pthread.h>
#include <string.h>

#include "store/backend.h"

typedef struct put_job {
    const weir_store_listener_t *l;
} put_job_t;

typedef struct delete_job {
    const char *ns;
    const char *id;
} delete_job_t;

static int put_fn(const weir_store_backend_t *be, void *db, void *arg)
{
    put_job_t *job = arg;
    return be->listener_put(db, job->l);
}

static int delete_fn(const weir_store_backend_t *be, void *db, void *arg)
{
    delete_job_t *job = arg;
    return be->listener_delete(db, job->ns, job->id);
}

int weir_store_listener_put_then(weir_store_t *store, const weir_store_listener_t *l,
                                 weir_store_write_t *then, weir_err_t *err)
{
    put_job_t job = {.l = l};

    if (l == NULL || l->id == NULL || l->ns == NULL || l->spec == NULL) {
        return weir_err_set(err, WEIR_EINVAL, NULL, "listener incomplete");
    }
    int rc = weir_store_change(store, put_fn, &job, then);
    switch (rc) {
    case WEIR_ENOTFOUND:
        return weir_err_set(err, rc, "namespace", "namespace does not exist");
    case WEIR_EEXIST:
        return weir_err_set(err, rc, "id", "a listener with this id exists");
    default:
        return weir_store_job_err(rc, err);
    }
}

int weir_store_listener_put(weir_store_t *store, const weir_store_listener_t *l, weir_err_t *err)
{
    return weir_store_listener_put_then(store, l, NULL, err);
}

int weir_store_listener_delete_then(weir_store_t *store, const char *ns, const char *id,
                                    weir_store_write_t *then, weir_err_t *err)
{
    delete_job_t job = {.ns = ns, .id = id};

    if (ns == NULL || id == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "id", "not given");
    }
    int rc = weir_store_change(store, delete_fn, &job, then);
    if (rc == WEIR_ENOTFOUND) {
        return weir_err_set(err, rc, "id", "no such listener");
    }
    return weir_store_job_err(rc, err);
}

int weir_store_listener_delete(weir_store_t *store, const char *ns, const char *id, weir_err_t *err)
{
    return weir_store_listener_delete_then(store, ns, id, NULL, err);
}

int weir_store_listeners(weir_store_t *store, const char *ns, const char *after, size_t limit,
                         weir_store_listener_t **out, size_t *n, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    *out = NULL;
    *n = 0;
    if (limit == 0) {
        return 0;
    }
    weir_store_backend_of(store, &be, &db);
    return be->listeners(db, ns, after, limit, out, n, err);
}

int weir_store_listener_get(weir_store_t *store, const char *ns, const char *id,
                            weir_store_listener_t *out, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    memset(out, 0, sizeof(*out));
    if (ns == NULL || id == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "id", "not given");
    }
    weir_store_backend_of(store, &be, &db);
    return be->listener_get(db, ns, id, out, err);
}

int weir_store_collected(weir_store_t *store, const char *id, weir_store_collected_t **out,
                         size_t *n, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    *out = NULL;
    *n = 0;
    weir_store_backend_of(store, &be, &db);
    return be->collected(db, id, out, n, err);
}

int weir_store_deliveries_due(weir_store_t *store, const char *listener, int64_t now_us,
                              int64_t after_due, int64_t after_id, size_t limit,
                              weir_store_delivery_t **out, size_t *n, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    *out = NULL;
    *n = 0;
    if (limit == 0) {
        return 0;
    }
    weir_store_backend_of(store, &be, &db);
    return be->deliveries_due(db, listener, now_us, after_due, after_id, limit, out, n, err);
}

int weir_store_deliveries_new(weir_store_t *store, int64_t after_id, size_t limit,
                              weir_store_delivery_t **out, size_t *n, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    *out = NULL;
    *n = 0;
    if (limit == 0) {
        return 0;
    }
    weir_store_backend_of(store, &be, &db);
    return be->deliveries_new(db, after_id, limit, out, n, err);
}

int weir_store_deliveries_pending(weir_store_t *store, int64_t now_us, int64_t *count,
                                  int64_t *next_due_us, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    if (count != NULL) {
        *count = 0;
    }
    *next_due_us = INT64_MAX;
    weir_store_backend_of(store, &be, &db);
    return be->deliveries_pending(db, now_us, count, next_due_us, err);
}

void weir_store_deliveries_stats(weir_store_t *store, int64_t *pending, uint64_t *dropped)
{
    const weir_store_backend_t *be;
    void *db;

    weir_store_backend_of(store, &be, &db);
    be->deliveries_stats(db, pending, dropped);
}

/* ---- freeing --------------------------------------------------------------------------- */

void weir_store_listener_clear(weir_store_listener_t *l)
{
    if (l == NULL) {
        return;
    }
    weir_free(l->id);
    weir_free(l->ns);
    weir_free(l->spec);
    memset(l, 0, sizeof(*l));
}

void weir_store_listeners_free(weir_store_listener_t *list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++) {
        weir_store_listener_clear(&list[i]);
    }
    weir_free(list);
}

void weir_store_collected_free(weir_store_collected_t *list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++) {
        weir_free(list[i].key);
        weir_free(list[i].type);
        weir_free(list[i].event_id);
    }
    weir_free(list);
}

void weir_store_deliveries_free(weir_store_delivery_t *list, size_t n)
{
    for (size_t i = 0; list != NULL && i < n; i++) {
        weir_free(list[i].listener);
        weir_free(list[i].ns);
        weir_free(list[i].payload);
        weir_free(list[i].last_error);
        weir_free(list[i].error_data);
    }
    weir_free(list);
}

/* ---- waiting for a write --------------------------------------------------------------- */

typedef struct wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
} wait_t;

static void wait_done(weir_store_write_t *w, int status, void *arg)
{
    wait_t *wt = arg;
    pthread_mutex_lock(&wt->lock);
    wt->status = status;
    wt->done = true;
    pthread_cond_signal(&wt->cond);
    pthread_mutex_unlock(&wt->lock);
}

int weir_store_write_wait(weir_store_t *store, weir_store_write_t *w)
{
    wait_t wt = {.done = false, .status = 0};

    pthread_mutex_init(&wt.lock, NULL);
    pthread_cond_init(&wt.cond, NULL);
    w->done = wait_done;
    w->arg = &wt;
    int rc = weir_store_submit(store, w);
    if (rc != 0) {
        wait_done(w, rc, &wt);
    }
    pthread_mutex_lock(&wt.lock);
    while (!wt.done) {
        pthread_cond_wait(&wt.cond, &wt.lock);
    }
    rc = wt.status;
    pthread_mutex_unlock(&wt.lock);
    pthread_cond_destroy(&wt.cond);
    pthread_mutex_destroy(&wt.lock);
    return rc;
}
