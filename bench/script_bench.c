/*
 * What a filter adds to each event: decoding and validating a binary-mode event with 300 bytes
 * of data (the baseline), against the same plus one run of an attribute-only filter, in the same
 * process and interleaved in rounds so that both see the same machine. Two filters are measured:
 * one that keeps the event (its result goes back through JSON) and one that drops it.
 *
 *   script_bench [events per round] [rounds]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "script/script.h"

#define ATTR_FILTER "if (event.type.indexOf('x') < 0) return null; return event;"

typedef struct bench {
    weir_ce_header_t headers[6];
    char body[301];
    weir_script_pool_t *pool;
    weir_script_t *script;
} bench_t;

static void die(const char *what, const weir_err_t *err)
{
    fprintf(stderr, "script_bench: %s: %s\n", what, err->msg);
    exit(1);
}

static void decode(bench_t *b, const char *type, weir_event_t **ev)
{
    weir_err_t err;
    b->headers[3].value = type;
    if (weir_ce_decode_binary(b->headers, 6, b->body, 300, ev, &err) != 0) {
        die("decode", &err);
    }
}

/* Nanoseconds per event: decode, validate, and run the filter when script is not NULL. */
static double measure(bench_t *b, weir_script_t *script, const char *type, int n)
{
    uint64_t start = weir_mono_ns();
    for (int i = 0; i < n; i++) {
        weir_event_t *ev;
        decode(b, type, &ev);
        if (script != NULL) {
            weir_event_t *out;
            weir_err_t err;
            if (weir_script_run(b->pool, script, ev, &out, NULL, NULL, &err) != 0) {
                die("run", &err);
            }
            weir_ce_free(out);
        }
        weir_ce_free(ev);
    }
    return (double)(weir_mono_ns() - start) / n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void setup(bench_t *b)
{
    static const char *names[] = {"ce-specversion", "ce-id",   "ce-source",
                                  "ce-type",        "ce-time", "content-type"};
    static const char *values[] = {"1.0", "a5e1c2d4-0001",        "/bench/source",
                                   NULL,  "2024-05-01T12:00:00Z", "application/json"};
    for (int i = 0; i < 6; i++) {
        b->headers[i] = (weir_ce_header_t){names[i], values[i]};
    }
    static const char head[] = "{\"order\":12345,\"customer\":\"c-99\",\"note\":\"";
    int pad = 300 - (int)strlen(head) - 2;
    snprintf(b->body, sizeof(b->body), "%s%0*d\"}", head, pad, 0);

    weir_err_t err;
    if (weir_script_compile(ATTR_FILTER, strlen(ATTR_FILTER), &b->script, &err) != 0) {
        die("compile", &err);
    }
    b->pool = weir_script_pool_new(NULL);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    int rounds = argc > 2 ? atoi(argv[2]) : 15;
    if (n <= 0 || rounds <= 0 || rounds > 1000) {
        fprintf(stderr, "usage: script_bench [events per round] [rounds]\n");
        return 2;
    }
    bench_t b;
    setup(&b);
    measure(&b, b.script, "order.x", n); /* warm the heap and the caches */

    double *base = calloc((size_t)rounds * 3, sizeof(double));
    double *kept = base + rounds;
    double *dropped = kept + rounds;
    for (int r = 0; r < rounds; r++) {
        base[r] = measure(&b, NULL, "order.x", n);
        kept[r] = measure(&b, b.script, "order.x", n);
        dropped[r] = measure(&b, b.script, "order.created", n);
    }
    qsort(base, rounds, sizeof(double), cmp);
    qsort(kept, rounds, sizeof(double), cmp);
    qsort(dropped, rounds, sizeof(double), cmp);

    double mb = base[rounds / 2] / 1000, mk = kept[rounds / 2] / 1000;
    double md = dropped[rounds / 2] / 1000;
    printf("filter: %s\n", ATTR_FILTER);
    printf("events: 300-byte binary mode, %d per round, %d rounds (medians)\n", n, rounds);
    printf("baseline (decode + validate):   %7.2f us/event\n", mb);
    printf("with filter, event kept:        %7.2f us/event  (+%.2f us)\n", mk, mk - mb);
    printf("with filter, event dropped:     %7.2f us/event  (+%.2f us)\n", md, md - mb);
    printf("data decoded into JavaScript:   %llu times\n",
           (unsigned long long)weir_script_data_decodes());

    free(base);
    weir_script_unref(b.script);
    weir_script_pool_free(b.pool);
    return 0;
}
