/*
 * The settings of `weir serve`: each has a flag, a WEIR_* environment variable and a default.
 * A flag wins over the variable, which wins over the default.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/internal.h"

typedef enum opt_kind { OPT_STRING, OPT_SIZE, OPT_UINT, OPT_BOOL } opt_kind_t;

typedef struct opt {
    const char *flag; /* without the leading "--" */
    const char *env;
    const char *def;
    opt_kind_t kind;
    size_t offset;
    const char *help;
} opt_t;

#define AT(field) offsetof(weir_settings_t, field)

static const opt_t opts[] = {
    {"sink-addr", "WEIR_SINK_ADDR", ":8080", OPT_STRING, AT(sink_addr),
     "address of the sink (Knative data plane): host:port, :port or [v6]:port"},
    {"api-addr", "WEIR_API_ADDR", ":8081", OPT_STRING, AT(api_addr),
     "address of the API, /healthz, /readyz and /metrics"},
    {"data-dir", "WEIR_DATA_DIR", "./data", OPT_STRING, AT(data_dir),
     "directory of the SQLite database (created when missing)"},
    {"max-body", "WEIR_MAX_BODY", "1048576", OPT_SIZE, AT(max_body),
     "largest request body in bytes (at least 65536); larger ones are answered 413"},
    {"max-inflight-bytes", "WEIR_MAX_INFLIGHT_BYTES", "67108864", OPT_SIZE, AT(max_inflight_bytes),
     "request bodies held in memory at once, in bytes; past it requests are answered 503"},
    {"queue-max", "WEIR_QUEUE_MAX", "4096", OPT_SIZE, AT(queue_max),
     "writes waiting for the store writer; past it requests are answered 503 with Retry-After"},
    {"batch-max", "WEIR_BATCH_MAX", "256", OPT_SIZE, AT(batch_max),
     "most writes committed in one transaction (group commit)"},
    {"no-sync", "WEIR_NO_SYNC", "false", OPT_BOOL, AT(no_sync),
     "commit without fsync: faster, but a power loss or kernel crash can lose events already "
     "answered 202 (a crash of weir alone cannot)"},
    {"max-connections", "WEIR_MAX_CONNECTIONS", "1024", OPT_UINT, AT(max_connections),
     "open connections per listener (on the API, each has a thread)"},
    {"sink-threads", "WEIR_SINK_THREADS", "0", OPT_UINT, AT(sink_threads),
     "threads that serve the sink's connections (a request waits for its commit without one);"
     " 0: one per core, at least two"},
    {"idle-timeout", "WEIR_IDLE_TIMEOUT", "60", OPT_UINT, AT(idle_timeout_s),
     "seconds before an idle connection is closed (0: never)"},
    {"header-timeout", "WEIR_HEADER_TIMEOUT", "30", OPT_UINT, AT(header_timeout_s),
     "seconds from a connection's opening, or its last answer, until a request's headers must "
     "have arrived (after an answer, at least --idle-timeout); past them it is closed"},
    {"body-timeout", "WEIR_BODY_TIMEOUT", "60", OPT_UINT, AT(body_timeout_s),
     "seconds from a request's headers until its whole body must have arrived; past them its "
     "connection is closed without an answer"},
    {"shutdown-timeout", "WEIR_SHUTDOWN_TIMEOUT", "30", OPT_UINT, AT(shutdown_timeout_s),
     "seconds to wait for requests in flight when stopping (one whose events the store has "
     "taken is always answered after its commit)"},
    {"filter-timeout", "WEIR_FILTER_TIMEOUT", "100", OPT_UINT, AT(filter_timeout_ms),
     "milliseconds a filter may run on one event before it fails (422)"},
    {"filter-memory", "WEIR_FILTER_MEMORY", "16777216", OPT_SIZE, AT(filter_memory),
     "bytes a filter's JavaScript heap may hold (at least 1048576)"},
    {"filter-heaps", "WEIR_FILTER_HEAPS", "16", OPT_UINT, AT(filter_heaps),
     "filter heaps alive at once (memory stays within this times --filter-memory); a request "
     "that finds them all busy for --filter-timeout is answered 503"},
    {"log-level", "WEIR_LOG_LEVEL", "info", OPT_STRING, AT(log_level),
     "lowest level logged: debug, info, warn or error"},
    {"max-subscribers", "WEIR_MAX_SUBSCRIBERS", "256", OPT_UINT, AT(max_subscribers),
     "live history streams open at once; past it they are answered 503"},
    {"stream-heartbeat", "WEIR_STREAM_HEARTBEAT", "15", OPT_UINT, AT(stream_heartbeat_s),
     "seconds between keep-alive comments on an idle history stream"},
    {"stream-write-timeout", "WEIR_STREAM_WRITE_TIMEOUT", "30", OPT_UINT,
     AT(stream_write_timeout_s),
     "seconds a history stream's client may read nothing before it is cut off"},
    {"retention-max-age", "WEIR_RETENTION_MAX_AGE", "0", OPT_STRING, AT(retention_max_age),
     "default age after which events are removed: ISO 8601 duration (P7D) or seconds; 0 keeps"
     " them forever"},
    {"retention-max-count", "WEIR_RETENTION_MAX_COUNT", "0", OPT_SIZE, AT(retention_max_count),
     "default number of newest events each namespace keeps; 0 keeps all"},
    {"retention-interval", "WEIR_RETENTION_INTERVAL", "60", OPT_UINT, AT(retention_interval_s),
     "seconds between two sweeps that apply retention"},
    {"source-sink", "K_SINK", "", OPT_STRING, AT(source_sink),
     "where events born inside weir go out (Knative's SinkBinding sets K_SINK); empty: nowhere"},
    {"source-overrides", "K_CE_OVERRIDES", "", OPT_STRING, AT(source_overrides),
     "JSON {\"extensions\":{...}} set on every event that goes out"},
    {"source-ca-certs", "K_CA_CERTS", "", OPT_STRING, AT(source_ca_certs),
     "PEM certificates trusted for an https sink, besides the system's"},
    {"source-token-file", "WEIR_SOURCE_TOKEN_FILE", WEIR_SOURCE_TOKEN_FILE, OPT_STRING,
     AT(source_token_file),
     "file whose content, when it exists, goes out as a bearer token (re-read when it changes)"},
    {"source-inflight", "WEIR_SOURCE_INFLIGHT", "1", OPT_UINT, AT(source_inflight),
     "events sent to the source's sink at once; 1 keeps their order of arrival exactly, more "
     "start them in order but may arrive out of it"},
    {"source-timeout", "WEIR_SOURCE_TIMEOUT", "30", OPT_UINT, AT(source_timeout_s),
     "seconds one attempt to the source's sink may take"},
    {"system-events", "WEIR_SYSTEM_EVENTS", "true", OPT_BOOL, AT(system_events),
     "weir's own events (namespace, filter and listener changes, failed deliveries) enter the "
     "namespace they concern, its history and its listeners, and go out through the source"},
    {"outbox-max", "WEIR_OUTBOX_MAX", "100000", OPT_SIZE, AT(outbox_max),
     "events waiting to go out; when full, broadcast and replay answer 503 and events born of "
     "weir itself are kept in history only (counted in weir_outbox_overflow_total)"},
    {"delivery-inflight", "WEIR_DELIVERY_INFLIGHT", "512", OPT_SIZE, AT(delivery_inflight),
     "delivery attempts to listeners' targets in flight at once"},
    {"delivery-per-target", "WEIR_DELIVERY_PER_TARGET", "128", OPT_SIZE, AT(delivery_per_target),
     "of them, to one listener's target (a quarter of it once three quarters of the slots are "
     "taken)"},
    {"delivery-per-host", "WEIR_DELIVERY_PER_HOST", "0", OPT_SIZE, AT(delivery_per_host),
     "of them, to one scheme://host:port, whichever listeners they serve; 0: no limit"},
    {"delivery-stalled-inflight", "WEIR_DELIVERY_STALLED_INFLIGHT", "0", OPT_SIZE,
     AT(delivery_stalled_inflight),
     "of them, what targets that stopped answering share, so that the others keep the rest; "
     "0: a quarter of --delivery-inflight"},
    {"delivery-stall", "WEIR_DELIVERY_STALL", "5", OPT_UINT, AT(delivery_stall_s),
     "seconds a target's attempts may be in flight without any answer before it counts as "
     "stalled"},
    {"delivery-pending-max", "WEIR_DELIVERY_PENDING_MAX", "1000000", OPT_SIZE,
     AT(delivery_pending_max),
     "deliveries kept pending (waiting, retrying or in flight); past it the oldest of the "
     "listener with the most are given up and counted as failed; 0: no limit"},
    {"reply-max-hops", "WEIR_REPLY_MAX_HOPS", "8", OPT_UINT, AT(reply_max_hops),
     "replies to replies accepted before a reply is dropped as a likely loop (a reply is read "
     "up to --max-body)"},
};

#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static void usage(FILE *to)
{
    fprintf(to, "usage: weir serve [flags]\n\nServes the sink and the API until SIGTERM or "
                "SIGINT.\n\nFlags (each also read from its environment variable):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        fprintf(to, "  --%-20s %s\n  %-22s %s (default %s)\n", opts[i].flag, opts[i].help, "",
                opts[i].env, opts[i].def);
    }
}

static bool parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcmp(v, "yes") == 0) {
        *out = true;
    } else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcmp(v, "no") == 0) {
        *out = false;
    } else {
        return false;
    }
    return true;
}

static int set_opt(weir_settings_t *s, const opt_t *o, const char *v)
{
    char *field = (char *)s + o->offset;
    uint64_t n;

    switch (o->kind) {
    case OPT_STRING:
        *(const char **)field = v;
        return 0;
    case OPT_BOOL:
        return parse_bool(v, (bool *)field) ? 0 : -1;
    case OPT_SIZE:
    case OPT_UINT:
        if (!weir_parse_uint(v, o->kind == OPT_UINT ? 1000000 : SIZE_MAX, &n)) {
            return -1;
        }
        if (o->kind == OPT_SIZE) {
            *(size_t *)field = (size_t)n;
        } else {
            *(unsigned *)field = (unsigned)n;
        }
        return 0;
    }
    return -1;
}

static const opt_t *find_opt(const char *flag, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++) {
        if (strlen(opts[i].flag) == len && strncmp(opts[i].flag, flag, len) == 0) {
            return &opts[i];
        }
    }
    return NULL;
}

static int apply_defaults_and_env(weir_settings_t *s)
{
    for (size_t i = 0; i < NOPTS; i++) {
        const char *env = getenv(opts[i].env);
        set_opt(s, &opts[i], opts[i].def);
        if (env != NULL && set_opt(s, &opts[i], env) != 0) {
            weir_error("serve", "%s: bad value", opts[i].env);
            return -1;
        }
    }
    return 0;
}

/* Applies argv[*i] (and argv[*i+1] when it holds the value). */
static int apply_flag(weir_settings_t *s, int argc, char **argv, int *i)
{
    const char *arg = argv[*i];
    if (strncmp(arg, "--", 2) != 0) {
        weir_error("serve", "unexpected argument %s", arg);
        return -1;
    }
    const char *name = arg + 2, *eq = strchr(name, '=');
    const opt_t *o = find_opt(name, eq ? (size_t)(eq - name) : strlen(name));
    if (o == NULL) {
        weir_error("serve", "unknown flag %s (see --help)", arg);
        return -1;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (v == NULL && o->kind == OPT_BOOL) {
        v = "true";
    } else if (v == NULL && *i + 1 < argc) {
        v = argv[++*i];
    }
    if (v == NULL || set_opt(s, o, v) != 0) {
        weir_error("serve", "--%s: bad or missing value", o->flag);
        return -1;
    }
    return 0;
}

static int check_history(weir_settings_t *s)
{
    if (weir_retention_age_parse(s->retention_max_age, &s->retention_max_age_us) != 0) {
        weir_error("serve",
                   "--retention-max-age must be an ISO 8601 duration (P7D) or whole seconds");
        return -1;
    }
    if (s->retention_max_count > INT64_MAX || s->retention_interval_s == 0) {
        weir_error("serve", "--retention-max-count is too large, or --retention-interval is 0");
        return -1;
    }
    if (s->max_subscribers == 0 || s->stream_heartbeat_s == 0 ||
        s->stream_heartbeat_s >= s->stream_write_timeout_s) {
        weir_error("serve",
                   "--max-subscribers and --stream-heartbeat must be > 0, and the heartbeat "
                   "shorter than --stream-write-timeout");
        return -1;
    }
    return 0;
}

static int check_delivery(weir_settings_t *s)
{
    if (s->delivery_stalled_inflight == 0) {
        s->delivery_stalled_inflight = s->delivery_inflight / 4 > 0 ? s->delivery_inflight / 4 : 1;
    }
    if (s->delivery_inflight < 2 || s->delivery_per_target == 0 || s->delivery_stall_s == 0 ||
        s->delivery_stalled_inflight >= s->delivery_inflight) {
        weir_error("serve", "--delivery-inflight must be at least 2, --delivery-per-target and "
                            "--delivery-stall above 0, and --delivery-stalled-inflight below "
                            "--delivery-inflight");
        return -1;
    }
    if (s->reply_max_hops > 1000) {
        weir_error("serve", "--reply-max-hops is at most 1000");
        return -1;
    }
    return 0;
}

static int check(weir_settings_t *s)
{
    if (s->max_body < WEIR_MIN_BODY_LIMIT) {
        weir_error("serve", "--max-body must be at least %d", WEIR_MIN_BODY_LIMIT);
        return -1;
    }
    if (s->max_inflight_bytes < s->max_body) {
        weir_error("serve", "--max-inflight-bytes must be at least --max-body");
        return -1;
    }
    if (s->max_connections == 0 || s->queue_max == 0 || s->batch_max == 0) {
        weir_error("serve", "connections, queue and batch sizes must be > 0");
        return -1;
    }
    if (s->header_timeout_s == 0 || s->body_timeout_s == 0) {
        weir_error("serve", "--header-timeout and --body-timeout must be > 0");
        return -1;
    }
    if (s->filter_timeout_ms == 0 || s->filter_memory < WEIR_SCRIPT_MEM_MIN) {
        weir_error("serve", "--filter-timeout must be > 0 and --filter-memory at least %u",
                   WEIR_SCRIPT_MEM_MIN);
        return -1;
    }
    if (weir_log_parse_level(s->log_level) < 0) {
        weir_error("serve", "--log-level must be debug, info, warn or error");
        return -1;
    }
    if (s->source_sink[0] != '\0' &&
        (s->source_inflight == 0 || s->source_timeout_s == 0 || s->outbox_max == 0)) {
        weir_error("serve", "--source-inflight, --source-timeout and --outbox-max must be > 0");
        return -1;
    }
    return check_history(s) == 0 ? check_delivery(s) : -1;
}

int weir_settings_parse(weir_settings_t *s, int argc, char **argv)
{
    memset(s, 0, sizeof(*s));
    for (int i = 1; i < argc; i++) { /* help, whatever else is wrong */
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 1;
        }
    }
    if (apply_defaults_and_env(s) != 0) {
        return -1;
    }
    for (int i = 1; i < argc; i++) {
        if (apply_flag(s, argc, argv, &i) != 0) {
            return -1;
        }
    }
    return check(s);
}
