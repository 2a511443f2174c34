/*
 * Helpers shared by the store's unit tests: a store in a fresh temporary directory, events,
 * a gate that holds the writer thread still, and a barrier that waits for the writer.
 */
#ifndef WEIR_TEST_STORE_FIXTURE_H
#define WEIR_TEST_STORE_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "store/store.h"

typedef struct fx {
    char dir[64];
    weir_store_t *store;
    size_t outbox_max;
} fx_t;

/* Makes a temporary directory and opens a store in it (0 sizes mean the defaults). */
fx_t *fx_open(size_t queue_max, size_t batch_max);
/* The same with an outbox of this bound (kept by fx_reopen). */
fx_t *fx_open_outbox(size_t outbox_max);
/* Closes the store (when open) and reopens it on the same directory. */
void fx_reopen(fx_t *fx);
/* Closes the store and removes the directory. */
void fx_close(fx_t *fx);

/* A valid 1.0 event; data (JSON text) may be NULL. Free with weir_ce_free. */
weir_event_t *fx_event(const char *id, const char *source, const char *type, const char *data);

/* Writes one event synchronously; returns the status and sets *seq. */
int fx_write(weir_store_t *store, const char *ns, const weir_event_t *ev, int64_t *seq);

/* Writes events "<prefix>-<i>" for i in [from, to) into ns in one write, each with data (JSON
 * text, may be NULL); returns the seq of the last. */
int64_t fx_write_range(weir_store_t *store, const char *ns, const char *prefix, int from, int to,
                       const char *data);

/* Returns once every write submitted before it has had its done callback. */
void fx_barrier(weir_store_t *store);

/*
 * Holds the writer thread still: the gate takes the database's write lock from a connection of
 * its own and submits a write, which the writer takes and then waits on, so that later writes
 * pile up in the queue and are committed together in one batch once the gate opens.
 */
typedef struct fx_gate {
    struct sqlite3 *db;
    weir_store_write_t w;
    atomic_int calls;
} fx_gate_t;

void fx_gate_close(fx_gate_t *g, fx_t *fx);
void fx_gate_open(fx_gate_t *g);

/* The outcome of an asynchronous write. */
typedef struct fx_result {
    atomic_int calls;
    int status;
} fx_result_t;

/* A done callback for fx_result_t. */
void fx_result_done(weir_store_write_t *w, int status, void *arg);

/* The string member name of a JSON object text (a static buffer; tests run on one thread). */
const char *fx_json_str(const char *json, const char *name);

#endif
