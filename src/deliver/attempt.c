/*
 * attempt.c: one HTTP attempt: the request in binary mode (percent-encoded ce-* headers,
 * Prefer: reply), and what the engine reads from the answer (status, headers, body, reply).
 */
#include <string.h>

#include "deliver/job.h"

typedef struct header_ctx {
    struct curl_slist *list;
    bool content_type;
} header_ctx_t;

static void add_header(void *arg, const char *name, const char *value)
{
    header_ctx_t *h = arg;
    weir_buf_t b = WEIR_BUF_INIT;

    weir_buf_printf(&b, "%s: %s", name, value);
    h->list = curl_slist_append(h->list, b.data);
    h->content_type = h->content_type || weir_strcasecmp(name, "Content-Type") == 0;
    weir_buf_free(&b);
}

static bool carries_events(const job_t *job);

/*
 * How much of the answer's body to keep. Only a 200 that carries CloudEvents can be a reply,
 * read whole up to max_reply; of any other answer the first WEIR_DELIVER_ERROR_MAX bytes are
 * enough (knativeerrordata and the log), so that hundreds of attempts in flight never hold
 * megabytes each. The headers are all in when the body starts.
 */
static size_t body_limit(job_t *job)
{
    long status = 0;
    curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
    bool reply = status == 200 && carries_events(job);
    return reply ? job->max_reply : WEIR_DELIVER_ERROR_MAX;
}

/* Keeps the body up to its limit; the rest is read (so the connection can be used again) but
 * dropped. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    job_t *job = arg;
    size_t len = size * n;

    if (job->body_limit == 0) {
        job->body_limit = body_limit(job);
    }
    size_t room = job->body_limit - job->body.len;
    if (len > room) {
        job->body_over = true;
    }
    if (room > 0) {
        weir_buf_append(&job->body, p, len < room ? len : room);
    }
    return len;
}

static void headers_reset(job_t *job)
{
    for (size_t i = 0; i < 2 * job->nh; i++) {
        weir_free(job->hstore[i]);
        job->hstore[i] = NULL;
    }
    job->nh = 0;
}

/* Keeps "Name: value" lines; a status line (a new response, after 100 Continue) starts over. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    job_t *job = arg;
    size_t len = size * n;
    while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n')) {
        len--;
    }
    if (len >= 5 && strncmp(p, "HTTP/", 5) == 0) {
        headers_reset(job);
        job->body_limit = 0;
        return size * n;
    }
    const char *colon = memchr(p, ':', len);
    if (colon == NULL || job->nh == JOB_HEADERS_MAX) {
        return size * n;
    }
    const char *v = colon + 1;
    while (v < p + len && (*v == ' ' || *v == '\t')) {
        v++;
    }
    job->hstore[2 * job->nh] = weir_strndup(p, (size_t)(colon - p));
    job->hstore[2 * job->nh + 1] = weir_strndup(v, (size_t)(p + len - v));
    job->hdr[job->nh].name = job->hstore[2 * job->nh];
    job->hdr[job->nh].value = job->hstore[2 * job->nh + 1];
    job->nh++;
    return size * n;
}

static void set_options(job_t *job)
{
    CURL *e = job->easy;
    long timeout_ms = (long)(job->spec.timeout_us / 1000);

    curl_easy_setopt(e, CURLOPT_URL, job->url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, job->ev->data != NULL ? (char *)job->ev->data : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)job->ev->data_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, job->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "weir");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, job);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, job);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, job->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, job);
}

struct curl_slist *weir_deliver_binary_headers(const weir_event_t *ev)
{
    header_ctx_t h = {.list = NULL, .content_type = false};

    weir_ce_encode_binary(ev, add_header, &h);
    if (!h.content_type) {
        h.list = curl_slist_append(h.list, "Content-Type:"); /* not curl's form type */
    }
    return curl_slist_append(h.list, "Expect:"); /* no 100-continue round trip */
}

bool weir_deliver_job_request(job_t *job, size_t max_reply)
{
    job->headers = curl_slist_append(weir_deliver_binary_headers(job->ev), "Prefer: reply");
    job->max_reply = max_reply;
    job->easy = curl_easy_init();
    if (job->easy == NULL) {
        return false;
    }
    set_options(job);
    return true;
}

void weir_deliver_job_release(job_t *job)
{
    if (job->easy != NULL) {
        curl_easy_cleanup(job->easy);
        job->easy = NULL;
    }
    curl_slist_free_all(job->headers);
    job->headers = NULL;
    headers_reset(job);
    weir_buf_free(&job->body);
}

const char *weir_deliver_job_header(const job_t *job, const char *name)
{
    for (size_t i = 0; i < job->nh; i++) {
        if (weir_strcasecmp(job->hdr[i].name, name) == 0) {
            return job->hdr[i].value;
        }
    }
    return NULL;
}

/* An answer carries CloudEvents when it has ce-specversion (binary) or a CloudEvents type. */
static bool carries_events(const job_t *job)
{
    const char *ct = weir_deliver_job_header(job, "Content-Type");
    return weir_deliver_job_header(job, "ce-specversion") != NULL ||
           (ct != NULL && weir_has_prefix_ci(ct, "application/cloudevents"));
}

int weir_deliver_job_reply(job_t *job, weir_event_t ***out, size_t *n, weir_err_t *err)
{
    *out = NULL;
    *n = 0;
    if (!carries_events(job)) {
        return 0;
    }
    if (job->body_over) {
        return weir_err_set(err, WEIR_ETOOBIG, NULL, "the reply is larger than %zu bytes",
                            job->max_reply);
    }
    return weir_ce_decode_http(job->hdr, job->nh, job->body.data, job->body.len, out, n, err);
}

char *weir_deliver_job_error_text(const job_t *job, CURLcode result)
{
    if (result != CURLE_OK) {
        return weir_strdup(job->errbuf[0] != '\0' ? job->errbuf : curl_easy_strerror(result));
    }
    size_t n = job->body.len > WEIR_DELIVER_ERROR_MAX ? WEIR_DELIVER_ERROR_MAX : job->body.len;
    return n > 0 ? weir_strndup(job->body.data, n) : NULL;
}
