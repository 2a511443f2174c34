/*
 * target.c: the target of every listener (its sink and delivery spec), the room each may take
 * of the engine's slots, and the engine's metrics. The http module sets and removes targets
 * from its threads; the engine's thread reads them, under one lock.
 *
 * Room. A slot held by a target that never answers is held until the attempt's timeout (up to
 * an hour), so the engine must not let such targets take the slots that answering ones need:
 *
 * - A target that answers (its last finished attempt got an HTTP answer, of any status, and
 *   its attempts in flight have not all gone without one for stall_us) takes up to
 *   max_per_target; a quarter of that once three quarters of the slots are taken.
 * - A target never tried since the engine started sends one attempt to learn which it is.
 * - A stalled target (its last attempt got no answer, or its attempts have been in flight for
 *   stall_us without one) takes only from a share of max_stalled slots that all stalled
 *   targets split, at most an eighth of it each.
 *
 * So however many targets hang, those that answer keep max_inflight - max_stalled slots, less
 * one first attempt per target never tried and what a target had taken while it still answered.
 * The sink and the dead-letter sink of a listener are judged apart. With max_per_host, the
 * attempts to one scheme://host:port, whichever listeners they serve, are capped as well.
 */
#include <string.h>

#include "deliver/engine.h"

enum { C_DELIVERED, C_RETRIED, C_DEAD_LETTERED, C_FAILED, C_DISCARDED, C_COUNT };

static const char *const count_names[C_COUNT] = {"delivered", "retried", "dead_lettered", "failed",
                                                 "discarded"};

/* How one URL of a target (its sink or its dead-letter sink) has been answering. */
typedef struct trust {
    bool tried;           /* an attempt to it finished since the engine started */
    bool answered;        /* the last one that finished got an HTTP answer */
    size_t in_flight;     /* attempts to it in flight */
    size_t pooled;        /* of them, taken from the stalled share */
    uint64_t progress_ns; /* its last answer, or when its attempts in flight began */
} trust_t;

typedef enum standing { S_NEW, S_ANSWERING, S_STALLED } standing_t;

struct target {
    target_t *next;
    char *listener;
    char *ns;
    weir_deliver_spec_t spec;
    size_t in_flight;
    trust_t trust[2]; /* [0] the sink, [1] the dead-letter sink */
    uint64_t counts[C_COUNT];
    /* Due deliveries were left for lack of room: the engine drains them by listener, from
     * after (drain_due, drain_id), so that the scan of every due delivery need not pass them
     * again and again. */
    bool backlog;
    int64_t drain_due;
    int64_t drain_id;
};

/* Attempts in flight to one scheme://host:port (kept only while there are some). */
typedef struct host {
    struct host *next;
    char *key;
    size_t in_flight;
} host_t;

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    }
    return h;
}

static size_t bucket_of(const char *s)
{
    return (size_t)(hash(s, strlen(s)) % TARGET_BUCKETS);
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

/* ---- hosts ----------------------------------------------------------------------------- */

/* The length of url's scheme://authority, the key of its host (the spec checked the form). */
static size_t host_len(const char *url)
{
    const char *authority = strstr(url, "://");
    authority = authority != NULL ? authority + 3 : url;
    return (size_t)(authority - url) + strcspn(authority, "/?#");
}

/* The host entry of url; created when missing and create is set. Called with the lock held. */
static host_t *host_of(weir_deliver_t *d, const char *url, bool create)
{
    size_t n = host_len(url);
    host_t **head = &d->hosts[hash(url, n) % TARGET_BUCKETS];
    for (host_t *h = *head; h != NULL; h = h->next) {
        if (strlen(h->key) == n && memcmp(h->key, url, n) == 0) {
            return h;
        }
    }
    if (!create) {
        return NULL;
    }
    host_t *h = weir_calloc(1, sizeof(*h));
    h->key = weir_strndup(url, n);
    h->next = *head;
    *head = h;
    return h;
}

static void host_give(weir_deliver_t *d, const char *url)
{
    host_t *h = host_of(d, url, false);
    if (h == NULL || --h->in_flight > 0) {
        return;
    }
    host_t **p = &d->hosts[hash(h->key, strlen(h->key)) % TARGET_BUCKETS];
    while (*p != h) {
        p = &(*p)->next;
    }
    *p = h->next;
    weir_free(h->key);
    weir_free(h);
}

static bool host_full(weir_deliver_t *d, const char *url)
{
    if (d->cfg.max_per_host == 0) {
        return false;
    }
    const host_t *h = host_of(d, url, false);
    return h != NULL && h->in_flight >= d->cfg.max_per_host;
}

/* ---- targets --------------------------------------------------------------------------- */

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
        while (d->hosts[i] != NULL) {
            host_t *h = d->hosts[i];
            d->hosts[i] = h->next;
            weir_free(h->key);
            weir_free(h);
        }
    }
    pthread_mutex_destroy(&d->targets_lock);
}

static bool same_url(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* A URL that changed is a target never tried; its attempts in flight still count. */
static void spec_replace(target_t *t, const weir_deliver_spec_t *spec)
{
    if (!same_url(t->spec.sink, spec->sink)) {
        t->trust[0].tried = false;
    }
    if (!same_url(t->spec.dead_letter_sink, spec->dead_letter_sink)) {
        t->trust[1].tried = false;
    }
    weir_deliver_spec_clear(&t->spec);
    spec_copy(&t->spec, spec);
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
        spec_copy(&t->spec, spec);
        /* Deliveries the engine loaded before it knew the target wait (a restart's, or an
         * event's matched between the listener's commit and this call): drain them now. */
        t->backlog = true;
        t->drain_due = INT64_MIN;
        t->drain_id = 0;
    } else {
        spec_replace(t, spec);
    }
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

/* ---- room ------------------------------------------------------------------------------ */

static standing_t standing_of(const weir_deliver_t *d, const trust_t *u, uint64_t now_ns)
{
    bool quiet = u->in_flight > 0 && now_ns - u->progress_ns >= d->stall_ns;
    if (quiet || (u->tried && !u->answered)) {
        return S_STALLED;
    }
    return u->tried ? S_ANSWERING : S_NEW;
}

/* What one stalled target may hold of the stalled share. */
static size_t stalled_each(const weir_deliver_t *d)
{
    return d->cfg.max_stalled / 8 > 0 ? d->cfg.max_stalled / 8 : 1;
}

/* How many more attempts t may start to its URL of phase dl (see the top of the file). Call
 * with targets_lock held. */
static size_t room_of(const weir_deliver_t *d, const target_t *t, int dl, uint64_t now_ns)
{
    const trust_t *u = &t->trust[dl];
    size_t cap = d->cfg.max_per_target;
    if (d->in_flight + d->cfg.max_inflight / 4 >= d->cfg.max_inflight) {
        cap = cap / 4 > 0 ? cap / 4 : 1;
    }
    size_t room = t->in_flight < cap ? cap - t->in_flight : 0;

    switch (standing_of(d, u, now_ns)) {
    case S_NEW:
        return u->in_flight == 0 && room > 0 ? 1 : 0;
    case S_STALLED: {
        size_t share = d->pooled < d->cfg.max_stalled ? d->cfg.max_stalled - d->pooled : 0;
        size_t own = u->pooled < stalled_each(d) ? stalled_each(d) - u->pooled : 0;
        share = share < own ? share : own;
        return share < room ? share : room;
    }
    default:
        return room;
    }
}

/* Which URL of t a delivery goes to: the dead-letter sink only while there is one. */
static int phase_of(const target_t *t, bool dead_letter)
{
    return dead_letter && t->spec.dead_letter_sink != NULL ? 1 : 0;
}

static void note_backlog(target_t *t)
{
    if (!t->backlog) {
        t->backlog = true;
        t->drain_due = INT64_MIN;
        t->drain_id = 0;
    }
}

/* Counts a job in flight; called with the lock held. */
static void count_in(weir_deliver_t *d, target_t *t, job_t *job, uint64_t now_ns)
{
    trust_t *u = &t->trust[job->dead_letter];
    job->pooled = standing_of(d, u, now_ns) == S_STALLED;
    if (u->in_flight++ == 0) {
        u->progress_ns = now_ns; /* the stall clock starts with the first attempt in flight */
    }
    u->pooled += job->pooled;
    d->pooled += job->pooled;
    t->in_flight++;
    d->in_flight++;
    host_of(d, job->url, true)->in_flight++;
}

int weir_deliver_target_take(weir_deliver_t *d, job_t *job)
{
    uint64_t now = weir_mono_ns();
    int rc = 0;

    pthread_mutex_lock(&d->targets_lock);
    target_t *t = find(d, job->listener);
    if (t == NULL) {
        pthread_mutex_unlock(&d->targets_lock);
        return WEIR_ENOTFOUND;
    }
    int dl = phase_of(t, job->dead_letter);
    const char *url = dl ? t->spec.dead_letter_sink : t->spec.sink;
    if (room_of(d, t, dl, now) == 0 || host_full(d, url)) {
        note_backlog(t);
        rc = WEIR_EBUSY;
    } else {
        spec_copy(&job->spec, &t->spec);
        job->dead_letter = dl == 1;
        job->url = dl ? job->spec.dead_letter_sink : job->spec.sink;
        count_in(d, t, job, now);
    }
    pthread_mutex_unlock(&d->targets_lock);
    return rc;
}

/* A count less one; a target set again after its removal starts from zero while attempts
 * taken before still come back. */
static void drop_one(size_t *n, bool one)
{
    *n -= one && *n > 0 ? 1 : 0;
}

void weir_deliver_target_give(weir_deliver_t *d, const job_t *job, weir_deliver_heard_t heard)
{
    pthread_mutex_lock(&d->targets_lock);
    target_t *t = find(d, job->listener);
    if (t != NULL) {
        trust_t *u = &t->trust[job->dead_letter];
        drop_one(&u->in_flight, true);
        drop_one(&u->pooled, job->pooled);
        drop_one(&t->in_flight, true);
        if (heard != WEIR_HEARD_NOTHING_SENT) {
            u->tried = true;
            u->answered = heard == WEIR_HEARD_ANSWER;
            u->progress_ns = u->answered ? weir_mono_ns() : u->progress_ns;
        }
    }
    d->pooled -= job->pooled;
    d->in_flight--;
    host_give(d, job->url);
    pthread_mutex_unlock(&d->targets_lock);
}

size_t weir_deliver_drains(weir_deliver_t *d, size_t room, drain_t **out)
{
    drain_t *list = NULL;
    size_t n = 0, cap = 0;
    uint64_t now = weir_mono_ns();

    pthread_mutex_lock(&d->targets_lock);
    for (size_t b = 0; b < TARGET_BUCKETS && room > 0; b++) {
        for (target_t *t = d->targets[b]; t != NULL && room > 0; t = t->next) {
            size_t free = t->backlog ? room_of(d, t, 0, now) : 0;
            if (t->backlog && t->spec.dead_letter_sink != NULL) {
                size_t dl = room_of(d, t, 1, now);
                free = dl > free ? dl : free;
            }
            if (free == 0) {
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
    int64_t pending = 0;
    uint64_t dropped = 0;

    render_counts(d, out);
    pthread_mutex_lock(&d->targets_lock);
    size_t pooled = d->pooled;
    pthread_mutex_unlock(&d->targets_lock);
    weir_buf_printf(out,
                    "# HELP weir_delivery_stalled_in_flight Delivery attempts in flight to targets"
                    " that stopped answering (at most --delivery-stalled-inflight).\n"
                    "# TYPE weir_delivery_stalled_in_flight gauge\n"
                    "weir_delivery_stalled_in_flight %zu\n",
                    pooled);
    weir_histogram_render(&d->latency, "weir_delivery_attempt_seconds",
                          "Time of one delivery attempt.", out);
    weir_store_deliveries_stats(d->store, &pending, &dropped);
    weir_buf_printf(out,
                    "# HELP weir_delivery_queue_depth Deliveries not finished (pending or in "
                    "flight).\n# TYPE weir_delivery_queue_depth gauge\n"
                    "weir_delivery_queue_depth %lld\n"
                    "# HELP weir_delivery_dropped_total Pending deliveries given up because more"
                    " than --delivery-pending-max were pending.\n"
                    "# TYPE weir_delivery_dropped_total counter\n"
                    "weir_delivery_dropped_total %llu\n"
                    "# HELP weir_delivery_in_flight Delivery attempts in flight.\n"
                    "# TYPE weir_delivery_in_flight gauge\nweir_delivery_in_flight %zu\n"
                    "# HELP weir_delivery_replies_total Replies of targets, by outcome.\n"
                    "# TYPE weir_delivery_replies_total counter\n"
                    "weir_delivery_replies_total{outcome=\"accepted\"} %llu\n"
                    "weir_delivery_replies_total{outcome=\"refused\"} %llu\n",
                    (long long)pending, (unsigned long long)dropped, atomic_load(&d->in_flight),
                    (unsigned long long)atomic_load(&d->replies_stored),
                    (unsigned long long)atomic_load(&d->replies_refused));
}
