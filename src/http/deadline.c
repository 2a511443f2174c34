/*
 * Deadlines for request headers. libmicrohttpd's idle timeout starts again with every byte, and
 * no handler of weir's runs before a request's headers are whole, so a client that sends its
 * headers a byte now and then would hold a connection for ever; enough such clients hold them
 * all. Each connection is registered when it opens; a thread looks at them every second and
 * shuts down the socket of one whose headers are late, which libmicrohttpd then closes as a
 * connection its client ended.
 *
 * The socket is shut down under the registry's lock, and libmicrohttpd tells a connection's
 * close (on_connection) before it closes the socket: so the descriptor shut down is always the
 * connection's own, never one the kernel has since handed to another.
 */
#include <stdlib.h>
#include <sys/socket.h>

#include "http/internal.h"

typedef struct watched {
    struct watched *prev, *next;
    int fd;
    _Atomic uint64_t due_ns; /* when the headers of its next request are due; 0: none */
    bool cut;                /* shut down already */
} watched_t;

struct weir_deadlines {
    uint64_t header_ns; /* --header-timeout: after a connection opens */
    uint64_t next_ns;   /* after an answer (0: none) */
    weir_metrics_t *metrics;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    watched_t *head; /* under lock */
    bool stopping;   /* under lock */
    bool started;    /* the thread runs */
    pthread_t thread;
};

static watched_t *watched_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info != NULL ? info->socket_context : NULL;
}

void weir_deadlines_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                                  enum MHD_ConnectionNotificationCode code)
{
    weir_deadlines_t *dl = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *info =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (info == NULL) {
            return; /* not watched: libmicrohttpd's idle timeout alone applies */
        }
        watched_t *w = weir_calloc(1, sizeof(*w));
        w->fd = info->connect_fd;
        atomic_store(&w->due_ns, weir_mono_ns() + dl->header_ns);
        pthread_mutex_lock(&dl->lock);
        w->next = dl->head;
        if (dl->head != NULL) {
            dl->head->prev = w;
        }
        dl->head = w;
        pthread_mutex_unlock(&dl->lock);
        *socket_context = w;
        return;
    }
    watched_t *w = *socket_context;
    if (w == NULL) {
        return;
    }
    pthread_mutex_lock(&dl->lock);
    if (w->prev != NULL) {
        w->prev->next = w->next;
    } else {
        dl->head = w->next;
    }
    if (w->next != NULL) {
        w->next->prev = w->prev;
    }
    pthread_mutex_unlock(&dl->lock);
    *socket_context = NULL;
    weir_free(w);
}

void weir_deadlines_headers_in(struct MHD_Connection *conn)
{
    watched_t *w = watched_of(conn);
    if (w != NULL) {
        atomic_store_explicit(&w->due_ns, 0, memory_order_relaxed);
    }
}

void weir_deadlines_request_done(weir_deadlines_t *dl, struct MHD_Connection *conn)
{
    watched_t *w = watched_of(conn);
    if (w == NULL) {
        return;
    }
    uint64_t due = dl->next_ns == 0 ? 0 : weir_mono_ns() + dl->next_ns;
    atomic_store_explicit(&w->due_ns, due, memory_order_relaxed);
}

/* Shuts down every connection whose headers are late; returns how many. Under lock. */
static unsigned sweep(weir_deadlines_t *dl)
{
    uint64_t now = weir_mono_ns();
    unsigned cut = 0;
    for (watched_t *w = dl->head; w != NULL; w = w->next) {
        uint64_t due = atomic_load_explicit(&w->due_ns, memory_order_relaxed);
        if (due != 0 && now >= due && !w->cut) {
            shutdown(w->fd, SHUT_RDWR);
            w->cut = true;
            cut++;
        }
    }
    return cut;
}

static void *sweeper_main(void *arg)
{
    weir_deadlines_t *dl = arg;
    pthread_setname_np(pthread_self(), "weir-deadlines");
    pthread_mutex_lock(&dl->lock);
    while (!dl->stopping) {
        /* Each second, so that a connection is cut at most a second after its deadline. */
        struct timespec ts = weir_mono_deadline(1000000000u);
        pthread_cond_timedwait(&dl->wake, &dl->lock, &ts);
        unsigned cut = dl->stopping ? 0 : sweep(dl);
        if (cut > 0) {
            weir_metrics_header_timeouts(dl->metrics, cut);
            weir_info("http",
                      "closed %u connections whose request headers did not arrive within "
                      "--header-timeout",
                      cut);
        }
    }
    pthread_mutex_unlock(&dl->lock);
    return NULL;
}

weir_deadlines_t *weir_deadlines_start(unsigned header_timeout_s, unsigned idle_timeout_s,
                                       weir_metrics_t *metrics)
{
    weir_deadlines_t *dl = weir_calloc(1, sizeof(*dl));
    dl->metrics = metrics;
    dl->header_ns = (uint64_t)header_timeout_s * 1000000000u;
    /* A kept-alive connection may wait for its next request as long as the idle timeout lets
     * it; without one, for ever. Its deadline comes a sweep after the idle timeout, which so
     * closes one that sends nothing, and what is cut here is only ever late headers. */
    uint64_t idle_ns = (uint64_t)idle_timeout_s * 1000000000u + 1000000000u;
    dl->next_ns = idle_timeout_s == 0 ? 0 : idle_ns > dl->header_ns ? idle_ns : dl->header_ns;
    pthread_mutex_init(&dl->lock, NULL);
    weir_cond_init_mono(&dl->wake);
    dl->started = pthread_create(&dl->thread, NULL, sweeper_main, dl) == 0;
    if (!dl->started) {
        weir_deadlines_stop(dl);
        return NULL;
    }
    return dl;
}

void weir_deadlines_stop(weir_deadlines_t *dl)
{
    if (dl == NULL) {
        return;
    }
    pthread_mutex_lock(&dl->lock);
    dl->stopping = true;
    pthread_cond_signal(&dl->wake);
    pthread_mutex_unlock(&dl->lock);
    if (dl->started) {
        pthread_join(dl->thread, NULL);
    }
    pthread_cond_destroy(&dl->wake);
    pthread_mutex_destroy(&dl->lock);
    weir_free(dl); /* the daemons are stopped: every connection has been told closed */
}
