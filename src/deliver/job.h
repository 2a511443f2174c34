/*
 * deliver/job.h: private to the deliver module: one delivery attempt in flight (a job), and
 * the HTTP side of it (attempt.c): building the request, reading the answer, and the reply.
 */
#ifndef WEIR_DELIVER_JOB_H
#define WEIR_DELIVER_JOB_H

#include <curl/curl.h>

#include "deliver/deliver.h"

#define JOB_HEADERS_MAX 64
/* What is kept of an answer that cannot be a reply: enough for knativeerrordata (Knative caps it
 * at 1 KiB) and the log. */
#define WEIR_DELIVER_ERROR_MAX 1024

typedef struct job {
    int64_t id; /* the delivery's */
    char *listener;
    char *ns;
    bool dead_letter; /* this attempt goes to the dead-letter sink */
    unsigned attempts;
    int64_t created_us;
    unsigned hops;    /* replies that led to the event sent */
    weir_event_t *ev; /* what is sent */
    weir_deliver_spec_t spec;
    const char *url; /* spec.sink or spec.dead_letter_sink */

    CURL *easy;
    struct curl_slist *headers;
    uint64_t start_ns;
    char errbuf[CURL_ERROR_SIZE];
    weir_buf_t body;   /* the answer's body, up to body_limit */
    bool body_over;    /* it was longer */
    size_t body_limit; /* 0 until the body starts (see on_body) */
    size_t max_reply;
    char *hstore[2 * JOB_HEADERS_MAX];
    weir_ce_header_t hdr[JOB_HEADERS_MAX];
    size_t nh;

    /* the outcome, once the attempt ended */
    weir_store_outcome_t outcome;
    char *last_error;
    bool in_flight; /* its request is in the multi handle */
    bool pooled;    /* its slot came from the stalled share */
} job_t;

/* The headers of ev sent in binary mode: ce-* percent-encoded, its Content-Type (or none rather
 * than curl's form type), and no Expect: 100-continue. The caller frees the list. */
struct curl_slist *weir_deliver_binary_headers(const weir_event_t *ev);
/* Prepares the request of job (ev, url and spec set); false when curl refuses. */
bool weir_deliver_job_request(job_t *job, size_t max_reply);
/* Releases what the request holds (the easy handle must be out of the multi handle). */
void weir_deliver_job_release(job_t *job);
/* A response header, by name (case-insensitive), or NULL. */
const char *weir_deliver_job_header(const job_t *job, const char *name);
/* The reply events of a 200 answer that carries CloudEvents (none otherwise): *n of them in
 * *out, for the caller to free with weir_ce_free_all. */
int weir_deliver_job_reply(job_t *job, weir_event_t ***out, size_t *n, weir_err_t *err);
/* The text kept as last_error: the answer's body (first WEIR_DELIVER_ERROR_MAX bytes) or
 * curl's message. */
char *weir_deliver_job_error_text(const job_t *job, CURLcode result);

#endif
