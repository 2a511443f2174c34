/*
 * engine.c: the delivery engine: one thread, one curl multi handle. It loads due deliveries
 * from the store (new ones by id after each commit; retries and backlog by due time), starts
 * at most max_inflight of them (max_per_target to one listener, so that a slow or dead target
 * never holds the slots the others need), and writes each outcome back through the store
 * writer in batches. A delivery stays in the engine's table from its load until its outcome is
 * committed, so that no scan starts it twice.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver/engine.h"

#define MODULE           "deliver"
#define PAGE             256
#define SWEEP_US         1000000 /* a full scan of due deliveries at least this often */
#define SWEEP_PAGES      4       /* pages one turn of a scan reads at most */
#define BUSY_RETRY_MS    10
#define STOPPING_POLL_MS 20
#define REASON_MAX       256 /* longest reason of a failed attempt in a log line */

/* ---- the job table: open addressing by delivery id ------------------------------------- */

static size_t slot_of(const weir_deliver_t *d, int64_t id)
{
    return (size_t)((uint64_t)id * 0x9E3779B97F4A7C15ULL) & (d->table_size - 1);
}

job_t *weir_deliver_find(const weir_deliver_t *d, int64_t id)
{
    for (size_t i = slot_of(d, id);; i = (i + 1) & (d->table_size - 1)) {
        if (d->table[i] == NULL || d->table[i]->id == id) {
            return d->table[i];
        }
    }
}

static void table_put(weir_deliver_t *d, job_t *job)
{
    size_t i = slot_of(d, job->id);
    while (d->table[i] != NULL) {
        i = (i + 1) & (d->table_size - 1);
    }
    d->table[i] = job;
    d->njobs++;
}

/* Removes job, shifting later entries of its run back so that lookups still find them. */
static void table_remove(weir_deliver_t *d, const job_t *job)
{
    size_t mask = d->table_size - 1;
    size_t i = slot_of(d, job->id);
    while (d->table[i] != job) {
        i = (i + 1) & mask;
    }
    d->table[i] = NULL;
    for (size_t j = (i + 1) & mask; d->table[j] != NULL; j = (j + 1) & mask) {
        size_t home = slot_of(d, d->table[j]->id);
        bool movable = ((j - home) & mask) >= ((j - i) & mask);
        if (movable) {
            d->table[i] = d->table[j];
            d->table[j] = NULL;
            i = j;
        }
    }
    d->njobs--;
}

static size_t free_slots(const weir_deliver_t *d)
{
    return d->njobs < d->cfg.max_inflight ? d->cfg.max_inflight - d->njobs : 0;
}

static void job_free(job_t *job)
{
    weir_deliver_job_release(job);
    weir_ce_free(job->ev);
    weir_deliver_spec_clear(&job->spec);
    weir_free(job->listener);
    weir_free(job->ns);
    weir_free(job->last_error);
    weir_free(job);
}

/* ---- starting deliveries --------------------------------------------------------------- */

/* Builds what a delivery sends; NULL when its event (or set) is gone or unreadable. */
static weir_event_t *build_event(const weir_store_delivery_t *row)
{
    weir_event_t *ev = NULL;
    if (row->payload == NULL) {
        return NULL;
    }
    if (row->combined) {
        return weir_deliver_and_event(row->ns, row->listener, row->id, row->created_us,
                                      row->payload);
    }
    weir_ce_decode_stored(row->payload, strlen(row->payload), &ev, NULL);
    return ev;
}

static job_t *job_new(const weir_store_delivery_t *row)
{
    job_t *job = weir_calloc(1, sizeof(*job));
    job->id = row->id;
    job->listener = weir_strdup(row->listener);
    job->ns = weir_strdup(row->ns);
    job->dead_letter = row->dead_letter;
    job->attempts = row->attempts;
    job->created_us = row->created_us;
    return job;
}

/* Settles a job without sending it: its listener or its event is gone. */
static void discard(weir_deliver_t *d, job_t *job, const char *why)
{
    WEIR_LOG(WEIR_LOG_WARN, MODULE, job->ns, "delivery %lld of listener %s discarded: %s",
             (long long)job->id, job->listener, why);
    job->outcome = (weir_store_outcome_t){.delivery = job->id, .kind = WEIR_STORE_DISCARDED};
    table_put(d, job);
    weir_deliver_batch_add(d, job, NULL, 0);
}

static bool send_job(weir_deliver_t *d, job_t *job, const weir_store_delivery_t *row)
{
    job->hops = weir_deliver_hops(job->ev, row->combined ? row->payload : NULL);
    if (job->dead_letter) {
        weir_deliver_dead_letter_mark(job->ev, job->spec.sink, row->error_status, row->error_data);
    }
    if (!weir_deliver_job_request(job, d->cfg.max_reply) ||
        curl_multi_add_handle(d->multi, job->easy) != CURLM_OK) {
        weir_error(MODULE, "cannot start a request to %s", job->url);
        return false;
    }
    job->start_ns = weir_mono_ns();
    job->in_flight = true;
    table_put(d, job);
    return true;
}

/*
 * Starts one loaded delivery, unless its target is saturated (then the target notes its
 * backlog, and load_drains comes back for the delivery) or not known yet: a listener's target
 * is set just after the listener is stored, and at start after the engine's first load, and
 * setting it drains what waits. A deleted listener's deliveries are deleted with it.
 */
static void start(weir_deliver_t *d, const weir_store_delivery_t *row)
{
    job_t *job = job_new(row);
    int rc = weir_deliver_target_take(d, job); /* a dead-letter sink taken away: the target */
    if (rc != 0) {
        job_free(job);
        return;
    }
    job->ev = build_event(row);
    if (job->ev == NULL) {
        weir_deliver_target_give(d, job, WEIR_HEARD_NOTHING_SENT);
        discard(d, job, "its event is gone");
        return;
    }
    if (!send_job(d, job, row)) {
        weir_deliver_target_give(d, job, WEIR_HEARD_NOTHING_SENT);
        job_free(job);
        d->backlog = true;
    }
}

/* Considers one row of a scan. */
static void consider(weir_deliver_t *d, const weir_store_delivery_t *row, int64_t now_us)
{
    if (weir_deliver_find(d, row->id) != NULL) {
        return;
    }
    if (row->due_us > now_us) {
        d->next_due_us = row->due_us < d->next_due_us ? row->due_us : d->next_due_us;
        return;
    }
    start(d, row);
}

/*
 * New deliveries, by id, from where the last such scan stopped. One turn reads at most
 * SWEEP_PAGES pages: rows of a saturated or unknown target take no slot, so a backlog of them
 * could otherwise keep the thread in one scan while requests in flight wait.
 */
static void load_new(weir_deliver_t *d, int64_t now_us)
{
    for (int page = 0; page < SWEEP_PAGES && free_slots(d) > 0; page++) {
        weir_store_delivery_t *rows = NULL;
        size_t n = 0;
        d->read_failed =
            weir_store_deliveries_new(d->store, d->max_seen, PAGE, &rows, &n, NULL) != 0;
        if (d->read_failed) {
            d->more_new = true; /* the next turn tries again, after a pause */
            return;
        }
        size_t i = 0;
        for (; i < n && free_slots(d) > 0; i++) {
            consider(d, &rows[i], now_us);
            d->max_seen = rows[i].id;
        }
        weir_store_deliveries_free(rows, n);
        d->more_new = i < n || n == PAGE;
        if (!d->more_new) {
            return;
        }
    }
}

/*
 * The due deliveries of listeners that had no room for them when they were found: each drain
 * reads only its listener's rows (by index) from where the last one stopped, so that a target
 * with a large backlog costs what it sends, not a pass over everything pending.
 */
static void load_drains(weir_deliver_t *d, int64_t now_us)
{
    drain_t *list = NULL;
    size_t n = weir_deliver_drains(d, free_slots(d), &list);

    for (size_t i = 0; i < n; i++) {
        drain_t *dr = &list[i];
        weir_store_delivery_t *rows = NULL;
        size_t got = 0;
        if (weir_store_deliveries_due(d->store, dr->listener, now_us, dr->after_due, dr->after_id,
                                      dr->limit, &rows, &got, NULL) != 0) {
            continue; /* it stays in backlog: the next turn tries again */
        }
        for (size_t j = 0; j < got; j++) {
            consider(d, &rows[j], now_us);
            dr->after_due = rows[j].due_us;
            dr->after_id = rows[j].id;
        }
        weir_store_deliveries_free(rows, got);
        weir_deliver_drained(d, dr, got == dr->limit);
    }
    weir_deliver_drains_free(list, n);
}

/*
 * The sweep: every due delivery, oldest due first: retries, and whatever no other load found.
 * One turn reads at most SWEEP_PAGES pages; a longer sweep goes on at the next turn from its
 * cursor, so that in-flight requests are never kept waiting behind a long scan.
 */
static void load_due(weir_deliver_t *d, int64_t now_us)
{
    if (!d->sweeping) {
        d->sweeping = true;
        d->sweep_due = INT64_MIN;
        d->sweep_id = 0;
        d->backlog = false;
        d->next_due_us = INT64_MAX; /* consider() and the end of the sweep set it again */
    }
    for (int page = 0; page < SWEEP_PAGES; page++) {
        weir_store_delivery_t *rows = NULL;
        size_t n = 0, i = 0;
        if (free_slots(d) == 0 ||
            weir_store_deliveries_due(d->store, NULL, now_us, d->sweep_due, d->sweep_id, PAGE,
                                      &rows, &n, NULL) != 0) {
            return;
        }
        for (; i < n && free_slots(d) > 0; i++) {
            consider(d, &rows[i], now_us);
            d->sweep_due = rows[i].due_us;
            d->sweep_id = rows[i].id;
        }
        weir_store_deliveries_free(rows, n);
        if (i == n && n < PAGE) {
            int64_t next = INT64_MAX;
            weir_store_deliveries_pending(d->store, now_us, NULL, &next, NULL);
            d->next_due_us = next < d->next_due_us ? next : d->next_due_us;
            d->next_sweep_us = now_us + SWEEP_US;
            d->sweeping = false;
            return;
        }
    }
}

static void load(weir_deliver_t *d)
{
    int64_t now = weir_wall_us();
    bool woken = atomic_exchange(&d->woken, false);

    if ((woken || d->more_new) && free_slots(d) > 0) {
        load_new(d, now);
    }
    if (free_slots(d) > 0) {
        load_drains(d, now);
    }
    bool due = d->sweeping || d->backlog || now >= d->next_due_us || now >= d->next_sweep_us;
    if (due && free_slots(d) > 0) {
        load_due(d, now);
    }
}

/* ---- finished attempts ----------------------------------------------------------------- */

/*
 * Why an attempt failed, for the log: "answered 503", or for an attempt that got no answer
 * (refused, reset, timed out, TLS) curl's reason, cut short and reduced to printable ASCII, as
 * it may quote what the far end sent.
 */
static void failure_reason(const job_t *job, long status, char *out, size_t size)
{
    if (status != 0 || job->last_error == NULL) {
        snprintf(out, size, "answered %ld", status);
        return;
    }
    size_t n = (size_t)snprintf(out, size, "did not answer: ");
    for (const char *p = job->last_error; *p != '\0' && n + 1 < size; p++) {
        unsigned char c = (unsigned char)*p;
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[n] = '\0';
}

static void log_final(const job_t *job, long status)
{
    const weir_store_outcome_t *o = &job->outcome;
    char reason[REASON_MAX];

    if (o->kind != WEIR_STORE_DEAD_LETTER && o->kind != WEIR_STORE_FAILED) {
        return;
    }
    failure_reason(job, status, reason, sizeof(reason));
    if (o->kind == WEIR_STORE_DEAD_LETTER) {
        WEIR_LOG(WEIR_LOG_WARN, MODULE, job->ns,
                 "delivery %lld of listener %s goes to the dead-letter sink after %u attempts:"
                 " %s %s",
                 (long long)job->id, job->listener, job->attempts + 1, job->url, reason);
    } else {
        WEIR_LOG(WEIR_LOG_WARN, MODULE, job->ns,
                 "delivery %lld of listener %s failed after %u attempts: %s %s", (long long)job->id,
                 job->listener, job->attempts + 1, job->url, reason);
    }
}

/* Decides what follows an attempt and fills job->outcome. */
static void decide(job_t *job, long status, CURLcode result)
{
    int64_t now = weir_wall_us();
    int64_t retry_after =
        weir_deliver_retry_after_us(weir_deliver_job_header(job, "Retry-After"), now);
    int64_t due = now;
    unsigned attempts = job->attempts + 1;

    weir_store_outcome_kind_t kind =
        weir_deliver_decide(&job->spec, job->dead_letter, attempts, status, retry_after, now, &due);
    job->last_error =
        kind == WEIR_STORE_DELIVERED ? NULL : weir_deliver_job_error_text(job, result);
    job->outcome = (weir_store_outcome_t){.delivery = job->id,
                                          .kind = kind,
                                          .dead_letter = job->dead_letter,
                                          .attempts = attempts,
                                          .due_us = due,
                                          .last_status = (int)status,
                                          .last_error = job->last_error};
    log_final(job, status);
}

/*
 * The system event of a delivery that ended at its dead-letter sink or was given up, added to
 * what enters the namespace with its outcome. It counts one hop more than the event delivered,
 * so that a listener of these events whose own target fails cannot feed itself for ever.
 */
static void add_system_event(weir_deliver_t *d, const job_t *job, weir_event_t ***evs, size_t *n)
{
    const weir_store_outcome_t *o = &job->outcome;
    bool dead = o->kind == WEIR_STORE_DELIVERED && job->dead_letter;
    if (!d->cfg.system_events || (!dead && o->kind != WEIR_STORE_FAILED)) {
        return;
    }
    if (job->hops + 1 > d->cfg.max_hops) {
        return;
    }
    const char *id = weir_ce_get(job->ev, "id");
    weir_buf_t data = WEIR_BUF_INIT;
    weir_buf_puts(&data, "{\"namespace\":");
    weir_buf_json_str(&data, job->ns, strlen(job->ns));
    weir_buf_puts(&data, ",\"listener\":");
    weir_buf_json_str(&data, job->listener, strlen(job->listener));
    weir_buf_printf(&data, ",\"delivery\":%lld,\"target\":", (long long)job->id);
    weir_buf_json_str(&data, job->spec.sink, strlen(job->spec.sink));
    if (job->spec.dead_letter_sink != NULL) {
        weir_buf_puts(&data, ",\"deadLetterSink\":");
        weir_buf_json_str(&data, job->spec.dead_letter_sink, strlen(job->spec.dead_letter_sink));
    }
    /* Dead-lettered: the answer that matters is the target's, which the event carries (the
     * dead-letter sink's own was a 2xx). */
    const char *code = dead ? weir_ce_get(job->ev, "knativeerrorcode") : NULL;
    int status = code != NULL ? atoi(code) : o->last_status;
    weir_buf_printf(&data, ",\"status\":%d,\"attempts\":%u,\"eventId\":", status, o->attempts);
    weir_buf_json_str(&data, id, strlen(id));
    weir_buf_putc(&data, '}');

    weir_event_t *ev =
        weir_system_event(job->ns, dead ? WEIR_SYSTEM_DELIVERY_DEAD : WEIR_SYSTEM_DELIVERY_FAILED,
                          job->listener, data.data);
    weir_buf_free(&data);
    if (ev == NULL) {
        return;
    }
    char hops[16];
    snprintf(hops, sizeof(hops), "%u", job->hops + 1);
    weir_ce_set(ev, WEIR_DELIVER_HOPS_ATTR, hops, WEIR_CE_INTEGER, NULL);
    *evs = weir_realloc(*evs, (*n + 1) * sizeof(**evs));
    (*evs)[(*n)++] = ev;
}

static void finish(weir_deliver_t *d, job_t *job, CURLcode result)
{
    long status = 0;
    if (result == CURLE_OK) {
        curl_easy_getinfo(job->easy, CURLINFO_RESPONSE_CODE, &status);
    }
    weir_deliver_observe(d, weir_mono_ns() - job->start_ns);
    curl_multi_remove_handle(d->multi, job->easy);
    job->in_flight = false;
    weir_deliver_target_give(d, job, status != 0 ? WEIR_HEARD_ANSWER : WEIR_HEARD_SILENCE);
    decide(job, status, result);

    weir_event_t **replies = NULL;
    size_t n = 0;
    if (job->outcome.kind == WEIR_STORE_DELIVERED && status == 200 && !job->dead_letter) {
        weir_deliver_replies(d, job, &replies, &n);
    }
    add_system_event(d, job, &replies, &n);
    weir_deliver_job_release(job);
    weir_deliver_batch_add(d, job, replies, n);
}

static void reap(weir_deliver_t *d)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            job_t *job = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&job);
            finish(d, job, msg->data.result);
        }
    }
}

/* ---- settling -------------------------------------------------------------------------- */

/* A job whose outcome committed (status 0) or did not (it stays pending, to be sent again). */
void weir_deliver_settle(weir_deliver_t *d, job_t *job, int status)
{
    if (status == 0) {
        weir_deliver_count(d, job);
        if (job->outcome.kind == WEIR_STORE_RETRY) {
            int64_t due = job->outcome.due_us;
            d->next_due_us = due < d->next_due_us ? due : d->next_due_us;
        } else if (job->outcome.kind == WEIR_STORE_DEAD_LETTER) {
            d->backlog = true;
        }
    } else {
        d->backlog = true;
    }
    table_remove(d, job);
    job_free(job);
}

/* ---- the thread ------------------------------------------------------------------------ */

/* Abandons the requests still in flight: their deliveries stay pending in the store. */
static void abandon(weir_deliver_t *d)
{
    for (size_t i = 0; i < d->table_size; i++) {
        job_t *job = d->table[i];
        if (job != NULL && job->in_flight) {
            curl_multi_remove_handle(d->multi, job->easy);
            weir_deliver_target_give(d, job, WEIR_HEARD_NOTHING_SENT);
            table_remove(d, job);
            job_free(job);
            i = (size_t)-1; /* the table shifted: start over */
        }
    }
}

static int poll_timeout_ms(const weir_deliver_t *d)
{
    if (d->stopping || atomic_load(&d->woken)) {
        return atomic_load(&d->woken) ? 0 : STOPPING_POLL_MS;
    }
    if (d->ready != NULL || d->read_failed) {
        return BUSY_RETRY_MS;
    }
    if ((d->sweeping || d->more_new) && free_slots(d) > 0) {
        return 0; /* a scan goes on at the next turn */
    }
    int64_t now = weir_wall_us();
    int64_t next = d->next_due_us < d->next_sweep_us ? d->next_due_us : d->next_sweep_us;
    int64_t ms = next > now ? (next - now + 999) / 1000 : 0;
    return ms > 1000 ? 1000 : (int)ms;
}

/* While stopping: true once everything in flight ended and every outcome is committed. */
static bool drained(weir_deliver_t *d)
{
    if (weir_mono_ns() >= d->stop_deadline_ns) {
        abandon(d);
    }
    return d->njobs == 0 && weir_deliver_batches_idle(d);
}

static void *engine_main(void *arg)
{
    weir_deliver_t *d = arg;
    int running = 0;

    for (;;) {
        weir_deliver_batches_settle(d);
        d->stopping = atomic_load(&d->stop);
        if (!d->stopping) {
            load(d);
        }
        curl_multi_perform(d->multi, &running);
        reap(d);
        weir_deliver_batches_flush(d);
        if (d->stopping && drained(d)) {
            break;
        }
        curl_multi_poll(d->multi, NULL, 0, poll_timeout_ms(d), NULL);
    }
    return NULL;
}

/* ---- starting and stopping ------------------------------------------------------------- */

void weir_deliver_config_default(weir_deliver_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->max_inflight = 512;
    cfg->max_per_target = 128;
    cfg->max_per_host = 0;
    cfg->max_stalled = 0; /* a quarter of max_inflight */
    cfg->stall_us = 5000000;
    cfg->max_hops = WEIR_DELIVER_HOPS_MAX;
    cfg->max_reply = 1024 * 1024;
    cfg->system_events = true;
}

static void on_commit(void *arg)
{
    weir_deliver_t *d = arg;
    atomic_store(&d->woken, true);
    curl_multi_wakeup(d->multi);
}

static weir_deliver_t *engine_new(weir_store_t *store, const weir_deliver_config_t *cfg)
{
    weir_deliver_t *d = weir_calloc(1, sizeof(*d));
    d->store = store;
    d->cfg = *cfg;
    d->cfg.max_inflight = cfg->max_inflight > 0 ? cfg->max_inflight : 512;
    d->cfg.max_per_target = cfg->max_per_target > 0 ? cfg->max_per_target : 128;
    if (d->cfg.max_stalled == 0 || d->cfg.max_stalled >= d->cfg.max_inflight) {
        d->cfg.max_stalled = d->cfg.max_inflight / 4 > 0 ? d->cfg.max_inflight / 4 : 1;
    }
    d->stall_ns = (uint64_t)(cfg->stall_us > 0 ? cfg->stall_us : 5000000) * 1000u;
    d->table_size = 16;
    while (d->table_size < 2 * d->cfg.max_inflight) {
        d->table_size *= 2;
    }
    d->table = weir_calloc(d->table_size, sizeof(*d->table));
    d->next_due_us = INT64_MAX;
    d->next_sweep_us = 0;
    atomic_init(&d->woken, true); /* the first turn loads what a restart left pending */
    atomic_init(&d->stop, false);
    weir_deliver_targets_init(d);
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

static void engine_free(weir_deliver_t *d)
{
    if (d->multi != NULL) {
        curl_multi_cleanup(d->multi);
    }
    weir_deliver_targets_free(d);
    pthread_mutex_destroy(&d->lock);
    weir_free(d->table);
    weir_free(d);
}

int weir_deliver_start(weir_store_t *store, const weir_deliver_config_t *cfg, weir_deliver_t **out,
                       weir_err_t *err)
{
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return weir_err_set(err, WEIR_EIO, NULL, "cannot initialise libcurl");
    }
    weir_deliver_t *d = engine_new(store, cfg);
    d->multi = curl_multi_init();
    if (d->multi == NULL) {
        engine_free(d);
        return weir_err_set(err, WEIR_EIO, NULL, "cannot create a curl multi handle");
    }
    curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)d->cfg.max_inflight);
    if (pthread_create(&d->thread, NULL, engine_main, d) != 0) {
        engine_free(d);
        return weir_err_set(err, WEIR_EIO, NULL, "cannot start the delivery thread");
    }
    weir_store_add_commit_hook(store, on_commit, d);
    *out = d;
    return 0;
}

void weir_deliver_stop(weir_deliver_t *d, unsigned timeout_ms)
{
    if (d == NULL) {
        return;
    }
    weir_store_remove_commit_hook(d->store, on_commit, d);
    d->stop_deadline_ns = weir_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    atomic_store(&d->stop, true);
    curl_multi_wakeup(d->multi);
    pthread_join(d->thread, NULL);
    engine_free(d);
}
