/*
 * store: durable storage of namespaces and events behind one interface (store/backend.h).
 * SQLite is the only backend so far; the interface keeps the database out of the rest of weir
 * so that another (PostgreSQL, for replicas sharing one database) can be added behind it.
 *
 * Writes go through one writer thread that commits in groups: it takes every write waiting in
 * its bounded queue (up to a batch limit) and commits them in one transaction. A syncer thread
 * then makes the commit durable with one fsync, while the writer goes on with the next group,
 * and only then calls each write's done callback. A write that fails (say, its namespace was
 * deleted) is rolled back alone; the others in its group still commit. Reads run on the
 * caller's thread on a read-only connection of their own and never wait for the writer.
 *
 * Thread safety: every function may be called from any thread, except weir_store_close.
 */
#ifndef WEIR_STORE_H
#define WEIR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ce/ce.h"
#include "common/common.h"

typedef struct weir_store weir_store_t;

typedef struct weir_store_config {
    const char *data_dir;  /* SQLite: the database is <data_dir>/weir.db; created when missing */
    size_t queue_max;      /* most writes waiting for the writer; past it submit says BUSY */
    size_t batch_max;      /* most writes in one transaction */
    bool no_sync;          /* commit without fsync: faster, but a power loss or kernel crash can
                              lose events already acknowledged (a process crash cannot) */
    size_t outbox_max;     /* most events waiting in the outbox; 0: no outbox (no source) */
    size_t deliveries_max; /* most deliveries pending; past it the oldest of the listener with
                              the most are given up, counted as failed; 0: no bound */
} weir_store_config_t;

/* Fills cfg with the defaults (queue_max 4096, batch_max 256, sync on, no outbox, no bound on
 * pending deliveries). */
void weir_store_config_default(weir_store_config_t *cfg);

/*
 * Opens (creating or migrating forward as needed) the store and starts its writer thread.
 * The schema carries a version; a database written by a newer weir is refused with WEIR_EIO.
 * The data directory is locked (<data_dir>/weir.lock) while the store is open: a second open
 * of it, from this process or another, fails with WEIR_EBUSY and says so in err.
 */
int weir_store_open(const weir_store_config_t *cfg, weir_store_t **out, weir_err_t *err);

/*
 * Stops taking writes, commits everything already queued (calling each done callback), stops
 * the store's threads and closes the database. Call once, when no other thread uses the store.
 */
void weir_store_close(weir_store_t *store);

/* True while the database is open and the last commit (or a probe) succeeded. */
bool weir_store_ready(weir_store_t *store);

/* Writes and changes waiting in the queue now. */
size_t weir_store_queue_depth(weir_store_t *store);

/* ---- changes and their follow-ups ------------------------------------------------------ */

/*
 * A change (a namespace created or deleted, a filter saved or deleted, a listener created or
 * deleted, a retention set) goes through the writer queue, so that it commits in order with the
 * writes around it, and counts as one write against queue_max: while the queue is full it is
 * refused with WEIR_EBUSY and nothing of it is made. The functions that make one are
 * synchronous: they return once its commit is durable.
 *
 * The *_then functions take a follow-up, then (NULL for none): a write, weir's own event about
 * the change, that the writer applies right after the change, in the same transaction, and only
 * when the change succeeded, so that after a crash the change and its event are both stored or
 * neither is. The two are queued as one job, never split between transactions. then is prepared
 * as for weir_store_submit, but done is not used: its events are encoded by the change function,
 * on the caller's thread, and the caller keeps it alive until the function returns.
 *
 * When the function returns 0, then->status is 0 when the follow-up was stored too, or the error
 * of its own write when it failed alone and the change stands (WEIR_ENOTFOUND: its namespace is
 * gone; WEIR_EBUSY: an item that must go out found the outbox full). A follow-up that fails with
 * WEIR_EIO cannot be undone apart from its change: the whole transaction is rolled back, and the
 * function (with every write of the same transaction) fails with WEIR_EIO. When the function
 * returns an error, nothing of the follow-up was written.
 */
typedef struct weir_store_write weir_store_write_t;

/* ---- namespaces ------------------------------------------------------------------------ */

/*
 * A namespace name is 1 to 63 characters of lower-case letters, digits and '-', starting with a
 * letter and not ending with '-' (a DNS label, as Kubernetes names namespaces). "api" and names
 * starting with "weir-" are reserved. Returns 0 or WEIR_EINVAL with the reason in err.
 */
#define WEIR_STORE_NS_NAME_MAX 63
int weir_store_ns_valid(const char *name, weir_err_t *err);

/* Creates a namespace; *created says whether it is new (creating an existing one is not an
 * error). A change (above). */
int weir_store_ns_create(weir_store_t *store, const char *name, bool *created, weir_err_t *err);

struct weir_store_retention;

/*
 * Creates the namespace when it does not exist (*created says whether it is new) and, when r is
 * not NULL, sets its own retention (see weir_store_retention_set), both in one transaction with
 * the follow-up then. WEIR_EINVAL for a bad name or retention.
 */
int weir_store_ns_put(weir_store_t *store, const char *name, const struct weir_store_retention *r,
                      weir_store_write_t *then, bool *created, weir_err_t *err);

/* Deletes a namespace with its events, filters and listeners; WEIR_ENOTFOUND when it does not
 * exist. A change; the _then form with a follow-up, which can only be outbox_only (the
 * namespace's history goes with it). */
int weir_store_ns_delete(weir_store_t *store, const char *name, weir_err_t *err);
int weir_store_ns_delete_then(weir_store_t *store, const char *name, weir_store_write_t *then,
                              weir_err_t *err);

/* True when the namespace exists. Answered from memory: cheap enough for every request. */
bool weir_store_ns_exists(weir_store_t *store, const char *name);

typedef struct weir_store_ns {
    char *name;
    int64_t created_us;
} weir_store_ns_t;

/* All namespaces, sorted by name. Free with weir_store_ns_free. */
int weir_store_ns_list(weir_store_t *store, weir_store_ns_t **out, size_t *n, weir_err_t *err);
void weir_store_ns_free(weir_store_ns_t *list, size_t n);

/* ---- filters --------------------------------------------------------------------------- */

/*
 * A filter name is 1 to 63 characters of letters, digits, '-', '_' and '.', starting with a
 * letter or digit. Returns 0 or WEIR_EINVAL with the reason in err.
 */
int weir_store_filter_name_valid(const char *name, weir_err_t *err);

typedef struct weir_store_filter {
    char *ns;
    char *name;
    char *source; /* the JavaScript function body, NUL-terminated */
    size_t source_len;
    int64_t updated_us;
} weir_store_filter_t;

/* Saves a filter's source, replacing any of the same name; *created says whether it is new.
 * WEIR_ENOTFOUND when the namespace does not exist. A change; the _then form with a follow-up.
 * The source is stored as given: compiling it is the caller's business. */
int weir_store_filter_put(weir_store_t *store, const char *ns, const char *name, const char *src,
                          size_t len, bool *created, weir_err_t *err);
int weir_store_filter_put_then(weir_store_t *store, const char *ns, const char *name,
                               const char *src, size_t len, weir_store_write_t *then, bool *created,
                               weir_err_t *err);

/* Deletes a filter; WEIR_ENOTFOUND when it does not exist. A change; the _then form with a
 * follow-up. */
int weir_store_filter_delete(weir_store_t *store, const char *ns, const char *name,
                             weir_err_t *err);
int weir_store_filter_delete_then(weir_store_t *store, const char *ns, const char *name,
                                  weir_store_write_t *then, weir_err_t *err);

/* Sets *exists to whether ns has a filter of this name, as committed now. A read. */
int weir_store_filter_exists(weir_store_t *store, const char *ns, const char *name, bool *exists,
                             weir_err_t *err);

/* The filters of ns (every namespace when NULL), sorted by namespace and name. Free with
 * weir_store_filters_free. */
int weir_store_filter_list(weir_store_t *store, const char *ns, weir_store_filter_t **out,
                           size_t *n, weir_err_t *err);
void weir_store_filters_free(weir_store_filter_t *list, size_t n);

/* ---- writing events -------------------------------------------------------------------- */

/* One event entering one namespace. */
typedef struct weir_store_item {
    const char *ns;
    const weir_event_t *ev;
    bool born_inside; /* entered other than through the sink (the source side sends these) */
    bool replay;      /* already stored: goes through the namespace again (a replay) without a
                         second history row; the store sets seq to the stored copy's, or the
                         write fails with WEIR_ENOTFOUND when that copy is gone */
    bool outbox_only; /* kept in no history, only queued in the outbox: an event about a
                         namespace that no longer exists (its deletion) */
    bool must_go_out; /* an API caller is told it goes out (a broadcast, a replay): when the
                         outbox has no room for it, its whole write fails with WEIR_EBUSY and
                         nothing of it is stored. Without it (a reply, a system event), an
                         event the outbox has no room for is stored, counted, and not sent */
    /* Listeners the event woke (weir_route_match): their deliveries, or their part of an `and`,
     * are written in the same transaction as the event; not for a duplicate (but for a replay). */
    const struct weir_store_match *matches;
    size_t nmatches;
    /* Set by the store before done is called: */
    int64_t seq;    /* the event's sequence number (of the stored copy for a duplicate) */
    bool duplicate; /* (ns, source, id) was stored already; nothing was written */
    /* Private to the store: */
    char *json;
    size_t json_len;
    bool json_shared; /* json belongs to an earlier item of the same event */
} weir_store_item_t;

/* A write: items that are committed together, or not at all. */
typedef void (*weir_store_done_cb)(weir_store_write_t *w, int status, void *arg);

struct weir_store_write {
    weir_store_item_t *items;
    size_t nitems;
    weir_store_done_cb done; /* called once, on a store thread, after the commit is durable or
                                the write failed; not used for a follow-up (see the changes) */
    void *arg;
    /* Delivery outcomes applied in the same transaction (the delivery engine's results): */
    const struct weir_store_outcome *outcomes;
    size_t noutcomes;
    /* Outbox rows the source has sent, removed in the same transaction: */
    const int64_t *outbox_sent;
    size_t noutbox_sent;
    /* Set by the store: its status, as done is told it (a follow-up's: see the changes). */
    int status;
    /* Private to the store: */
    int64_t received_us;
    weir_store_write_t *next;
};

/*
 * Queues a write. The caller keeps w, its items and their events alive and unchanged until done
 * is called. Events are encoded here, on the caller's thread. Returns 0 (done will be called
 * with 0, WEIR_ENOTFOUND when a namespace does not exist at commit, WEIR_EBUSY when an item
 * that must go out finds the outbox full, or WEIR_EIO), WEIR_EBUSY when the queue is full or
 * WEIR_ECLOSED when the store is closing (done is not called then).
 */
int weir_store_submit(weir_store_t *store, weir_store_write_t *w);

/* Submits and waits for the commit; returns its status. */
int weir_store_write_sync(weir_store_t *store, weir_store_item_t *items, size_t n);

/* ---- reading events -------------------------------------------------------------------- */

/*
 * Reads show only durable events: those with a seq at or below weir_store_durable_seq. The
 * writer's commit is visible before the syncer has made it durable, and a power loss in between
 * would take back an event that a reader had already shown (and give its seq to another).
 */

typedef struct weir_store_record {
    int64_t seq;
    int64_t received_us;
    char *ns;
    char *json; /* the event in the JSON format, as weir_ce_encode_structured wrote it */
    size_t json_len;
    bool born_inside;
} weir_store_record_t;

void weir_store_records_free(weir_store_record_t *recs, size_t n);
/* Frees what one record holds (as weir_store_get fills it) and zeroes it. */
void weir_store_record_clear(weir_store_record_t *rec);

/* A page of events read from a namespace. */
typedef struct weir_store_page {
    weir_store_record_t *recs; /* free with weir_store_page_free */
    size_t n;
    int64_t next;    /* where the next page goes on (see each read) */
    int64_t trimmed; /* weir_store_since: the newest seq retention has removed from ns, read
                        with the events (0: none) */
} weir_store_page_t;

void weir_store_page_free(weir_store_page_t *page);

/* A test of a stored event in its JSON form, made by the reader of a query: true keeps it. */
typedef bool (*weir_store_match_fn)(const char *json, size_t len, void *arg);

typedef struct weir_store_query {
    const char *ns;
    const char *type;   /* substring of type, or NULL */
    const char *source; /* exact source, or NULL */
    const char *text;   /* substring of the whole event's JSON, or NULL */
    int64_t from_us;    /* received at or after (INT64_MIN: no bound) */
    int64_t until_us;   /* received before (INT64_MAX: no bound) */
    int64_t before_seq; /* only seq < before_seq (INT64_MAX: from the newest) */
    size_t limit;
    size_t max_bytes; /* the page ends before its events' JSON would pass this, but holds at
                         least one event (0: no bound) */
    size_t max_scan;  /* with a filter (type, source, text, from, until, match), at most this
                         many events of ns are examined, matching or not (0: no bound) */
    weir_store_match_fn match; /* or NULL; called on the reading thread, after the others */
    void *match_arg;
} weir_store_query_t;

/*
 * A page of ns's events matching q, newest first: at most q->limit, within q->max_bytes. The
 * page's next is the before_seq that goes on after it, or 0 when no event below it matches,
 * so that the last page is known as such. A page that max_bytes or max_scan ended may hold
 * fewer than q->limit events (with max_scan none at all) and still have a next.
 */
int weir_store_history(weir_store_t *store, const weir_store_query_t *q, weir_store_page_t *out,
                       weir_err_t *err);

/*
 * Events of ns with a seq above after_seq, oldest first: at most limit, within max_bytes as
 * weir_store_query_t has it (catch-up for live streams). The page's next is the seq to go on
 * after: its last event's, or, once every durable event of ns above after_seq is in the page,
 * the durable horizon, so that a caller that waits for newer events is not woken again by
 * events that are already gone (retention, or another namespace's) or already read. The page's
 * trimmed tells a caller whose after_seq is below it that retention removed events it has not
 * read (not necessarily all below trimmed: any left come in the page).
 */
int weir_store_since(weir_store_t *store, const char *ns, int64_t after_seq, size_t limit,
                     size_t max_bytes, weir_store_page_t *out, weir_err_t *err);

/*
 * The event of ns with this id (and source, when not NULL); the newest when several sources
 * share the id. WEIR_ENOTFOUND when there is none.
 */
int weir_store_get(weir_store_t *store, const char *ns, const char *id, const char *source,
                   weir_store_record_t *out, weir_err_t *err);

/* Events stored in ns (all namespaces when ns is NULL). */
int weir_store_count(weir_store_t *store, const char *ns, int64_t *count, weir_err_t *err);

/* ---- live streams ---------------------------------------------------------------------- */

/*
 * Every event with a seq at or below this one is durable (fsync'd, unless no_sync), and every
 * event that becomes durable later gets a higher seq. A live stream shows an event only once
 * its seq is at or below this horizon, so that it never shows one that a power loss could
 * take back (and whose seq could then be given to another event).
 */
int64_t weir_store_durable_seq(weir_store_t *store);

/*
 * Blocks the calling thread until an event of ns with a seq above after_seq has become
 * durable since the store was opened, timeout_ns has passed, or a namespace was deleted (so
 * that its streams learn at once: weir_store_ns_exists says so by then). True when an event
 * has. Events
 * stored before the store was opened never wake a waiter: read them with weir_store_since
 * first. Cheap: no database access.
 */
bool weir_store_wait(weir_store_t *store, const char *ns, int64_t after_seq, uint64_t timeout_ns);

/* ---- retention ------------------------------------------------------------------------- */

/* How long and how many events a namespace keeps. */
typedef struct weir_store_retention {
    int64_t max_age_us; /* events received longer ago go; 0 keeps them forever; -1 is unset */
    int64_t max_count;  /* only the newest max_count are kept; 0 keeps all; -1 is unset */
} weir_store_retention_t;

/* The namespace's own retention (-1 where it has none, so the default applies), or
 * WEIR_ENOTFOUND. */
int weir_store_retention_get(weir_store_t *store, const char *ns, weir_store_retention_t *out,
                             weir_err_t *err);

/* Sets the namespace's own retention (-1 fields return to the default). A change;
 * WEIR_ENOTFOUND when the namespace does not exist, WEIR_EINVAL below -1. */
int weir_store_retention_set(weir_store_t *store, const char *ns, const weir_store_retention_t *r,
                             weir_err_t *err);

/* Where retention cuts a namespace: what one sweep removes, fixed when the sweep begins. */
typedef struct weir_store_cut {
    int64_t before_us;   /* events received before this go (INT64_MIN: none for their age) */
    int64_t through_seq; /* events with a seq at or below this go (0: none for their count) */
} weir_store_cut_t;

/*
 * Reads, on the caller's thread and never through the writer, where policy (no -1 fields) cuts
 * ns at now_us. Finding the count's cut walks the newest max_count events of ns once, so a sweep
 * calls this once and then steps with weir_store_trim. Events that arrive afterwards are newer
 * than the cut, so it stays right while they arrive: it may remove fewer than the policy would
 * by then, never more. WEIR_EINVAL for an incomplete policy.
 */
int weir_store_retention_cut(weir_store_t *store, const char *ns,
                             const weir_store_retention_t *policy, int64_t now_us,
                             weir_store_cut_t *out, weir_err_t *err);

/*
 * One step of retention, through the writer queue so that it commits between writes: deletes
 * at most max_rows of ns's oldest events that cut removes, and sets *deleted. Its cost follows
 * max_rows, whatever the policy keeps. Call again while *deleted == max_rows. Synchronous.
 */
int weir_store_trim(weir_store_t *store, const char *ns, const weir_store_cut_t *cut,
                    size_t max_rows, size_t *deleted, weir_err_t *err);

/*
 * A background thread that applies retention to every namespace every interval_ms, in small
 * steps with pauses between them, so that it never holds the writer long. defaults (no -1
 * fields) apply where a namespace has none of its own. Stop it before closing the store.
 */
typedef struct weir_store_retainer weir_store_retainer_t;

int weir_store_retainer_start(weir_store_t *store, const weir_store_retention_t *defaults,
                              unsigned interval_ms, weir_store_retainer_t **out, weir_err_t *err);
void weir_store_retainer_stop(weir_store_retainer_t *r);

/* ---- listeners and deliveries ---------------------------------------------------------- */

/*
 * A listener is kept as an opaque JSON spec (the route module gives it meaning) with counters
 * of the deliveries it finished. Its `and` state (events collected toward a set) and its
 * pending deliveries are rows that the writer changes in the same transaction as the events
 * and outcomes that cause the change, so that a crash loses or repeats nothing half-done.
 */
typedef struct weir_store_listener {
    char *id;
    char *ns;
    char *spec; /* JSON text */
    int64_t created_us;
    int64_t delivered;     /* counters, read only */
    int64_t failed;        /* gave up: no dead-letter sink, or it refused too */
    int64_t dead_lettered; /* reached the dead-letter sink */
    int64_t pending;       /* deliveries not finished (weir_store_listener_get only) */
} weir_store_listener_t;

void weir_store_listeners_free(weir_store_listener_t *list, size_t n);
void weir_store_listener_clear(weir_store_listener_t *l);

/* Creates a listener (id, ns, spec, created_us are read). A change; WEIR_ENOTFOUND when the
 * namespace does not exist, WEIR_EEXIST when the id is taken. The _then form with a follow-up. */
int weir_store_listener_put(weir_store_t *store, const weir_store_listener_t *l, weir_err_t *err);
int weir_store_listener_put_then(weir_store_t *store, const weir_store_listener_t *l,
                                 weir_store_write_t *then, weir_err_t *err);

/* Deletes a listener with its `and` state and its pending deliveries. A change; WEIR_ENOTFOUND
 * when ns has no listener with this id. The _then form with a follow-up: a match of the deleted
 * listener in it is ignored, as the listener is gone when the follow-up is written. */
int weir_store_listener_delete(weir_store_t *store, const char *ns, const char *id,
                               weir_err_t *err);
int weir_store_listener_delete_then(weir_store_t *store, const char *ns, const char *id,
                                    weir_store_write_t *then, weir_err_t *err);

/* Listeners of ns (every namespace when ns is NULL) with an id above after (NULL: from the
 * first), sorted by id, at most limit. Free with weir_store_listeners_free. */
int weir_store_listeners(weir_store_t *store, const char *ns, const char *after, size_t limit,
                         weir_store_listener_t **out, size_t *n, weir_err_t *err);

/* One listener with its counters and pending count; WEIR_ENOTFOUND. Clear with
 * weir_store_listener_clear. */
int weir_store_listener_get(weir_store_t *store, const char *ns, const char *id,
                            weir_store_listener_t *out, weir_err_t *err);

/* One event an `and` listener holds toward a set. */
typedef struct weir_store_collected {
    char *key;  /* the correlation key */
    char *type; /* the event type it fills */
    char *event_id;
    int64_t received_us;
} weir_store_collected_t;

/* What an `and` listener holds, sorted by key and type. Free with weir_store_collected_free. */
int weir_store_collected(weir_store_t *store, const char *id, weir_store_collected_t **out,
                         size_t *n, weir_err_t *err);
void weir_store_collected_free(weir_store_collected_t *list, size_t n);

/* What a listener makes of one event it matched (see weir_store_item_t.matches). */
typedef enum weir_store_match_kind {
    WEIR_STORE_MATCH_DELIVER = 0, /* deliver this event */
    WEIR_STORE_MATCH_COLLECT,     /* add it to an `and` set; deliver the set once complete */
} weir_store_match_kind_t;

typedef struct weir_store_match {
    const char *listener; /* the listener's id; ignored when it no longer exists */
    weir_store_match_kind_t kind;
    /* COLLECT only: */
    const char *type;    /* the event type this event fills in the set */
    const char *key;     /* the correlation key: events of one set share it */
    unsigned ntypes;     /* types that complete the set */
    int64_t lifespan_us; /* members received longer ago than this are dropped first */
} weir_store_match_t;

/*
 * A pending delivery. payload is the event in the JSON format, or for a completed `and` set
 * (combined) a JSON object of event type to the event in the JSON format. NULL when the event
 * is gone (deleted with retention).
 */
typedef struct weir_store_delivery {
    int64_t id;
    char *listener;
    char *ns;
    int64_t seq; /* the event delivered (0 for a set) */
    char *payload;
    bool combined;
    unsigned attempts;  /* attempts made so far in this phase */
    bool dead_letter;   /* in its dead-letter phase: going to the dead-letter sink */
    int64_t due_us;     /* when the next attempt is due */
    int64_t created_us; /* when the event was committed */
    int last_status;    /* HTTP status of the last attempt (0: none or no answer) */
    char *last_error;   /* what the last attempt got: its answer's start or the error, or NULL */
    /* In the dead-letter phase: why it began, the target's last status and answer, for
     * knativeerrorcode and knativeerrordata (the dead-letter sink's own failures do not touch
     * them). */
    int error_status;
    char *error_data;
} weir_store_delivery_t;

void weir_store_deliveries_free(weir_store_delivery_t *list, size_t n);

/*
 * Deliveries due at now_us, of one listener or (listener NULL) of all, ordered by (due_us, id)
 * and strictly after (after_due, after_id), at most limit. The delivery engine scans with this
 * cursor.
 */
int weir_store_deliveries_due(weir_store_t *store, const char *listener, int64_t now_us,
                              int64_t after_due, int64_t after_id, size_t limit,
                              weir_store_delivery_t **out, size_t *n, weir_err_t *err);

/* Deliveries with an id above after_id, by id, at most limit: what commits since the last
 * call created (ids only grow). */
int weir_store_deliveries_new(weir_store_t *store, int64_t after_id, size_t limit,
                              weir_store_delivery_t **out, size_t *n, weir_err_t *err);

/* The deliveries pending (committed; cheap: no database access), and how many were given up
 * past deliveries_max since the store was opened. */
void weir_store_deliveries_stats(weir_store_t *store, int64_t *pending, uint64_t *dropped);

/* Deliveries not finished (count may be NULL), and the earliest due_us after now_us among them
 * (INT64_MAX when none). */
int weir_store_deliveries_pending(weir_store_t *store, int64_t now_us, int64_t *count,
                                  int64_t *next_due_us, weir_err_t *err);

/* What became of one delivery attempt (see weir_store_write_t.outcomes). */
typedef enum weir_store_outcome_kind {
    WEIR_STORE_DELIVERED = 0, /* finished: the target (or dead-letter sink) took it */
    WEIR_STORE_FAILED,        /* finished: given up */
    WEIR_STORE_DISCARDED,     /* finished without counting: its listener or event is gone */
    WEIR_STORE_RETRY,         /* try again at due_us (attempts counted so far) */
    WEIR_STORE_DEAD_LETTER,   /* go to the dead-letter sink now, with the error kept */
} weir_store_outcome_kind_t;

typedef struct weir_store_outcome {
    int64_t delivery;
    weir_store_outcome_kind_t kind;
    bool dead_letter; /* DELIVERED and FAILED: the phase it finished in */
    unsigned attempts;
    int64_t due_us;
    int last_status;
    const char *last_error; /* may be NULL */
} weir_store_outcome_t;

/*
 * Calls cb(arg) on a store thread after a group of writes made new deliveries or outbox rows
 * durable, so that the delivery engine and the source load them. cb must be quick and must not
 * call the store. At most WEIR_STORE_HOOKS_MAX hooks (WEIR_EBUSY past it).
 */
#define WEIR_STORE_HOOKS_MAX 4
int weir_store_add_commit_hook(weir_store_t *store, void (*cb)(void *arg), void *arg);
/* Removes the hook added with this cb and arg; once this returns, it is not running. */
void weir_store_remove_commit_hook(weir_store_t *store, void (*cb)(void *arg), void *arg);

/* Submits w and waits for its commit; returns its status. */
int weir_store_write_wait(weir_store_t *store, weir_store_write_t *w);

/* ---- the outbox ------------------------------------------------------------------------ */

/*
 * With outbox_max set, the writer queues in the outbox, in the same transaction as the event,
 * every event that enters a namespace other than through the sink: a new (not duplicate) item
 * born inside, a replay, an outbox_only item. The source sends the rows in id order and removes
 * each once sent (weir_store_write_t.outbox_sent), so a crash repeats an event rather than
 * losing it. The bound is kept by the writer: when outbox_max rows wait, a write with an item
 * that must go out fails whole (WEIR_EBUSY), and other events are stored but not queued; they
 * are counted (weir_store_outbox_stats). weir_store_outbox_full lets an API refuse early.
 */
typedef struct weir_store_outbox_row {
    int64_t id;
    char *ns;
    int64_t seq; /* the event's history seq (0 for outbox_only) */
    char *json;  /* the event in the JSON format */
    size_t json_len;
    int64_t created_us;
} weir_store_outbox_row_t;

/*
 * Outbox rows with an id above after_id, oldest first, at most limit, and only rows whose
 * commit is durable (fsync'd, unless no_sync): a row committed but not yet synced is left for a
 * later call, so that the source never sends an event that a power loss could take back. The
 * commit hooks run once a group is durable, so a call from a hook sees what the group queued.
 * Free with weir_store_outbox_free.
 */
int weir_store_outbox_next(weir_store_t *store, int64_t after_id, size_t limit,
                           weir_store_outbox_row_t **out, size_t *n, weir_err_t *err);
void weir_store_outbox_free(weir_store_outbox_row_t *rows, size_t n);

/* The rows waiting (committed) and the events left out for lack of room since the open. */
void weir_store_outbox_stats(weir_store_t *store, int64_t *depth, uint64_t *overflowed);

/* True when there is an outbox and it holds outbox_max rows. */
bool weir_store_outbox_full(weir_store_t *store);

#endif
