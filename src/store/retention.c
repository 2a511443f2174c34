/*
 * retention.c: how long and how many events each namespace keeps, and the background thread
 * that removes the rest. Removal runs as small jobs through the writer queue (at most
 * STEP_ROWS rows each, with a pause between them), so that ingest never waits behind a long
 * delete and a sweep over a million old events costs many short turns of the writer. Where a
 * sweep cuts is read once, beside the writer, so that a step costs the same whether the
 * namespace keeps a hundred events or a million.
 */
#include <errno.h>
#include <pthread.h>
#include <time.h>

#include "store/backend.h"

#define MODULE    "store"
#define STEP_ROWS 500
/* Between two full steps: room for the writes that queued meanwhile. */
#define STEP_PAUSE_NS 5000000u

struct weir_store_retainer {
    weir_store_t *store;
    weir_store_retention_t defaults;
    uint64_t interval_ns;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

typedef struct set_job {
    const char *ns;
    const weir_store_retention_t *r;
} set_job_t;

typedef struct trim_job {
    const char *ns;
    const weir_store_cut_t *cut;
    size_t max_rows;
    size_t deleted;
} trim_job_t;

bool weir_store_retention_ok(const weir_store_retention_t *r)
{
    return r->max_age_us >= -1 && r->max_count >= -1;
}

int weir_store_retention_get(weir_store_t *store, const char *ns, weir_store_retention_t *out,
                             weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    out->max_age_us = out->max_count = -1;
    if (ns == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "no namespace given");
    }
    weir_store_backend_of(store, &be, &db);
    return be->retention_get(db, ns, out, err);
}

static int run_set(const weir_store_backend_t *be, void *db, void *arg)
{
    set_job_t *job = arg;
    return be->retention_set(db, job->ns, job->r);
}

static int call_err(int rc, weir_err_t *err)
{
    if (rc == WEIR_ENOTFOUND) {
        return weir_err_set(err, rc, "namespace", "namespace does not exist");
    }
    return weir_store_job_err(rc, err);
}

int weir_store_retention_set(weir_store_t *store, const char *ns, const weir_store_retention_t *r,
                             weir_err_t *err)
{
    set_job_t job = {.ns = ns, .r = r};

    if (ns == NULL || r == NULL || !weir_store_retention_ok(r)) {
        return weir_err_set(err, WEIR_EINVAL, "retention", "not a valid retention");
    }
    return call_err(weir_store_change(store, run_set, &job, NULL), err);
}

int weir_store_retention_cut(weir_store_t *store, const char *ns,
                             const weir_store_retention_t *policy, int64_t now_us,
                             weir_store_cut_t *out, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    *out = (weir_store_cut_t){.before_us = INT64_MIN, .through_seq = 0};
    if (ns == NULL || policy == NULL || policy->max_age_us < 0 || policy->max_count < 0) {
        return weir_err_set(err, WEIR_EINVAL, "retention", "not a complete retention policy");
    }
    if (policy->max_age_us > 0 && policy->max_age_us < now_us) {
        out->before_us = now_us - policy->max_age_us;
    }
    if (policy->max_count == 0) {
        return 0;
    }
    weir_store_backend_of(store, &be, &db);
    return be->trim_cut(db, ns, policy->max_count, &out->through_seq, err);
}

static int run_trim(const weir_store_backend_t *be, void *db, void *arg)
{
    trim_job_t *job = arg;
    return be->trim(db, job->ns, job->cut->before_us, job->cut->through_seq, job->max_rows,
                    &job->deleted);
}

int weir_store_trim(weir_store_t *store, const char *ns, const weir_store_cut_t *cut,
                    size_t max_rows, size_t *deleted, weir_err_t *err)
{
    trim_job_t job = {.ns = ns, .cut = cut, .max_rows = max_rows};

    *deleted = 0;
    if (ns == NULL || cut == NULL || cut->through_seq < 0) {
        return weir_err_set(err, WEIR_EINVAL, "retention", "not a retention cut");
    }
    if (max_rows == 0 || (cut->before_us == INT64_MIN && cut->through_seq == 0)) {
        return 0;
    }
    int rc = call_err(weir_store_call(store, run_trim, &job), err);
    *deleted = job.deleted;
    return rc;
}

/* ---- the background thread ------------------------------------------------------------- */

/* Sleeps for ns unless stopped first; false once the retainer is stopping. */
static bool pause_for(weir_store_retainer_t *r, uint64_t ns)
{
    struct timespec until = weir_mono_deadline(ns);

    pthread_mutex_lock(&r->lock);
    while (!r->stopping && pthread_cond_timedwait(&r->wake, &r->lock, &until) != ETIMEDOUT) {
    }
    bool go_on = !r->stopping;
    pthread_mutex_unlock(&r->lock);
    return go_on;
}

/* The namespace's policy: its own settings, the defaults where it has none. */
static bool policy_of(weir_store_retainer_t *r, const char *ns, weir_store_retention_t *p)
{
    weir_store_retention_t own;
    weir_err_t err = {0};

    if (weir_store_retention_get(r->store, ns, &own, &err) != 0) {
        return false; /* deleted meanwhile, or storage failing: the next sweep tries again */
    }
    p->max_age_us = own.max_age_us >= 0 ? own.max_age_us : r->defaults.max_age_us;
    p->max_count = own.max_count >= 0 ? own.max_count : r->defaults.max_count;
    return p->max_age_us > 0 || p->max_count > 0;
}

/* The cut is found once, on a reader, so that each step through the writer is short however
 * many events the namespace keeps. */
static void sweep_ns(weir_store_retainer_t *r, const char *ns)
{
    weir_store_retention_t p;
    weir_store_cut_t cut;
    weir_err_t err = {0};
    size_t total = 0;
    size_t deleted = STEP_ROWS;

    if (!policy_of(r, ns, &p)) {
        return;
    }
    if (weir_store_retention_cut(r->store, ns, &p, weir_wall_us(), &cut, &err) != 0) {
        WEIR_LOG(WEIR_LOG_WARN, MODULE, ns, "retention cannot find its cut: %s", err.msg);
        return;
    }
    while (deleted == STEP_ROWS && pause_for(r, total > 0 ? STEP_PAUSE_NS : 0)) {
        if (weir_store_trim(r->store, ns, &cut, STEP_ROWS, &deleted, &err) != 0) {
            WEIR_LOG(WEIR_LOG_WARN, MODULE, ns, "retention step failed: %s", err.msg);
            break;
        }
        total += deleted;
    }
    if (total > 0) {
        WEIR_LOG(WEIR_LOG_INFO, MODULE, ns, "retention removed %zu events", total);
    }
}

static void sweep(weir_store_retainer_t *r)
{
    weir_store_ns_t *list = NULL;
    size_t n = 0;

    if (weir_store_ns_list(r->store, &list, &n, NULL) != 0) {
        return;
    }
    for (size_t i = 0; i < n && pause_for(r, 0); i++) {
        sweep_ns(r, list[i].name);
    }
    weir_store_ns_free(list, n);
}

static void *retainer_main(void *arg)
{
    weir_store_retainer_t *r = arg;

    while (pause_for(r, r->interval_ns)) {
        sweep(r);
    }
    return NULL;
}

int weir_store_retainer_start(weir_store_t *store, const weir_store_retention_t *defaults,
                              unsigned interval_ms, weir_store_retainer_t **out, weir_err_t *err)
{
    *out = NULL;
    if (defaults->max_age_us < 0 || defaults->max_count < 0 || interval_ms == 0) {
        return weir_err_set(err, WEIR_EINVAL, "retention", "not a complete retention policy");
    }

    weir_store_retainer_t *r = weir_calloc(1, sizeof(*r));
    r->store = store;
    r->defaults = *defaults;
    r->interval_ns = (uint64_t)interval_ms * 1000000u;
    pthread_mutex_init(&r->lock, NULL);
    weir_cond_init_mono(&r->wake);
    if (pthread_create(&r->thread, NULL, retainer_main, r) != 0) {
        pthread_cond_destroy(&r->wake);
        pthread_mutex_destroy(&r->lock);
        weir_free(r);
        return weir_err_set(err, WEIR_EIO, NULL, "cannot start the retention thread");
    }
    *out = r;
    return 0;
}

void weir_store_retainer_stop(weir_store_retainer_t *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->lock);
    r->stopping = true;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->lock);
    weir_free(r);
}
