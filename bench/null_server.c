/*
 * The baselines of the ingest benchmark: a libmicrohttpd server configured like weir's sink
 * (internal thread pool, epoll) that reads each request's body and answers 202 with nothing else.
 *
 * With --durable FILE it answers only once the body is on disk, the least that any server must
 * do before it acknowledges durably, done the way weir's sink does it: each request's connection
 * is suspended, and one thread writes the bodies that arrived meanwhile to FILE (cycling over its
 * first 16 MiB, as a reused WAL does), fdatasyncs it and resumes their connections.
 *
 * Usage: null_server PORT THREADS [--durable FILE]
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <microhttpd.h>

#define FILE_SPAN (16 * 1024 * 1024)
#define BATCH_MAX 4096
#define BYTES_MAX (BATCH_MAX * 1024)

/* The requests waiting for the next fsync, and their bodies. */
typedef struct batch {
    struct MHD_Connection *conns[BATCH_MAX];
    size_t nconns;
    char bytes[BYTES_MAX];
    size_t nbytes;
} batch_t;

static struct {
    int fd; /* -1: answer at once */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    batch_t *open; /* filled by the request threads */
    batch_t *syncing;
    off_t offset;
} durable = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

typedef struct request {
    bool parked;
    char body[1024]; /* the body's first KiB is what is written */
    size_t len;
} request_t;

static void *syncer_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&durable.lock);
        while (durable.open->nconns == 0) {
            pthread_cond_wait(&durable.wake, &durable.lock);
        }
        batch_t *b = durable.open;
        durable.open = durable.syncing;
        durable.syncing = b;
        pthread_mutex_unlock(&durable.lock);

        if (durable.offset + (off_t)b->nbytes > FILE_SPAN) {
            durable.offset = 0;
        }
        if (pwrite(durable.fd, b->bytes, b->nbytes, durable.offset) != (ssize_t)b->nbytes ||
            fdatasync(durable.fd) != 0) {
            perror("null_server: write");
            exit(1);
        }
        durable.offset += (off_t)b->nbytes;
        for (size_t i = 0; i < b->nconns; i++) {
            MHD_resume_connection(b->conns[i]);
        }
        b->nconns = 0;
        b->nbytes = 0;
    }
    return NULL;
}

/* Queues the request's body for the next fsync and parks its connection until then; false
 * when the batch is full (the request is answered at once: never under the benchmark's load). */
static bool park(struct MHD_Connection *conn, request_t *req)
{
    pthread_mutex_lock(&durable.lock);
    batch_t *b = durable.open;
    bool room = b->nconns < BATCH_MAX && b->nbytes + req->len <= BYTES_MAX;
    if (room) {
        memcpy(b->bytes + b->nbytes, req->body, req->len);
        b->nbytes += req->len;
        b->conns[b->nconns++] = conn;
        req->parked = true;
        MHD_suspend_connection(conn);
        pthread_cond_signal(&durable.wake);
    }
    pthread_mutex_unlock(&durable.lock);
    return room;
}

static enum MHD_Result answer(struct MHD_Connection *conn)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_ACCEPTED, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    static int started;
    if (*req_cls == NULL) {
        *req_cls = &started;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    return answer(conn);
}

static enum MHD_Result on_durable_request(void *cls, struct MHD_Connection *conn, const char *url,
                                          const char *method, const char *version,
                                          const char *upload_data, size_t *upload_data_size,
                                          void **req_cls)
{
    request_t *req = *req_cls;
    if (req == NULL) {
        *req_cls = calloc(1, sizeof(request_t));
        return *req_cls != NULL ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        n = n < sizeof(req->body) - req->len ? n : sizeof(req->body) - req->len;
        memcpy(req->body + req->len, upload_data, n);
        req->len += n;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (!req->parked && park(conn, req)) {
        return MHD_YES;
    }
    return answer(conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    free(*req_cls);
    *req_cls = NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3 && !(argc == 5 && strcmp(argv[3], "--durable") == 0)) {
        fprintf(stderr, "usage: null_server PORT THREADS [--durable FILE]\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    MHD_AccessHandlerCallback handler = on_request;
    MHD_RequestCompletedCallback completed = NULL;
    if (argc == 5) {
        durable.fd = open(argv[4], O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        durable.open = calloc(1, sizeof(batch_t));
        durable.syncing = calloc(1, sizeof(batch_t));
        pthread_t syncer;
        if (durable.fd < 0 || durable.open == NULL || durable.syncing == NULL ||
            pthread_create(&syncer, NULL, syncer_main, NULL) != 0) {
            perror("null_server: --durable");
            return 1;
        }
        flags |= MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
        handler = on_durable_request;
        completed = on_completed;
    }
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)atoi(argv[1]), NULL, NULL, handler,
                                            NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
                                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)atoi(argv[2]),
                                            MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "null_server: cannot listen on %s\n", argv[1]);
        return 1;
    }
    int sig;
    sigwait(&set, &sig);
    /* A parked connection must be resumed before the daemon stops: the syncer does that at its
     * next fsync, so the process leaves without stopping the daemon. */
    if (durable.fd < 0) {
        MHD_stop_daemon(d);
    }
    return 0;
}
