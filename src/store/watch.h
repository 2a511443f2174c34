/*
 * store/watch.h: private to the store. The durable horizon and, per namespace, the newest
 * durable seq, with a condition variable on which live streams wait for new events.
 */
#ifndef WEIR_STORE_WATCH_H
#define WEIR_STORE_WATCH_H

#include "store/store.h"

typedef struct weir_store_watch weir_store_watch_t;

weir_store_watch_t *weir_store_watch_new(void);
void weir_store_watch_free(weir_store_watch_t *w);

/* Starts the horizon at seq (everything stored at open counts as durable). */
void weir_store_watch_start(weir_store_watch_t *w, int64_t seq);

/*
 * Syncer: the jobs linked through next (the store's write list) are durable. In list order,
 * forgets the namespace that deleted names (NULL for a job that deletes none), then notes the seq
 * of every event of the write that stored names (NULL for a job that stored none: the job itself
 * for a write, a change's follow-up), so that a namespace deleted and created again in one group
 * keeps what its new events noted. Wakes the waiters. Call before the done callbacks run, since
 * one may free its write.
 */
void weir_store_watch_note(weir_store_watch_t *w, const weir_store_write_t *list,
                           const weir_store_write_t *(*stored)(const weir_store_write_t *),
                           const char *(*deleted)(const weir_store_write_t *));

int64_t weir_store_watch_horizon(weir_store_watch_t *w);
/* Waits until ns has a durable event above after_seq (true), timeout_ns has passed, or a
 * namespace was deleted (false). */
bool weir_store_watch_wait(weir_store_watch_t *w, const char *ns, int64_t after_seq,
                           uint64_t timeout_ns);

#endif
