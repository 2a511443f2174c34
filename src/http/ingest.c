/*
 * The path of events into the store, shared by the sink and the broadcast API: decode the body
 * once, fan the events out to their namespaces, hand them to the store writer and wait, on the
 * request's own thread, until the commit is durable. Nothing is acknowledged before that.
 */
#include <stdio.h>
#include <string.h>

#include "http/internal.h"

#define HEADERS_MAX 128

typedef struct header_list {
    weir_ce_header_t items[HEADERS_MAX + 1]; /* one more tells that there were too many */
    size_t n;
} header_list_t;

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    header_list_t *list = cls;
    if (list->n == HEADERS_MAX + 1) {
        return MHD_NO;
    }
    list->items[list->n].name = key;
    list->items[list->n].value = value ? value : "";
    list->n++;
    return MHD_YES;
}

static weir_outcome_t outcome_for(int code)
{
    switch (code) {
    case WEIR_EUNSUPPORTED:
        return WEIR_OUT_UNSUPPORTED;
    case WEIR_ETOOBIG:
        return WEIR_OUT_TOO_LARGE;
    case WEIR_ENOTFOUND:
        return WEIR_OUT_NOT_FOUND;
    case WEIR_ESCRIPT:
        return WEIR_OUT_FILTER_FAILED;
    case WEIR_EBUSY:
    case WEIR_ECLOSED:
        return WEIR_OUT_OVERLOADED;
    case WEIR_EIO:
        return WEIR_OUT_STORE_FAILED;
    default:
        return WEIR_OUT_INVALID;
    }
}

/* Counts a refused request once per namespace it named (once, unlabelled, for several). */
static void count_refused(weir_req_t *req, char **namespaces, size_t nns, int code, size_t n)
{
    const char *ns = nns == 1 ? namespaces[0] : NULL;
    weir_metrics_count(req->srv->metrics, ns, outcome_for(code), n ? n : 1);
}

static int decode(weir_req_t *req, weir_ingest_t *in, weir_err_t *err)
{
    header_list_t headers = {.n = 0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, collect_header, &headers);
    if (headers.n > HEADERS_MAX) {
        return weir_err_set(err, WEIR_EINVAL, "", "more than %d headers", HEADERS_MAX);
    }
    return weir_ce_decode_http(headers.items, headers.n, req->body.data, req->body.len, &in->events,
                               &in->nevents, err);
}

/*
 * Runs on a store thread: wakes the request's thread, or resumes its parked connection, which
 * then answers. Once the connection is resumed the request may be answered and freed at once,
 * so nothing of it is touched after.
 */
static void on_committed(weir_store_write_t *w, int status, void *arg)
{
    weir_ingest_t *in = arg;
    pthread_mutex_lock(&in->lock);
    in->status = status;
    in->done = true;
    bool parked = in->suspended;
    struct MHD_Connection *conn = in->conn;
    if (!parked) {
        pthread_cond_signal(&in->committed);
    }
    pthread_mutex_unlock(&in->lock);
    if (parked) {
        atomic_int *count = in->parked; /* the server's: it outlives the request */
        MHD_resume_connection(conn);
        atomic_fetch_sub(count, 1);
    }
}

/*
 * Whether a sink request may park its connection until the commit. The count goes up before the
 * flag is read, so once weir_server_quiesce's final wait has seen no_park set and the count at
 * zero, no connection can still be parked: libmicrohttpd must not be stopped while one is.
 */
static bool may_park(weir_req_t *req)
{
    weir_server_t *srv = req->srv;
    if (req->surface != WEIR_SURFACE_SINK) {
        return false;
    }
    atomic_fetch_add(&srv->parked, 1);
    if (atomic_load(&srv->no_park)) {
        atomic_fetch_sub(&srv->parked, 1);
        return false;
    }
    req->ingest.parked = &srv->parked;
    return true;
}

static enum MHD_Result ingest_finish(weir_req_t *req);

/* What a filter run needs to write its nslog lines to its namespace. */
typedef struct log_ctx {
    weir_filters_t *filters;
    const char *ns;
    const char *filter;
} log_ctx_t;

static void on_nslog(void *ctx, const char *line, size_t len)
{
    log_ctx_t *lc = ctx;
    weir_filters_log(lc->filters, lc->ns, lc->filter, line, len);
}

/*
 * The filter each namespace applies to this request (NULL where it has none), when ?filter=
 * names one. A name that no target namespace has is WEIR_ENOTFOUND.
 */
static int resolve_filters(weir_req_t *req, weir_ingest_t *in, const char *name,
                           weir_script_t ***out, weir_err_t *err)
{
    if (name[0] == '\0') {
        *out = NULL;
        return weir_err_set(err, WEIR_EINVAL, "filter", "must name a filter");
    }
    weir_script_t **scripts = weir_calloc(in->nns, sizeof(*scripts));
    bool any = false;
    for (size_t n = 0; n < in->nns; n++) {
        scripts[n] = weir_filters_get(req->srv->filters, in->namespaces[n], name);
        any = any || scripts[n] != NULL;
    }
    *out = scripts;
    if (!any) {
        return weir_err_set(err, WEIR_ENOTFOUND, "filter", "no filter named %s in %s", name,
                            in->nns == 1 ? "this namespace" : "any namespace");
    }
    return 0;
}

static void add_item(weir_ingest_t *in, const char *ns, const weir_event_t *ev)
{
    weir_store_item_t *it = &in->items[in->nitems++];
    it->ns = ns;
    it->ev = ev;
    it->born_inside = in->born_inside;
    it->must_go_out = in->born_inside; /* a broadcast: its 202 says it goes out */
}

/*
 * A filter may return far more than it was given: what it keeps is held to the same limit as a
 * request's body, in the JSON format it is stored in, so that no event enters that could not have
 * been sent.
 */
static int check_result_size(weir_req_t *req, const weir_event_t *ev, weir_err_t *err)
{
    weir_buf_t json = WEIR_BUF_INIT;
    weir_ce_encode_structured(ev, &json);
    size_t len = json.len;
    weir_buf_free(&json);
    size_t max = req->srv->settings->max_body;
    if (len <= max) {
        return 0;
    }
    return weir_err_set(err, WEIR_ESCRIPT, "",
                        "filter returned an event of %zu bytes in the JSON format, more than the "
                        "body limit of %zu bytes",
                        len, max);
}

/* Runs ns's filter over every event, adding what it keeps as items. */
static int filter_into(weir_req_t *req, weir_ingest_t *in, const char *ns, const char *name,
                       weir_script_t *script, weir_err_t *err)
{
    log_ctx_t lc = {req->srv->filters, ns, name};
    for (size_t e = 0; e < in->nevents; e++) {
        weir_event_t *out = NULL;
        int rc =
            weir_script_run(req->srv->scripts, script, in->events[e], &out, on_nslog, &lc, err);
        if (rc != 0) {
            return rc;
        }
        if (out == NULL) {
            in->dropped++;
            weir_metrics_count(req->srv->metrics, ns, WEIR_OUT_DROPPED, 1);
            continue;
        }
        in->kept[in->nkept++] = out; /* freed with the request, whatever happens next */
        rc = check_result_size(req, out, err);
        if (rc != 0) {
            return rc;
        }
        add_item(in, ns, out);
    }
    return 0;
}

/* Fans the events out to the namespaces, through their filters where they have one. */
static int build_items(weir_req_t *req, weir_ingest_t *in, const char *filter, weir_err_t *err)
{
    weir_script_t **scripts = NULL;
    int rc = filter ? resolve_filters(req, in, filter, &scripts, err) : 0;

    in->items = weir_calloc(in->nevents * in->nns, sizeof(weir_store_item_t));
    in->kept = weir_calloc(in->nevents * in->nns, sizeof(weir_event_t *));
    for (size_t n = 0; rc == 0 && n < in->nns; n++) {
        if (scripts != NULL && scripts[n] != NULL) {
            rc = filter_into(req, in, in->namespaces[n], filter, scripts[n], err);
            continue;
        }
        for (size_t e = 0; e < in->nevents; e++) {
            add_item(in, in->namespaces[n], in->events[e]);
        }
    }
    for (size_t n = 0; scripts != NULL && n < in->nns; n++) {
        weir_script_unref(scripts[n]);
    }
    weir_free(scripts);
    return rc;
}

static void prepare_write(weir_req_t *req, weir_ingest_t *in)
{
    weir_listeners_match(req->srv, in); /* before the commit: its deliveries share it */
    in->write.items = in->items;
    in->write.nitems = in->nitems;
    in->write.done = on_committed;
    in->write.arg = in;
}

enum MHD_Result weir_ingest_start(weir_req_t *req, char **namespaces, size_t nns, bool born_inside)
{
    weir_ingest_t *in = &req->ingest;
    weir_err_t err = {0};
    in->born_inside = born_inside;
    in->namespaces = namespaces;
    in->nns = nns;

    int rc = decode(req, in, &err);
    if (rc == 0) {
        weir_buf_free(&req->body); /* the events hold what they need */
        rc = build_items(req, in, weir_req_arg(req, "filter"), &err);
    }
    if (rc != 0) {
        count_refused(req, namespaces, nns, rc, in->nevents);
        return weir_problem_err(req, &err);
    }
    if (in->nitems == 0) {
        return ingest_finish(req); /* nothing to store: no events, or every one dropped */
    }

    prepare_write(req, in);
    in->conn = req->conn;
    rc = weir_store_submit(req->srv->store, &in->write);
    if (rc != 0) {
        in->status = rc;
        return ingest_finish(req);
    }
    in->submitted = true;
    pthread_mutex_lock(&in->lock);
    if (!in->done && may_park(req)) {
        /* The sink's few threads serve every connection: park this one until the commit. */
        in->suspended = true;
        MHD_suspend_connection(req->conn);
        pthread_mutex_unlock(&in->lock);
        return MHD_YES;
    }
    while (!in->done) {
        pthread_cond_wait(&in->committed, &in->lock);
    }
    pthread_mutex_unlock(&in->lock);
    return ingest_finish(req);
}

enum MHD_Result weir_ingest_resumed(weir_req_t *req)
{
    return ingest_finish(req);
}

static void count_stored(weir_req_t *req)
{
    weir_ingest_t *in = &req->ingest;
    for (size_t i = 0; i < in->nitems; i++) {
        weir_metrics_count(req->srv->metrics, in->items[i].ns,
                           in->items[i].duplicate ? WEIR_OUT_DUPLICATE : WEIR_OUT_STORED, 1);
    }
}

/* Both surfaces say how many events a filter dropped: the header's name, or NULL for none. */
static const char *dropped_header(const weir_ingest_t *in, char value[24])
{
    snprintf(value, 24, "%zu", in->dropped);
    return in->dropped > 0 ? "Weir-Filter-Dropped" : NULL;
}

/* The broadcast API answers what became of each event in each namespace. */
static enum MHD_Result answer_api(weir_req_t *req)
{
    weir_ingest_t *in = &req->ingest;
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_puts(&b, "{\"events\":[");
    for (size_t i = 0; i < in->nitems; i++) {
        const weir_store_item_t *it = &in->items[i];
        const char *id = weir_ce_get(it->ev, "id");
        const char *source = weir_ce_get(it->ev, "source");
        weir_buf_puts(&b, i ? ",{\"namespace\":" : "{\"namespace\":");
        weir_buf_json_str(&b, it->ns, strlen(it->ns));
        weir_buf_puts(&b, ",\"id\":");
        weir_buf_json_str(&b, id, strlen(id));
        weir_buf_puts(&b, ",\"source\":");
        weir_buf_json_str(&b, source, strlen(source));
        weir_buf_printf(&b, ",\"seq\":%lld,\"duplicate\":%s}", (long long)it->seq,
                        it->duplicate ? "true" : "false");
    }
    weir_buf_printf(&b, "],\"dropped\":%zu}", in->dropped);
    char n[24];
    const char *header = dropped_header(in, n);
    enum MHD_Result rc =
        weir_respond_h(req, MHD_HTTP_ACCEPTED, "application/json", b.data, b.len, header, n);
    weir_buf_free(&b);
    return rc;
}

static enum MHD_Result ingest_finish(weir_req_t *req)
{
    weir_ingest_t *in = &req->ingest;
    if (in->status != 0) {
        weir_err_t err;
        /* Refused at its commit, WEIR_EBUSY means the outbox had no room for a broadcast. */
        bool outbox = in->status == WEIR_EBUSY && in->submitted;
        const char *detail = in->status == WEIR_ENOTFOUND ? "a target namespace no longer exists"
                             : outbox ? "the outbox is full: the source's sink is not taking "
                                        "events; retry later"
                             : in->status == WEIR_EBUSY   ? "the store queue is full; retry later"
                             : in->status == WEIR_ECLOSED ? "weir is shutting down; retry later"
                                                          : "the store is unavailable; retry later";
        weir_err_set(&err, in->status, "", "%s", detail);
        for (size_t i = 0; i < in->nitems; i++) {
            weir_metrics_count(req->srv->metrics, in->items[i].ns, outcome_for(in->status), 1);
        }
        return weir_problem_err(req, &err);
    }
    count_stored(req);
    if (req->surface == WEIR_SURFACE_API) {
        return answer_api(req);
    }
    char n[24];
    const char *header = dropped_header(in, n);
    return weir_respond_h(req, MHD_HTTP_ACCEPTED, NULL, NULL, 0, header, n);
}

void weir_ingest_release(weir_ingest_t *in)
{
    weir_listeners_unmatch(in);
    for (size_t i = 0; i < in->nitems; i++) {
        if (!in->items[i].json_shared) {
            weir_free(in->items[i].json); /* the store frees it after done; this guards a refusal */
        }
        in->items[i].json = NULL;
    }
    weir_free(in->items);
    weir_ce_free_all(in->kept, in->nkept);
    in->kept = NULL;
    in->nkept = 0;
    weir_ce_free_all(in->events, in->nevents);
    in->items = NULL;
    in->events = NULL;
    in->nitems = in->nevents = 0;
    for (size_t i = 0; i < in->nns; i++) {
        weir_free(in->namespaces[i]);
    }
    weir_free(in->namespaces);
    in->namespaces = NULL;
    in->nns = 0;
}
