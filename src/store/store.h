/*
 * store: durable storage of namespaces and events behind one interface, with SQLite as the
 * embedded backend (a PostgreSQL backend implements the same interface).
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
    const char *data_dir; /* SQLite: the database is <data_dir>/weir.db; created when missing */
    size_t queue_max;     /* most writes waiting for the writer; past it submit says BUSY */
    size_t batch_max;     /* most writes in one transaction */
    bool no_sync;         /* commit without fsync: faster, but a power loss or kernel crash can
                             lose events already acknowledged (a process crash cannot) */
} weir_store_config_t;

/* Fills cfg with the defaults (queue_max 4096, batch_max 256, sync on). */
void weir_store_config_default(weir_store_config_t *cfg);

/*
 * Opens (creating or migrating forward as needed) the store and starts its writer thread.
 * The schema carries a version; a database written by a newer weir is refused with WEIR_EIO.
 */
int weir_store_open(const weir_store_config_t *cfg, weir_store_t **out, weir_err_t *err);

/*
 * Stops taking writes, commits everything already queued (calling each done callback), stops
 * the store's threads and closes the database. Call once, when no other thread uses the store.
 */
void weir_store_close(weir_store_t *store);

/* True while the database is open and the last commit (or a probe) succeeded. */
bool weir_store_ready(weir_store_t *store);

/* Writes waiting in the queue now. */
size_t weir_store_queue_depth(weir_store_t *store);

/* ---- namespaces ------------------------------------------------------------------------ */

/*
 * A namespace name is 1 to 63 characters of lower-case letters, digits and '-', starting with a
 * letter and not ending with '-' (a DNS label, as Kubernetes names namespaces). "api" and names
 * starting with "weir-" are reserved. Returns 0 or WEIR_EINVAL with the reason in err.
 */
int weir_store_ns_valid(const char *name, weir_err_t *err);

/* Creates a namespace; *created says whether it is new (creating an existing one is not an
 * error). Synchronous: returns after the commit. */
int weir_store_ns_create(weir_store_t *store, const char *name, bool *created, weir_err_t *err);

/* Deletes a namespace with its events; WEIR_ENOTFOUND when it does not exist. Synchronous. */
int weir_store_ns_delete(weir_store_t *store, const char *name, weir_err_t *err);

/* True when the namespace exists. Answered from memory: cheap enough for every request. */
bool weir_store_ns_exists(weir_store_t *store, const char *name);

typedef struct weir_store_ns {
    char *name;
    int64_t created_us;
} weir_store_ns_t;

/* All namespaces, sorted by name. Free with weir_store_ns_free. */
int weir_store_ns_list(weir_store_t *store, weir_store_ns_t **out, size_t *n, weir_err_t *err);
void weir_store_ns_free(weir_store_ns_t *list, size_t n);

/* ---- writing events -------------------------------------------------------------------- */

/* One event entering one namespace. */
typedef struct weir_store_item {
    const char *ns;
    const weir_event_t *ev;
    bool born_inside; /* entered other than through the sink (the source side sends these) */
    /* Set by the store before done is called: */
    int64_t seq;    /* the event's sequence number (of the stored copy for a duplicate) */
    bool duplicate; /* (ns, source, id) was stored already; nothing was written */
    /* Private to the store: */
    char *json;
    size_t json_len;
} weir_store_item_t;

/* A write: items that are committed together, or not at all. */
typedef struct weir_store_write weir_store_write_t;
typedef void (*weir_store_done_cb)(weir_store_write_t *w, int status, void *arg);

struct weir_store_write {
    weir_store_item_t *items;
    size_t nitems;
    weir_store_done_cb done; /* called once, on a store thread, after the commit is durable or
                                the write failed */
    void *arg;
    /* Private to the store: */
    int64_t received_us;
    int status;
    weir_store_write_t *next;
};

/*
 * Queues a write. The caller keeps w, its items and their events alive and unchanged until done
 * is called. Events are encoded here, on the caller's thread. Returns 0 (done will be called
 * with 0, WEIR_ENOTFOUND when a namespace does not exist at commit, or WEIR_EIO), WEIR_EBUSY
 * when the queue is full or WEIR_ECLOSED when the store is closing (done is not called then).
 */
int weir_store_submit(weir_store_t *store, weir_store_write_t *w);

/* Submits and waits for the commit; returns its status. */
int weir_store_write_sync(weir_store_t *store, weir_store_item_t *items, size_t n);

/* ---- reading events -------------------------------------------------------------------- */

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

typedef struct weir_store_query {
    const char *ns;
    const char *type;   /* substring of type, or NULL */
    const char *source; /* exact source, or NULL */
    const char *text;   /* substring of the whole event's JSON, or NULL */
    int64_t from_us;    /* received at or after (INT64_MIN: no bound) */
    int64_t until_us;   /* received before (INT64_MAX: no bound) */
    int64_t before_seq; /* only seq < before_seq (INT64_MAX: from the newest) */
    size_t limit;
} weir_store_query_t;

/* A namespace's events matching q, newest first, at most q->limit. */
int weir_store_history(weir_store_t *store, const weir_store_query_t *q, weir_store_record_t **out,
                       size_t *n, weir_err_t *err);

/* Events of ns with seq > after_seq, oldest first, at most limit (catch-up for live streams). */
int weir_store_since(weir_store_t *store, const char *ns, int64_t after_seq, size_t limit,
                     weir_store_record_t **out, size_t *n, weir_err_t *err);

/*
 * The event of ns with this id (and source, when not NULL); the newest when several sources
 * share the id. WEIR_ENOTFOUND when there is none.
 */
int weir_store_get(weir_store_t *store, const char *ns, const char *id, const char *source,
                   weir_store_record_t *out, weir_err_t *err);

/* Events stored in ns (all namespaces when ns is NULL). */
int weir_store_count(weir_store_t *store, const char *ns, int64_t *count, weir_err_t *err);

#endif
