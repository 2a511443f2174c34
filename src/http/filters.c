/*
 * JavaScript filters: the registry of compiled filters by namespace and name, their API routes,
 * and the namespace logs that nslog() writes to.
 *
 * The registry is loaded from the store at start and changed only after the store committed a
 * change, so that every thread sees a new filter from its next event on. Changes are serialised
 * by the server's change lock: each store write and the registry change after it happen under
 * it, so that the registry ends as the store does whatever order concurrent requests commit in
 * (without it, a DELETE that committed after a PUT but reached the registry first left a deleted
 * filter running), and whether a PUT creates or replaces is known before it is made, for its
 * system event.
 */
#include <pthread.h>
#include <string.h>

#include "http/internal.h"

#define LOG_LINES        256   /* lines kept per namespace log */
#define LOG_RATE_PER_SEC 50.0  /* nslog lines a namespace may write each second... */
#define LOG_BURST        200.0 /* ...and at once */

typedef struct entry {
    char *ns;
    char *name;
    weir_script_t *script;
} entry_t;

/* A namespace's recent nslog lines, oldest overwritten first. */
typedef struct ns_log {
    char *ns;
    char *lines[LOG_LINES];
    int64_t times[LOG_LINES];
    size_t next;      /* where the next line goes */
    size_t count;     /* lines held, up to LOG_LINES */
    uint64_t dropped; /* lines refused by the rate limit */
    weir_ratelimit_t limit;
} ns_log_t;

struct weir_filters {
    pthread_rwlock_t lock; /* guards entries */
    entry_t *entries;      /* sorted by (ns, name) */
    size_t n;
    pthread_mutex_t log_lock; /* guards logs */
    ns_log_t *logs;
    size_t nlogs;
};

typedef struct entry_key {
    const char *ns;
    const char *name;
} entry_key_t;

static int entry_cmp(const void *key, const void *element)
{
    const entry_key_t *k = key;
    const entry_t *e = element;
    int c = strcmp(k->ns, e->ns);
    return c != 0 ? c : strcmp(k->name, e->name);
}

/* Index of (ns, name), or where it would go with *found false. Call with the lock held. */
static size_t entry_find(const weir_filters_t *f, const char *ns, const char *name, bool *found)
{
    entry_key_t key = {ns, name};
    return weir_bsearch_at(&key, f->entries, f->n, sizeof(entry_t), entry_cmp, found);
}

/* Adds or replaces (ns, name), taking the caller's reference to script. */
static void entry_set(weir_filters_t *f, const char *ns, const char *name, weir_script_t *script)
{
    pthread_rwlock_wrlock(&f->lock);
    bool found;
    size_t i = entry_find(f, ns, name, &found);
    weir_script_t *old = NULL;
    if (found) {
        old = f->entries[i].script;
    } else {
        f->entries = weir_realloc(f->entries, (f->n + 1) * sizeof(entry_t));
        memmove(&f->entries[i + 1], &f->entries[i], (f->n - i) * sizeof(entry_t));
        f->entries[i].ns = weir_strdup(ns);
        f->entries[i].name = weir_strdup(name);
        f->n++;
    }
    f->entries[i].script = script;
    pthread_rwlock_unlock(&f->lock);
    weir_script_unref(old);
}

static void entry_remove_at(weir_filters_t *f, size_t i)
{
    weir_free(f->entries[i].ns);
    weir_free(f->entries[i].name);
    weir_script_unref(f->entries[i].script);
    memmove(&f->entries[i], &f->entries[i + 1], (f->n - i - 1) * sizeof(entry_t));
    f->n--;
}

weir_script_t *weir_filters_get(weir_filters_t *f, const char *ns, const char *name)
{
    pthread_rwlock_rdlock(&f->lock);
    bool found;
    size_t i = entry_find(f, ns, name, &found);
    weir_script_t *s = found ? weir_script_ref(f->entries[i].script) : NULL;
    pthread_rwlock_unlock(&f->lock);
    return s;
}

bool weir_filters_any(weir_filters_t *f, const char *name)
{
    pthread_rwlock_rdlock(&f->lock);
    bool any = false;
    for (size_t i = 0; i < f->n && !any; i++) {
        any = strcmp(f->entries[i].name, name) == 0;
    }
    pthread_rwlock_unlock(&f->lock);
    return any;
}

static void log_clear(ns_log_t *log);

void weir_filters_drop_ns(weir_filters_t *f, const char *ns)
{
    /* Called under the server's change lock once the namespace's deletion committed: a PUT that
     * wrote its filter before that commit has updated the registry already, so its entry goes
     * too. */
    pthread_rwlock_wrlock(&f->lock);
    for (size_t i = f->n; i-- > 0;) {
        if (strcmp(f->entries[i].ns, ns) == 0) {
            entry_remove_at(f, i);
        }
    }
    pthread_rwlock_unlock(&f->lock);

    pthread_mutex_lock(&f->log_lock);
    for (size_t i = 0; i < f->nlogs; i++) {
        if (strcmp(f->logs[i].ns, ns) == 0) {
            log_clear(&f->logs[i]);
            f->logs[i] = f->logs[--f->nlogs];
            break;
        }
    }
    pthread_mutex_unlock(&f->log_lock);
}

static void filters_drop(weir_filters_t *f, const char *ns, const char *name)
{
    pthread_rwlock_wrlock(&f->lock);
    bool found;
    size_t i = entry_find(f, ns, name, &found);
    if (found) {
        entry_remove_at(f, i);
    }
    pthread_rwlock_unlock(&f->lock);
}

int weir_filters_load(weir_filters_t *f, weir_store_t *store, weir_err_t *err)
{
    weir_store_filter_t *list;
    size_t n;
    int rc = weir_store_filter_list(store, NULL, &list, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        weir_script_t *script;
        weir_err_t cerr = {0};
        if (weir_script_compile(list[i].source, list[i].source_len, &script, &cerr) != 0) {
            /* Saved filters compiled when they were saved; a newer engine may disagree. */
            WEIR_LOG(WEIR_LOG_ERROR, "filter", list[i].ns, "filter %s no longer compiles: %s",
                     list[i].name, cerr.msg);
            continue;
        }
        entry_set(f, list[i].ns, list[i].name, script);
    }
    if (rc == 0) {
        weir_store_filters_free(list, n);
    }
    return rc;
}

weir_filters_t *weir_filters_new(void)
{
    weir_filters_t *f = weir_calloc(1, sizeof(*f));
    pthread_rwlock_init(&f->lock, NULL);
    pthread_mutex_init(&f->log_lock, NULL);
    return f;
}

static void log_clear(ns_log_t *log)
{
    for (size_t i = 0; i < LOG_LINES; i++) {
        weir_free(log->lines[i]);
    }
    weir_free(log->ns);
}

void weir_filters_free(weir_filters_t *f)
{
    if (f == NULL) {
        return;
    }
    while (f->n > 0) {
        entry_remove_at(f, f->n - 1);
    }
    weir_free(f->entries);
    for (size_t i = 0; i < f->nlogs; i++) {
        log_clear(&f->logs[i]);
    }
    weir_free(f->logs);
    pthread_rwlock_destroy(&f->lock);
    pthread_mutex_destroy(&f->log_lock);
    weir_free(f);
}

/* ---- namespace logs -------------------------------------------------------------------- */

/* The log of ns, created on first use. Call with log_lock held. */
static ns_log_t *log_for(weir_filters_t *f, const char *ns)
{
    for (size_t i = 0; i < f->nlogs; i++) {
        if (strcmp(f->logs[i].ns, ns) == 0) {
            return &f->logs[i];
        }
    }
    f->logs = weir_realloc(f->logs, (f->nlogs + 1) * sizeof(ns_log_t));
    ns_log_t *log = &f->logs[f->nlogs++];
    memset(log, 0, sizeof(*log));
    log->ns = weir_strdup(ns);
    log->limit = (weir_ratelimit_t)WEIR_RATELIMIT_INIT(LOG_RATE_PER_SEC, LOG_BURST);
    return log;
}

void weir_filters_log(weir_filters_t *f, const char *ns, const char *filter, const char *line,
                      size_t len)
{
    pthread_mutex_lock(&f->log_lock);
    ns_log_t *log = log_for(f, ns);
    bool allowed = weir_ratelimit_allow(&log->limit);
    if (allowed) {
        weir_free(log->lines[log->next]);
        log->lines[log->next] = weir_strndup(line, len);
        log->times[log->next] = weir_wall_us();
        log->next = (log->next + 1) % LOG_LINES;
        log->count += log->count < LOG_LINES;
    } else {
        log->dropped++;
    }
    pthread_mutex_unlock(&f->log_lock);
    if (allowed) {
        WEIR_LOG(WEIR_LOG_INFO, "filter", ns, "%s: %.*s", filter, (int)len, line);
    }
}

/* {"items":[{"time","line"}...],"dropped":N}, oldest first. */
static void log_json(weir_filters_t *f, const char *ns, weir_buf_t *b)
{
    pthread_mutex_lock(&f->log_lock);
    ns_log_t *log = log_for(f, ns);
    weir_buf_puts(b, "{\"items\":[");
    size_t first = (log->next + LOG_LINES - log->count) % LOG_LINES;
    for (size_t k = 0; k < log->count; k++) {
        size_t i = (first + k) % LOG_LINES;
        char when[WEIR_TIME_STR_MAX];
        weir_time_format(log->times[i], when);
        weir_buf_printf(b, "%s{\"time\":\"%s\",\"line\":", k ? "," : "", when);
        weir_buf_json_str(b, log->lines[i], strlen(log->lines[i]));
        weir_buf_puts(b, "}");
    }
    weir_buf_printf(b, "],\"dropped\":%llu}", (unsigned long long)log->dropped);
    pthread_mutex_unlock(&f->log_lock);
}

enum MHD_Result weir_filters_handle_log(weir_req_t *req, const char *ns)
{
    if (strcmp(req->method, MHD_HTTP_METHOD_GET) != 0) {
        return weir_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", NULL,
                            "GET");
    }
    weir_buf_t b = WEIR_BUF_INIT;
    log_json(req->srv->filters, ns, &b);
    return weir_respond_json(req, MHD_HTTP_OK, &b);
}

/* ---- API ------------------------------------------------------------------------------- */

static void filter_json(weir_buf_t *b, const char *ns, const char *name, int64_t updated_us)
{
    char when[WEIR_TIME_STR_MAX];
    weir_time_format(updated_us, when);
    weir_buf_puts(b, "{\"namespace\":");
    weir_buf_json_str(b, ns, strlen(ns));
    weir_buf_puts(b, ",\"name\":");
    weir_buf_json_str(b, name, strlen(name));
    weir_buf_printf(b, ",\"updated\":\"%s\"}", when);
}

/* Saves the filter with its system event, created or updated as the store had it before: under
 * the change lock, no other change of a filter or a namespace runs between the look and the
 * save. The registry gets script once the save committed. */
static int save(weir_server_t *srv, const char *ns, const char *name, const weir_buf_t *body,
                weir_script_t *script, bool *created, weir_err_t *err)
{
    weir_system_t sys;
    bool exists = false;

    pthread_mutex_lock(&srv->change_lock);
    int rc = weir_store_filter_exists(srv->store, ns, name, &exists, err);
    if (rc == 0) {
        const char *type = exists ? WEIR_SYSTEM_FILTER_UPDATED : WEIR_SYSTEM_FILTER_CREATED;
        weir_store_write_t *then = weir_system_prepare(srv, &sys, ns, type, "filter", name);
        rc = weir_store_filter_put_then(srv->store, ns, name, body->data ? body->data : "",
                                        body->len, then, created, err);
        weir_system_finish(srv, &sys, rc);
    }
    if (rc == 0) {
        entry_set(srv->filters, ns, name, script);
    }
    pthread_mutex_unlock(&srv->change_lock);
    return rc;
}

static enum MHD_Result put_filter(weir_req_t *req, const char *ns, const char *name)
{
    weir_err_t err = {0};
    weir_script_t *script;
    bool created = false;
    if (weir_store_filter_name_valid(name, &err) != 0 ||
        weir_script_compile(req->body.data ? req->body.data : "", req->body.len, &script, &err) !=
            0) {
        return weir_problem_err(req, &err);
    }
    if (save(req->srv, ns, name, &req->body, script, &created, &err) != 0) {
        weir_script_unref(script);
        return weir_problem_err(req, &err);
    }
    WEIR_LOG(WEIR_LOG_INFO, "api", ns, "filter %s %s", name, created ? "created" : "replaced");

    weir_buf_t b = WEIR_BUF_INIT;
    filter_json(&b, ns, name, weir_wall_us());
    return weir_respond_json(req, created ? MHD_HTTP_CREATED : MHD_HTTP_OK, &b);
}

static enum MHD_Result get_filter(weir_req_t *req, const char *ns, const char *name)
{
    weir_store_filter_t *list;
    size_t n;
    weir_err_t err = {0};
    if (weir_store_filter_list(req->srv->store, ns, &list, &n, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    enum MHD_Result rc = MHD_NO;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(list[i].name, name) == 0) {
            found = true;
            rc = weir_respond(req, MHD_HTTP_OK, "application/javascript; charset=utf-8",
                              list[i].source, list[i].source_len);
        }
    }
    weir_store_filters_free(list, n);
    return found ? rc : weir_problem(req, MHD_HTTP_NOT_FOUND, "no filter of that name", NULL, NULL);
}

static enum MHD_Result delete_filter(weir_req_t *req, const char *ns, const char *name)
{
    weir_server_t *srv = req->srv;
    weir_err_t err = {0};
    weir_system_t sys;

    pthread_mutex_lock(&srv->change_lock);
    weir_store_write_t *then =
        weir_system_prepare(srv, &sys, ns, WEIR_SYSTEM_FILTER_DELETED, "filter", name);
    int rc = weir_store_filter_delete_then(srv->store, ns, name, then, &err);
    if (rc == 0) {
        filters_drop(srv->filters, ns, name);
    }
    pthread_mutex_unlock(&srv->change_lock);
    weir_system_finish(srv, &sys, rc);
    if (rc != 0) {
        return weir_problem_err(req, &err);
    }
    WEIR_LOG(WEIR_LOG_INFO, "api", ns, "filter %s deleted", name);
    return weir_respond(req, MHD_HTTP_NO_CONTENT, NULL, NULL, 0);
}

static enum MHD_Result list_filters(weir_req_t *req, const char *ns)
{
    weir_store_filter_t *list;
    size_t n;
    weir_err_t err = {0};
    if (weir_store_filter_list(req->srv->store, ns, &list, &n, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_puts(&b, "{\"items\":[");
    for (size_t i = 0; i < n; i++) {
        weir_buf_puts(&b, i ? "," : "");
        filter_json(&b, ns, list[i].name, list[i].updated_us);
    }
    weir_buf_puts(&b, "],\"next_cursor\":null}");
    weir_store_filters_free(list, n);
    return weir_respond_json(req, MHD_HTTP_OK, &b);
}

enum MHD_Result weir_filters_handle(weir_req_t *req, const char *ns, const char *name)
{
    const char *m = req->method;
    if (name == NULL) {
        return strcmp(m, MHD_HTTP_METHOD_GET) == 0
                   ? list_filters(req, ns)
                   : weir_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", NULL,
                                  "GET");
    }
    if (strcmp(m, MHD_HTTP_METHOD_PUT) == 0) {
        return put_filter(req, ns, name);
    }
    if (strcmp(m, MHD_HTTP_METHOD_GET) == 0) {
        return get_filter(req, ns, name);
    }
    if (strcmp(m, MHD_HTTP_METHOD_DELETE) == 0) {
        return delete_filter(req, ns, name);
    }
    return weir_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", NULL,
                        "GET, PUT, DELETE");
}
