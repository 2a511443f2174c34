/*
 * The two libmicrohttpd daemons and the life of a request: its body is gathered within the
 * size and memory limits, then the surface's handler answers it, possibly after a suspension
 * while the store commits.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/internal.h"

/* Stack of each connection's thread: a filter run needs 1 MiB free (script.h); the rest is
 * ours. Only what is touched becomes resident. */
#define WEIR_THREAD_STACK (2 * 1024 * 1024)

/* Reserves n more body bytes in the server-wide budget; false when it is spent. */
static bool reserve_bytes(weir_req_t *req, size_t n)
{
    size_t max = req->srv->settings->max_inflight_bytes;
    size_t now = atomic_fetch_add(&req->srv->inflight_bytes, n);
    if (now + n > max) {
        atomic_fetch_sub(&req->srv->inflight_bytes, n);
        return false;
    }
    req->reserved += n;
    return true;
}

static weir_req_t *req_new(weir_server_t *srv, weir_surface_t surface, struct MHD_Connection *conn,
                           const char *method, const char *url)
{
    weir_req_t *req = weir_calloc(1, sizeof(*req));
    req->srv = srv;
    req->conn = conn;
    req->surface = surface;
    req->method = method;
    req->url = url;
    req->start_ns = weir_mono_ns();
    pthread_mutex_init(&req->ingest.lock, NULL);
    pthread_cond_init(&req->ingest.committed, NULL);
    atomic_fetch_add(&srv->inflight, 1);
    return req;
}

static void req_free(weir_req_t *req)
{
    weir_ingest_release(&req->ingest);
    pthread_cond_destroy(&req->ingest.committed);
    pthread_mutex_destroy(&req->ingest.lock);
    atomic_fetch_sub(&req->srv->inflight_bytes, req->reserved);
    atomic_fetch_sub(&req->srv->inflight, 1);
    weir_buf_free(&req->body);
    weir_free(req);
}

/* Decides from Content-Length, before any byte of the body, whether it can be taken. */
static void check_declared_length(weir_req_t *req)
{
    const char *cl =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl == NULL) {
        return;
    }
    unsigned long long n = strtoull(cl, NULL, 10);
    if (n > req->srv->settings->max_body) {
        req->refused = MHD_HTTP_CONTENT_TOO_LARGE;
    } else if (n > 0 && !reserve_bytes(req, (size_t)n)) {
        req->refused = MHD_HTTP_SERVICE_UNAVAILABLE;
    }
}

/*
 * Whether the body may still arrive: it must be whole --body-timeout seconds after the headers.
 * libmicrohttpd's idle timeout starts again with every byte, so a client that sends one now and
 * then would hold its connection, and the bytes reserved for its body, for ever. Called when the
 * headers arrive and again with each piece of the body: until the body is whole the connection's
 * timeout is cut to what is left before the deadline, and a piece that arrives after it closes
 * the connection.
 */
static bool body_in_time(weir_req_t *req)
{
    uint64_t limit = (uint64_t)req->srv->settings->body_timeout_s * 1000000000u;
    uint64_t spent = weir_mono_ns() - req->start_ns;
    if (spent >= limit) {
        req->timed_out = true;
        return false;
    }
    unsigned left = (unsigned)((limit - spent + 999999999u) / 1000000000u);
    unsigned idle = req->srv->settings->idle_timeout_s;
    if (idle == 0 || left < idle) {
        MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT, left);
        req->hurried = true;
    }
    return true;
}

/* Takes one piece of the body, counting it against the limits. */
static void take_body(weir_req_t *req, const char *data, size_t n)
{
    if (req->refused != 0) {
        return; /* the answer is decided; what still arrives is read and dropped */
    }
    if (req->body.len + n > req->srv->settings->max_body) {
        req->refused = MHD_HTTP_CONTENT_TOO_LARGE;
        weir_buf_free(&req->body);
        return;
    }
    if (req->body.len + n > req->reserved &&
        !reserve_bytes(req, req->body.len + n - req->reserved)) {
        req->refused = MHD_HTTP_SERVICE_UNAVAILABLE;
        weir_buf_free(&req->body);
        return;
    }
    weir_buf_append(&req->body, data, n);
}

static enum MHD_Result answer_refused(weir_req_t *req)
{
    weir_metrics_count(
        req->srv->metrics, NULL,
        req->refused == MHD_HTTP_CONTENT_TOO_LARGE ? WEIR_OUT_TOO_LARGE : WEIR_OUT_OVERLOADED, 1);
    if (req->refused == MHD_HTTP_CONTENT_TOO_LARGE) {
        char detail[128];
        snprintf(detail, sizeof(detail), "the body is larger than the limit of %zu bytes",
                 req->srv->settings->max_body);
        return weir_problem(req, MHD_HTTP_CONTENT_TOO_LARGE, detail, NULL, NULL);
    }
    return weir_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                        "too many request bodies are held in memory; retry later", NULL, NULL);
}

/* A request on a kept-alive connection after the stop began: refused, and the connection closed,
 * so that nothing new starts while the daemons are being stopped. */
static enum MHD_Result answer_stopping(weir_req_t *req)
{
    static const char body[] = "{\"type\":\"urn:weir:problem:unavailable\",\"title\":\"Service "
                               "Unavailable\",\"status\":503,\"detail\":\"weir is stopping\"}";
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/problem+json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    return weir_queue(req, MHD_HTTP_SERVICE_UNAVAILABLE, resp);
}

/* The headers that frame a request's body. */
typedef struct framing {
    unsigned content_lengths;
    const char *transfer_encoding;
    unsigned transfer_encodings;
} framing_t;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    framing_t *f = cls;
    if (weir_strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_lengths++;
    } else if (weir_strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding = value != NULL ? value : "";
        f->transfer_encodings++;
    }
    return MHD_YES;
}

/*
 * What makes the length of a request's body ambiguous (RFC 9112, section 6), or NULL: Content-
 * Length with Transfer-Encoding, Content-Length twice, or a transfer coding other than chunked,
 * which libmicrohttpd would wait on until the idle timeout. Where two parties read such framing
 * differently, one request can hide another in its body.
 */
static const char *framing_fault(weir_req_t *req, unsigned *status)
{
    framing_t f = {0};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_framing, &f);
    *status = MHD_HTTP_BAD_REQUEST;
    if (f.transfer_encodings > 0 && f.content_lengths > 0) {
        return "Content-Length and Transfer-Encoding together";
    }
    if (f.content_lengths > 1) {
        return "more than one Content-Length";
    }
    if (f.transfer_encodings > 1 ||
        (f.transfer_encodings == 1 && weir_strcasecmp(f.transfer_encoding, "chunked") != 0)) {
        *status = MHD_HTTP_NOT_IMPLEMENTED;
        return "the only transfer coding taken is chunked";
    }
    return NULL;
}

static enum MHD_Result on_request(weir_server_t *srv, weir_surface_t surface,
                                  struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *upload_data, size_t *upload_data_size, void **req_cls)
{
    weir_req_t *req = *req_cls;
    if (req == NULL) {
        weir_deadlines_headers_in(conn);
        *req_cls = req = req_new(srv, surface, conn, method, url);
        if (atomic_load(&srv->stopping)) {
            return answer_stopping(req); /* counted in flight first: see weir_server_quiesce */
        }
        unsigned status;
        const char *fault = framing_fault(req, &status);
        if (fault != NULL) {
            if (surface == WEIR_SURFACE_SINK) {
                weir_metrics_count(srv->metrics, NULL, WEIR_OUT_INVALID, 1);
            }
            req->close = true; /* what follows on the connection cannot be told apart */
            return weir_problem(req, status, fault, NULL, NULL);
        }
        check_declared_length(req);
        /* Answering now spares reading a body that will be refused; the connection closes. */
        if (req->refused != 0) {
            return answer_refused(req);
        }
        (void)body_in_time(req); /* the body's deadline runs from the headers */
        return MHD_YES;
    }
    if (req->answered) {
        /* Answered on the first call (a refusal). libmicrohttpd may call again all the same:
         * while a daemon stops, it accepts a response without queuing it and goes on with the
         * request. Nothing more may start then (an ingest would park the connection, which a
         * stopping daemon refuses to have), so what still arrives is dropped. */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!body_in_time(req)) {
            return MHD_NO;
        }
        take_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (req->hurried) { /* the body is whole: the next request has the idle timeout */
        MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                  srv->settings->idle_timeout_s);
        req->hurried = false;
    }
    if (req->refused != 0) {
        return answer_refused(req);
    }
    if (req->ingest.submitted) {
        return weir_ingest_resumed(req);
    }
    return surface == WEIR_SURFACE_SINK ? weir_sink_handle(req) : weir_api_handle(req);
}

/* libmicrohttpd hands a worker thread's daemon to the callback, not the one started, so each
 * listener has a callback of its own that names its surface. */
static enum MHD_Result on_sink_request(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_data_size,
                                       void **req_cls)
{
    return on_request(cls, WEIR_SURFACE_SINK, conn, url, method, upload_data, upload_data_size,
                      req_cls);
}

static enum MHD_Result on_api_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **req_cls)
{
    return on_request(cls, WEIR_SURFACE_API, conn, url, method, upload_data, upload_data_size,
                      req_cls);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    weir_server_t *srv = cls;
    weir_deadlines_request_done(srv->deadlines, conn);
    weir_req_t *req = *req_cls;
    if (req == NULL) {
        return;
    }
    /* A timeout after the answer is a client that did not read it, not a late body. */
    if (req->timed_out || (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED && !req->answered)) {
        char more[64];
        if (weir_refusal_log_allowed(req->srv, WEIR_LOG_INFO, more)) {
            weir_info(req->surface == WEIR_SURFACE_SINK ? "sink" : "api",
                      "closed %s %.200s: its body did not arrive within --body-timeout (%zu bytes "
                      "of it did)%s",
                      req->method, req->url, req->body.len, more);
        }
        if (req->surface == WEIR_SURFACE_SINK) {
            weir_metrics_count(req->srv->metrics, NULL, WEIR_OUT_TIMED_OUT, 1);
        }
    } else if (req->surface == WEIR_SURFACE_SINK) {
        weir_metrics_latency(req->srv->metrics, weir_mono_ns() - req->start_ns);
    }
    req_free(req);
    *req_cls = NULL;
}

/*
 * Percent-decodes a URL's path or one of its query arguments in place, as libmicrohttpd's own
 * decoder does, except that "%00" stays as it is: a NUL would end the path where weir reads it,
 * so that /alpha%00beta would name alpha, and /%00 every namespace.
 */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    char *out = s;
    for (const char *in = s; *in != '\0'; in++) {
        int hi, lo;
        if (*in == '%' && (hi = weir_hex_value(in[1])) >= 0 && (lo = weir_hex_value(in[2])) >= 0 &&
            (hi | lo) != 0) {
            *out++ = (char)(hi << 4 | lo);
            in += 2;
        } else {
            *out++ = *in;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

/* Parses "host:port", ":port" or "[v6]:port" into addr; *any is set for an empty host. */
static int parse_addr(const char *text, struct sockaddr_storage *addr, bool *any, uint16_t *port,
                      weir_err_t *err)
{
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon[1] == '\0') {
        return weir_err_set(err, WEIR_EINVAL, "", "address %s is not host:port", text);
    }
    char *end;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (*end != '\0' || p > 65535) {
        return weir_err_set(err, WEIR_EINVAL, "", "address %s has a bad port", text);
    }
    *port = (uint16_t)p;
    *any = colon == text;
    if (*any) {
        return 0;
    }
    char host[256];
    size_t hlen = (size_t)(colon - text);
    if (text[0] == '[' && hlen >= 2 && text[hlen - 1] == ']') {
        text++;
        hlen -= 2;
    }
    snprintf(host, sizeof(host), "%.*s", (int)hlen, text);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(host, NULL, &hints, &res) != 0) {
        return weir_err_set(err, WEIR_EINVAL, "", "cannot resolve host of %s", text);
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    ((struct sockaddr_in *)addr)->sin_port = htons(*port); /* same offset in sockaddr_in6 */
    return 0;
}

/* A kernel without IPv6 cannot listen on both families; ":port" then means every IPv4 address. */
static bool ipv6_available(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) {
        weir_warn("http", "IPv6 is not available: listening on IPv4 only");
        return false;
    }
    close(fd);
    return true;
}

static struct MHD_Daemon *start_daemon(weir_server_t *srv, weir_surface_t surface, const char *text,
                                       weir_err_t *err)
{
    struct sockaddr_storage addr = {0};
    bool any = false;
    uint16_t port = 0;
    if (parse_addr(text, &addr, &any, &port, err) != 0) {
        return NULL;
    }
    const weir_settings_t *s = srv->settings;
    const char *name = surface == WEIR_SURFACE_SINK ? "sink" : "api";
    MHD_AccessHandlerCallback cb = surface == WEIR_SURFACE_SINK ? on_sink_request : on_api_request;
    /*
     * The sink: a few threads over epoll, and a request that waits for its commit is suspended
     * (ingest.c), so that many connections cost no thread each and no switch to one. The API: a
     * thread per connection, as its live streams and synchronous writes block their thread.
     */
    bool sink = surface == WEIR_SURFACE_SINK;
    unsigned threads = s->sink_threads;
    if (threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 2 ? (unsigned)cores : 2;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                     (sink ? MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME
                           : MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL) |
                     (any && ipv6_available() ? MHD_USE_DUAL_STACK : 0);
    /* No MHD_OPTION_LISTENING_ADDRESS_REUSE: it sets SO_REUSEPORT, with which a second weir on
     * the same port starts and takes half the requests into its own store. libmicrohttpd's
     * default, SO_REUSEADDR, is enough to restart at once on the port of a stopped weir. */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, port, NULL, NULL, cb, srv, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, weir_deadlines_on_connection, srv->deadlines,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)WEIR_THREAD_STACK, MHD_OPTION_CONNECTION_LIMIT,
        s->max_connections, MHD_OPTION_CONNECTION_TIMEOUT, s->idle_timeout_s,
        MHD_OPTION_THREAD_POOL_SIZE, sink ? threads : 0u, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
        NULL, any ? MHD_OPTION_END : MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_END);
    if (d == NULL) {
        weir_err_set(err, WEIR_EIO, "", "cannot listen on %s for the %s", text, name);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    weir_info("http", "%s listening on %s (port %u)", name, text,
              info ? (unsigned)info->port : (unsigned)port);
    return d;
}

int weir_server_start(weir_server_t *srv, weir_err_t *err)
{
    const weir_settings_t *s = srv->settings;
    srv->deadlines = weir_deadlines_start(s->header_timeout_s, s->idle_timeout_s, srv->metrics);
    if (srv->deadlines == NULL) {
        return weir_err_set(err, WEIR_EIO, "", "cannot start the thread of header deadlines");
    }
    srv->sink = start_daemon(srv, WEIR_SURFACE_SINK, s->sink_addr, err);
    if (srv->sink != NULL) {
        srv->api = start_daemon(srv, WEIR_SURFACE_API, s->api_addr, err);
    }
    if (srv->api == NULL) {
        weir_server_stop(srv);
        return WEIR_EIO;
    }
    return 0;
}

/*
 * A request counts itself in flight before it looks at the stopping flag, so once the flag is set
 * and the count has reached zero, no request can still start an ingest.
 */
void weir_server_quiesce(weir_server_t *srv)
{
    atomic_store(&srv->stopping, true);
    MHD_socket s = MHD_quiesce_daemon(srv->sink);
    if (s != MHD_INVALID_SOCKET) {
        close(s);
    }
    s = MHD_quiesce_daemon(srv->api);
    if (s != MHD_INVALID_SOCKET) {
        close(s);
    }
}

/*
 * Requests still waiting for their commit when the drain gave up: from now on none parks its
 * connection (it waits on its thread, which the daemon's stop then waits for), and those parked
 * already are waited for. The store answers every write it took, committed or failed, so this
 * ends; an answer it gives is never lost for a timeout.
 */
static void wait_parked(weir_server_t *srv)
{
    atomic_store(&srv->no_park, true);
    uint64_t next_log = weir_mono_ns() + 5000000000u;
    while (atomic_load(&srv->parked) > 0) {
        if (weir_mono_ns() > next_log) {
            weir_warn("http", "still waiting for the store to answer %d requests",
                      atomic_load(&srv->parked));
            next_log += 5000000000u;
        }
        usleep(1000);
    }
}

void weir_server_stop(weir_server_t *srv)
{
    wait_parked(srv);
    if (srv->sink != NULL) {
        MHD_stop_daemon(srv->sink);
    }
    if (srv->api != NULL) {
        MHD_stop_daemon(srv->api);
    }
    srv->sink = srv->api = NULL;
    weir_deadlines_stop(srv->deadlines);
    srv->deadlines = NULL;
}

const char *weir_req_arg(weir_req_t *req, const char *name)
{
    const char *value = NULL;
    size_t len = 0;
    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &value,
                                      &len) != MHD_YES) {
        return NULL;
    }
    return value != NULL ? value : ""; /* "?name" alone: given, and empty */
}
