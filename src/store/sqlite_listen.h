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
