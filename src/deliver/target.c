/*
 * target.c: the target of every listener (its sink and delivery spec), how many of its
 * deliveries are in flight, and the engine's metrics. The http module sets and removes
 * targets from its threads; the engine's thread reads them, under one lock.
 */
#include <string.h>

#include "deliver/engine.h"

enum { C_DELIVERED, C_RETRIED, C_DEAD_LETTERED, C_FAILED, C_DISCARDED, C_COUNT };

static const char *const count_names[C_COUNT] = {"delivered", "retried", "dead_lettered", "failed",
                                                 "discarded"};

struct target {
    target_t *next;
    char *listener;
    char *ns;
    weir_deliver_spec_t spec;
    size_t in_flight;
    uint64_t counts[C_COUNT];
    /* Due deliveries were left for lack of room: the engine drains them by listener, from
     * after (drain_due, drain_id), so that the scan of every due delivery need not pass them
     * again and again. */
    bool backlog;
    int64_t drain_due;
    int64_t drain_id;
};

static size_t bucket_of(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    }
    return (size_t)(h % TARGET_BUCKETS);
}

/* The target of listener; called with targets_lock held. */
static target_t *find(weir_deliver_t *d, const char *listener)
{
    for (target_t *t = d->targets[bucket_of(listener)]; t != NULL; t = t->next) {
        if (strcmp(t->listener, listener) == 0) {
            return t;
        }
    }
    return NULL;
}

static void spec_copy(weir_deliver_spec_t *to, const weir_deliver_spec_t *from)
{
    *to = *from;
    to->sink = weir_strdup(from->sink);
    to->dead_letter_sink = from->dead_letter_sink ? weir_strdup(from->dead_letter_sink) : NULL;
}

static void target_free(target_t *t)
{
    weir_deliver_spec_clear(&t->spec);
    weir_free(t->listener);
    weir_free(t->ns);
    weir_free(t);
}

void weir_deliver_targets_init(weir_deliver_t *d)
{
    pthread_mutex_init(&d->targets_lock, NULL);
}

void weir_deliver_targets_free(weir_deliver_t *d)
{
    for (size_t i = 0; i < TARGET_BUCKETS; i++) {
        while (d->targets[i] != NULL) {
            target_t *t = d->targets[i];
            d->targets[i] = t->next;
            target_free(t);
        }
    }
    pthread_mutex_destroy(&d->targets_lock);
}

void weir_deliver_target_set(weir_deliver_t *d, const char *listener, const char *ns,
                             const weir_deliver_spec_t *spec)
{
    pthread_mutex_lock(&d->targets_lock);
    target_t *t = find(d, listener);
    if (t == NULL) {
        t = weir_calloc(1, sizeof(*t));
        t->listener = weir_strdup(listener);
        t->ns = weir_strdup(ns);
        t->next = d->targets[bucket_of(listener)];
        d->targets[bucket_of(listener)] = t;
        /* Deliveries the engine loaded before it knew the target wait (a restart's, or an
         * event's matched between the listener's commit and this call): drain them now. */
        t->backlog = true;
        t->drain_due = INT64_MIN;
        t->drain_id = 0;
    } else {
        weir_deliver_spec_clear(&t->spec);
    }
    spec_copy(&t->spec, spec);
    pthread_mutex_unlock(&d->targets_lock);
    if (d->multi != NULL) {
        curl_multi_wakeup(d->multi);
    }
}

void weir_deliver_target_remove(weir_deliver_t *d, const char *listener)
{
    pthread_mutex_lock(&d->targets_lock);
    for (target_t **p = &d->targets[bucket_of(listener)]; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->listener, listener) == 0) {
            target_t *t = *p;
            *p = t->next;
            target_free(t);
            break;
        }
    }
    pthread_mutex_unlock(&d->targets_lock);
}

/*
 * How many more deliveries t may have in flight. Up to max_per_target while the engine has room;
 * once three quarters of max_inflight are taken, a target gets no more than a quarter of
 * max_per_target, so that a few slow or hung targets cannot take every slot and hold up the
 * others until their timeouts. Call with targets_lock held.
 */
static size_t room_of(const weir_deliver_t *d, const target_t *t)
{
    size_t cap = d->cfg.max_per_target;
    size_t fair = cap / 4 > 0 ? cap / 4 : 1;
    if (atomic_load(&d->in_flight) + d->cfg.max_inflight / 4 >= d->cfg.max_inflight) {
        cap = fair;
    }
    return t->in_flight < cap ? cap - t->in_flight : 0;
}

int weir_deliver_target_take(weir_deliver_t *d, const char *listener, weir_deliver_spec_t *spec)
{
    int rc = 0;

    pthread_mutex_lock(&d->targets_lock);
    target_t *t = find(d, listener);
    if (t == NULL) {
        rc = WEIR_ENOTFOUND;
    } else if (room_of(d, t) == 0) {
        rc = WEIR_EBUSY;
        if (!t->backlog) {
            t->backlog = true;
            t->drain_due = INT64_MIN;
            t->drain_id = 0;
        }
    } else {
        t->in_flight++;
        spec_copy(spec, &t->spec);
        atomic_fetch_add(&d->in_flight, 1);
    }
    pthread_mutex_unlock(&d->targets_lock);
    return rc;
}

void weir_deliver_target_give(weir_deliver_t *d, const char *listener)
{
    pthread_mutex_lock(&d->targets_lock);
    target_t *t = find(d, listener);
    if (t != NULL && t->in_flight > 0) {
        t->in_flight--;
    }
    atomic_fetch_sub(&d->in_flight, 1);
    pthread_mutex_unlock(&d->targets_lock);
}

size_t weir_deliver_drains(weir_deliver_t *d, size_t room, drain_t **out)
{
    drain_t *list = NULL;
    size_t n = 0, cap = 0;

    pthread_mutex_lock(&d->targets_lock);
    for (size_t b = 0; b < TARGET_BUCKETS && room > 0; b++) {
        for (target_t *t = d->targets[b]; t != NULL && room > 0; t = t->next) {
            size_t free = room_of(d, t);
            if (!t->backlog || free == 0) {
                continue;
            }
            if (n == cap) {
                cap = cap == 0 ? 8 : cap * 2;
                list = weir_realloc(list, cap * sizeof(*list));
            }
            list[n++] = (drain_t){.listener = weir_strdup(t->listener),
                                  .limit = free < room ? free : room,
                                  .after_due = t->drain_due,
                                  .after_id = t->drain_id};
            room -= list[n - 1].limit;
        }
    }
    pthread_mutex_unlock(&d->targets_lock);
    *out = list;
    return n;
}

void weir_deliver_drained(weir_deliver_t *d, const drain_t *dr, bool more)
{
    pthread_mutex_lock(&d->targets_lock);
    target_t *t = find(d, dr->listener);
    if (t != NULL) {
        t->backlog = more;
        t->drain_due = more ? dr->after_due : INT64_MIN;
        t->drain_id = more ? dr->after_id : 0;
    }
    pthread_mutex_unlock(&d->targets_lock);
}

void weir_deliver_drains_free(drain_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        weir_free(list[i].listener);
    }
    weir_free(list);
}

static int counter_of(const weir_store_outcome_t *o)
{
    switch (o->kind) {
    case WEIR_STORE_DELIVERED:
        return o->dead_letter ? C_DEAD_LETTERED : C_DELIVERED;
    case WEIR_STORE_RETRY:
    case WEIR_STORE_DEAD_LETTER:
        return C_RETRIED;
    case WEIR_STORE_FAILED:
        return C_FAILED;
    default:
        return C_DISCARDED;
    }
}

void weir_deliver_count(weir_deliver_t *d, const job_t *job)
{
    pthread_mutex_lock(&d->targets_lock);
    target_t *t = find(d, job->listener);
    if (t != NULL) {
        t->counts[counter_of(&job->outcome)]++;
    }
    pthread_mutex_unlock(&d->targets_lock);
}

void weir_deliver_observe(weir_deliver_t *d, uint64_t ns)
{
    weir_histogram_observe(&d->latency, ns);
}

/* ---- metrics --------------------------------------------------------------------------- */

static void render_counts(weir_deliver_t *d, weir_buf_t *out)
{
    weir_buf_puts(out, "# HELP weir_deliveries_total Delivery attempts by listener and outcome"
                       " (retried: an attempt failed and another follows).\n"
                       "# TYPE weir_deliveries_total counter\n");
    pthread_mutex_lock(&d->targets_lock);
    for (size_t b = 0; b < TARGET_BUCKETS; b++) {
        for (const target_t *t = d->targets[b]; t != NULL; t = t->next) {
            for (int c = 0; c < C_COUNT; c++) {
                weir_buf_printf(out,
                                "weir_deliveries_total{namespace=\"%s\",listener=\"%s\","
                                "outcome=\"%s\"} %llu\n",
                                t->ns, t->listener, count_names[c],
                                (unsigned long long)t->counts[c]);
            }
        }
    }
    pthread_mutex_unlock(&d->targets_lock);
}

void weir_deliver_render_metrics(weir_deliver_t *d, weir_buf_t *out)
{
    int64_t pending = 0, next = 0;

    render_counts(d, out);
    weir_histogram_render(&d->latency, "weir_delivery_attempt_seconds",
                          "Time of one delivery attempt.", out);
    weir_store_deliveries_pending(d->store, weir_wall_us(), &pending, &next, NULL);
    weir_buf_printf(out,
                    "# HELP weir_delivery_queue_depth Deliveries not finished (pending or in "
                    "flight).\n# TYPE weir_delivery_queue_depth gauge\n"
                    "weir_delivery_queue_depth %lld\n"
                    "# HELP weir_delivery_in_flight Delivery attempts in flight.\n"
                    "# TYPE weir_delivery_in_flight gauge\nweir_delivery_in_flight %zu\n"
                    "# HELP weir_delivery_replies_total Replies of targets, by outcome.\n"
                    "# TYPE weir_delivery_replies_total counter\n"
                    "weir_delivery_replies_total{outcome=\"accepted\"} %llu\n"
                    "weir_delivery_replies_total{outcome=\"refused\"} %llu\n",
                    (long long)pending, atomic_load(&d->in_flight),
                    (unsigned long long)atomic_load(&d->replies_stored),
                    (unsigned long long)atomic_load(&d->replies_refused));
}
