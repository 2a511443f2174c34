/*
 * Answers: plain, JSON and problem+json (RFC 9457) responses, and the one mapping from weir's
 * error codes to HTTP statuses.
 */
#include <stdio.h>
#include <string.h>

#include "http/internal.h"

enum MHD_Result weir_queue(weir_req_t *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (rc == MHD_YES) {
        req->answered = true;
    }
    return rc;
}

enum MHD_Result weir_respond_h(weir_req_t *req, unsigned status, const char *content_type,
                               const char *body, size_t len, const char *hname, const char *hvalue)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(body ? body : ""), MHD_RESPMEM_MUST_COPY);
    if (resp == NULL) {
        return MHD_NO;
    }
    if (content_type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    }
    if (hname != NULL) {
        MHD_add_response_header(resp, hname, hvalue);
    }
    return weir_queue(req, status, resp);
}

enum MHD_Result weir_respond(weir_req_t *req, unsigned status, const char *content_type,
                             const char *body, size_t len)
{
    return weir_respond_h(req, status, content_type, body, len, NULL, NULL);
}

enum MHD_Result weir_respond_json(weir_req_t *req, unsigned status, weir_buf_t *json)
{
    size_t len;
    char *body = weir_buf_take(json, &len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback(len, body, weir_free);
    if (resp == NULL) {
        weir_free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return weir_queue(req, status, resp);
}

/* The problem type, a stable name a client can switch on, for each status weir answers. */
static const char *problem_type(unsigned status)
{
    switch (status) {
    case MHD_HTTP_BAD_REQUEST:
        return "urn:weir:problem:bad-request";
    case MHD_HTTP_NOT_FOUND:
        return "urn:weir:problem:not-found";
    case MHD_HTTP_METHOD_NOT_ALLOWED:
        return "urn:weir:problem:method-not-allowed";
    case MHD_HTTP_CONFLICT:
        return "urn:weir:problem:conflict";
    case MHD_HTTP_CONTENT_TOO_LARGE:
        return "urn:weir:problem:too-large";
    case MHD_HTTP_UNSUPPORTED_MEDIA_TYPE:
        return "urn:weir:problem:unsupported-format";
    case MHD_HTTP_UNPROCESSABLE_CONTENT:
        return "urn:weir:problem:filter-failed";
    case MHD_HTTP_SERVICE_UNAVAILABLE:
        return "urn:weir:problem:unavailable";
    case MHD_HTTP_NOT_IMPLEMENTED:
        return "urn:weir:problem:not-implemented";
    default:
        return "urn:weir:problem:internal";
    }
}

static const char *reason(unsigned status)
{
    switch (status) {
    case MHD_HTTP_CONTENT_TOO_LARGE:
        return "Content Too Large";
    case MHD_HTTP_UNPROCESSABLE_CONTENT:
        return "Unprocessable Content";
    default:
        return MHD_get_reason_phrase_for(status);
    }
}

bool weir_refusal_log_allowed(weir_server_t *srv, weir_log_level_t level, char more[64])
{
    more[0] = '\0';
    if (!weir_log_enabled(level)) {
        return false;
    }
    if (!weir_ratelimit_allow(&srv->refusal_log)) {
        atomic_fetch_add(&srv->refusals_unlogged, 1);
        return false;
    }
    unsigned long unlogged = atomic_exchange(&srv->refusals_unlogged, 0);
    if (unlogged > 0) {
        snprintf(more, 64, " (and %lu refusals not logged before)", unlogged);
    }
    return true;
}

/*
 * One line per refused request, rate-limited: bad client input at INFO, an overloaded or failing
 * weir (503) at WARN. The path is the client's and is cut short; the logger escapes it.
 */
static void log_refusal(weir_req_t *req, unsigned status, const char *detail, const char *attr)
{
    weir_log_level_t level = status >= 500 ? WEIR_LOG_WARN : WEIR_LOG_INFO;
    char more[64];
    if (!weir_refusal_log_allowed(req->srv, level, more)) {
        return;
    }
    bool named = attr != NULL && attr[0] != '\0';
    WEIR_LOG(level, req->surface == WEIR_SURFACE_SINK ? "sink" : "api", NULL,
             "refused %s %.200s with %u: %s%s%s%s", req->method, req->url, status,
             named ? attr : "", named ? ": " : "", detail ? detail : "", more);
}

enum MHD_Result weir_problem(weir_req_t *req, unsigned status, const char *detail, const char *attr,
                             const char *allow)
{
    log_refusal(req, status, detail, attr);
    weir_buf_t b = WEIR_BUF_INIT;
    const char *title = reason(status);
    weir_buf_puts(&b, "{\"type\":");
    weir_buf_json_str(&b, problem_type(status), strlen(problem_type(status)));
    weir_buf_puts(&b, ",\"title\":");
    weir_buf_json_str(&b, title, strlen(title));
    weir_buf_printf(&b, ",\"status\":%u", status);
    if (detail != NULL) {
        weir_buf_puts(&b, ",\"detail\":");
        weir_buf_json_str(&b, detail, strlen(detail));
    }
    if (attr != NULL && attr[0] != '\0') {
        weir_buf_puts(&b, ",\"attribute\":");
        weir_buf_json_str(&b, attr, strlen(attr));
    }
    weir_buf_puts(&b, "}");

    struct MHD_Response *resp =
        MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
    weir_buf_free(&b);
    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    } else if (status == MHD_HTTP_SERVICE_UNAVAILABLE) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    }
    if (req->close) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    return weir_queue(req, status, resp);
}

unsigned weir_status_for(int code)
{
    switch (code) {
    case WEIR_EINVAL:
        return MHD_HTTP_BAD_REQUEST;
    case WEIR_ENOTFOUND:
        return MHD_HTTP_NOT_FOUND;
    case WEIR_EEXIST:
        return MHD_HTTP_CONFLICT;
    case WEIR_ETOOBIG:
        return MHD_HTTP_CONTENT_TOO_LARGE;
    case WEIR_EUNSUPPORTED:
        return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
    case WEIR_ESCRIPT:
        return MHD_HTTP_UNPROCESSABLE_CONTENT;
    case WEIR_EBUSY:
    case WEIR_EIO:
    case WEIR_ECLOSED:
    case WEIR_ETIMEOUT:
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    default:
        return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

enum MHD_Result weir_problem_err(weir_req_t *req, const weir_err_t *err)
{
    const char *detail = err->msg[0] ? err->msg : weir_strerror(err->code);
    return weir_problem(req, weir_status_for(err->code), detail, err->attr, NULL);
}
