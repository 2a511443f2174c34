/*
 * A namespace's event history: pages of stored events, newest first, and single events by id.
 */
#include <stdlib.h>
#include <string.h>

#include "cesql/cesql.h"
#include "http/internal.h"

#define HISTORY_LIMIT_DEFAULT 50
#define HISTORY_LIMIT_MAX     1000
/* A page's events stop here (after at least one): a thousand events of 1 MiB would otherwise
 * make an answer of a GiB, held twice in memory while it is built. */
#define HISTORY_PAGE_BYTES (4 * 1024 * 1024)
/* A filtered page examines at most this many events, so that a search that matches little
 * never walks a whole big namespace in one request; its next_cursor goes on from there. */
#define HISTORY_SCAN_MAX 10000

/* Appends one stored event as {"seq","received","namespace","event"}. */
static void record_json(weir_buf_t *b, const weir_store_record_t *r)
{
    char when[WEIR_TIME_STR_MAX];
    weir_time_format(r->received_us, when);
    weir_buf_printf(b, "{\"seq\":%lld,\"received\":\"%s\",\"namespace\":", (long long)r->seq, when);
    weir_buf_json_str(b, r->ns, strlen(r->ns));
    weir_buf_puts(b, ",\"event\":");
    weir_buf_append(b, r->json, r->json_len);
    weir_buf_puts(b, "}");
}

static int parse_time_arg(weir_req_t *req, const char *name, int64_t *out, weir_err_t *err)
{
    const char *s = weir_req_arg(req, name);
    if (s != NULL && weir_time_parse(s, out) != 0) {
        return weir_err_set(err, WEIR_EINVAL, name, "must be an RFC 3339 timestamp");
    }
    return 0;
}

static int parse_number_arg(weir_req_t *req, const char *name, long long lo, long long hi,
                            long long *out, weir_err_t *err)
{
    const char *s = weir_req_arg(req, name);
    if (s == NULL) {
        return 0;
    }
    uint64_t v;
    if (!weir_parse_uint(s, (uint64_t)hi, &v) || v < (uint64_t)lo) {
        return weir_err_set(err, WEIR_EINVAL, name, "must be a whole number from %lld to %lld", lo,
                            hi);
    }
    *out = (long long)v;
    return 0;
}

/* ?cesql=: the history's CESQL filter, compiled once per request and tried on each event the
 * page examines, with the Subscriptions API's rule (true, and no error, keeps the event). */
typedef struct cesql_filter {
    weir_cesql_t *prog;
    weir_cesql_result_t res;
} cesql_filter_t;

static bool cesql_keeps(const char *json, size_t len, void *arg)
{
    cesql_filter_t *f = arg;
    weir_event_t *ev = NULL;
    if (weir_ce_decode_stored(json, len, &ev, NULL) != 0) {
        return false; /* cannot happen: what is stored was valid */
    }
    bool keep = weir_cesql_match(f->prog, ev, &f->res);
    weir_ce_free(ev);
    return keep;
}

static int parse_cesql(weir_req_t *req, cesql_filter_t *f, weir_err_t *err)
{
    const char *text = weir_req_arg(req, "cesql");
    if (text == NULL) {
        return 0;
    }
    weir_err_t e = {0};
    if (weir_cesql_compile(text, strlen(text), &f->prog, &e) != 0) {
        return weir_err_set(err, WEIR_EINVAL, "cesql", "%s", e.msg);
    }
    const char *warning = weir_cesql_warning(f->prog);
    if (warning != NULL) {
        weir_err_set(err, WEIR_EINVAL, "cesql", "%s", warning); /* it lives in the program */
        weir_cesql_free(f->prog);
        f->prog = NULL;
        return WEIR_EINVAL;
    }
    return 0;
}

static int parse_query(weir_req_t *req, const char *ns, weir_store_query_t *q, weir_err_t *err)
{
    long long limit = HISTORY_LIMIT_DEFAULT, cursor = INT64_MAX;
    *q = (weir_store_query_t){.ns = ns,
                              .type = weir_req_arg(req, "type"),
                              .source = weir_req_arg(req, "source"),
                              .text = weir_req_arg(req, "text"),
                              .from_us = INT64_MIN,
                              .until_us = INT64_MAX,
                              .max_bytes = HISTORY_PAGE_BYTES,
                              .max_scan = HISTORY_SCAN_MAX};
    int rc;
    if ((rc = parse_number_arg(req, "limit", 1, HISTORY_LIMIT_MAX, &limit, err)) != 0 ||
        (rc = parse_number_arg(req, "cursor", 1, INT64_MAX, &cursor, err)) != 0 ||
        (rc = parse_time_arg(req, "from", &q->from_us, err)) != 0 ||
        (rc = parse_time_arg(req, "until", &q->until_us, err)) != 0) {
        return rc;
    }
    q->limit = (size_t)limit;
    q->before_seq = cursor;
    return 0;
}

enum MHD_Result weir_history_list(weir_req_t *req, const char *ns)
{
    weir_store_query_t q;
    weir_store_page_t page;
    weir_err_t err = {0};
    cesql_filter_t filter = {0};
    int rc = parse_query(req, ns, &q, &err);
    if (rc == 0 && (rc = parse_cesql(req, &filter, &err)) == 0 && filter.prog != NULL) {
        q.match = cesql_keeps;
        q.match_arg = &filter;
    }
    if (rc == 0) {
        rc = weir_store_history(req->srv->store, &q, &page, &err);
    }
    weir_cesql_result_free(&filter.res);
    weir_cesql_free(filter.prog);
    if (rc != 0) {
        return weir_problem_err(req, &err);
    }

    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_puts(&b, "{\"items\":[");
    for (size_t i = 0; i < page.n; i++) {
        weir_buf_puts(&b, i ? "," : "");
        record_json(&b, &page.recs[i]);
    }
    weir_buf_puts(&b, "],\"next_cursor\":");
    if (page.next > 0) {
        weir_buf_printf(&b, "\"%lld\"}", (long long)page.next);
    } else {
        weir_buf_puts(&b, "null}");
    }
    weir_store_page_free(&page);
    return weir_respond_json(req, MHD_HTTP_OK, &b);
}

enum MHD_Result weir_history_get(weir_req_t *req, const char *ns, const char *id)
{
    weir_store_record_t rec;
    weir_err_t err = {0};
    if (weir_store_get(req->srv->store, ns, id, weir_req_arg(req, "source"), &rec, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    weir_buf_t b = WEIR_BUF_INIT;
    record_json(&b, &rec);
    weir_store_record_clear(&rec);
    return weir_respond_json(req, MHD_HTTP_OK, &b);
}
