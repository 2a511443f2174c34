/*
 * Private to the http module: what its files share. Nothing outside src/http includes this.
 */
#ifndef WEIR_HTTP_INTERNAL_H
#define WEIR_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "ce/ce.h"
#include "common/common.h"
#include "deliver/deliver.h"
#include "route/route.h"
#include "script/script.h"
#include "store/store.h"

/* ---- settings -------------------------------------------------------------------------- */

typedef struct weir_settings {
    const char *sink_addr;
    const char *api_addr;
    const char *data_dir;
    size_t max_body;
    size_t max_inflight_bytes;
    size_t queue_max;
    size_t batch_max;
    bool no_sync;
    unsigned max_connections;
    unsigned sink_threads; /* the sink's threads (0: one per core, at least two) */
    unsigned idle_timeout_s;
    unsigned header_timeout_s;
    unsigned body_timeout_s;
    unsigned shutdown_timeout_s;
    const char *log_level;
    unsigned filter_timeout_ms; /* a filter run's time bound */
    size_t filter_memory;       /* a filter heap's memory bound */
    unsigned filter_heaps;      /* filter heaps alive at once */
    /* History: live streams and retention. */
    unsigned max_subscribers;        /* live streams open at once; past it 503 */
    unsigned stream_heartbeat_s;     /* a comment line on an idle stream this often */
    unsigned stream_write_timeout_s; /* a stream whose client reads nothing this long is cut */
    const char *retention_max_age;   /* ISO 8601 duration or seconds; "0" keeps forever */
    int64_t retention_max_age_us;    /* the same, parsed by weir_settings_parse */
    size_t retention_max_count;      /* newest events kept per namespace; 0 keeps all */
    unsigned retention_interval_s;   /* seconds between two sweeps of retention */
    /* The source: where events born inside go out (none when source_sink is empty). */
    const char *source_sink;       /* K_SINK */
    const char *source_overrides;  /* K_CE_OVERRIDES */
    const char *source_ca_certs;   /* K_CA_CERTS */
    const char *source_token_file; /* Knative's OIDC token */
    unsigned source_inflight;
    unsigned source_timeout_s;
    size_t outbox_max;
    bool system_events; /* weir's own events enter the namespaces they concern */
    /* Delivery to listeners' targets (the deliver module's limits). */
    size_t delivery_inflight;         /* attempts in flight at once */
    size_t delivery_per_target;       /* of them, to one listener's target */
    size_t delivery_per_host;         /* of them, to one scheme://host:port; 0: no limit */
    size_t delivery_stalled_inflight; /* of them, to targets that stopped answering (0: a
                                         quarter of delivery_inflight) */
    unsigned delivery_stall_s;        /* in flight this long without an answer: stalled */
    size_t delivery_pending_max;      /* deliveries kept pending; past it the oldest of the
                                         listener with the most are given up (0: no bound) */
    unsigned reply_max_hops;          /* replies to replies accepted */
} weir_settings_t;

#define WEIR_MIN_BODY_LIMIT (64 * 1024)

/* Parses flags and the environment into s. Prints help or errors; returns 0, 1 (help shown)
 * or -1 (bad settings). */
int weir_settings_parse(weir_settings_t *s, int argc, char **argv);

/* ---- metrics --------------------------------------------------------------------------- */

/* Outcomes of one event at the sink or the broadcast API, the label of the received counter. */
typedef enum weir_outcome {
    WEIR_OUT_STORED = 0,
    WEIR_OUT_DUPLICATE,
    WEIR_OUT_DROPPED,
    WEIR_OUT_INVALID,
    WEIR_OUT_NOT_FOUND,
    WEIR_OUT_TOO_LARGE,
    WEIR_OUT_UNSUPPORTED,
    WEIR_OUT_FILTER_FAILED,
    WEIR_OUT_OVERLOADED,
    WEIR_OUT_STORE_FAILED,
    WEIR_OUT_TIMED_OUT,
    WEIR_OUT_COUNT,
} weir_outcome_t;

typedef struct weir_metrics weir_metrics_t;

weir_metrics_t *weir_metrics_new(void);
void weir_metrics_free(weir_metrics_t *m);
/* Counts n events of namespace ns (NULL when none applies) with this outcome. */
void weir_metrics_count(weir_metrics_t *m, const char *ns, weir_outcome_t outcome, uint64_t n);
/* Records the time from a sink request's arrival to its answer. */
void weir_metrics_latency(weir_metrics_t *m, uint64_t ns);
/* Counts connections closed because their request headers were late. */
void weir_metrics_header_timeouts(weir_metrics_t *m, unsigned n);
/* Renders every metric in the Prometheus text format. */
void weir_metrics_render(weir_metrics_t *m, weir_store_t *store, weir_buf_t *out);

/* ---- the server ------------------------------------------------------------------------ */

typedef enum weir_surface {
    WEIR_SURFACE_SINK = 0,
    WEIR_SURFACE_API,
} weir_surface_t;

typedef struct weir_filters weir_filters_t;
typedef struct weir_deadlines weir_deadlines_t;

typedef struct weir_server {
    const weir_settings_t *settings;
    weir_store_t *store;
    weir_filters_t *filters;     /* compiled filters by namespace and name */
    weir_script_pool_t *scripts; /* the heaps that run them */
    weir_metrics_t *metrics;
    weir_deadlines_t *deadlines; /* of request headers, on both listeners */
    struct MHD_Daemon *sink;
    struct MHD_Daemon *api;
    atomic_size_t inflight_bytes;   /* request bodies held in memory now */
    atomic_int inflight;            /* requests started and not yet completed */
    atomic_bool stopping;           /* set at shutdown: new requests are refused */
    atomic_int parked;              /* sink connections suspended until their commit */
    atomic_bool no_park;            /* set at shutdown: a request waits for its commit in place */
    atomic_uint subscribers;        /* live streams open now */
    weir_ratelimit_t refusal_log;   /* lines about refused requests: clients can provoke them */
    atomic_ulong refusals_unlogged; /* refusals past the rate limit since the last line */
    weir_store_retainer_t *retainer;
    weir_route_t *route;     /* listeners, matched on the request's thread */
    weir_deliver_t *deliver; /* the delivery engine */
    weir_source_t *source;   /* the source side, or NULL without a sink */
    /* Held across a change of a namespace, a filter or a listener through the API: the look that
     * decides whether it creates or replaces (its system event says which), its store write, and
     * the in-memory updates after it (the filter registry, the listeners), so that each ends as
     * the store does. */
    pthread_mutex_t change_lock;
} weir_server_t;

/* A request that hands events to the store, and waits on its thread for the commit. */
typedef struct weir_ingest {
    pthread_mutex_t lock;
    pthread_cond_t committed;
    bool done; /* the store answered: status holds its result */
    int status;
    bool submitted;     /* handed to the store: the request's answer follows its commit */
    bool suspended;     /* a sink connection parked until the commit (resumed then) */
    atomic_int *parked; /* the server's count of parked connections */
    struct MHD_Connection *conn;
    bool born_inside;
    char **namespaces; /* owned */
    size_t nns;
    weir_event_t **events;
    size_t nevents;
    weir_store_item_t *items;
    size_t nitems;
    weir_store_write_t write;
    size_t dropped;      /* events a filter dropped */
    weir_event_t **kept; /* events as filters returned them (owned), items point into it */
    size_t nkept;
    weir_route_matches_t *matches; /* per item: the listeners it wakes (owned) */
} weir_ingest_t;

/* One request, from its first byte to its completion. */
typedef struct weir_req {
    weir_server_t *srv;
    struct MHD_Connection *conn;
    weir_surface_t surface;
    const char *method;
    const char *url;
    uint64_t start_ns;
    weir_buf_t body;
    size_t reserved; /* bytes counted in srv->inflight_bytes for this request */
    int refused;     /* a status already decided while the body arrived (413, 503), or 0 */
    bool answered;   /* a response is queued: later calls for this request do nothing */
    bool close;      /* the connection closes after the answer: its framing cannot be trusted */
    bool hurried;    /* the connection's timeout is cut to the body's deadline */
    bool timed_out;  /* a piece of the body came after the deadline */
    weir_ingest_t ingest;
} weir_req_t;

/* Starts both listeners; WEIR_EIO with err filled when one cannot bind. */
int weir_server_start(weir_server_t *srv, weir_err_t *err);
/* Closes the listening sockets and refuses new requests on open connections (503, closing
 * them); requests in flight go on. */
void weir_server_quiesce(weir_server_t *srv);
/* Stops both daemons; call after the requests in flight finished (or the wait timed out). A
 * request whose events the store has taken is still answered: this waits for its commit. */
void weir_server_stop(weir_server_t *srv);

/* ---- deadlines of request headers (deadline.c) ----------------------------------------- */

/* Starts the thread that closes connections whose request headers are late: due
 * header_timeout_s after the connection opened, and after an answer the longer of that and a
 * second past idle_timeout_s (none when idle_timeout_s is 0), counted in metrics. NULL when the
 * thread cannot start. */
weir_deadlines_t *weir_deadlines_start(unsigned header_timeout_s, unsigned idle_timeout_s,
                                       weir_metrics_t *metrics);
/* Stops it; call once the daemons that use it are stopped. */
void weir_deadlines_stop(weir_deadlines_t *dl);
/* libmicrohttpd's MHD_OPTION_NOTIFY_CONNECTION callback; cls is the weir_deadlines_t. */
void weir_deadlines_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                                  enum MHD_ConnectionNotificationCode code);
/* A request's headers are whole on conn: no deadline until it completes. */
void weir_deadlines_headers_in(struct MHD_Connection *conn);
/* conn's request completed: the next one's headers are due. */
void weir_deadlines_request_done(weir_deadlines_t *dl, struct MHD_Connection *conn);

/* ---- answers --------------------------------------------------------------------------- */

/* Queues resp (and releases the caller's reference to it) as the request's answer. Every
 * answer goes through here, so that the request knows it has been answered. */
enum MHD_Result weir_queue(weir_req_t *req, unsigned status, struct MHD_Response *resp);
/* Queues a response with a body copied from body[0..len) (may be empty). */
enum MHD_Result weir_respond(weir_req_t *req, unsigned status, const char *content_type,
                             const char *body, size_t len);
/* Same, with one extra header (name and value, or NULL). */
enum MHD_Result weir_respond_h(weir_req_t *req, unsigned status, const char *content_type,
                               const char *body, size_t len, const char *hname, const char *hvalue);
/* Queues a JSON response, taking the buffer. */
enum MHD_Result weir_respond_json(weir_req_t *req, unsigned status, weir_buf_t *json);

/*
 * Queues an application/problem+json response (RFC 9457) for status. detail and attr may be
 * NULL. 405 gets an Allow header with allow, 503 a Retry-After; with req->close set, the
 * connection closes after it.
 */
enum MHD_Result weir_problem(weir_req_t *req, unsigned status, const char *detail, const char *attr,
                             const char *allow);
/* Whether a line about a request a client got wrong may be logged now at level: such lines
 * share one rate limit, for clients can provoke them. When allowed, more says how many were
 * not logged before it (or is empty), to end the line with. */
bool weir_refusal_log_allowed(weir_server_t *srv, weir_log_level_t level, char more[64]);
/* The status that answers a WEIR_E* code at the sink and the API. */
unsigned weir_status_for(int code);
/* Queues the problem response for an error from a lower module. */
enum MHD_Result weir_problem_err(weir_req_t *req, const weir_err_t *err);

/* ---- filters --------------------------------------------------------------------------- */

weir_filters_t *weir_filters_new(void);
void weir_filters_free(weir_filters_t *f);
/* Compiles and registers every filter the store holds (one that no longer compiles is logged
 * and left out). Call before the listeners start. */
int weir_filters_load(weir_filters_t *f, weir_store_t *store, weir_err_t *err);
/* A reference to the compiled filter (weir_script_unref it), or NULL. Any thread. */
weir_script_t *weir_filters_get(weir_filters_t *f, const char *ns, const char *name);
/* True when some namespace has a filter of this name. */
bool weir_filters_any(weir_filters_t *f, const char *name);
/* Forgets the filters and log of a deleted namespace; call under the server's change lock. */
void weir_filters_drop_ns(weir_filters_t *f, const char *ns);
/* Appends an nslog line to the namespace's log (rate-limited) and the server log. */
void weir_filters_log(weir_filters_t *f, const char *ns, const char *filter, const char *line,
                      size_t len);
/* .../filters and .../filters/{name} (name NULL for the listing). */
enum MHD_Result weir_filters_handle(weir_req_t *req, const char *ns, const char *name);
/* GET .../logs: the namespace's recent nslog lines. */
enum MHD_Result weir_filters_handle_log(weir_req_t *req, const char *ns);

/* ---- routes ---------------------------------------------------------------------------- */

/* The request's query parameter: NULL when absent, "" when given without a value ("?name"). */
const char *weir_req_arg(weir_req_t *req, const char *name);

/* Serves a sink request (any method, any path). */
enum MHD_Result weir_sink_handle(weir_req_t *req);
/* Serves an API request. */
enum MHD_Result weir_api_handle(weir_req_t *req);

/*
 * Decodes the request body as CloudEvents and hands them to the store for every namespace in
 * namespaces (born_inside marks events that the source side sends out), taking ownership of
 * the namespaces array and its strings, waits for the commit and answers.
 */
enum MHD_Result weir_ingest_start(weir_req_t *req, char **namespaces, size_t nns, bool born_inside);
/* Answers an ingest whose suspended connection its commit resumed. */
enum MHD_Result weir_ingest_resumed(weir_req_t *req);
/* GET .../events/history: a page of ns's events, newest first, filtered by the query. */
enum MHD_Result weir_history_list(weir_req_t *req, const char *ns);
/* GET .../events/history/{id}: one event (?source= picks one when several share the id). */
enum MHD_Result weir_history_get(weir_req_t *req, const char *ns, const char *id);

/* GET .../events/history/subscribe: the events as server-sent events, oldest first, from
 * Last-Event-ID or ?after=, then live ones as they become durable. */
enum MHD_Result weir_stream_subscribe(weir_req_t *req, const char *ns);
/* POST .../events/history/replay/{id}: the stored event goes through the namespace again. */
enum MHD_Result weir_history_replay(weir_req_t *req, const char *ns, const char *id);

/* ---- retention ------------------------------------------------------------------------- */

/* Parses an age: an ISO 8601 duration (PnDTnHnMnS) or whole seconds; 0 keeps forever. */
int weir_retention_age_parse(const char *s, int64_t *us);
/*
 * Reads the optional body of PUT /namespaces/{ns}: {"retention":{"max_age","max_count"}}.
 * *given is false for an empty body. A missing or null field is -1 (the default applies).
 */
int weir_retention_from_body(weir_req_t *req, weir_store_retention_t *r, bool *given,
                             weir_err_t *err);
/* Starts applying retention in the background (srv->retainer); -1 after logging a failure. */
int weir_retention_start(weir_server_t *srv);
/* Appends ,"retention":{...} (the namespace's own and the effective settings) to b. */
int weir_retention_json(weir_req_t *req, const char *ns, weir_buf_t *b, weir_err_t *err);

/* Releases what an ingest holds. */
void weir_ingest_release(weir_ingest_t *in);

/* ---- listeners (listeners.c) ---------------------------------------------------------- */

/* .../events/listeners[/{id}]: create, list, show, delete. id is NULL for the collection. */
enum MHD_Result weir_listeners_handle(weir_req_t *req, const char *ns, const char *id);
/* Matches every item of an ingest against the listeners of its namespace (before submit). */
void weir_listeners_match(weir_server_t *srv, weir_ingest_t *in);
/* The same for one item (a replay), and its release. */
void weir_listeners_match_item(weir_server_t *srv, weir_store_item_t *it);
void weir_listeners_release_item(weir_store_item_t *it);
/* Releases what weir_listeners_match attached. */
void weir_listeners_unmatch(weir_ingest_t *in);
/* Forgets the listeners of a deleted namespace (route and delivery targets). */
void weir_listeners_ns_deleted(weir_server_t *srv, const char *ns);
/* ---- system events (system.c) --------------------------------------------------------- */

/* weir's own event about an API change, while the change is made. */
typedef struct weir_system {
    weir_event_t *ev; /* NULL when there is none */
    const char *type;
    weir_store_item_t item;
    weir_store_write_t write;
} weir_system_t;

/*
 * Prepares weir's own event of this type (WEIR_SYSTEM_*) about a change of ns, with data
 * {"namespace": ns} and, when key is not NULL, key: value (value is also the subject), and
 * matches it against ns's listeners. Returns the follow-up to pass to the store's change
 * function (the *_then functions of store.h), so that the event commits in the same transaction
 * as the change, or NULL when there is no event: type NULL, system events off, or a namespace's
 * deletion without a source (its history is gone, so it could only have gone out). Call
 * weir_system_finish after the change, in every case.
 */
weir_store_write_t *weir_system_prepare(weir_server_t *srv, weir_system_t *sys, const char *ns,
                                        const char *type, const char *key, const char *value);
/* After the change function returned rc: logs an event that failed alone (the change stands),
 * and releases what weir_system_prepare held. */
void weir_system_finish(weir_server_t *srv, weir_system_t *sys, int rc);

/* Loads the listeners and starts the delivery engine; stops it (draining for timeout_s). */
int weir_listeners_start(weir_server_t *srv);
void weir_listeners_stop(weir_server_t *srv, unsigned timeout_s);

#endif
