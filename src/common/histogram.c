/* Latency histograms in the Prometheus text format. */
#include <stdatomic.h>

#include "common/common.h"

/* Upper bounds of the buckets, in microseconds. */
static const uint64_t bound_us[WEIR_HISTOGRAM_BUCKETS] = {250,    500,     1000,    2500,    5000,
                                                          10000,  25000,   50000,   100000,  250000,
                                                          500000, 1000000, 5000000, 30000000};

void weir_histogram_observe(weir_histogram_t *h, uint64_t ns)
{
    size_t i = 0;
    while (i < WEIR_HISTOGRAM_BUCKETS && ns > bound_us[i] * 1000) {
        i++;
    }
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

void weir_histogram_render(weir_histogram_t *h, const char *name, const char *help, weir_buf_t *out)
{
    uint64_t total = 0;

    weir_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i <= WEIR_HISTOGRAM_BUCKETS; i++) {
        total += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        if (i < WEIR_HISTOGRAM_BUCKETS) {
            weir_buf_printf(out, "%s_bucket{le=\"%g\"} %llu\n", name, (double)bound_us[i] / 1e6,
                            (unsigned long long)total);
        } else {
            weir_buf_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)total);
        }
    }
    uint64_t sum = atomic_load_explicit(&h->sum_ns, memory_order_relaxed);
    weir_buf_printf(out, "%s_sum %.9f\n%s_count %llu\n", name, (double)sum / 1e9, name,
                    (unsigned long long)total);
}
