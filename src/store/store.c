/*
 * store.c: the backend-neutral part of the store: the bounded write queue, the writer thread
 * that commits in groups, the in-memory set of namespaces, and the checks that every backend
 * would otherwise repeat. Everything that speaks to a database is behind backend.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/backend.h"
#include "store/watch.h"

#define MODULE            "store"
#define QUEUE_MAX_DEFAULT 4096
#define BATCH_MAX_DEFAULT 256
/* While storage is failing, the writer tries a probe this often, so that readiness can come
 * back even when no write arrives (an unready replica gets no traffic to commit). */
#define PROBE_INTERVAL_NS 1000000000L

enum { NS_CREATE, NS_DELETE, JOB_CALL };

/* A caller blocked until the writer has finished its job. */
typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;
    int status;
} waiter_t;

/* A job that is not a write: a change (store.h) or the store's own upkeep. It travels through
 * the write queue so that it commits in order with the writes around it; the writer tells it
 * from a write by its done callback. A change's follow-up travels inside it, so that nothing can
 * split the two between transactions. */
typedef struct job {
    weir_store_write_t w;
    int op;
    const char *name;
    int64_t created_us;
    const weir_store_retention_t *retention; /* NS_CREATE: set with the creation, or NULL */
    bool created;
    bool counted;             /* a change: bounded by queue_max */
    weir_store_write_t *then; /* the change's follow-up, or NULL */
    waiter_t wait;
    weir_store_call_fn fn; /* JOB_CALL: runs on the writer thread */
    void *fn_arg;
} job_t;

struct weir_store {
    const weir_store_backend_t *be;
    void *db;
    size_t queue_max;
    size_t batch_max;
    size_t outbox_max;

    pthread_mutex_t lock; /* guards the queue, depth and closing */
    pthread_cond_t wake;
    weir_store_write_t *head;
    weir_store_write_t *tail;
    size_t depth; /* writes and changes waiting (the store's own jobs not counted) */
    bool closing;
    pthread_t writer;
    atomic_bool ready;

    /* Owned by the writer thread. */
    weir_store_write_t **batch;

    /* Committed jobs waiting for the syncer to make them durable, oldest first. */
    pthread_mutex_t sync_lock;
    pthread_cond_t sync_wake;
    weir_store_write_t *sync_head;
    weir_store_write_t *sync_tail;
    bool sync_closing;
    pthread_t syncer;

    pthread_rwlock_t ns_lock; /* guards the namespace set */
    weir_store_ns_t *ns;      /* sorted by name */
    size_t nns;

    weir_store_watch_t *watch; /* wakes live streams once events are durable */

    pthread_mutex_t hook_lock; /* held while the commit hooks run, so removing one is safe */
    struct {
        void (*cb)(void *arg);
        void *arg;
    } hooks[WEIR_STORE_HOOKS_MAX];
    /* The newest durable delivery and outbox row when the hooks last ran (the syncer's). */
    int64_t hooked_delivery;
    int64_t hooked_outbox;
};

/* ---- waiting for the writer ------------------------------------------------------------ */

static void waiter_init(waiter_t *wt)
{
    pthread_mutex_init(&wt->lock, NULL);
    pthread_cond_init(&wt->cond, NULL);
    wt->done = false;
    wt->status = 0;
}

static void waiter_finish(waiter_t *wt, int status)
{
    pthread_mutex_lock(&wt->lock);
    wt->status = status;
    wt->done = true;
    pthread_cond_signal(&wt->cond);
    pthread_mutex_unlock(&wt->lock);
}

/* Waits for waiter_finish, then releases the waiter; returns the status. */
static int waiter_wait(waiter_t *wt)
{
    pthread_mutex_lock(&wt->lock);
    while (!wt->done) {
        pthread_cond_wait(&wt->cond, &wt->lock);
    }
    int status = wt->status;
    pthread_mutex_unlock(&wt->lock);

    pthread_cond_destroy(&wt->cond);
    pthread_mutex_destroy(&wt->lock);
    return status;
}

/* The tag of jobs; never called. */
static void job_tag(weir_store_write_t *w, int status, void *arg)
{
}

static bool is_job(const weir_store_write_t *w)
{
    return w->done == job_tag;
}

/* Whether w counts against queue_max: a write or a change. */
static bool is_counted(const weir_store_write_t *w)
{
    return !is_job(w) || ((const job_t *)w)->counted;
}

/* The write whose events a job stored, for the watch: a write itself, or a change's follow-up
 * that was stored with it. */
static const weir_store_write_t *stored_by(const weir_store_write_t *w)
{
    if (!is_job(w)) {
        return w;
    }
    const job_t *job = (const job_t *)w;
    return job->then != NULL && job->then->status == 0 ? job->then : NULL;
}

/* The namespace a job deletes, or NULL. */
static const char *deleted_ns(const weir_store_write_t *w)
{
    const job_t *job = (const job_t *)w;

    return is_job(w) && job->op == NS_DELETE ? job->name : NULL;
}

/* ---- the namespace set ----------------------------------------------------------------- */

static int ns_cmp(const void *name, const void *ns)
{
    return strcmp(name, ((const weir_store_ns_t *)ns)->name);
}

/* The index of name in the sorted set, or where it would go; *found says which. */
static size_t ns_find(const weir_store_t *s, const char *name, bool *found)
{
    return weir_bsearch_at(name, s->ns, s->nns, sizeof(*s->ns), ns_cmp, found);
}

static void ns_set_add(weir_store_t *s, const char *name, int64_t created_us)
{
    bool found;

    pthread_rwlock_wrlock(&s->ns_lock);
    size_t i = ns_find(s, name, &found);
    if (!found) {
        s->ns = weir_realloc(s->ns, (s->nns + 1) * sizeof(*s->ns));
        memmove(&s->ns[i + 1], &s->ns[i], (s->nns - i) * sizeof(*s->ns));
        s->ns[i].name = weir_strdup(name);
        s->ns[i].created_us = created_us;
        s->nns++;
    }
    pthread_rwlock_unlock(&s->ns_lock);
}

static void ns_set_remove(weir_store_t *s, const char *name)
{
    bool found;

    pthread_rwlock_wrlock(&s->ns_lock);
    size_t i = ns_find(s, name, &found);
    if (found) {
        weir_free(s->ns[i].name);
        memmove(&s->ns[i], &s->ns[i + 1], (s->nns - i - 1) * sizeof(*s->ns));
        s->nns--;
    }
    pthread_rwlock_unlock(&s->ns_lock);
}

/* ---- the writer thread ----------------------------------------------------------------- */

static void set_ready(weir_store_t *s, bool ready)
{
    bool was = atomic_exchange(&s->ready, ready);
    if (was && !ready) {
        weir_error(MODULE, "storage failed: writes are refused until a commit succeeds");
    } else if (!was && ready) {
        weir_info(MODULE, "storage works again");
    }
}

/* Waits up to the probe interval; false when it timed out. Called with s->lock held. */
static bool wait_probe_interval(weir_store_t *s)
{
    struct timespec ts = weir_mono_deadline(PROBE_INTERVAL_NS);
    return pthread_cond_timedwait(&s->wake, &s->lock, &ts) != ETIMEDOUT;
}

/*
 * Waits for work and moves up to batch_max jobs into s->batch. Returns how many; 0 with *stop
 * set when the store is closing and the queue is empty, 0 alone when a probe is due.
 */
static size_t take_batch(weir_store_t *s, bool *stop)
{
    size_t n = 0;

    pthread_mutex_lock(&s->lock);
    while (s->head == NULL && !s->closing) {
        if (atomic_load(&s->ready)) {
            pthread_cond_wait(&s->wake, &s->lock);
        } else if (!wait_probe_interval(s)) {
            break;
        }
    }
    while (s->head != NULL && n < s->batch_max) {
        weir_store_write_t *w = s->head;
        s->head = w->next;
        w->next = NULL;
        s->depth -= is_counted(w) ? 1 : 0;
        s->batch[n++] = w;
    }
    if (s->head == NULL) {
        s->tail = NULL;
    }
    *stop = n == 0 && s->closing;
    pthread_mutex_unlock(&s->lock);
    return n;
}

/* A namespace's creation and the retention set with it. A retention that fails with WEIR_EIO
 * after the namespace was created cannot be undone alone: *lost says the transaction must go. */
static int apply_create(weir_store_t *s, job_t *job, bool *lost)
{
    int rc = s->be->ns_create(s->db, job->name, job->created_us, &job->created);
    if (rc != 0 || job->retention == NULL) {
        return rc;
    }
    rc = s->be->retention_set(s->db, job->name, job->retention);
    *lost = rc == WEIR_EIO && job->created;
    return rc;
}

static int apply_change(weir_store_t *s, job_t *job, bool *lost)
{
    switch (job->op) {
    case JOB_CALL:
        return job->fn(s->be, s->db, job->fn_arg);
    case NS_CREATE:
        return apply_create(s, job, lost);
    default:
        return s->be->ns_delete(s->db, job->name);
    }
}

/*
 * Applies a job; a change, then its follow-up when it succeeded. The backend undoes a failed
 * write alone, but not the change before it: a follow-up that fails with WEIR_EIO sets *lost,
 * and the whole transaction is rolled back, so that the change never commits without its event.
 * A follow-up that fails otherwise (its namespace gone) leaves the change standing.
 */
static int apply_job(weir_store_t *s, weir_store_write_t *w, bool *lost)
{
    if (!is_job(w)) {
        return s->be->write(s->db, w);
    }

    job_t *job = (job_t *)w;
    int rc = apply_change(s, job, lost);
    if (rc != 0 || job->then == NULL) {
        return rc;
    }
    job->then->status = s->be->write(s->db, job->then);
    if (job->then->status == WEIR_EIO) {
        *lost = true;
        return WEIR_EIO;
    }
    return 0;
}

/* Once its commit is durable, the namespace set learns what a namespace job changed. */
static void apply_ns_change(weir_store_t *s, const job_t *job)
{
    if (job->op == JOB_CALL) {
        return;
    }
    if (job->op == NS_DELETE) {
        ns_set_remove(s, job->name);
    } else if (job->created) {
        ns_set_add(s, job->name, job->created_us);
    }
}

static void release_items(weir_store_write_t *w, int status)
{
    for (size_t i = 0; i < w->nitems; i++) {
        weir_store_item_t *it = &w->items[i];
        if (!it->json_shared) {
            weir_free(it->json);
        }
        it->json = NULL;
        it->json_shared = false;
        it->json_len = 0;
        if (status != 0) {
            it->seq = 0;
            it->duplicate = false;
        }
    }
}

/* Tells a job how it ended. A done callback may free its write: nothing touches it after. */
static void finish_job(weir_store_t *s, weir_store_write_t *w, int status)
{
    if (is_job(w)) {
        job_t *job = (job_t *)w;
        if (job->then != NULL) {
            /* Not written when the change failed, whatever its own write said. */
            job->then->status = status != 0 ? status : job->then->status;
            release_items(job->then, job->then->status);
        }
        waiter_finish(&job->wait, status);
        return;
    }
    release_items(w, status);
    w->done(w, status, w->arg);
}

/* Hands committed jobs, linked through next, to the syncer. */
static void hand_to_syncer(weir_store_t *s, weir_store_write_t *head, weir_store_write_t *tail)
{
    pthread_mutex_lock(&s->sync_lock);
    if (s->sync_tail != NULL) {
        s->sync_tail->next = head;
    } else {
        s->sync_head = head;
    }
    s->sync_tail = tail;
    pthread_cond_signal(&s->sync_wake);
    pthread_mutex_unlock(&s->sync_lock);
}

/*
 * One transaction for the whole batch; a job that fails is undone alone by the backend. A
 * committed batch goes to the syncer, which answers it once durable, while this thread goes on
 * with the next batch: the fsync of one batch overlaps the work of the next.
 */
static void run_batch(weir_store_t *s, size_t n)
{
    int rc = s->be->begin(s->db);
    bool lost = false;

    for (size_t i = 0; i < n; i++) {
        s->batch[i]->status = rc == 0 && !lost ? apply_job(s, s->batch[i], &lost) : WEIR_EIO;
        s->batch[i]->next = i + 1 < n ? s->batch[i + 1] : NULL;
    }
    if (rc == 0 && lost) {
        weir_error(MODULE, "a change could not be stored whole: its transaction is rolled back");
        s->be->rollback(s->db);
        rc = WEIR_EIO;
    }
    if (rc == 0) {
        rc = s->be->commit(s->db);
    }
    if (rc == 0) {
        hand_to_syncer(s, s->batch[0], s->batch[n - 1]);
        return;
    }
    set_ready(s, false);
    for (size_t i = 0; i < n; i++) {
        finish_job(s, s->batch[i], WEIR_EIO);
    }
}

/* The namespace set learns a durable group's changes before the watch wakes the streams, so
 * that a stream woken by its namespace's deletion finds it gone. */
static void apply_ns_changes(weir_store_t *s, const weir_store_write_t *list)
{
    for (const weir_store_write_t *w = list; w != NULL; w = w->next) {
        if (is_job(w) && w->status == 0) {
            apply_ns_change(s, (const job_t *)w);
        }
    }
}

/* Waits for committed jobs; NULL when the store is closing and none are left. */
static weir_store_write_t *take_committed(weir_store_t *s)
{
    pthread_mutex_lock(&s->sync_lock);
    while (s->sync_head == NULL && !s->sync_closing) {
        pthread_cond_wait(&s->sync_wake, &s->sync_lock);
    }
    weir_store_write_t *list = s->sync_head;
    s->sync_head = s->sync_tail = NULL;
    pthread_mutex_unlock(&s->sync_lock);
    return list;
}

/*
 * Tells the delivery engine and the source that a group made new deliveries or outbox rows
 * durable, so that they load them. Most groups make neither (events no listener matched): waking
 * both threads after each of them would cost two thread switches and two reads per group.
 */
static void run_commit_hooks(weir_store_t *s)
{
    int64_t delivery, outbox;
    s->be->newest(s->db, &delivery, &outbox);
    if (delivery == s->hooked_delivery && outbox == s->hooked_outbox) {
        return;
    }
    s->hooked_delivery = delivery;
    s->hooked_outbox = outbox;
    pthread_mutex_lock(&s->hook_lock);
    for (size_t i = 0; i < WEIR_STORE_HOOKS_MAX; i++) {
        if (s->hooks[i].cb != NULL) {
            s->hooks[i].cb(s->hooks[i].arg);
        }
    }
    pthread_mutex_unlock(&s->hook_lock);
}

int weir_store_add_commit_hook(weir_store_t *store, void (*cb)(void *arg), void *arg)
{
    int rc = WEIR_EBUSY;
    pthread_mutex_lock(&store->hook_lock);
    for (size_t i = 0; i < WEIR_STORE_HOOKS_MAX && rc != 0; i++) {
        if (store->hooks[i].cb == NULL) {
            store->hooks[i].cb = cb;
            store->hooks[i].arg = arg;
            rc = 0;
        }
    }
    pthread_mutex_unlock(&store->hook_lock);
    return rc;
}

void weir_store_remove_commit_hook(weir_store_t *store, void (*cb)(void *arg), void *arg)
{
    pthread_mutex_lock(&store->hook_lock);
    for (size_t i = 0; i < WEIR_STORE_HOOKS_MAX; i++) {
        if (store->hooks[i].cb == cb && store->hooks[i].arg == arg) {
            store->hooks[i].cb = NULL;
            store->hooks[i].arg = NULL;
        }
    }
    pthread_mutex_unlock(&store->hook_lock);
}

static void *syncer_main(void *arg)
{
    weir_store_t *s = arg;
    pthread_setname_np(pthread_self(), "weir-syncer");
    weir_store_write_t *list;

    while ((list = take_committed(s)) != NULL) {
        int rc = s->be->sync(s->db);
        set_ready(s, rc == 0);
        if (rc == 0) {
            apply_ns_changes(s, list);
            weir_store_watch_note(s->watch, list, stored_by, deleted_ns);
        }
        while (list != NULL) {
            weir_store_write_t *next = list->next;
            finish_job(s, list, rc == 0 ? list->status : WEIR_EIO);
            list = next;
        }
        run_commit_hooks(s);
    }
    return NULL;
}

static void *writer_main(void *arg)
{
    weir_store_t *s = arg;
    pthread_setname_np(pthread_self(), "weir-writer");
    bool stop = false;

    while (!stop) {
        size_t n = take_batch(s, &stop);
        if (n > 0) {
            run_batch(s, n);
        } else if (!stop && !atomic_load(&s->ready)) {
            set_ready(s, s->be->probe(s->db) == 0);
        }
    }
    return NULL;
}

/* Appends w to the queue; counted writes are bounded by queue_max. */
static int enqueue(weir_store_t *s, weir_store_write_t *w, bool counted)
{
    int rc = 0;

    w->next = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->closing) {
        rc = WEIR_ECLOSED;
    } else if (counted && s->depth >= s->queue_max) {
        rc = WEIR_EBUSY;
    } else {
        if (s->tail != NULL) {
            s->tail->next = w;
        } else {
            s->head = w;
        }
        s->tail = w;
        s->depth += counted ? 1 : 0;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- opening and closing --------------------------------------------------------------- */

void weir_store_config_default(weir_store_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->data_dir = "data";
    cfg->queue_max = QUEUE_MAX_DEFAULT;
    cfg->batch_max = BATCH_MAX_DEFAULT;
    cfg->no_sync = false;
}

static weir_store_t *store_new(const weir_store_config_t *cfg)
{
    weir_store_t *s = weir_calloc(1, sizeof(*s));

    s->be = &weir_store_sqlite;
    s->queue_max = cfg->queue_max > 0 ? cfg->queue_max : QUEUE_MAX_DEFAULT;
    s->batch_max = cfg->batch_max > 0 ? cfg->batch_max : BATCH_MAX_DEFAULT;
    s->outbox_max = cfg->outbox_max;
    s->batch = weir_calloc(s->batch_max, sizeof(*s->batch));
    pthread_mutex_init(&s->sync_lock, NULL);
    pthread_mutex_init(&s->hook_lock, NULL);
    pthread_cond_init(&s->sync_wake, NULL);

    pthread_mutex_init(&s->lock, NULL);
    weir_cond_init_mono(&s->wake); /* the probe timer must not jump with the wall clock */
    pthread_rwlock_init(&s->ns_lock, NULL);
    atomic_init(&s->ready, false);
    s->watch = weir_store_watch_new();
    return s;
}

static void store_free(weir_store_t *s)
{
    if (s->db != NULL) {
        s->be->close(s->db);
    }
    weir_store_ns_free(s->ns, s->nns);
    weir_store_watch_free(s->watch);
    pthread_rwlock_destroy(&s->ns_lock);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->sync_wake);
    pthread_mutex_destroy(&s->sync_lock);
    pthread_mutex_destroy(&s->hook_lock);
    weir_free(s->batch);
    weir_free(s);
}

/* Lets the syncer answer what it still holds, then stops it. */
static void stop_syncer(weir_store_t *s)
{
    pthread_mutex_lock(&s->sync_lock);
    s->sync_closing = true;
    pthread_cond_signal(&s->sync_wake);
    pthread_mutex_unlock(&s->sync_lock);
    pthread_join(s->syncer, NULL);
}

int weir_store_open(const weir_store_config_t *cfg, weir_store_t **out, weir_err_t *err)
{
    *out = NULL;
    if (cfg == NULL || cfg->data_dir == NULL || cfg->data_dir[0] == '\0') {
        return weir_err_set(err, WEIR_EINVAL, "data_dir", "no data directory given");
    }

    weir_store_t *s = store_new(cfg);
    int rc = s->be->open(cfg, &s->db, err);
    if (rc != 0) {
        goto fail;
    }
    rc = s->be->ns_load(s->db, &s->ns, &s->nns, err);
    if (rc != 0) {
        goto fail;
    }
    int64_t last = 0;
    rc = s->be->last_seq(s->db, &last, err);
    if (rc != 0) {
        goto fail;
    }
    weir_store_watch_start(s->watch, last);
    atomic_store(&s->ready, true);
    if (pthread_create(&s->syncer, NULL, syncer_main, s) != 0) {
        rc = weir_err_set(err, WEIR_EIO, NULL, "cannot start the store's syncer thread");
        goto fail;
    }
    if (pthread_create(&s->writer, NULL, writer_main, s) != 0) {
        stop_syncer(s);
        rc = weir_err_set(err, WEIR_EIO, NULL, "cannot start the store's writer thread");
        goto fail;
    }
    weir_info(MODULE, "opened %s store in %s (%zu namespaces)", s->be->name, cfg->data_dir, s->nns);
    *out = s;
    return 0;

fail:
    store_free(s);
    return rc;
}

void weir_store_close(weir_store_t *store)
{
    if (store == NULL) {
        return;
    }
    pthread_mutex_lock(&store->lock);
    store->closing = true;
    pthread_cond_signal(&store->wake);
    pthread_mutex_unlock(&store->lock);

    pthread_join(store->writer, NULL); /* the writer drains the queue first */
    stop_syncer(store);
    store_free(store);
}

bool weir_store_ready(weir_store_t *store)
{
    return atomic_load(&store->ready);
}

size_t weir_store_queue_depth(weir_store_t *store)
{
    pthread_mutex_lock(&store->lock);
    size_t depth = store->depth;
    pthread_mutex_unlock(&store->lock);
    return depth;
}

/* ---- namespaces ------------------------------------------------------------------------ */

static bool ns_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int weir_store_ns_valid(const char *name, weir_err_t *err)
{
    if (name == NULL || name[0] == '\0') {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "must not be empty");
    }

    size_t len = strlen(name);
    if (len > WEIR_STORE_NS_NAME_MAX) {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "must be at most %d characters",
                            WEIR_STORE_NS_NAME_MAX);
    }
    if (name[0] < 'a' || name[0] > 'z') {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "must start with a lower-case letter");
    }
    for (size_t i = 0; i < len; i++) {
        if (!ns_char_ok(name[i])) {
            return weir_err_set(err, WEIR_EINVAL, "namespace",
                                "may hold only lower-case letters, digits and '-'");
        }
    }
    if (name[len - 1] == '-') {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "must not end with '-'");
    }
    if (strcmp(name, "api") == 0 || strncmp(name, "weir-", 5) == 0) {
        return weir_err_set(err, WEIR_EINVAL, "namespace",
                            "is reserved (\"api\" and names starting with \"weir-\")");
    }
    return 0;
}

static bool write_ok(const weir_store_write_t *w);
static void encode_items(weir_store_write_t *w);

/* Queues a job and waits until the writer finished it; returns its status. A change's follow-up
 * is encoded here, on the caller's thread, as weir_store_submit does for a write. */
static int run_job(weir_store_t *s, job_t *job)
{
    job->w.done = job_tag;
    waiter_init(&job->wait);
    if (job->then != NULL) {
        encode_items(job->then);
        job->then->received_us = weir_wall_us();
        job->then->status = 0;
    }

    int rc = enqueue(s, &job->w, job->counted);
    if (rc != 0) {
        /* Never queued: the writer cannot finish it, so finish it here. */
        finish_job(s, &job->w, rc);
    }
    return waiter_wait(&job->wait);
}

/* 0 when then is NULL or a write that could be submitted (its done aside). */
static int then_check(const weir_store_write_t *then, weir_err_t *err)
{
    if (then == NULL || write_ok(then)) {
        return 0;
    }
    return weir_err_set(err, WEIR_EINVAL, NULL, "the change's follow-up is not a valid write");
}

int weir_store_job_err(int rc, weir_err_t *err)
{
    switch (rc) {
    case 0:
        return 0;
    case WEIR_EINVAL:
        return weir_err_set(err, rc, NULL, "the change's follow-up is not a valid write");
    case WEIR_EBUSY:
        return weir_err_set(err, rc, NULL, "the store queue is full; retry later");
    case WEIR_ECLOSED:
        return weir_err_set(err, rc, NULL, "the store is closing");
    default:
        return weir_err_set(err, rc, NULL, "storage failed; see the server log");
    }
}

static int ns_job_err(int rc, weir_err_t *err)
{
    if (rc == WEIR_ENOTFOUND) {
        return weir_err_set(err, rc, "namespace", "no such namespace");
    }
    return weir_store_job_err(rc, err);
}

int weir_store_ns_put(weir_store_t *store, const char *name, const weir_store_retention_t *r,
                      weir_store_write_t *then, bool *created, weir_err_t *err)
{
    job_t job = {.op = NS_CREATE,
                 .name = name,
                 .created_us = weir_wall_us(),
                 .retention = r,
                 .counted = true,
                 .then = then};

    if (created != NULL) {
        *created = false;
    }
    int rc = weir_store_ns_valid(name, err);
    if (rc == 0 && r != NULL && !weir_store_retention_ok(r)) {
        rc = weir_err_set(err, WEIR_EINVAL, "retention", "not a valid retention");
    }
    if (rc == 0) {
        rc = then_check(then, err);
    }
    if (rc != 0) {
        return rc;
    }
    rc = run_job(store, &job);
    if (rc == 0 && created != NULL) {
        *created = job.created;
    }
    return ns_job_err(rc, err);
}

int weir_store_ns_create(weir_store_t *store, const char *name, bool *created, weir_err_t *err)
{
    return weir_store_ns_put(store, name, NULL, NULL, created, err);
}

int weir_store_ns_delete_then(weir_store_t *store, const char *name, weir_store_write_t *then,
                              weir_err_t *err)
{
    job_t job = {.op = NS_DELETE, .name = name, .counted = true, .then = then};

    if (name == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "must not be empty");
    }
    int rc = then_check(then, err);
    if (rc != 0) {
        return rc;
    }
    return ns_job_err(run_job(store, &job), err);
}

int weir_store_ns_delete(weir_store_t *store, const char *name, weir_err_t *err)
{
    return weir_store_ns_delete_then(store, name, NULL, err);
}

bool weir_store_ns_exists(weir_store_t *store, const char *name)
{
    bool found = false;

    if (name == NULL) {
        return false;
    }
    pthread_rwlock_rdlock(&store->ns_lock);
    ns_find(store, name, &found);
    pthread_rwlock_unlock(&store->ns_lock);
    return found;
}

int weir_store_ns_list(weir_store_t *store, weir_store_ns_t **out, size_t *n, weir_err_t *err)
{
    pthread_rwlock_rdlock(&store->ns_lock);
    weir_store_ns_t *list = weir_calloc(store->nns > 0 ? store->nns : 1, sizeof(*list));
    for (size_t i = 0; i < store->nns; i++) {
        list[i].name = weir_strdup(store->ns[i].name);
        list[i].created_us = store->ns[i].created_us;
    }
    *n = store->nns;
    pthread_rwlock_unlock(&store->ns_lock);

    *out = list;
    return 0;
}

void weir_store_ns_free(weir_store_ns_t *list, size_t n)
{
    if (list == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        weir_free(list[i].name);
    }
    weir_free(list);
}

/* ---- writing events -------------------------------------------------------------------- */

static bool item_ok(const weir_store_item_t *it)
{
    return it->ns != NULL && it->ev != NULL && weir_ce_get(it->ev, "id") != NULL &&
           weir_ce_get(it->ev, "source") != NULL && weir_ce_get(it->ev, "type") != NULL;
}

/*
 * The item that holds ev's JSON already, through an open-addressing table of slots (a power of
 * two, at least twice the items); NULL when ev is new, which then takes a slot.
 */
static weir_store_item_t *encoded_before(weir_store_item_t **slots, size_t nslots,
                                         weir_store_item_t *it)
{
    size_t h = ((uintptr_t)it->ev >> 4) * 0x9E3779B97F4A7C15u;
    for (size_t i = h & (nslots - 1);; i = (i + 1) & (nslots - 1)) {
        if (slots[i] == NULL) {
            slots[i] = it;
            return NULL;
        }
        if (slots[i]->ev == it->ev) {
            return slots[i];
        }
    }
}

static void encode_one(weir_store_item_t *it)
{
    weir_buf_t buf = WEIR_BUF_INIT;
    weir_ce_encode_structured(it->ev, &buf);
    it->json = weir_buf_take(&buf, &it->json_len);
    it->json_shared = false;
}

/*
 * Encodes on the caller's thread, so that the writer spends its time on the database. An event
 * that goes to several namespaces unchanged (POST / without a filter) is encoded once and its
 * JSON shared, so that its memory does not grow with the number of namespaces.
 */
static void encode_items(weir_store_write_t *w)
{
    size_t nslots = 0;
    weir_store_item_t **slots = NULL;
    if (w->nitems > 1) {
        nslots = 4;
        while (nslots < 2 * w->nitems) {
            nslots *= 2;
        }
        slots = weir_calloc(nslots, sizeof(*slots));
    }
    for (size_t i = 0; i < w->nitems; i++) {
        weir_store_item_t *it = &w->items[i];
        weir_store_item_t *same = slots ? encoded_before(slots, nslots, it) : NULL;
        if (same != NULL) {
            it->json = same->json;
            it->json_len = same->json_len;
            it->json_shared = true;
        } else {
            encode_one(it);
        }
        it->seq = 0;
        it->duplicate = false;
    }
    weir_free(slots);
}

static bool write_ok(const weir_store_write_t *w)
{
    if (w->nitems > 0 && w->items == NULL) {
        return false;
    }
    for (size_t i = 0; i < w->nitems; i++) {
        if (!item_ok(&w->items[i])) {
            return false;
        }
    }
    return true;
}

int weir_store_submit(weir_store_t *store, weir_store_write_t *w)
{
    if (w == NULL || w->done == NULL || !write_ok(w)) {
        return WEIR_EINVAL;
    }

    encode_items(w);
    w->received_us = weir_wall_us();
    int rc = enqueue(store, w, true);
    if (rc != 0) {
        release_items(w, rc);
    }
    return rc;
}

static void sync_done(weir_store_write_t *w, int status, void *arg)
{
    waiter_finish(arg, status);
}

int weir_store_write_sync(weir_store_t *store, weir_store_item_t *items, size_t n)
{
    waiter_t wait;
    weir_store_write_t w = {.items = items, .nitems = n, .done = sync_done, .arg = &wait};

    waiter_init(&wait);
    int rc = weir_store_submit(store, &w);
    if (rc != 0) {
        waiter_finish(&wait, rc);
    }
    return waiter_wait(&wait);
}

/* ---- reading events -------------------------------------------------------------------- */

void weir_store_records_free(weir_store_record_t *recs, size_t n)
{
    if (recs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        weir_free(recs[i].ns);
        weir_free(recs[i].json);
    }
    weir_free(recs);
}

void weir_store_record_clear(weir_store_record_t *rec)
{
    if (rec == NULL) {
        return;
    }
    weir_free(rec->ns);
    weir_free(rec->json);
    memset(rec, 0, sizeof(*rec));
}

void weir_store_page_free(weir_store_page_t *page)
{
    if (page == NULL) {
        return;
    }
    weir_store_records_free(page->recs, page->n);
    memset(page, 0, sizeof(*page));
}

int weir_store_history(weir_store_t *store, const weir_store_query_t *q, weir_store_page_t *out,
                       weir_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (q == NULL || q->ns == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "no namespace given");
    }
    if (q->limit == 0 || q->from_us >= q->until_us) {
        return 0;
    }
    weir_store_query_t durable = *q;
    int64_t horizon = weir_store_durable_seq(store);
    if (durable.before_seq > horizon) {
        durable.before_seq = horizon + 1;
    }
    return store->be->history(store->db, &durable, out, err);
}

int weir_store_since(weir_store_t *store, const char *ns, int64_t after_seq, size_t limit,
                     size_t max_bytes, weir_store_page_t *out, weir_err_t *err)
{
    memset(out, 0, sizeof(*out));
    out->next = after_seq;
    if (ns == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "namespace", "no namespace given");
    }
    if (limit == 0) {
        return 0;
    }
    return store->be->since(store->db, ns, after_seq, weir_store_durable_seq(store), limit,
                            max_bytes, out, err);
}

int weir_store_get(weir_store_t *store, const char *ns, const char *id, const char *source,
                   weir_store_record_t *out, weir_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (ns == NULL || id == NULL) {
        return weir_err_set(err, WEIR_EINVAL, ns == NULL ? "namespace" : "id", "not given");
    }
    return store->be->get(store->db, ns, id, source, weir_store_durable_seq(store), out, err);
}

int weir_store_count(weir_store_t *store, const char *ns, int64_t *count, weir_err_t *err)
{
    *count = 0;
    return store->be->count(store->db, ns, count, err);
}

/* ---- live streams and jobs for the rest of the store ---------------------------------- */

int64_t weir_store_durable_seq(weir_store_t *store)
{
    return weir_store_watch_horizon(store->watch);
}

bool weir_store_wait(weir_store_t *store, const char *ns, int64_t after_seq, uint64_t timeout_ns)
{
    return ns != NULL && weir_store_watch_wait(store->watch, ns, after_seq, timeout_ns);
}

int weir_store_call(weir_store_t *store, weir_store_call_fn fn, void *arg)
{
    job_t job = {.op = JOB_CALL, .fn = fn, .fn_arg = arg};

    return run_job(store, &job);
}

int weir_store_change(weir_store_t *store, weir_store_call_fn fn, void *arg,
                      weir_store_write_t *then)
{
    job_t job = {.op = JOB_CALL, .fn = fn, .fn_arg = arg, .counted = true, .then = then};

    if (then_check(then, NULL) != 0) {
        return WEIR_EINVAL;
    }
    return run_job(store, &job);
}

void weir_store_backend_of(weir_store_t *store, const weir_store_backend_t **be, void **db)
{
    *be = store->be;
    *db = store->db;
}

/* ---- the outbox ------------------------------------------------------------------------ */

int weir_store_outbox_next(weir_store_t *store, int64_t after_id, size_t limit,
                           weir_store_outbox_row_t **out, size_t *n, weir_err_t *err)
{
    *out = NULL;
    *n = 0;
    if (limit == 0) {
        return 0;
    }
    return store->be->outbox_next(store->db, after_id, limit, out, n, err);
}

void weir_store_outbox_free(weir_store_outbox_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        weir_free(rows[i].ns);
        weir_free(rows[i].json);
    }
    weir_free(rows);
}

void weir_store_outbox_stats(weir_store_t *store, int64_t *depth, uint64_t *overflowed)
{
    store->be->outbox_stats(store->db, depth, overflowed);
}

bool weir_store_outbox_full(weir_store_t *store)
{
    int64_t depth;
    uint64_t overflowed;
    if (store->outbox_max == 0) {
        return false;
    }
    weir_store_outbox_stats(store, &depth, &overflowed);
    return depth >= (int64_t)store->outbox_max;
}
