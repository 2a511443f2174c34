/*
 * GET .../events/history/subscribe: a namespace's events as server-sent events. Each stream
 * reads from the store at its own pace, a page at a time, from the seq its client last saw
 * (Last-Event-ID or ?after=; the oldest event when neither is given) and then waits for new
 * events to become durable. So a slow client costs a page of memory and never makes weir buffer
 * without bound; a client that reads nothing for --stream-write-timeout is cut off. Events that
 * retention removed before the stream could send them are announced as a gap, so that a client
 * that resumes after a long absence knows what it missed.
 *
 * Thread-per-connection mode lets the content reader block on the connection's own thread;
 * it waits in short slices so that a stop is seen within STOP_CHECK_NS.
 */
#include <inttypes.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define PAGE_EVENTS   64
#define PAGE_BYTES    (256 * 1024) /* a page's events stop here (after at least one) */
#define BLOCK_SIZE    (32 * 1024)
#define STOP_CHECK_NS 100000000u
#define NS_PER_S      1000000000u

typedef struct stream {
    weir_server_t *srv;
    char *ns;
    int fd;            /* the client's socket, watched for a hang-up while the stream waits */
    int64_t pos;       /* every event of ns up to here was sent (or does not exist) */
    int64_t told;      /* retention's removals up to here were announced (or predate the start) */
    bool from_oldest;  /* no start was given: removals before the first page are not a gap */
    weir_buf_t out;    /* what is still to be handed to libmicrohttpd */
    size_t sent;       /* bytes of out handed so far */
    uint64_t handed;   /* when the reader last returned bytes */
    uint64_t beat_due; /* when an idle stream sends its next keep-alive */
    bool closing;      /* out ends with the final message: end the stream after it */
    bool gone;         /* the client hung up: end the stream without a final message */
} stream_t;

/* ---- the SSE wire format --------------------------------------------------------------- */

/* Appends one message: the JSON form split into data lines at any CR, LF or CRLF. */
static void put_event(weir_buf_t *b, const weir_store_record_t *r)
{
    const char *p = r->json;
    const char *end = r->json + r->json_len;

    weir_buf_printf(b, "id: %" PRId64 "\nevent: cloudevent\n", r->seq);
    while (p <= end) {
        const char *eol = p;
        while (eol < end && *eol != '\r' && *eol != '\n') {
            eol++;
        }
        weir_buf_puts(b, "data: ");
        weir_buf_append(b, p, (size_t)(eol - p));
        weir_buf_putc(b, '\n');
        if (eol == end) {
            break;
        }
        p = eol + (eol[0] == '\r' && eol + 1 < end && eol[1] == '\n' ? 2 : 1);
    }
    weir_buf_putc(b, '\n');
}

/* Announces that retention removed events of (after, through] before they could be sent; any
 * of them that remain follow. No id: where the client stands does not move. */
static void put_gap(weir_buf_t *b, int64_t after, int64_t through)
{
    weir_buf_printf(b,
                    "event: gap\ndata: {\"reason\":\"retention\",\"after\":%" PRId64
                    ",\"through\":%" PRId64 "}\n\n",
                    after, through);
}

/* Ends the stream after a last message that says why: a comment, and an event for clients. */
static void put_close(stream_t *st, const char *reason, const char *detail)
{
    weir_buf_printf(&st->out, ": closing: %s\nevent: closed\ndata: {\"reason\":\"%s\"}\n\n", detail,
                    reason);
    st->closing = true;
}

/* ---- reading the store ----------------------------------------------------------------- */

/*
 * Appends the next page of durable events: the store stops it at PAGE_BYTES, so that a stream
 * that catches up through big events holds one page of them, not PAGE_EVENTS. Once every event
 * up to the horizon has been sent, the store's next moves pos to the horizon, so that a wait is
 * not woken again by events that are already gone (retention, a deleted namespace) or sent.
 */
static int read_page(stream_t *st)
{
    weir_store_page_t page;

    int rc =
        weir_store_since(st->srv->store, st->ns, st->pos, PAGE_EVENTS, PAGE_BYTES, &page, NULL);
    if (rc != 0) {
        return rc;
    }
    if (page.trimmed > st->pos && page.trimmed > st->told) {
        if (!st->from_oldest) {
            put_gap(&st->out, st->pos > st->told ? st->pos : st->told, page.trimmed);
            WEIR_LOG(WEIR_LOG_DEBUG, "http", st->ns,
                     "live stream at seq %" PRId64 " missed events up to %" PRId64
                     ": removed by retention",
                     st->pos, page.trimmed);
        }
        st->told = page.trimmed;
    }
    st->from_oldest = false;
    for (size_t i = 0; i < page.n; i++) {
        put_event(&st->out, &page.recs[i]);
    }
    st->pos = page.next;
    weir_store_page_free(&page);
    return 0;
}

/*
 * A client of a live stream sends nothing after its request, so a socket that turns readable
 * has hung up (or broken the protocol). Checking it between waits frees a stream's slot within
 * STOP_CHECK_NS of the hang-up instead of at the second failed write.
 */
static bool peer_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};

    return fd >= 0 && poll(&p, 1, 0) > 0;
}

/* Blocks until there is something to send: events, a keep-alive, or the final message; or
 * until the client is gone. */
static void fill(stream_t *st)
{
    weir_store_t *store = st->srv->store;
    uint64_t beat = (uint64_t)st->srv->settings->stream_heartbeat_s * NS_PER_S;

    while (st->out.len == 0) {
        if (peer_gone(st->fd)) {
            st->gone = true;
            return;
        }
        if (atomic_load(&st->srv->stopping)) {
            put_close(st, "stopping", "weir is stopping; reconnect with Last-Event-ID");
        } else if (!weir_store_ns_exists(store, st->ns)) {
            put_close(st, "namespace-deleted", "the namespace was deleted");
        } else if (read_page(st) != 0) {
            put_close(st, "store-failed", "the store cannot be read; reconnect later");
        } else if (st->out.len == 0 && weir_mono_ns() >= st->beat_due) {
            weir_buf_puts(&st->out, ": keep-alive\n\n");
        } else if (st->out.len == 0) {
            uint64_t left = st->beat_due - weir_mono_ns();
            weir_store_wait(store, st->ns, st->pos, left < STOP_CHECK_NS ? left : STOP_CHECK_NS);
        }
    }
    st->beat_due = weir_mono_ns() + beat;
}

/* ---- the content reader ---------------------------------------------------------------- */

/* True when the stream last handed bytes over longer ago than the write timeout. */
static bool stalled(const stream_t *st)
{
    uint64_t limit = (uint64_t)st->srv->settings->stream_write_timeout_s * NS_PER_S;

    return st->handed != 0 && weir_mono_ns() - st->handed > limit;
}

/* A client that still reads, but so slowly that its socket took longer than the write timeout
 * to take the last piece, is cut off; the final message follows what is queued, so that no
 * event is cut in half. (One that reads nothing at all is dropped by libmicrohttpd's timeout
 * of the connection; stream_free tells that apart.) */
static void check_slow(stream_t *st)
{
    if (!st->closing && stalled(st)) {
        WEIR_LOG(WEIR_LOG_INFO, "http", st->ns, "live stream cut off: the client did not read");
        put_close(st, "slow-client", "the client read nothing for longer than the write timeout");
    }
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream_t *st = cls;

    check_slow(st);
    if (st->sent == st->out.len) {
        if (st->closing) {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        weir_buf_reset(&st->out);
        st->sent = 0;
        fill(st);
        if (st->gone) {
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
    size_t n = st->out.len - st->sent < max ? st->out.len - st->sent : max;
    memcpy(buf, st->out.data + st->sent, n);
    st->sent += n;
    st->handed = weir_mono_ns();
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    stream_t *st = cls;

    atomic_fetch_sub(&st->srv->subscribers, 1);
    /* Heartbeats hand bytes over more often than the timeout, so a stream that ends without a
     * final message or a hang-up, long after its last hand-off, was timed out for not reading. */
    if (!st->closing && !st->gone && stalled(st)) {
        WEIR_LOG(WEIR_LOG_INFO, "http", st->ns, "live stream cut off: the client did not read");
    }
    WEIR_LOG(WEIR_LOG_DEBUG, "http", st->ns, "live stream closed at seq %" PRId64, st->pos);
    weir_buf_free(&st->out);
    weir_free(st->ns);
    weir_free(st);
}

/* ---- the request ----------------------------------------------------------------------- */

/* A seq: 1 to 19 digits, at most INT64_MAX. An empty Last-Event-ID means none. */
static bool parse_seq(const char *s, int64_t *out)
{
    uint64_t v;
    if (!weir_parse_uint(s, INT64_MAX, &v)) {
        return false;
    }
    *out = (int64_t)v;
    return true;
}

/*
 * Where the stream starts: Last-Event-ID wins over ?after=, since a reconnecting client keeps
 * its first URL and adds the header. *given names the one used, or is NULL for neither (the
 * stream starts from the oldest event). A seq above the durable horizon was never given by this
 * weir (its database is another, or lost commits under --no-sync): refused, rather than leaving
 * the stream silent until new events pass it.
 */
static int start_seq(weir_req_t *req, int64_t *after, const char **given, weir_err_t *err)
{
    const char *last = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Last-Event-ID");
    const char *arg = weir_req_arg(req, "after");
    const char *value = NULL;

    *after = 0;
    *given = NULL;
    if (last != NULL && last[0] != '\0') {
        *given = "Last-Event-ID";
        value = last;
    } else if (arg != NULL) {
        *given = "after";
        value = arg;
    }
    if (value == NULL) {
        return 0;
    }
    if (!parse_seq(value, after)) {
        return weir_err_set(err, WEIR_EINVAL, *given,
                            "must be the seq of an event: a whole number, 0 or more");
    }
    int64_t newest = weir_store_durable_seq(req->srv->store);
    if (*after > newest) {
        return weir_err_set(err, WEIR_EINVAL, *given,
                            "is above the newest seq this weir has given (%" PRId64
                            "): not a position in this stream",
                            newest);
    }
    return 0;
}

static enum MHD_Result queue_stream(weir_req_t *req, stream_t *st)
{
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, BLOCK_SIZE,
                                                                  stream_read, st, stream_free);
    if (resp == NULL) {
        stream_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no"); /* nginx: do not buffer */
    /* A client that takes nothing is dropped by libmicrohttpd after the write timeout. */
    MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              req->srv->settings->stream_write_timeout_s);
    return weir_queue(req, MHD_HTTP_OK, resp);
}

enum MHD_Result weir_stream_subscribe(weir_req_t *req, const char *ns)
{
    weir_err_t err = {0};
    int64_t after = 0;
    const char *given = NULL;

    if (start_seq(req, &after, &given, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    unsigned max = req->srv->settings->max_subscribers;
    if (atomic_fetch_add(&req->srv->subscribers, 1) >= max) {
        atomic_fetch_sub(&req->srv->subscribers, 1);
        return weir_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE,
                            "too many live streams are open; retry later", NULL, NULL);
    }

    stream_t *st = weir_calloc(1, sizeof(*st));
    st->srv = req->srv;
    st->ns = weir_strdup(ns);
    st->pos = after;
    st->told = after;
    st->from_oldest = given == NULL;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    st->fd = info != NULL ? info->connect_fd : -1;
    st->beat_due = weir_mono_ns() + (uint64_t)req->srv->settings->stream_heartbeat_s * NS_PER_S;
    /* The first bytes go out at once, so that the client sees the stream open. */
    weir_buf_puts(&st->out, "retry: 1000\n\n");
    WEIR_LOG(WEIR_LOG_DEBUG, "http", ns, "live stream opened after seq %" PRId64, after);
    return queue_stream(req, st);
}
