/* `weir serve`: settings, startup, and the orderly stop on SIGTERM or SIGINT. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "http/http.h"
#include "http/internal.h"

/* Lines about refused requests, at most: clients decide how many there are. */
#define REFUSALS_LOGGED_PER_SEC 10
#define REFUSALS_LOGGED_BURST   50

/*
 * Blocks the stop signals in every thread; the main thread takes them with sigwait. A write to a
 * closed connection, or past the file size limit (RLIMIT_FSIZE), fails with an error the caller
 * handles (EPIPE, EFBIG) instead of killing weir: past the limit the store refuses writes as when
 * the disk is full, and works again once the limit is raised.
 */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
}

static int open_store(const weir_settings_t *s, weir_store_t **store)
{
    weir_store_config_t cfg;
    weir_store_config_default(&cfg);
    cfg.data_dir = s->data_dir;
    cfg.queue_max = s->queue_max;
    cfg.batch_max = s->batch_max;
    cfg.no_sync = s->no_sync;
    cfg.outbox_max = s->source_sink[0] != '\0' ? s->outbox_max : 0;
    cfg.deliveries_max = s->delivery_pending_max;

    weir_err_t err = {0};
    if (weir_store_open(&cfg, store, &err) != 0) {
        weir_error("serve", "cannot open the store in %s: %s", s->data_dir, err.msg);
        return -1;
    }
    if (s->no_sync) {
        weir_warn("serve", "commits are not fsync'd (--no-sync): a power loss can lose events "
                           "already acknowledged");
    }
    return 0;
}

/* Starts the source side when a sink is set: what waits in the outbox goes out from now on. */
static int start_source(weir_server_t *srv)
{
    const weir_settings_t *s = srv->settings;
    if (s->source_sink[0] == '\0') {
        weir_info("serve", "no K_SINK: events born inside weir are not sent anywhere");
        return 0;
    }
    weir_source_config_t cfg;
    weir_source_config_default(&cfg);
    cfg.sink = s->source_sink;
    cfg.overrides = s->source_overrides;
    cfg.ca_certs = s->source_ca_certs;
    cfg.token_file = s->source_token_file;
    cfg.max_inflight = s->source_inflight;
    cfg.timeout_us = (int64_t)s->source_timeout_s * 1000000;

    weir_err_t err = {0};
    if (weir_source_start(srv->store, &cfg, &srv->source, &err) != 0) {
        weir_error("serve", "%s: %s", err.attr[0] ? err.attr : "source", err.msg);
        return -1;
    }
    weir_info("serve", "events born inside weir go out to %s", s->source_sink);
    return 0;
}

/* Waits until no request is in flight, or the timeout passes. */
static void drain(weir_server_t *srv, unsigned timeout_s)
{
    uint64_t deadline = weir_mono_ns() + (uint64_t)timeout_s * 1000000000u;
    while (atomic_load(&srv->inflight) > 0 && weir_mono_ns() < deadline) {
        usleep(10000);
    }
    int left = atomic_load(&srv->inflight);
    if (left > 0) {
        weir_warn("serve", "%d requests still in flight after %u s; stopping anyway", left,
                  timeout_s);
    }
}

static int serve(const weir_settings_t *s, const sigset_t *stop)
{
    weir_server_t srv = {.settings = s,
                         .refusal_log =
                             WEIR_RATELIMIT_INIT(REFUSALS_LOGGED_PER_SEC, REFUSALS_LOGGED_BURST)};
    if (open_store(s, &srv.store) != 0) {
        return 1;
    }
    if (weir_retention_start(&srv) != 0) {
        weir_store_close(srv.store);
        return 1;
    }
    srv.metrics = weir_metrics_new();
    weir_script_limits_t limits = {.timeout_ms = s->filter_timeout_ms,
                                   .mem_bytes = s->filter_memory,
                                   .max_heaps = s->filter_heaps};
    srv.scripts = weir_script_pool_new(&limits);
    srv.filters = weir_filters_new();
    pthread_mutex_init(&srv.change_lock, NULL);

    weir_err_t err = {0};
    int status = 0;
    if (weir_filters_load(srv.filters, srv.store, &err) != 0) {
        weir_error("serve", "cannot load the filters: %s", err.msg);
        status = 1;
    } else if (weir_listeners_start(&srv) != 0 || start_source(&srv) != 0) {
        status = 1;
    } else if (weir_server_start(&srv, &err) != 0) {
        weir_error("serve", "%s", err.msg);
        status = 1;
    } else {
        weir_info("serve", "ready");
        int sig = 0;
        sigwait(stop, &sig);
        weir_info("serve", "stopping on signal %d: finishing requests in flight", sig);
        weir_server_quiesce(&srv);
        drain(&srv, s->shutdown_timeout_s);
        weir_server_stop(&srv);
    }
    weir_listeners_stop(&srv, s->shutdown_timeout_s); /* its outcomes go through the store */
    weir_source_stop(srv.source, s->shutdown_timeout_s * 1000u);
    weir_store_retainer_stop(srv.retainer);
    weir_store_close(srv.store);
    weir_filters_free(srv.filters);
    pthread_mutex_destroy(&srv.change_lock);
    weir_script_pool_free(srv.scripts);
    weir_metrics_free(srv.metrics);
    weir_info("serve", "stopped");
    return status;
}

int weir_http_serve_main(int argc, char **argv)
{
    weir_settings_t s;
    int rc = weir_settings_parse(&s, argc, argv);
    if (rc != 0) {
        return rc > 0 ? 0 : 2;
    }
    weir_log_set_level((weir_log_level_t)weir_log_parse_level(s.log_level));

    sigset_t stop;
    block_signals(&stop);
    return serve(&s, &stop);
}
