/*
 * deliver/engine.h: private to the deliver module: the engine's state, shared by engine.c (the
 * thread and its scans), batch.c (outcomes written back through the store) and target.c (the
 * listeners' targets, their limits and metrics).
 */
#ifndef WEIR_DELIVER_ENGINE_H
#define WEIR_DELIVER_ENGINE_H

#include <pthread.h>
#include <stdatomic.h>

#include "deliver/job.h"

#define TARGET_BUCKETS 256

typedef struct target target_t;
typedef struct batch batch_t;

struct weir_deliver {
    weir_store_t *store;
    weir_deliver_config_t cfg;
    pthread_t thread;
    CURLM *multi;
    atomic_bool woken; /* a commit may have made deliveries due */
    atomic_bool stop;
    uint64_t stop_deadline_ns;

    /* Owned by the engine's thread: */
    bool stopping;
    job_t **table; /* every job from its load until its outcome is committed */
    size_t table_size;
    size_t njobs;
    int64_t max_seen; /* the highest delivery id a scan of new ones has passed */
    bool more_new;    /* that scan stopped early: it goes on at the next turn */
    bool read_failed; /* that scan could not read the store: wait a little */
    bool backlog;     /* deliveries were left that only a sweep finds: sweep soon */
    bool sweeping;    /* a sweep is under way, at (sweep_due, sweep_id) */
    int64_t sweep_due;
    int64_t sweep_id;
    int64_t next_due_us;   /* the earliest known retry */
    int64_t next_sweep_us; /* the next full scan of due deliveries */
    batch_t *open;         /* outcomes not yet submitted */
    batch_t *ready;        /* batches the store refused for now (queue full) */
    size_t outstanding;    /* batches submitted and not yet done */

    pthread_mutex_t lock; /* guards committed */
    batch_t *committed;   /* batches done, for the thread to settle */

    pthread_mutex_t targets_lock; /* guards the targets, hosts and counters below */
    target_t *targets[TARGET_BUCKETS];
    struct host *hosts[TARGET_BUCKETS]; /* attempts in flight by scheme://host:port */
    size_t pooled;                      /* attempts in flight from the stalled share */
    uint64_t stall_ns;
    weir_histogram_t latency; /* of attempts */
    atomic_uint_fast64_t replies_stored;
    atomic_uint_fast64_t replies_refused; /* invalid, too large, or past the hop limit */
    atomic_size_t in_flight;
};

/* engine.c */
job_t *weir_deliver_find(const weir_deliver_t *d, int64_t id);
void weir_deliver_settle(weir_deliver_t *d, job_t *job, int status);

/* batch.c: outcomes (and replies) go into batches, submitted to the store by the thread. */
void weir_deliver_batch_add(weir_deliver_t *d, job_t *job, weir_event_t **replies, size_t n);
void weir_deliver_batches_flush(weir_deliver_t *d);
void weir_deliver_batches_settle(weir_deliver_t *d);
bool weir_deliver_batches_idle(const weir_deliver_t *d);
/* The replies of a 200 answer that may enter the namespace (hop count set). */
void weir_deliver_replies(weir_deliver_t *d, job_t *job, weir_event_t ***out, size_t *n);

/* target.c */
void weir_deliver_targets_init(weir_deliver_t *d);
void weir_deliver_targets_free(weir_deliver_t *d);
/*
 * Takes a slot for job (listener and dead_letter set): fills its spec, url and pooled, and
 * settles dead_letter (false when the listener no longer has a dead-letter sink). 0,
 * WEIR_ENOTFOUND (no such target) or WEIR_EBUSY (no room for it now: it is noted to drain).
 */
int weir_deliver_target_take(weir_deliver_t *d, job_t *job);

/* What an attempt heard, which is how the engine judges its target (see target.c). */
typedef enum weir_deliver_heard {
    WEIR_HEARD_NOTHING_SENT = 0, /* never sent, or abandoned: says nothing of the target */
    WEIR_HEARD_ANSWER,           /* an HTTP answer, of any status */
    WEIR_HEARD_SILENCE,          /* no answer: refused, reset, timed out */
} weir_deliver_heard_t;

/* Gives back the slot job took. */
void weir_deliver_target_give(weir_deliver_t *d, const job_t *job, weir_deliver_heard_t heard);

/* A listener whose due deliveries were left for lack of room, and how many may start now. */
typedef struct drain {
    char *listener;
    size_t limit;
    int64_t after_due; /* its cursor: where the last drain stopped */
    int64_t after_id;
} drain_t;

/* The listeners to drain, sharing room (free slots) between them; *out is the caller's, freed
 * with weir_deliver_drains_free. */
size_t weir_deliver_drains(weir_deliver_t *d, size_t room, drain_t **out);
/* Ends a drain: more says that it filled its limit (the cursor in dr goes on from there);
 * otherwise the listener has nothing due left behind. */
void weir_deliver_drained(weir_deliver_t *d, const drain_t *dr, bool more);
void weir_deliver_drains_free(drain_t *list, size_t n);
/* Counts a committed outcome in the listener's metrics. */
void weir_deliver_count(weir_deliver_t *d, const job_t *job);
void weir_deliver_observe(weir_deliver_t *d, uint64_t ns);

#endif
