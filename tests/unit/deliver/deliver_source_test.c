/*
 * The source's scheduling, against a small HTTP sink on loopback and a real store: the backoff
 * before the first retry, recovery with several attempts in flight, a removal that fails, an
 * outbox that cannot be read, a wake-up that never comes, and the settings refused at start.
 *
 * Linked with --wrap for three store functions, so that a test can make them fail or do
 * nothing; they pass through to the store otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "deliver/deliver.h"

/* ---- the store's functions, wrapped ----------------------------------------------------- */

static atomic_int fail_removals; /* removals to fail with WEIR_EIO, as a failing store would */
static atomic_bool fail_reads;   /* weir_store_outbox_next fails while set */
static atomic_int reads;         /* calls of weir_store_outbox_next */
static atomic_bool drop_hooks;   /* weir_store_add_commit_hook registers nothing while set */

int __real_weir_store_submit(weir_store_t *store, weir_store_write_t *w);
int __wrap_weir_store_submit(weir_store_t *store, weir_store_write_t *w);
int __real_weir_store_outbox_next(weir_store_t *store, int64_t after_id, size_t limit,
                                  weir_store_outbox_row_t **out, size_t *n, weir_err_t *err);
int __wrap_weir_store_outbox_next(weir_store_t *store, int64_t after_id, size_t limit,
                                  weir_store_outbox_row_t **out, size_t *n, weir_err_t *err);
int __real_weir_store_add_commit_hook(weir_store_t *store, void (*cb)(void *arg), void *arg);
int __wrap_weir_store_add_commit_hook(weir_store_t *store, void (*cb)(void *arg), void *arg);

int __wrap_weir_store_submit(weir_store_t *store, weir_store_write_t *w)
{
    if (w->noutbox_sent > 0 && atomic_fetch_sub(&fail_removals, 1) > 0) {
        w->done(w, WEIR_EIO, w->arg);
        return 0;
    }
    return __real_weir_store_submit(store, w);
}

int __wrap_weir_store_outbox_next(weir_store_t *store, int64_t after_id, size_t limit,
                                  weir_store_outbox_row_t **out, size_t *n, weir_err_t *err)
{
    atomic_fetch_add(&reads, 1);
    if (atomic_load(&fail_reads)) {
        *out = NULL;
        *n = 0;
        return weir_err_set(err, WEIR_EIO, NULL, "storage failed (test)");
    }
    return __real_weir_store_outbox_next(store, after_id, limit, out, n, err);
}

int __wrap_weir_store_add_commit_hook(weir_store_t *store, void (*cb)(void *arg), void *arg)
{
    return atomic_load(&drop_hooks) ? 0 : __real_weir_store_add_commit_hook(store, cb, arg);
}

/* ---- a sink on loopback ----------------------------------------------------------------- */

#define HITS_MAX  64
#define CONNS_MAX 64

typedef struct hit {
    char id[32];
    int64_t arrived_us; /* monotonic */
    int64_t answered_us;
    int status;
} hit_t;

typedef struct sink sink_t;

/* The status for the nth attempt (from 1) at this id, and how long to wait before answering. */
typedef int (*answer_fn)(const char *id, unsigned nth, unsigned *delay_ms);

struct sink {
    int fd;
    char url[64];
    answer_fn answer;
    pthread_t acceptor;
    pthread_t conns[CONNS_MAX];
    size_t nconns;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    hit_t hits[HITS_MAX];
    size_t nhits;
};

typedef struct conn {
    sink_t *k;
    int fd;
} conn_t;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void pause_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000}, NULL);
}

/* The value of header name (with its colon) in head, copied into out. */
static void header(const char *head, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, strlen(name)) == 0) {
            const char *v = p + 2 + strlen(name);
            v += strspn(v, " ");
            size_t len = strcspn(v, "\r");
            len = len < cap - 1 ? len : cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return;
        }
    }
}

/* Reads one request (head and body); false when the peer closed first. */
static bool read_request(int fd, char *buf, size_t cap, char *id, size_t idcap)
{
    size_t len = 0;
    char *end = NULL;
    while (end == NULL && len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n <= 0) {
            return false;
        }
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (end == NULL) {
        return false;
    }
    char cl[16];
    end[2] = '\0';
    header(buf, "content-length:", cl, sizeof(cl));
    header(buf, "ce-id:", id, idcap);
    size_t body = (size_t)(buf + len - (end + 4));
    for (size_t want = (size_t)atoi(cl); body < want;) {
        char drain[512];
        ssize_t n = read(fd, drain, sizeof(drain));
        if (n <= 0) {
            return false;
        }
        body += (size_t)n;
    }
    return true;
}

static void *conn_main(void *arg)
{
    conn_t *c = arg;
    sink_t *k = c->k;
    char buf[8192];
    hit_t hit = {0};

    if (read_request(c->fd, buf, sizeof(buf), hit.id, sizeof(hit.id))) {
        hit.arrived_us = now_us();
        pthread_mutex_lock(&k->lock);
        unsigned nth = 1;
        for (size_t i = 0; i < k->nhits; i++) {
            nth += strcmp(k->hits[i].id, hit.id) == 0;
        }
        pthread_mutex_unlock(&k->lock);
        unsigned delay_ms = 0;
        hit.status = k->answer(hit.id, nth, &delay_ms);
        pause_ms(delay_ms);
        char resp[128];
        int n =
            snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", hit.status);
        hit.answered_us = now_us();
        pthread_mutex_lock(&k->lock);
        if (k->nhits < HITS_MAX) {
            k->hits[k->nhits++] = hit;
        }
        pthread_cond_broadcast(&k->cond);
        pthread_mutex_unlock(&k->lock);
        ssize_t unused = write(c->fd, resp, (size_t)n);
        (void)unused;
    }
    close(c->fd);
    free(c);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    sink_t *k = arg;
    int fd;
    while ((fd = accept(k->fd, NULL, NULL)) >= 0) {
        conn_t *c = calloc(1, sizeof(*c));
        c->k = k;
        c->fd = fd;
        assert_true(k->nconns < CONNS_MAX);
        assert_int_equal(pthread_create(&k->conns[k->nconns++], NULL, conn_main, c), 0);
    }
    return NULL;
}

static sink_t *sink_start(answer_fn answer)
{
    sink_t *k = calloc(1, sizeof(*k));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);

    k->answer = answer;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->cond, NULL);
    k->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(k->fd >= 0);
    assert_int_equal(bind(k->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(k->fd, 64), 0);
    assert_int_equal(getsockname(k->fd, (struct sockaddr *)&a, &alen), 0);
    snprintf(k->url, sizeof(k->url), "http://127.0.0.1:%d/", ntohs(a.sin_port));
    assert_int_equal(pthread_create(&k->acceptor, NULL, acceptor_main, k), 0);
    return k;
}

static void sink_stop(sink_t *k)
{
    shutdown(k->fd, SHUT_RDWR); /* accept returns */
    pthread_join(k->acceptor, NULL);
    close(k->fd);
    for (size_t i = 0; i < k->nconns; i++) {
        pthread_join(k->conns[i], NULL);
    }
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->cond);
    free(k);
}

/* Waits until n requests were answered; false after timeout_ms. */
static bool sink_wait(sink_t *k, size_t n, long timeout_ms)
{
    int64_t deadline = now_us() + timeout_ms * 1000;
    pthread_mutex_lock(&k->lock);
    while (k->nhits < n && now_us() < deadline) {
        pthread_mutex_unlock(&k->lock);
        pause_ms(10);
        pthread_mutex_lock(&k->lock);
    }
    bool got = k->nhits >= n;
    pthread_mutex_unlock(&k->lock);
    return got;
}

/* The ids answered so far, in order, joined by ','. */
static const char *sink_ids(sink_t *k)
{
    static char out[HITS_MAX * 8];
    out[0] = '\0';
    pthread_mutex_lock(&k->lock);
    for (size_t i = 0; i < k->nhits; i++) {
        strcat(out, i ? "," : "");
        strcat(out, k->hits[i].id);
    }
    pthread_mutex_unlock(&k->lock);
    return out;
}

/* ---- the store and the source ----------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    weir_store_t *store;
    weir_source_t *source;
    sink_t *sink;
} fx_t;

static int setup(void **state)
{
    fx_t *fx = calloc(1, sizeof(*fx));
    weir_store_config_t cfg;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/weir-source-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    weir_store_config_default(&cfg);
    cfg.data_dir = fx->dir;
    cfg.no_sync = true;
    cfg.outbox_max = 1000;
    assert_int_equal(weir_store_open(&cfg, &fx->store, NULL), 0);
    assert_int_equal(weir_store_ns_create(fx->store, "ns", NULL, NULL), 0);
    atomic_store(&fail_removals, 0);
    atomic_store(&fail_reads, false);
    atomic_store(&reads, 0);
    atomic_store(&drop_hooks, false);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fx_t *fx = *state;
    char cmd[128];
    atomic_store(&fail_reads, false);
    weir_source_stop(fx->source, 1000);
    if (fx->sink != NULL) {
        sink_stop(fx->sink);
    }
    weir_store_close(fx->store);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

/* Stores an event born inside ns, so that it is queued in the outbox. */
static void put(fx_t *fx, const char *id)
{
    weir_event_t *ev = weir_ce_new();
    assert_int_equal(weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "id", id, WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "source", "/test", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "type", "t", WEIR_CE_STRING, NULL), 0);
    weir_store_item_t item = {.ns = "ns", .ev = ev, .born_inside = true};
    assert_int_equal(weir_store_write_sync(fx->store, &item, 1), 0);
    weir_ce_free(ev);
}

static int64_t depth(fx_t *fx)
{
    int64_t d = -1;
    uint64_t overflowed = 0;
    weir_store_outbox_stats(fx->store, &d, &overflowed);
    return d;
}

/* Waits until the outbox is empty; false after timeout_ms. */
static bool drained(fx_t *fx, long timeout_ms)
{
    for (long waited = 0; depth(fx) != 0 && waited < timeout_ms; waited += 10) {
        pause_ms(10);
    }
    return depth(fx) == 0;
}

static void start_source(fx_t *fx, answer_fn answer, size_t inflight, int64_t delay_us)
{
    weir_source_config_t cfg;
    weir_source_config_default(&cfg);
    fx->sink = sink_start(answer);
    cfg.sink = fx->sink->url;
    cfg.token_file = "";
    cfg.max_inflight = inflight;
    cfg.delay_us = delay_us;
    cfg.timeout_us = 5000000;
    assert_int_equal(weir_source_start(fx->store, &cfg, &fx->source, NULL), 0);
}

/* ---- the tests -------------------------------------------------------------------------- */

static int take_all(const char *id, unsigned nth, unsigned *delay_ms)
{
    return 202;
}

static int fail_first(const char *id, unsigned nth, unsigned *delay_ms)
{
    return nth == 1 ? 503 : 202;
}

/* Knative's exponential backoff: the first retry comes after backoffDelay, not twice that. */
static void the_first_retry_comes_after_the_delay(void **state)
{
    fx_t *fx = *state;
    put(fx, "e1");
    start_source(fx, fail_first, 1, 500000);
    assert_true(sink_wait(fx->sink, 2, 5000));
    int64_t wait = fx->sink->hits[1].arrived_us - fx->sink->hits[0].answered_us;
    assert_true(wait >= 480000);
    assert_true(wait < 900000);
    assert_string_equal(sink_ids(fx->sink), "e1,e1");
    assert_true(drained(fx, 5000));
}

/* e1 fails at once; e2 and e3, in flight beside it, are taken a little later. */
static int fail_e1_once_and_slow_neighbours(const char *id, unsigned nth, unsigned *delay_ms)
{
    if (nth == 1 && strcmp(id, "e1") == 0) {
        return 503;
    }
    if (nth == 1 && (strcmp(id, "e2") == 0 || strcmp(id, "e3") == 0)) {
        *delay_ms = 150;
    }
    return 202;
}

/*
 * With several attempts in flight, one that goes through after another failed does not end the
 * recovery: the failed event waits its backoff, goes alone, and nothing after it overtakes it.
 */
static void a_success_in_flight_does_not_end_recovery(void **state)
{
    fx_t *fx = *state;
    const char *ids[] = {"e1", "e2", "e3", "e4", "e5", "e6"};
    for (size_t i = 0; i < 6; i++) {
        put(fx, ids[i]);
    }
    start_source(fx, fail_e1_once_and_slow_neighbours, 3, 600000);
    assert_true(sink_wait(fx->sink, 7, 10000));
    hit_t *h = fx->sink->hits;
    assert_string_equal(h[0].id, "e1");
    assert_int_equal(h[0].status, 503);
    /* e2 and e3 went through, then e1 again after its wait, then the rest. */
    assert_string_equal(h[3].id, "e1");
    assert_true(h[3].arrived_us - h[0].answered_us >= 580000);
    assert_true(h[3].arrived_us >= h[1].answered_us && h[3].arrived_us >= h[2].answered_us);
    for (size_t i = 4; i < 7; i++) {
        assert_true(h[i].arrived_us >= h[3].answered_us);
    }
    assert_true(drained(fx, 5000));
}

/* e1 fails at once and e2 a little later, beside it; both go through when tried again, e2
 * slowly. */
static int fail_e1_and_e2_once(const char *id, unsigned nth, unsigned *delay_ms)
{
    bool e2 = strcmp(id, "e2") == 0;
    if (nth == 1 && strcmp(id, "e1") == 0) {
        return 503;
    }
    *delay_ms = e2 || (nth == 1 && strcmp(id, "e3") == 0) ? 100 : 0;
    return nth == 1 && e2 ? 503 : 202;
}

/* Every row that failed goes alone, oldest first, before the rows behind it start. */
static void failed_rows_go_alone_before_the_rest(void **state)
{
    fx_t *fx = *state;
    const char *ids[] = {"e1", "e2", "e3", "e4", "e5"};
    for (size_t i = 0; i < 5; i++) {
        put(fx, ids[i]);
    }
    start_source(fx, fail_e1_and_e2_once, 3, 300000);
    assert_true(sink_wait(fx->sink, 7, 10000));
    hit_t *h = fx->sink->hits;
    int64_t e2_done = 0;
    int64_t e1_again = 0;
    for (size_t i = 3; i < 7; i++) {
        if (strcmp(h[i].id, "e1") == 0) {
            e1_again = h[i].arrived_us;
        } else if (strcmp(h[i].id, "e2") == 0) {
            assert_true(h[i].arrived_us >= h[3].answered_us); /* after e1 went through */
            e2_done = h[i].answered_us;
        } else {
            assert_true(e2_done > 0);
            assert_true(h[i].arrived_us >= e2_done);
        }
    }
    assert_true(e1_again > 0 && e2_done > 0);
    assert_string_equal(h[3].id, "e1");
    assert_true(drained(fx, 5000));
}

/* A removal that fails leaves the row in the outbox; it is removed again, without a restart
 * and without sending the event again. */
static void a_failed_removal_is_tried_again(void **state)
{
    fx_t *fx = *state;
    atomic_store(&fail_removals, 1);
    start_source(fx, take_all, 1, 200000);
    put(fx, "e1");
    assert_true(sink_wait(fx->sink, 1, 5000));
    assert_true(drained(fx, 5000));
    assert_int_equal(atomic_load(&fail_removals), -1); /* the failed one, and the one after */
    put(fx, "e2");
    assert_true(sink_wait(fx->sink, 2, 5000));
    assert_true(drained(fx, 5000));
    pause_ms(300);
    assert_string_equal(sink_ids(fx->sink), "e1,e2");
}

/* While the outbox cannot be read the source waits between reads (it does not spin), and it
 * reads again once the store works. */
static void an_outbox_that_cannot_be_read_is_read_again_later(void **state)
{
    fx_t *fx = *state;
    atomic_store(&fail_reads, true);
    start_source(fx, take_all, 1, 200000);
    put(fx, "e1");
    pause_ms(700);
    int tried = atomic_load(&reads);
    assert_true(tried >= 2);
    assert_true(tried <= 10);
    atomic_store(&fail_reads, false);
    assert_true(sink_wait(fx->sink, 1, 5000));
    assert_string_equal(sink_ids(fx->sink), "e1");
    assert_true(drained(fx, 5000));
}

/* A wake-up that never comes delays an event by the idle poll, not for ever. */
static void the_idle_poll_loads(void **state)
{
    fx_t *fx = *state;
    atomic_store(&drop_hooks, true);
    start_source(fx, take_all, 1, 200000);
    pause_ms(100); /* the first load ran and found nothing */
    put(fx, "e1");
    assert_true(sink_wait(fx->sink, 1, 3000));
    assert_string_equal(sink_ids(fx->sink), "e1");
}

static void noop_hook(void *arg)
{
}

/* The source relies on the commit hook: without room for it, it does not start. */
static void no_room_for_the_hook_is_an_error(void **state)
{
    fx_t *fx = *state;
    int marks[WEIR_STORE_HOOKS_MAX];
    for (int i = 0; i < WEIR_STORE_HOOKS_MAX; i++) {
        assert_int_equal(weir_store_add_commit_hook(fx->store, noop_hook, &marks[i]), 0);
    }
    weir_source_config_t cfg;
    weir_source_config_default(&cfg);
    cfg.sink = "http://127.0.0.1:9/";
    weir_err_t err = {0};
    assert_int_equal(weir_source_start(fx->store, &cfg, &fx->source, &err), WEIR_EBUSY);
    assert_null(fx->source);
    assert_non_null(strstr(err.msg, "commit"));
    for (int i = 0; i < WEIR_STORE_HOOKS_MAX; i++) {
        weir_store_remove_commit_hook(fx->store, noop_hook, &marks[i]);
    }
}

/* weirnamespace names the event's namespace; the overrides may not replace it. */
static void overrides_may_not_replace_the_namespace(void **state)
{
    fx_t *fx = *state;
    weir_source_config_t cfg;
    weir_source_config_default(&cfg);
    cfg.sink = "http://127.0.0.1:9/";
    cfg.overrides = "{\"extensions\":{\"cluster\":\"east\",\"weirnamespace\":\"x\"}}";
    weir_err_t err = {0};
    assert_int_equal(weir_source_start(fx->store, &cfg, &fx->source, &err), WEIR_EINVAL);
    assert_null(fx->source);
    assert_string_equal(err.attr, "K_CE_OVERRIDES");
    assert_non_null(strstr(err.msg, "weirnamespace"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(the_first_retry_comes_after_the_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(a_success_in_flight_does_not_end_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_rows_go_alone_before_the_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_removal_is_tried_again, setup, teardown),
        cmocka_unit_test_setup_teardown(an_outbox_that_cannot_be_read_is_read_again_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_idle_poll_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(no_room_for_the_hook_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(overrides_may_not_replace_the_namespace, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
