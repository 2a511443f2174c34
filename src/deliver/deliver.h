/*
 * deliver: outbound delivery of what listeners matched: the delivery spec (Knative's retry,
 * backoffPolicy, backoffDelay, timeout, deadLetterSink), the retry policy, and the engine: one
 * thread driving libcurl's multi interface over kept-alive HTTP/1.1 connections.
 *
 * The engine owns no durable state: pending deliveries are rows in the store, written in the
 * same transaction as the events that caused them. The engine loads what is due (woken by the
 * store after each commit), sends it in binary mode, and writes each outcome back through the
 * store writer; a row is removed only once its outcome is committed, so a crash at any moment
 * repeats a delivery rather than losing it (at-least-once).
 */
#ifndef WEIR_DELIVER_H
#define WEIR_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ce/ce.h"
#include "common/common.h"
#include "store/store.h"

/* ---- the delivery spec ----------------------------------------------------------------- */

typedef enum weir_deliver_backoff {
    WEIR_BACKOFF_EXPONENTIAL = 0, /* the nth retry waits delay * 2^n */
    WEIR_BACKOFF_LINEAR,          /* the nth retry waits delay * n */
} weir_deliver_backoff_t;

#define WEIR_DELIVER_RETRY_DEFAULT   3
#define WEIR_DELIVER_RETRY_MAX       100
#define WEIR_DELIVER_DELAY_DEFAULT   200000LL     /* 0.2 s */
#define WEIR_DELIVER_TIMEOUT_DEFAULT 30000000LL   /* 30 s */
#define WEIR_DELIVER_WAIT_MAX        3600000000LL /* no wait between attempts exceeds an hour */

typedef struct weir_deliver_spec {
    char *sink;             /* http:// or https:// URL */
    char *dead_letter_sink; /* or NULL */
    unsigned retry;         /* retries after the first attempt */
    weir_deliver_backoff_t backoff;
    int64_t delay_us;
    int64_t timeout_us; /* of one attempt */
} weir_deliver_spec_t;

/*
 * Reads "sink" (required) and "delivery" (optional: retry, backoffPolicy, backoffDelay,
 * timeout, deadLetterSink) from a listener spec, filling the defaults. WEIR_EINVAL with
 * err->attr naming the field ("delivery.backoffDelay"). The caller clears out with
 * weir_deliver_spec_clear, also after an error. Thread-safe.
 */
int weir_deliver_spec_parse(const cJSON *doc, weir_deliver_spec_t *out, weir_err_t *err);
void weir_deliver_spec_clear(weir_deliver_spec_t *s);

/* ---- the retry policy ------------------------------------------------------------------ */

typedef enum weir_deliver_class {
    WEIR_DELIVER_OK = 0,  /* 2xx: delivered */
    WEIR_DELIVER_RETRY,   /* no answer, 404, 408, 409, 429, 5xx: try again */
    WEIR_DELIVER_REFUSED, /* any other status: never again, to the dead-letter sink */
} weir_deliver_class_t;

/* Classifies an attempt by its HTTP status (0: no answer: refused connection, timeout). */
weir_deliver_class_t weir_deliver_classify(long status);

/*
 * The wait before retry number n (1 for the first retry), capped at WEIR_DELIVER_WAIT_MAX. The
 * first retry waits the delay, as in Knative's dispatchers; then exponential doubles it at each
 * retry (delay * 2^(n-1)) and linear adds it (delay * n).
 */
int64_t weir_deliver_backoff_us(const weir_deliver_spec_t *s, unsigned n);

/* A Retry-After value (delay-seconds or an HTTP date) as a wait from now_us; -1 when absent or
 * not understood. */
int64_t weir_deliver_retry_after_us(const char *value, int64_t now_us);

/*
 * What follows an attempt: the outcome kind for the store and, for RETRY, *due_us. attempts
 * counts the attempts of this phase including this one; retry_after_us is -1 or the target's
 * Retry-After. A refused or exhausted delivery goes to the dead-letter sink when there is one
 * and it is not already there; otherwise it has failed.
 */
weir_store_outcome_kind_t weir_deliver_decide(const weir_deliver_spec_t *s, bool dead_letter,
                                              unsigned attempts, long status,
                                              int64_t retry_after_us, int64_t now_us,
                                              int64_t *due_us);

/*
 * Adds the dead-letter extensions to ev: knativeerrordest (the sink that failed),
 * knativeerrorcode (its last HTTP status, "0" when it never answered) and knativeerrordata
 * (base64 of the first 1024 bytes of its last answer, or of the error when it gave none).
 */
void weir_deliver_dead_letter_mark(weir_event_t *ev, const char *dest, int status,
                                   const char *data);

/*
 * The event an `and` listener delivers: type WEIR_DELIVER_AND_TYPE, source
 * "/weir/namespaces/{ns}/listeners/{listener}", id the delivery's number, datacontenttype
 * application/json, and data the set: an object of event type to event (JSON format).
 * NULL when payload is not a JSON object. The caller frees it.
 */
#define WEIR_DELIVER_AND_TYPE "io.weir.listener.and"
weir_event_t *weir_deliver_and_event(const char *ns, const char *listener, int64_t delivery,
                                     int64_t created_us, const char *payload);

/* The reply loop guard: the extension that counts how many replies led to an event. */
#define WEIR_DELIVER_HOPS_ATTR "weirhops"
#define WEIR_DELIVER_HOPS_MAX  8

/* The hop count of ev (0 when absent or not a number); for an `and` set, the highest hop
 * count among its members (payload is the set). */
unsigned weir_deliver_hops(const weir_event_t *ev, const char *payload);

/* ---- the engine ------------------------------------------------------------------------ */

typedef struct weir_deliver weir_deliver_t;

typedef struct weir_deliver_config {
    size_t max_inflight;   /* deliveries in flight at once (default 512) */
    size_t max_per_target; /* of them, to one listener's target (default 128) */
    size_t max_per_host;   /* of them, to one scheme://host:port, whichever listeners they serve;
                              0 (the default): no limit but the others, so that targets sharing
                              a host (a broker's ingress) never wait behind a hung one */
    size_t max_stalled;    /* of them, what targets that stopped answering share (default a
                              quarter of max_inflight; less than max_inflight) */
    int64_t stall_us;      /* attempts in flight this long without any answer: the target has
                              stalled (default 5 s) */
    unsigned max_hops;     /* replies to replies accepted (default WEIR_DELIVER_HOPS_MAX) */
    size_t max_reply;      /* largest reply body read, bytes (default 1 MiB) */
    bool system_events;    /* a dead-lettered or failed delivery enters its namespace as
                              a system event (default true) */
    /*
     * Fills item->matches for a reply entering item->ns (the route module's match), and
     * releases them. Called on the engine's thread and, for release, on a store thread.
     */
    void (*match)(void *arg, weir_store_item_t *item);
    void (*match_release)(void *arg, weir_store_item_t *item);
    void *match_arg;
} weir_deliver_config_t;

void weir_deliver_config_default(weir_deliver_config_t *cfg);

/* Starts the engine's thread and hooks it to the store's commits. */
int weir_deliver_start(weir_store_t *store, const weir_deliver_config_t *cfg, weir_deliver_t **out,
                       weir_err_t *err);

/*
 * Stops loading, lets deliveries in flight finish for at most timeout_ms (the rest are
 * abandoned: they stay pending and are sent again after a restart), waits for every outcome
 * to commit, stops the thread and frees the engine. Call before closing the store.
 */
void weir_deliver_stop(weir_deliver_t *d, unsigned timeout_ms);

/* Sets (adds or replaces) the target of a listener; copies spec. Any thread. */
void weir_deliver_target_set(weir_deliver_t *d, const char *listener, const char *ns,
                             const weir_deliver_spec_t *spec);
/* Forgets a listener's target; its deliveries in flight finish, later ones wait (the store
 * deletes them with the listener). */
void weir_deliver_target_remove(weir_deliver_t *d, const char *listener);

/* Appends the engine's metrics in the Prometheus text format. Any thread. */
void weir_deliver_render_metrics(weir_deliver_t *d, weir_buf_t *out);

/* ---- the source ------------------------------------------------------------------------ */

/*
 * The source side: every event in the store's outbox (what entered a namespace other than
 * through the sink) goes out to one sink, Knative's K_SINK: binary mode, header values
 * percent-encoded, its namespace in WEIR_SOURCE_NS_ATTR, the overrides applied, the token (when
 * its file exists) sent as a bearer token. Only rows whose commit is durable are sent. Rows
 * start in id order, up to max_inflight at once (with one, they also arrive in that order);
 * a row leaves the outbox once the sink took it (2xx) or refused it for good (a 4xx other than
 * 401, 404, 408, 409 and 429: logged and counted as failed). Anything else is retried for as
 * long as it takes, with exponential backoff (delay_us before the first retry, doubling, capped
 * at wait_max_us; a longer Retry-After honoured up to wait_max_us), one row at a time from the
 * oldest until the rows that failed went through, so an outage keeps the order of what waits
 * (only attempts already in flight when the first failed may arrive before it). A removal that
 * fails is tried again. At-least-once: a crash sends again what was not yet removed.
 */
#define WEIR_SOURCE_NS_ATTR    "weirnamespace"
#define WEIR_SOURCE_TOKEN_FILE "/oidc/token"

typedef struct weir_source weir_source_t;

typedef struct weir_source_config {
    const char *sink;       /* http:// or https:// URL (K_SINK) */
    const char *overrides;  /* K_CE_OVERRIDES: {"extensions":{name: value}}, or NULL */
    const char *ca_certs;   /* K_CA_CERTS: PEM trusted besides the system's CAs, or NULL */
    const char *token_file; /* read before use, again when it changes and after a 401 */
    size_t max_inflight;    /* attempts at once (default 1: the sink gets them in order) */
    int64_t timeout_us;     /* of one attempt (default 30 s) */
    int64_t delay_us;       /* the first retry's wait (default 0.2 s) */
    int64_t wait_max_us;    /* the longest wait between attempts (default 60 s) */
} weir_source_config_t;

void weir_source_config_default(weir_source_config_t *cfg);

/* Hooks the source to the store's commits and starts its thread; WEIR_EINVAL (err->attr names
 * the setting) for a sink that is not an http(s) URL or overrides that are not valid (an
 * override of WEIR_SOURCE_NS_ATTR among them), WEIR_EBUSY when the store takes no more commit
 * hooks. */
int weir_source_start(weir_store_t *store, const weir_source_config_t *cfg, weir_source_t **out,
                      weir_err_t *err);

/* Lets attempts in flight finish for at most timeout_ms (the rest stay in the outbox), waits
 * for the removals to commit, stops the thread and frees the source. Before closing the store. */
void weir_source_stop(weir_source_t *s, unsigned timeout_ms);

/* Appends the source's and the outbox's metrics in the Prometheus text format. Any thread. */
void weir_source_render_metrics(weir_source_t *s, weir_buf_t *out);

/* ---- system events --------------------------------------------------------------------- */

/*
 * weir's own events, entered into the namespace they concern as events born inside (so they
 * show in its history, wake its listeners and go out through the source): source
 * "/weir/namespaces/{ns}", subject the filter name or listener id, datacontenttype
 * application/json and a JSON object as data. A namespace's deletion only goes out: its
 * history is gone with it.
 */
#define WEIR_SYSTEM_NS_CREATED       "io.weir.namespace.created"
#define WEIR_SYSTEM_NS_UPDATED       "io.weir.namespace.updated"
#define WEIR_SYSTEM_NS_DELETED       "io.weir.namespace.deleted"
#define WEIR_SYSTEM_FILTER_CREATED   "io.weir.filter.created"
#define WEIR_SYSTEM_FILTER_UPDATED   "io.weir.filter.updated"
#define WEIR_SYSTEM_FILTER_DELETED   "io.weir.filter.deleted"
#define WEIR_SYSTEM_LISTENER_CREATED "io.weir.listener.created"
#define WEIR_SYSTEM_LISTENER_DELETED "io.weir.listener.deleted"
#define WEIR_SYSTEM_DELIVERY_DEAD    "io.weir.delivery.deadlettered"
#define WEIR_SYSTEM_DELIVERY_FAILED  "io.weir.delivery.failed"

/* A new system event (a fresh id, the time now); subject may be NULL, data_json is a JSON
 * object's text. ns must be a valid namespace name. The caller frees it. */
weir_event_t *weir_system_event(const char *ns, const char *type, const char *subject,
                                const char *data_json);

#endif
