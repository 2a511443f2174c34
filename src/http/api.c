/*
 * The API listener: operations endpoints (/healthz, /readyz, /metrics) and /api/v2, routed by
 * path segment; below .../events/history/ by the raw rest of the path, since an event's id may
 * hold any number of '/'.
 */
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define SEGMENTS_MAX       16
#define LIST_LIMIT_DEFAULT 100
#define LIST_LIMIT_MAX     1000

typedef struct path {
    char *seg[SEGMENTS_MAX];
    size_t end[SEGMENTS_MAX]; /* where each segment ends in the raw path */
    size_t n;
    bool more; /* the path goes on past SEGMENTS_MAX segments */
    char *copy;
} path_t;

/* Splits the path at '/', ignoring empty segments, up to SEGMENTS_MAX of them. */
static void path_split(const char *url, path_t *p)
{
    p->copy = weir_strdup(url);
    p->n = 0;
    p->more = false;
    char *save = NULL;
    for (char *s = strtok_r(p->copy, "/", &save); s != NULL; s = strtok_r(NULL, "/", &save)) {
        if (p->n == SEGMENTS_MAX) {
            p->more = true;
            break;
        }
        p->seg[p->n] = s;
        p->end[p->n] = (size_t)(s - p->copy) + strlen(s);
        p->n++;
    }
}

static bool is(const weir_req_t *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

static enum MHD_Result not_allowed(weir_req_t *req, const char *allow)
{
    return weir_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", NULL, allow);
}

static enum MHD_Result not_found(weir_req_t *req)
{
    return weir_problem(req, MHD_HTTP_NOT_FOUND, "no such resource", NULL, NULL);
}

/* ---- operations ------------------------------------------------------------------------ */

static enum MHD_Result handle_ops(weir_req_t *req, const char *what)
{
    if (!is(req, MHD_HTTP_METHOD_GET) && !is(req, MHD_HTTP_METHOD_HEAD)) {
        return not_allowed(req, "GET, HEAD");
    }
    if (strcmp(what, "healthz") == 0) {
        static const char ok[] = "{\"status\":\"ok\"}";
        return weir_respond(req, MHD_HTTP_OK, "application/json", ok, sizeof(ok) - 1);
    }
    if (strcmp(what, "readyz") == 0) {
        if (!weir_store_ready(req->srv->store)) {
            return weir_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, "the store is not writable",
                                NULL, NULL);
        }
        static const char ready[] = "{\"status\":\"ready\"}";
        return weir_respond(req, MHD_HTTP_OK, "application/json", ready, sizeof(ready) - 1);
    }
    weir_buf_t b = WEIR_BUF_INIT;
    weir_metrics_render(req->srv->metrics, req->srv->store, &b);
    weir_buf_printf(&b,
                    "# HELP weir_live_streams Open live history streams (server-sent events).\n"
                    "# TYPE weir_live_streams gauge\nweir_live_streams %u\n",
                    atomic_load(&req->srv->subscribers));
    if (req->srv->deliver != NULL) {
        weir_deliver_render_metrics(req->srv->deliver, &b);
    }
    if (req->srv->source != NULL) {
        weir_source_render_metrics(req->srv->source, &b);
    }
    enum MHD_Result rc =
        weir_respond(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    weir_buf_free(&b);
    return rc;
}

/* ---- namespaces ------------------------------------------------------------------------ */

/* Appends {"name","created" without the closing brace, so that a caller may add members. */
static void ns_json_open(weir_buf_t *b, const char *name, int64_t created_us)
{
    char when[WEIR_TIME_STR_MAX];
    weir_time_format(created_us, when);
    weir_buf_puts(b, "{\"name\":");
    weir_buf_json_str(b, name, strlen(name));
    weir_buf_printf(b, ",\"created\":\"%s\"", when);
}

/* Reads ?limit=, within [1, LIST_LIMIT_MAX]; false when it is not a number in range. */
static bool list_limit(weir_req_t *req, size_t *limit)
{
    const char *s = weir_req_arg(req, "limit");
    *limit = LIST_LIMIT_DEFAULT;
    if (s == NULL) {
        return true;
    }
    uint64_t v;
    if (!weir_parse_uint(s, LIST_LIMIT_MAX, &v) || v < 1) {
        return false;
    }
    *limit = (size_t)v;
    return true;
}

static enum MHD_Result list_namespaces(weir_req_t *req)
{
    size_t limit;
    if (!list_limit(req, &limit)) {
        return weir_problem(req, MHD_HTTP_BAD_REQUEST, "limit must be a number from 1 to 1000",
                            "limit", NULL);
    }
    const char *after = weir_req_arg(req, "cursor");
    weir_store_ns_t *list;
    size_t n;
    weir_err_t err = {0};
    if (weir_store_ns_list(req->srv->store, &list, &n, &err) != 0) {
        return weir_problem_err(req, &err);
    }

    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_puts(&b, "{\"items\":[");
    size_t shown = 0;
    const char *last = NULL;
    for (size_t i = 0; i < n && shown < limit; i++) {
        if (after != NULL && strcmp(list[i].name, after) <= 0) {
            continue;
        }
        weir_buf_puts(&b, shown++ ? "," : "");
        ns_json_open(&b, list[i].name, list[i].created_us);
        weir_buf_putc(&b, '}');
        last = list[i].name;
    }
    bool more = last != NULL && strcmp(list[n - 1].name, last) > 0;
    weir_buf_puts(&b, "],\"next_cursor\":");
    if (more) {
        weir_buf_json_str(&b, last, strlen(last));
    } else {
        weir_buf_puts(&b, "null");
    }
    weir_buf_puts(&b, "}");
    weir_store_ns_free(list, n);
    return weir_respond_json(req, MHD_HTTP_OK, &b);
}

/* Answers the namespace with status, or 404. */
static enum MHD_Result show_namespace(weir_req_t *req, const char *name, unsigned status)
{
    weir_store_ns_t *list;
    size_t n;
    weir_err_t err = {0};
    if (weir_store_ns_list(req->srv->store, &list, &n, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    enum MHD_Result rc = MHD_NO;
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        if (strcmp(list[i].name, name) == 0) {
            weir_buf_t b = WEIR_BUF_INIT;
            ns_json_open(&b, name, list[i].created_us);
            if (weir_retention_json(req, name, &b, &err) != 0) {
                weir_buf_free(&b);
                weir_store_ns_free(list, n);
                return weir_problem_err(req, &err);
            }
            weir_buf_putc(&b, '}');
            rc = weir_respond_json(req, status, &b);
            found = true;
        }
    }
    weir_store_ns_free(list, n);
    return found ? rc
                 : weir_problem(req, MHD_HTTP_NOT_FOUND, "namespace does not exist", NULL, NULL);
}

/*
 * Creates the namespace, or sets the retention of one that exists, with the system event that
 * says which in the same transaction. Under the change lock no other namespace change runs, so
 * whether the namespace exists before is exactly whether this creates it.
 */
static int ns_put(weir_server_t *srv, const char *name, const weir_store_retention_t *retention,
                  bool *created, weir_err_t *err)
{
    weir_system_t sys;

    pthread_mutex_lock(&srv->change_lock);
    const char *type = !weir_store_ns_exists(srv->store, name) ? WEIR_SYSTEM_NS_CREATED
                       : retention != NULL                     ? WEIR_SYSTEM_NS_UPDATED
                                                               : NULL;
    weir_store_write_t *then = weir_system_prepare(srv, &sys, name, type, NULL, NULL);
    int rc = weir_store_ns_put(srv->store, name, retention, then, created, err);
    pthread_mutex_unlock(&srv->change_lock);
    weir_system_finish(srv, &sys, rc);
    return rc;
}

static enum MHD_Result put_namespace(weir_req_t *req, const char *name)
{
    weir_err_t err = {0};
    bool created = false;
    weir_store_retention_t retention;
    bool given = false;
    /* The body is checked whole before anything is created; the namespace and its retention
     * are then made in one transaction. */
    if (weir_store_ns_valid(name, &err) != 0 ||
        weir_retention_from_body(req, &retention, &given, &err) != 0 ||
        ns_put(req->srv, name, given ? &retention : NULL, &created, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    if (created) {
        WEIR_LOG(WEIR_LOG_INFO, "api", name, "namespace created");
    }
    return show_namespace(req, name, created ? MHD_HTTP_CREATED : MHD_HTTP_OK);
}

static enum MHD_Result delete_namespace(weir_req_t *req, const char *name)
{
    weir_server_t *srv = req->srv;
    weir_err_t err = {0};
    weir_system_t sys;

    pthread_mutex_lock(&srv->change_lock);
    weir_store_write_t *then =
        weir_system_prepare(srv, &sys, name, WEIR_SYSTEM_NS_DELETED, NULL, NULL);
    int rc = weir_store_ns_delete_then(srv->store, name, then, &err);
    if (rc == 0) {
        weir_filters_drop_ns(srv->filters, name);
        weir_listeners_ns_deleted(srv, name);
    }
    pthread_mutex_unlock(&srv->change_lock);
    weir_system_finish(srv, &sys, rc);
    if (rc != 0) {
        return weir_problem_err(req, &err);
    }
    WEIR_LOG(WEIR_LOG_INFO, "api", name, "namespace deleted");
    return weir_respond(req, MHD_HTTP_NO_CONTENT, NULL, NULL, 0);
}

static enum MHD_Result handle_namespace(weir_req_t *req, const char *name)
{
    if (is(req, MHD_HTTP_METHOD_GET)) {
        return show_namespace(req, name, MHD_HTTP_OK);
    }
    if (is(req, MHD_HTTP_METHOD_PUT)) {
        return put_namespace(req, name);
    }
    if (is(req, MHD_HTTP_METHOD_DELETE)) {
        return delete_namespace(req, name);
    }
    return not_allowed(req, "GET, PUT, DELETE");
}

static enum MHD_Result handle_broadcast(weir_req_t *req, const char *name)
{
    if (!is(req, MHD_HTTP_METHOD_POST)) {
        return not_allowed(req, "POST");
    }
    if (!weir_store_ns_exists(req->srv->store, name)) {
        weir_metrics_count(req->srv->metrics, NULL, WEIR_OUT_NOT_FOUND, 1);
        return weir_problem(req, MHD_HTTP_NOT_FOUND, "namespace does not exist", NULL, NULL);
    }
    /* A quick answer while the outbox is full, before the body is decoded. The bound itself is
     * kept by the store writer, which refuses a broadcast the outbox has no room for. */
    if (weir_store_outbox_full(req->srv->store)) {
        weir_metrics_count(req->srv->metrics, name, WEIR_OUT_OVERLOADED, 1);
        return weir_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "the outbox is full: the source's sink is not taking events; retry "
                            "later",
                            NULL, NULL);
    }
    char **namespaces = weir_malloc(sizeof(char *));
    namespaces[0] = weir_strdup(name);
    return weir_ingest_start(req, namespaces, 1, true);
}

/*
 * .../events/history[/...] with p->seg[5] "history", routed by what follows "history/" in the
 * raw path, so that an id keeps every '/' it holds, however many. history/subscribe is the
 * live stream, so GET of an event whose id is "subscribe" is not possible; POST
 * history/replay/{id} replays, while GET of it finds an event whose id starts with "replay/".
 */
static enum MHD_Result route_history(weir_req_t *req, const path_t *p, const char *ns)
{
    if (!weir_store_ns_exists(req->srv->store, ns)) {
        return weir_problem(req, MHD_HTTP_NOT_FOUND, "namespace does not exist", NULL, NULL);
    }
    const char *rest = req->url + p->end[5];
    rest += rest[0] == '/' ? 1 : 0;
    bool replay = strncmp(rest, "replay/", 7) == 0;
    if (replay && is(req, MHD_HTTP_METHOD_POST)) {
        return weir_history_replay(req, ns, rest + 7);
    }
    if (!is(req, MHD_HTTP_METHOD_GET)) {
        return not_allowed(req, replay ? "GET, POST" : "GET");
    }
    if (rest[0] == '\0') {
        return weir_history_list(req, ns);
    }
    if (strcmp(rest, "subscribe") == 0) {
        return weir_stream_subscribe(req, ns);
    }
    return weir_history_get(req, ns, rest);
}

/* .../filters, .../filters/{name} and .../logs of an existing namespace. */
static enum MHD_Result route_filters(weir_req_t *req, const path_t *p, const char *ns)
{
    bool logs = strcmp(p->seg[4], "logs") == 0;
    if (p->n > (logs ? 5 : 6)) {
        return not_found(req);
    }
    if (!weir_store_ns_exists(req->srv->store, ns)) {
        return weir_problem(req, MHD_HTTP_NOT_FOUND, "namespace does not exist", NULL, NULL);
    }
    if (logs) {
        return weir_filters_handle_log(req, ns);
    }
    return weir_filters_handle(req, ns, p->n == 6 ? p->seg[5] : NULL);
}

/* /api/v2/namespaces/... with p->seg[2] the first segment after "namespaces". */
static enum MHD_Result route_namespaces(weir_req_t *req, const path_t *p)
{
    if (p->n == 3) {
        return is(req, MHD_HTTP_METHOD_GET) ? list_namespaces(req) : not_allowed(req, "GET");
    }
    const char *name = p->seg[3];
    if (p->n == 4) {
        return handle_namespace(req, name);
    }
    if (strcmp(p->seg[4], "filters") == 0 || strcmp(p->seg[4], "logs") == 0) {
        return route_filters(req, p, name);
    }
    if (p->n < 6 || strcmp(p->seg[4], "events") != 0) {
        return not_found(req);
    }
    if (p->n == 6 && strcmp(p->seg[5], "broadcast") == 0) {
        return handle_broadcast(req, name);
    }
    if (strcmp(p->seg[5], "history") == 0) {
        return route_history(req, p, name);
    }
    if (p->more) {
        return not_found(req);
    }
    if (strcmp(p->seg[5], "listeners") == 0 && p->n <= 7) {
        return weir_listeners_handle(req, name, p->n == 7 ? p->seg[6] : NULL);
    }
    return not_found(req);
}

enum MHD_Result weir_api_handle(weir_req_t *req)
{
    path_t p;
    enum MHD_Result rc;
    path_split(req->url, &p);
    if (p.n == 1 && (strcmp(p.seg[0], "healthz") == 0 || strcmp(p.seg[0], "readyz") == 0 ||
                     strcmp(p.seg[0], "metrics") == 0)) {
        rc = handle_ops(req, p.seg[0]);
    } else if (p.n >= 3 && strcmp(p.seg[0], "api") == 0 && strcmp(p.seg[1], "v2") == 0 &&
               strcmp(p.seg[2], "namespaces") == 0) {
        rc = route_namespaces(req, &p);
    } else {
        rc = not_found(req);
    }
    weir_free(p.copy);
    return rc;
}
