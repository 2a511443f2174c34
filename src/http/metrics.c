/*
 * Metrics in the Prometheus text format: events received by namespace and outcome, the sink's
 * latency histogram, and the store's queue depth and readiness. Counting is lock-free once a
 * namespace has its row; a new namespace's row is added under a lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "http/internal.h"

static const char *outcome_names[WEIR_OUT_COUNT] = {
    "stored",      "duplicate",     "dropped",    "invalid",      "not_found", "too_large",
    "unsupported", "filter_failed", "overloaded", "store_failed", "timed_out",
};

typedef struct ns_row {
    struct ns_row *next;
    char *ns; /* "" for events that concern no existing namespace */
    atomic_uint_fast64_t counts[WEIR_OUT_COUNT];
} ns_row_t;

struct weir_metrics {
    pthread_mutex_t lock; /* guards adding rows; rows are never removed */
    _Atomic(ns_row_t *) rows;
    weir_histogram_t latency;
    atomic_uint_fast64_t header_timeouts;
};

weir_metrics_t *weir_metrics_new(void)
{
    weir_metrics_t *m = weir_calloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void weir_metrics_free(weir_metrics_t *m)
{
    if (m == NULL) {
        return;
    }
    ns_row_t *row = atomic_load(&m->rows);
    while (row != NULL) {
        ns_row_t *next = row->next;
        weir_free(row->ns);
        weir_free(row);
        row = next;
    }
    pthread_mutex_destroy(&m->lock);
    weir_free(m);
}

static ns_row_t *find_row(ns_row_t *row, const char *ns)
{
    for (; row != NULL; row = row->next) {
        if (strcmp(row->ns, ns) == 0) {
            return row;
        }
    }
    return NULL;
}

static ns_row_t *row_for(weir_metrics_t *m, const char *ns)
{
    ns_row_t *row = find_row(atomic_load(&m->rows), ns);
    if (row != NULL) {
        return row;
    }
    pthread_mutex_lock(&m->lock);
    row = find_row(atomic_load(&m->rows), ns);
    if (row == NULL) {
        row = weir_calloc(1, sizeof(*row));
        row->ns = weir_strdup(ns);
        row->next = atomic_load(&m->rows);
        atomic_store(&m->rows, row);
    }
    pthread_mutex_unlock(&m->lock);
    return row;
}

void weir_metrics_count(weir_metrics_t *m, const char *ns, weir_outcome_t outcome, uint64_t n)
{
    ns_row_t *row = row_for(m, ns ? ns : "");
    atomic_fetch_add_explicit(&row->counts[outcome], n, memory_order_relaxed);
}

void weir_metrics_latency(weir_metrics_t *m, uint64_t ns)
{
    weir_histogram_observe(&m->latency, ns);
}

static void render_received(weir_metrics_t *m, weir_buf_t *out)
{
    weir_buf_puts(out, "# HELP weir_events_received_total Events received at the sink and the "
                       "broadcast API, by namespace and outcome.\n"
                       "# TYPE weir_events_received_total counter\n");
    for (ns_row_t *row = atomic_load(&m->rows); row != NULL; row = row->next) {
        for (int o = 0; o < WEIR_OUT_COUNT; o++) {
            uint64_t v = atomic_load_explicit(&row->counts[o], memory_order_relaxed);
            if (v > 0) {
                weir_buf_printf(out,
                                "weir_events_received_total{namespace=\"%s\",outcome=\"%s\"} "
                                "%llu\n",
                                row->ns, outcome_names[o], (unsigned long long)v);
            }
        }
    }
}

void weir_metrics_header_timeouts(weir_metrics_t *m, unsigned n)
{
    atomic_fetch_add_explicit(&m->header_timeouts, n, memory_order_relaxed);
}

void weir_metrics_render(weir_metrics_t *m, weir_store_t *store, weir_buf_t *out)
{
    render_received(m, out);
    weir_histogram_render(&m->latency, "weir_ingest_latency_seconds",
                          "Time from a sink request's arrival to its answer.", out);
    weir_buf_printf(out,
                    "# HELP weir_store_queue_depth Writes waiting for the store writer.\n"
                    "# TYPE weir_store_queue_depth gauge\nweir_store_queue_depth %zu\n"
                    "# HELP weir_store_ready 1 while the store is open and writable.\n"
                    "# TYPE weir_store_ready gauge\nweir_store_ready %d\n",
                    weir_store_queue_depth(store), weir_store_ready(store) ? 1 : 0);
    weir_buf_printf(out,
                    "# HELP weir_http_header_timeouts_total Connections closed because a "
                    "request's headers did not arrive within --header-timeout.\n"
                    "# TYPE weir_http_header_timeouts_total counter\n"
                    "weir_http_header_timeouts_total %llu\n",
                    (unsigned long long)atomic_load(&m->header_timeouts));
}
