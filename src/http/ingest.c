/*
 * The path of events into the store, shared by the sink and the broadcast API: decode the body
 * once, fan the events out to their namespaces, hand them to the store writer and wait, on the
 * request's own thread, until the commit is durable. Nothing is acknowledged before that.
 */
#include <string.h>

#include "http/internal.h"

#define HEADERS_MAX 128

typedef struct header_list {
    weir_ce_header_t items[HEADERS_MAX];
    size_t n;
} header_list_t;

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    header_list_t *list = cls;
    if (list->n == HEADERS_MAX) {
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
    if (headers.n == HEADERS_MAX) {
        return weir_err_set(err, WEIR_EINVAL, "", "more than %d headers", HEADERS_MAX);
    }
    return weir_ce_decode_http(headers.items, headers.n, req->body.data, req->body.len, &in->events,
                               &in->nevents, err);
}

/* Runs on a store thread; wakes the request's own thread, which answers. */
static void on_committed(weir_store_write_t *w, int status, void *arg)
{
    weir_ingest_t *in = arg;
    pthread_mutex_lock(&in->lock);
    in->status = status;
    in->done = true;
    pthread_cond_signal(&in->committed);
    pthread_mutex_unlock(&in->lock);
}

static enum MHD_Result ingest_finish(weir_req_t *req);

static void build_write(weir_req_t *req, weir_ingest_t *in, char **namespaces, size_t nns)
{
    in->nitems = in->nevents * nns;
    in->items = weir_calloc(in->nitems, sizeof(weir_store_item_t));
    size_t k = 0;
    for (size_t n = 0; n < nns; n++) {
        for (size_t e = 0; e < in->nevents; e++, k++) {
            in->items[k].ns = namespaces[n];
            in->items[k].ev = in->events[e];
            in->items[k].born_inside = in->born_inside;
        }
    }
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

    const char *filter = weir_req_arg(req, "filter");
    if (filter != NULL) {
        /* Filters are not stored yet, so every name is unknown. */
        count_refused(req, namespaces, nns, WEIR_ENOTFOUND, 1);
        return weir_problem(req, MHD_HTTP_NOT_FOUND, "no filter of that name exists", NULL, NULL);
    }
    int rc = decode(req, in, &err);
    if (rc != 0) {
        count_refused(req, namespaces, nns, rc, 1);
        return weir_problem_err(req, &err);
    }
    weir_buf_free(&req->body); /* the events hold what they need */
    if (in->nevents == 0) {
        return ingest_finish(req);
    }

    build_write(req, in, namespaces, nns);
    rc = weir_store_submit(req->srv->store, &in->write);
    if (rc != 0) {
        in->status = rc;
        return ingest_finish(req);
    }
    pthread_mutex_lock(&in->lock);
    while (!in->done) {
        pthread_cond_wait(&in->committed, &in->lock);
    }
    pthread_mutex_unlock(&in->lock);
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
    return weir_respond_json(req, MHD_HTTP_ACCEPTED, &b);
}

static enum MHD_Result ingest_finish(weir_req_t *req)
{
    weir_ingest_t *in = &req->ingest;
    if (in->status != 0) {
        weir_err_t err;
        const char *detail = in->status == WEIR_ENOTFOUND ? "a target namespace no longer exists"
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
    return weir_respond(req, MHD_HTTP_ACCEPTED, NULL, NULL, 0);
}

void weir_ingest_release(weir_ingest_t *in)
{
    for (size_t i = 0; i < in->nitems; i++) {
        weir_free(in->items[i].json); /* the store frees it after done; this guards a refusal */
        in->items[i].json = NULL;
    }
    weir_free(in->items);
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
