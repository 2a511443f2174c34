/* The write-ahead log under a steady load: checkpoints keep it from growing with what is stored,
 * even when the checkpointer falls behind the writer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/common.h"
#include "fixture.h"

#define PRODUCERS  4
#define IN_FLIGHT  32   /* writes each producer keeps queued, so that the writer never waits */
#define WRITES     2000 /* per producer */
#define PER_WRITE  4    /* events per write */
#define DATA_BYTES 3000 /* about one 4 KiB page per event */

/* What the producers store in all: 32,000 events of about a page each, some 130 MiB of WAL
 * frames. The WAL must not hold a third of that at any time. */
#define WAL_BOUND (40L * 1024 * 1024)

/* A checkpointer as slow as on a busy disk: each of its checkpoints starts 300 ms late (the
 * test links with --wrap=sqlite3_wal_checkpoint_v2). The writer's own calls are not slowed. */
static atomic_bool slow_checkpointer;

int __real_sqlite3_wal_checkpoint_v2(sqlite3 *db, const char *name, int mode, int *log,
                                     int *copied);
int __wrap_sqlite3_wal_checkpoint_v2(sqlite3 *db, const char *name, int mode, int *log,
                                     int *copied);

int __wrap_sqlite3_wal_checkpoint_v2(sqlite3 *db, const char *name, int mode, int *log, int *copied)
{
    char thread[16] = "";
    pthread_getname_np(pthread_self(), thread, sizeof(thread));
    if (atomic_load(&slow_checkpointer) && strcmp(thread, "weir-checkpoint") == 0) {
        usleep(300 * 1000);
    }
    return __real_sqlite3_wal_checkpoint_v2(db, name, mode, log, copied);
}

typedef struct slot {
    weir_event_t *evs[PER_WRITE];
    weir_store_item_t items[PER_WRITE];
    weir_store_write_t w;
    fx_result_t res;
    bool used;
} slot_t;

typedef struct producer {
    weir_store_t *store;
    int index;
    const char *data;
    int failures; /* writes that did not commit (cmocka asserts on one thread) */
    slot_t slots[IN_FLIGHT];
} producer_t;

static void slot_free(slot_t *s)
{
    for (int e = 0; e < PER_WRITE; e++) {
        weir_ce_free(s->evs[e]);
    }
    s->used = false;
}

/* Waits for the slot's write, if any, and frees its events. */
static void slot_reap(producer_t *p, slot_t *s)
{
    if (!s->used) {
        return;
    }
    while (atomic_load(&s->res.calls) == 0) {
        sched_yield();
    }
    p->failures += s->res.status != 0;
    slot_free(s);
}

static void *produce(void *arg)
{
    producer_t *p = arg;
    char id[48];

    for (int n = 0; n < WRITES; n++) {
        slot_t *s = &p->slots[n % IN_FLIGHT];
        slot_reap(p, s);
        for (int e = 0; e < PER_WRITE; e++) {
            snprintf(id, sizeof(id), "p%d-w%d-e%d", p->index, n, e);
            s->evs[e] = fx_event(id, "/wal", "t.wal", p->data);
            s->items[e] = (weir_store_item_t){.ns = "alpha", .ev = s->evs[e]};
        }
        atomic_store(&s->res.calls, 0);
        s->w = (weir_store_write_t){
            .items = s->items, .nitems = PER_WRITE, .done = fx_result_done, .arg = &s->res};
        s->used = true;
        int rc;
        while ((rc = weir_store_submit(p->store, &s->w)) == WEIR_EBUSY) {
            sched_yield();
        }
        if (rc != 0) {
            p->failures++;
            slot_free(s);
        }
    }
    for (int i = 0; i < IN_FLIGHT; i++) {
        slot_reap(p, &p->slots[i]);
    }
    return NULL;
}

/* Stores 32,000 events from PRODUCERS threads, and checks that all are stored and that the WAL
 * never held more than WAL_BOUND. */
static void load_and_check(void **state)
{
    fx_t *fx = fx_open(0, 0);
    *state = fx;
    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);

    char *data = weir_malloc(DATA_BYTES + 3);
    data[0] = '"';
    memset(data + 1, 'w', DATA_BYTES);
    data[DATA_BYTES + 1] = '"';
    data[DATA_BYTES + 2] = '\0';

    producer_t *ps = weir_calloc(PRODUCERS, sizeof(*ps));
    pthread_t threads[PRODUCERS];
    for (int t = 0; t < PRODUCERS; t++) {
        ps[t] = (producer_t){.store = fx->store, .index = t, .data = data};
        assert_int_equal(pthread_create(&threads[t], NULL, produce, &ps[t]), 0);
    }
    for (int t = 0; t < PRODUCERS; t++) {
        pthread_join(threads[t], NULL);
    }
    fx_barrier(fx->store);

    /* SQLite reuses the WAL from its start without shortening it: its size is the most it ever
     * held. */
    char path[128];
    struct stat st;
    snprintf(path, sizeof(path), "%s/weir.db-wal", fx->dir);
    assert_int_equal(stat(path, &st), 0);
    int64_t count = 0;
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    for (int t = 0; t < PRODUCERS; t++) {
        assert_int_equal(ps[t].failures, 0);
    }
    assert_int_equal(count, PRODUCERS * WRITES * PER_WRITE);
    weir_free(ps);
    weir_free(data);
    assert_true(st.st_size > 0);
    if (st.st_size > WAL_BOUND) {
        fail_msg("the WAL grew to %lld bytes, more than %ld", (long long)st.st_size, WAL_BOUND);
    }
}

static void test_wal_stays_bounded_under_steady_load(void **state)
{
    load_and_check(state);
}

/* Without the writer's own checkpoints, the WAL grows to hold nearly all that is stored. */
static void test_wal_stays_bounded_with_a_slow_checkpointer(void **state)
{
    atomic_store(&slow_checkpointer, true);
    load_and_check(state);
    atomic_store(&slow_checkpointer, false);
}

static int teardown(void **state)
{
    fx_close(*state);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_wal_stays_bounded_under_steady_load, teardown),
        cmocka_unit_test_teardown(test_wal_stays_bounded_with_a_slow_checkpointer, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
