/*
 * watch.c: how live streams learn that events became durable. The syncer notes each durable
 * group here; waiters sleep on one condition variable and check, in memory, whether their own
 * namespace moved, so a stream of a quiet namespace costs no database read when others are busy.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "store/watch.h"

typedef struct ns_seq {
    char *name;
    int64_t seq; /* the newest durable event of the namespace since open */
} ns_seq_t;

struct weir_store_watch {
    pthread_mutex_t lock;
    pthread_cond_t moved;
    int64_t horizon;
    uint64_t deletions; /* namespaces forgotten since open: ends the waits that were going on */
    ns_seq_t *ns;       /* one per namespace written since open and not deleted since; few, so a
                           linear search */
    size_t nns;
};

weir_store_watch_t *weir_store_watch_new(void)
{
    weir_store_watch_t *w = weir_calloc(1, sizeof(*w));

    pthread_mutex_init(&w->lock, NULL);
    weir_cond_init_mono(&w->moved); /* waits are timed by the caller's deadline */
    return w;
}

void weir_store_watch_free(weir_store_watch_t *w)
{
    if (w == NULL) {
        return;
    }
    for (size_t i = 0; i < w->nns; i++) {
        weir_free(w->ns[i].name);
    }
    weir_free(w->ns);
    pthread_cond_destroy(&w->moved);
    pthread_mutex_destroy(&w->lock);
    weir_free(w);
}

void weir_store_watch_start(weir_store_watch_t *w, int64_t seq)
{
    pthread_mutex_lock(&w->lock);
    w->horizon = seq;
    pthread_mutex_unlock(&w->lock);
}

/* The entry of ns, or NULL. Called with the lock held. */
static ns_seq_t *find(weir_store_watch_t *w, const char *ns)
{
    for (size_t i = 0; i < w->nns; i++) {
        if (strcmp(w->ns[i].name, ns) == 0) {
            return &w->ns[i];
        }
    }
    return NULL;
}

static void note_one(weir_store_watch_t *w, const char *ns, int64_t seq)
{
    ns_seq_t *e = find(w, ns);

    if (e == NULL) {
        w->ns = weir_realloc(w->ns, (w->nns + 1) * sizeof(*w->ns));
        e = &w->ns[w->nns++];
        e->name = weir_strdup(ns);
        e->seq = 0;
    }
    if (seq > e->seq) {
        e->seq = seq;
    }
    if (seq > w->horizon) {
        w->horizon = seq;
    }
}

/*
 * A deleted namespace's entry goes, so that the list holds only namespaces that exist: without
 * this, a service that creates and deletes namespaces all day would grow it without end. Every
 * wait going on ends, so that the deleted namespace's streams see the deletion at once (the
 * others wait again).
 */
static bool forget(weir_store_watch_t *w, const char *ns)
{
    ns_seq_t *e = find(w, ns);

    if (e == NULL) {
        return false;
    }
    weir_free(e->name);
    *e = w->ns[--w->nns];
    w->deletions++;
    if (w->nns == 0) {
        weir_free(w->ns);
        w->ns = NULL;
    }
    return true;
}

/* Notes the events one durable write stored; true when it stored any. */
static bool note_write(weir_store_watch_t *w, const weir_store_write_t *wr)
{
    bool moved = false;

    for (size_t i = 0; i < wr->nitems; i++) {
        const weir_store_item_t *it = &wr->items[i];
        if (!it->duplicate && !it->replay && it->seq > 0) {
            note_one(w, it->ns, it->seq);
            moved = true;
        }
    }
    return moved;
}

void weir_store_watch_note(weir_store_watch_t *w, const weir_store_write_t *list,
                           const weir_store_write_t *(*stored)(const weir_store_write_t *),
                           const char *(*deleted)(const weir_store_write_t *))
{
    bool moved = false;

    pthread_mutex_lock(&w->lock);
    for (const weir_store_write_t *wr = list; wr != NULL; wr = wr->next) {
        if (wr->status != 0) {
            continue;
        }
        const char *gone = deleted(wr);
        if (gone != NULL) {
            moved = forget(w, gone) || moved;
        }
        const weir_store_write_t *events = stored(wr);
        if (events != NULL) {
            moved = note_write(w, events) || moved;
        }
    }
    if (moved) {
        pthread_cond_broadcast(&w->moved);
    }
    pthread_mutex_unlock(&w->lock);
}

int64_t weir_store_watch_horizon(weir_store_watch_t *w)
{
    pthread_mutex_lock(&w->lock);
    int64_t seq = w->horizon;
    pthread_mutex_unlock(&w->lock);
    return seq;
}

/* True when ns has a durable event above after_seq. Called with the lock held. */
static bool ns_moved(weir_store_watch_t *w, const char *ns, int64_t after_seq)
{
    const ns_seq_t *e = find(w, ns);
    return e != NULL && e->seq > after_seq;
}

bool weir_store_watch_wait(weir_store_watch_t *w, const char *ns, int64_t after_seq,
                           uint64_t timeout_ns)
{
    struct timespec until = weir_mono_deadline(timeout_ns);
    bool timed_out = false;

    pthread_mutex_lock(&w->lock);
    uint64_t deletions = w->deletions;
    while (!ns_moved(w, ns, after_seq) && !timed_out && w->deletions == deletions) {
        timed_out = pthread_cond_timedwait(&w->moved, &w->lock, &until) == ETIMEDOUT;
    }
    bool moved = ns_moved(w, ns, after_seq);
    pthread_mutex_unlock(&w->lock);
    return moved;
}
