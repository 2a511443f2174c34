/*
 * store_bench: events per second through weir_store_write_sync from N threads, each waiting
 * for its commit as an HTTP request would, with fsync on (or off with --no-sync).
 *
 *   store_bench [--threads N] [--events PER_THREAD] [--no-sync] [--dir DIR]
 *
 * Without --dir the database goes to a fresh directory under /tmp, removed at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include "store/store.h"

typedef struct bench {
    weir_store_t *store;
    int threads;
    int events;
    uint64_t *latency_ns; /* one per event, per thread in its own slice */
    int failures;
} bench_t;

typedef struct worker {
    bench_t *b;
    int index;
} worker_t;

/* A 300-byte-class event, as the ingest target in DESIGN.md uses. */
static weir_event_t *bench_event(int thread, int i)
{
    char id[48];
    weir_event_t *ev = weir_ce_new();
    static const char data[] = "{\"order\":12345,\"customer\":\"c-0001\",\"items\":[1,2,3],"
                               "\"note\":\"a typical small payload of a couple hundred bytes\"}";

    snprintf(id, sizeof(id), "bench-%d-%d", thread, i);
    weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "id", id, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "source", "/bench/store", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "type", "com.example.bench", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "datacontenttype", "application/json", WEIR_CE_STRING, NULL);
    weir_ce_set_data(ev, WEIR_CE_DATA_JSON, data, sizeof(data) - 1);
    return ev;
}

static void *work(void *arg)
{
    worker_t *w = arg;
    bench_t *b = w->b;

    for (int i = 0; i < b->events; i++) {
        weir_event_t *ev = bench_event(w->index, i);
        weir_store_item_t item = {.ns = "bench", .ev = ev};
        uint64_t t0 = weir_mono_ns();
        if (weir_store_write_sync(b->store, &item, 1) != 0) {
            __atomic_fetch_add(&b->failures, 1, __ATOMIC_RELAXED);
        }
        b->latency_ns[(size_t)w->index * b->events + i] = weir_mono_ns() - t0;
        weir_ce_free(ev);
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void report(bench_t *b, uint64_t elapsed_ns, bool no_sync)
{
    size_t n = (size_t)b->threads * b->events;

    qsort(b->latency_ns, n, sizeof(*b->latency_ns), cmp_u64);
    printf("threads=%d events=%zu sync=%s: %.0f events/s, p50 %.2f ms, p99 %.2f ms, "
           "failures %d\n",
           b->threads, n, no_sync ? "off" : "full", (double)n * 1e9 / (double)elapsed_ns,
           (double)b->latency_ns[n / 2] / 1e6, (double)b->latency_ns[n * 99 / 100] / 1e6,
           b->failures);
}

static void run(bench_t *b, bool no_sync)
{
    pthread_t *tids = weir_calloc((size_t)b->threads, sizeof(*tids));
    worker_t *ws = weir_calloc((size_t)b->threads, sizeof(*ws));
    uint64_t t0 = weir_mono_ns();

    for (int t = 0; t < b->threads; t++) {
        ws[t] = (worker_t){.b = b, .index = t};
        pthread_create(&tids[t], NULL, work, &ws[t]);
    }
    for (int t = 0; t < b->threads; t++) {
        pthread_join(tids[t], NULL);
    }
    report(b, weir_mono_ns() - t0, no_sync);
    weir_free(tids);
    weir_free(ws);
}

int main(int argc, char **argv)
{
    bench_t b = {.threads = 64, .events = 500};
    weir_store_config_t cfg;
    char tmp[] = "/tmp/weir-bench-XXXXXX";
    const char *dir = NULL;
    weir_err_t err;

    weir_store_config_default(&cfg);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            b.threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
            b.events = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--no-sync") == 0) {
            cfg.no_sync = true;
        } else {
            fprintf(stderr, "usage: %s [--threads N] [--events N] [--no-sync] [--dir DIR]\n",
                    argv[0]);
            return 2;
        }
    }
    if (b.threads < 1 || b.events < 1) {
        fprintf(stderr, "--threads and --events must be positive\n");
        return 2;
    }
    cfg.data_dir = dir != NULL ? dir : mkdtemp(tmp);
    weir_log_set_level(WEIR_LOG_WARN);
    if (cfg.data_dir == NULL || weir_store_open(&cfg, &b.store, &err) != 0 ||
        weir_store_ns_create(b.store, "bench", NULL, &err) != 0) {
        fprintf(stderr, "cannot open the store: %s\n", cfg.data_dir != NULL ? err.msg : "mkdtemp");
        return 1;
    }

    b.latency_ns = weir_calloc((size_t)b.threads * b.events, sizeof(*b.latency_ns));
    run(&b, cfg.no_sync);
    weir_store_close(b.store);
    weir_free(b.latency_ns);
    if (dir == NULL) {
        char path[64];
        static const char *const files[] = {"weir.db", "weir.db-wal", "weir.db-shm"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(path, sizeof(path), "%s/%s", tmp, files[i]);
            unlink(path);
        }
        rmdir(tmp);
    }
    return b.failures == 0 ? 0 : 1;
}
