/*
 * batch.c: outcomes go back to the store in batches: the outcomes of one turn of the engine
 * share one write; an outcome with replies gets a write of its own, so that the replies enter
 * the namespace in the same transaction as the outcome (or neither does), and so that a reply
 * refused by the store (its namespace deleted) takes no other outcome down with it.
 */
#include <stdio.h>
#include <string.h>

#include "deliver/engine.h"

#define MODULE "deliver"

struct batch {
    weir_store_write_t w;
    weir_deliver_t *d;
    weir_store_outcome_t *outcomes;
    job_t **jobs;
    size_t n;
    size_t cap;
    weir_store_item_t *items; /* replies */
    weir_event_t **replies;
    size_t nitems;
    int status;
    batch_t *next;
};

static batch_t *batch_new(weir_deliver_t *d)
{
    batch_t *b = weir_calloc(1, sizeof(*b));
    b->d = d;
    return b;
}

static void batch_push(batch_t *b, job_t *job)
{
    if (b->n == b->cap) {
        b->cap = b->cap == 0 ? 16 : b->cap * 2;
        b->jobs = weir_realloc(b->jobs, b->cap * sizeof(*b->jobs));
    }
    b->jobs[b->n++] = job;
}

static void append(batch_t **list, batch_t *b)
{
    while (*list != NULL) {
        list = &(*list)->next;
    }
    *list = b;
}

static void attach_replies(weir_deliver_t *d, batch_t *b, const job_t *job, weir_event_t **replies,
                           size_t n)
{
    b->items = weir_calloc(n, sizeof(*b->items));
    b->replies = replies;
    b->nitems = n;
    for (size_t i = 0; i < n; i++) {
        b->items[i].ns = job->ns;
        b->items[i].ev = replies[i];
        b->items[i].born_inside = true;
        if (d->cfg.match != NULL) {
            d->cfg.match(d->cfg.match_arg, &b->items[i]);
        }
    }
}

void weir_deliver_batch_add(weir_deliver_t *d, job_t *job, weir_event_t **replies, size_t n)
{
    if (n > 0) {
        batch_t *b = batch_new(d);
        batch_push(b, job);
        attach_replies(d, b, job, replies, n);
        append(&d->ready, b);
        return;
    }
    weir_free(replies);
    if (d->open == NULL) {
        d->open = batch_new(d);
    }
    batch_push(d->open, job);
}

/* Runs on a store thread. The wake-up happens under the lock, so that the engine cannot
 * finish and free itself while this thread still touches it. */
static void on_done(weir_store_write_t *w, int status, void *arg)
{
    batch_t *b = arg;
    weir_deliver_t *d = b->d;

    pthread_mutex_lock(&d->lock);
    b->status = status;
    b->next = d->committed;
    d->committed = b;
    curl_multi_wakeup(d->multi);
    pthread_mutex_unlock(&d->lock);
}

static void prepare(batch_t *b)
{
    b->outcomes = weir_calloc(b->n, sizeof(*b->outcomes));
    for (size_t i = 0; i < b->n; i++) {
        b->outcomes[i] = b->jobs[i]->outcome;
    }
    b->w = (weir_store_write_t){.items = b->items,
                                .nitems = b->nitems,
                                .outcomes = b->outcomes,
                                .noutcomes = b->n,
                                .done = on_done,
                                .arg = b};
}

static void batch_free(weir_deliver_t *d, batch_t *b)
{
    for (size_t i = 0; i < b->nitems; i++) {
        if (d->cfg.match_release != NULL) {
            d->cfg.match_release(d->cfg.match_arg, &b->items[i]);
        }
    }
    weir_ce_free_all(b->replies, b->nitems);
    weir_free(b->items);
    weir_free(b->outcomes);
    weir_free(b->jobs);
    weir_free(b);
}

/* Releases a batch's jobs; status 0 means their outcomes are committed. */
static void settle_batch(weir_deliver_t *d, batch_t *b, int status)
{
    for (size_t i = 0; i < b->n; i++) {
        weir_deliver_settle(d, b->jobs[i], status);
    }
    batch_free(d, b);
}

void weir_deliver_batches_flush(weir_deliver_t *d)
{
    if (d->open != NULL) {
        append(&d->ready, d->open);
        d->open = NULL;
    }
    while (d->ready != NULL) {
        batch_t *b = d->ready;
        if (b->outcomes == NULL) {
            prepare(b);
        }
        /* Off the list before the submit: once submitted, a store thread may link b into the
         * committed list through the same field at any moment. */
        d->ready = b->next;
        b->next = NULL;
        int rc = weir_store_submit(d->store, &b->w);
        bool late = d->stopping && weir_mono_ns() >= d->stop_deadline_ns;
        if (rc == WEIR_EBUSY && !late) {
            b->next = d->ready; /* the queue is full: try again on the next turn */
            d->ready = b;
            return;
        }
        if (rc == 0) {
            d->outstanding++;
        } else {
            settle_batch(d, b, rc); /* their deliveries stay pending in the store */
        }
    }
}

void weir_deliver_batches_settle(weir_deliver_t *d)
{
    pthread_mutex_lock(&d->lock);
    batch_t *list = d->committed;
    d->committed = NULL;
    pthread_mutex_unlock(&d->lock);

    while (list != NULL) {
        batch_t *next = list->next;
        d->outstanding--;
        settle_batch(d, list, list->status);
        list = next;
    }
}

bool weir_deliver_batches_idle(const weir_deliver_t *d)
{
    return d->open == NULL && d->ready == NULL && d->outstanding == 0;
}

/* ---- replies --------------------------------------------------------------------------- */

/* Sets the hop count of a reply; false when it passes the limit (a loop, most likely). */
static bool count_hop(weir_deliver_t *d, const job_t *job, weir_event_t *ev)
{
    char hops[16];
    unsigned own = weir_deliver_hops(ev, NULL);
    unsigned h = job->hops + 1 > own ? job->hops + 1 : own;

    if (h > d->cfg.max_hops) {
        WEIR_LOG(WEIR_LOG_WARN, MODULE, job->ns,
                 "reply to delivery %lld of listener %s dropped: it is %u replies deep (limit %u)",
                 (long long)job->id, job->listener, h, d->cfg.max_hops);
        return false;
    }
    snprintf(hops, sizeof(hops), "%u", h);
    weir_ce_set(ev, WEIR_DELIVER_HOPS_ATTR, hops, WEIR_CE_INTEGER, NULL);
    return true;
}

void weir_deliver_replies(weir_deliver_t *d, job_t *job, weir_event_t ***out, size_t *n)
{
    weir_err_t err = {0};
    weir_event_t **evs = NULL;
    size_t count = 0, kept = 0;

    *out = NULL;
    *n = 0;
    if (weir_deliver_job_reply(job, &evs, &count, &err) != 0) {
        WEIR_LOG(WEIR_LOG_WARN, MODULE, job->ns, "reply to delivery %lld ignored: %s%s%s",
                 (long long)job->id, err.attr, err.attr[0] ? ": " : "", err.msg);
        atomic_fetch_add(&d->replies_refused, 1);
        return;
    }
    for (size_t i = 0; i < count; i++) {
        if (count_hop(d, job, evs[i])) {
            evs[kept++] = evs[i];
        } else {
            weir_ce_free(evs[i]);
            atomic_fetch_add(&d->replies_refused, 1);
        }
    }
    atomic_fetch_add(&d->replies_stored, kept);
    *out = evs;
    *n = kept;
}
