/*
 * store/sqlite_listen.h: private to the SQLite backend: the part that keeps listeners, `and`
 * state and pending deliveries (sqlite_listen.c), and the hooks sqlite.c calls into it.
 *
 * The writer functions run on the writer thread inside its transaction (and the write's
 * savepoint), on the writer's connection; they return 0 or WEIR_EIO (after logging).
 */
#ifndef WEIR_STORE_SQLITE_LISTEN_H
#define WEIR_STORE_SQLITE_LISTEN_H

#include <sqlite3.h>

#include "store/backend.h"

typedef struct weir_sqlite_listen weir_sqlite_listen_t;

/* State for the database at path: statement caches and a read connection of its own. */
weir_sqlite_listen_t *weir_sqlite_listen_new(const char *path);
void weir_sqlite_listen_free(weir_sqlite_listen_t *l);

/* sqlite.c: the listen state and the writer's connection of a backend db handle. */
weir_sqlite_listen_t *weir_sqlite_listen_of(void *db, sqlite3 **writer);

/* Writer: the deliveries and `and` state that a stored item's matches cause. */
int weir_sqlite_listen_item(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_item_t *it,
                            int64_t now_us);
/* Writer: applies a write's delivery outcomes. */
int weir_sqlite_listen_outcomes(weir_sqlite_listen_t *l, sqlite3 *db, const weir_store_write_t *w,
                                int64_t now_us);
/* Writer: removes a deleted namespace's listeners, state and deliveries. */
int weir_sqlite_listen_ns_delete(weir_sqlite_listen_t *l, sqlite3 *db, const char *ns);

/* Writer, at open after the migrations: counts the pending deliveries; past pending_max (0: no
 * bound) weir_sqlite_listen_bound gives some up. */
int weir_sqlite_listen_open(weir_sqlite_listen_t *l, sqlite3 *db, size_t pending_max,
                            weir_err_t *err);
/* Writer: the bounds of the transaction and of each write's savepoint, so that the count of
 * pending deliveries follows only what commits: begin and commit the transaction; begin a
 * write, and keep it once its savepoint is released (a write undone is simply not kept). */
void weir_sqlite_listen_txn_begin(weir_sqlite_listen_t *l);
void weir_sqlite_listen_txn_commit(weir_sqlite_listen_t *l, sqlite3 *db);
void weir_sqlite_listen_write_begin(weir_sqlite_listen_t *l);
void weir_sqlite_listen_write_keep(weir_sqlite_listen_t *l);
/* Writer, at the end of a write that created deliveries: past the bound, gives up the oldest
 * pending deliveries of the listener with the most, counted as failed. */
int weir_sqlite_listen_bound(weir_sqlite_listen_t *l, sqlite3 *db);
/* Syncer: the newest delivery id committed (read before an fsync), and, once the fsync is done,
 * that it is durable: the engine's reads see no delivery past the durable id. */
int64_t weir_sqlite_listen_committed(weir_sqlite_listen_t *l);
void weir_sqlite_listen_durable(weir_sqlite_listen_t *l, int64_t committed);
/* Any thread: the id of the newest durable delivery. */
int64_t weir_sqlite_listen_newest(weir_sqlite_listen_t *l);
/* Any thread: the committed count of pending deliveries, and how many were given up. */
void weir_sqlite_listen_stats(weir_sqlite_listen_t *l, int64_t *pending, uint64_t *dropped);

/* The backend entries (void *db is sqlite.c's handle). */
int weir_sqlite_listener_put(void *db, const weir_store_listener_t *li);
int weir_sqlite_listener_delete(void *db, const char *ns, const char *id);
int weir_sqlite_listeners(void *db, const char *ns, const char *after, size_t limit,
                          weir_store_listener_t **out, size_t *n, weir_err_t *err);
int weir_sqlite_listener_get(void *db, const char *ns, const char *id, weir_store_listener_t *out,
                             weir_err_t *err);
int weir_sqlite_collected(void *db, const char *id, weir_store_collected_t **out, size_t *n,
                          weir_err_t *err);
int weir_sqlite_deliveries_due(void *db, const char *listener, int64_t now_us, int64_t after_due,
                               int64_t after_id, size_t limit, weir_store_delivery_t **out,
                               size_t *n, weir_err_t *err);
int weir_sqlite_deliveries_new(void *db, int64_t after_id, size_t limit,
                               weir_store_delivery_t **out, size_t *n, weir_err_t *err);
int weir_sqlite_deliveries_pending(void *db, int64_t now_us, int64_t *count, int64_t *next_due_us,
                                   weir_err_t *err);

#endif
