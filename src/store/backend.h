/*
 * store/backend.h: the private interface between the backend-neutral part of the store
 * (store.c: the queue, the writer thread, the namespace set) and one database backend.
 *
 * A backend keeps its own state behind the opaque db pointer that open returns. The functions
 * marked "writer" are called only by the writer thread, one at a time, between begin and
 * commit; the reads may be called from any number of threads at once, and the
 * backend gives each its own connection.
 */
#ifndef WEIR_STORE_BACKEND_H
#define WEIR_STORE_BACKEND_H

#include "store/store.h"

typedef struct weir_store_backend {
    const char *name;

    /* Opens the database, creating or migrating its schema; refuses a newer schema (EIO). */
    int (*open)(const weir_store_config_t *cfg, void **db, weir_err_t *err);
    /* Closes the database; no other call is running or will run. */
    void (*close)(void *db);
    /* Every namespace, sorted by name (for the in-memory set, at open). */
    int (*ns_load)(void *db, weir_store_ns_t **out, size_t *n, weir_err_t *err);

    /* Writer: starts a transaction that locks out other writers at once. */
    int (*begin)(void *db);
    /*
     * Writer: commits. The commit is visible at once and survives a crash of the process, but
     * it survives a power loss only once a later sync has returned. WEIR_EIO when it failed
     * (then it was rolled back).
     */
    int (*commit)(void *db);
    /*
     * Writer: takes the whole transaction back, in place of commit, when a job of several parts
     * (a change and its follow-up) failed with WEIR_EIO after an earlier part succeeded: no
     * savepoint undoes the earlier part alone.
     */
    void (*rollback)(void *db);
    /*
     * Syncer: makes every commit made before the call durable (unless the store was opened
     * with no_sync), and does any upkeep that must follow durability (checkpoints). Runs on
     * its own thread, beside the writer's next transaction. WEIR_EIO when it failed.
     */
    int (*sync)(void *db);
    /*
     * Writer: applies one write all or nothing (a failed write is undone alone and the
     * transaction stays usable). Sets each item's seq and duplicate. Returns 0, WEIR_ENOTFOUND
     * when a namespace is missing, WEIR_EBUSY when an item that must go out finds the outbox
     * full, or WEIR_EIO.
     */
    int (*write)(void *db, weir_store_write_t *w);
    /* Writer: creates a namespace; *created is false when it existed already. */
    int (*ns_create)(void *db, const char *name, int64_t created_us, bool *created);
    /* Writer: deletes a namespace and its events; WEIR_ENOTFOUND when it does not exist. */
    int (*ns_delete)(void *db, const char *name);
    /* Writer: creates or replaces a filter (*created says which); WEIR_ENOTFOUND when its
     * namespace does not exist. */
    int (*filter_put)(void *db, const char *ns, const char *name, const char *src, size_t len,
                      int64_t updated_us, bool *created);
    /* Writer: deletes a filter; WEIR_ENOTFOUND when it does not exist. */
    int (*filter_delete)(void *db, const char *ns, const char *name);
    /* Read, from any thread: the filters of ns (every namespace when NULL) with their source,
     * sorted by namespace and name. */
    int (*filter_list)(void *db, const char *ns, weir_store_filter_t **out, size_t *n,
                       weir_err_t *err);
    /* Read: whether ns has a filter of this name. */
    int (*filter_exists)(void *db, const char *ns, const char *name, bool *exists, weir_err_t *err);
    /* Writer, outside any transaction: commits a tiny write to learn whether storage works. */
    int (*probe)(void *db);

    /* Reads, from any thread; the arguments were checked by store.c, which also bounds them
     * by the durable horizon (q->before_seq, through_seq). */
    int (*history)(void *db, const weir_store_query_t *q, weir_store_page_t *out, weir_err_t *err);
    int (*since)(void *db, const char *ns, int64_t after_seq, int64_t through_seq, size_t limit,
                 size_t max_bytes, weir_store_page_t *out, weir_err_t *err);
    int (*get)(void *db, const char *ns, const char *id, const char *source, int64_t through_seq,
               weir_store_record_t *out, weir_err_t *err);
    int (*count)(void *db, const char *ns, int64_t *count, weir_err_t *err);

    /* Read: the highest seq ever given (0 for none), at open, to start the durable horizon. */
    int (*last_seq)(void *db, int64_t *seq, weir_err_t *err);
    /* Read: the namespace's own retention (-1 where unset); WEIR_ENOTFOUND. */
    int (*retention_get)(void *db, const char *ns, weir_store_retention_t *out, weir_err_t *err);
    /* Writer: sets it; WEIR_ENOTFOUND when the namespace does not exist. */
    int (*retention_set)(void *db, const char *ns, const weir_store_retention_t *r);
    /* Read: the seq of ns's newest event that is not among its newest keep (> 0), or 0 when
     * it holds no more than keep. */
    int (*trim_cut)(void *db, const char *ns, int64_t keep, int64_t *through_seq, weir_err_t *err);
    /*
     * Writer: deletes at most max_rows of ns's oldest events that were received before
     * before_us (INT64_MIN: none on age) or have a seq at or below through_seq (0: none).
     */
    int (*trim)(void *db, const char *ns, int64_t before_us, int64_t through_seq, size_t max_rows,
                size_t *deleted);

    /* Listeners and deliveries (sqlite_listen.c). Writer: */
    int (*listener_put)(void *db, const weir_store_listener_t *l);
    int (*listener_delete)(void *db, const char *ns, const char *id);
    /* Reads: */
    int (*listeners)(void *db, const char *ns, const char *after, size_t limit,
                     weir_store_listener_t **out, size_t *n, weir_err_t *err);
    int (*listener_get)(void *db, const char *ns, const char *id, weir_store_listener_t *out,
                        weir_err_t *err);
    int (*collected)(void *db, const char *id, weir_store_collected_t **out, size_t *n,
                     weir_err_t *err);
    int (*deliveries_due)(void *db, const char *listener, int64_t now_us, int64_t after_due,
                          int64_t after_id, size_t limit, weir_store_delivery_t **out, size_t *n,
                          weir_err_t *err);
    int (*deliveries_new)(void *db, int64_t after_id, size_t limit, weir_store_delivery_t **out,
                          size_t *n, weir_err_t *err);
    int (*deliveries_pending)(void *db, int64_t now_us, int64_t *count, int64_t *next_due_us,
                              weir_err_t *err);

    /* The outbox. Writer: write queues and removes its rows (weir_store_item_t, outbox_sent).
     * Reads: */
    int (*outbox_next)(void *db, int64_t after_id, size_t limit, weir_store_outbox_row_t **out,
                       size_t *n, weir_err_t *err);
    /* Any thread: the committed depth and the rows left out for lack of room. */
    void (*outbox_stats)(void *db, int64_t *depth, uint64_t *overflowed);
    /* Any thread: the committed count of pending deliveries, and those given up past
     * deliveries_max since the open. */
    void (*deliveries_stats)(void *db, int64_t *pending, uint64_t *dropped);
    /* Any thread: the ids of the newest durable delivery and outbox row (0 for none). Both only
     * grow, so the syncer runs the commit hooks only when one of them moved. */
    void (*newest)(void *db, int64_t *delivery, int64_t *outbox);
} weir_store_backend_t;

/* A job that runs on the writer thread, inside the transaction of its group. */
typedef int (*weir_store_call_fn)(const weir_store_backend_t *be, void *db, void *arg);

/* Runs fn on the writer thread, in order with the writes around it, and waits until its commit
 * is durable; returns fn's status (or WEIR_EIO, WEIR_ECLOSED). For the store's own upkeep: it is
 * not bounded by queue_max. */
int weir_store_call(weir_store_t *store, weir_store_call_fn fn, void *arg);

/* The same for a change (store.h): counted against queue_max (WEIR_EBUSY when the queue is
 * full), with the follow-up then (NULL for none) applied after fn when fn returned 0. */
int weir_store_change(weir_store_t *store, weir_store_call_fn fn, void *arg,
                      weir_store_write_t *then);

/* Fills err for the statuses that a job gets from the queue and the writer rather than from its
 * own work (WEIR_EBUSY, WEIR_ECLOSED, WEIR_EIO and anything unexpected); returns rc. */
int weir_store_job_err(int rc, weir_err_t *err);

/* True when no field of r is below -1. */
bool weir_store_retention_ok(const weir_store_retention_t *r);

/* The backend of an open store and its database, for reads from other files of the store. */
void weir_store_backend_of(weir_store_t *store, const weir_store_backend_t **be, void **db);

/* The embedded backend: <data_dir>/weir.db. */
extern const weir_store_backend_t weir_store_sqlite;

#endif
