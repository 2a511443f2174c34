/*
 * source.c: the source side: the events in the store's outbox go out to one sink (Knative's
 * K_SINK), in binary mode, in order of arrival, at least once.
 *
 * One thread drives a curl multi handle. It loads outbox rows in id order (each row once per
 * run: a cursor only moves forward), starts up to max_inflight of them in that order, and
 * removes a row from the outbox, through the store writer, once the sink took it. A row that
 * failed stays in memory and is sent again; until it went through, the thread sends one row at
 * a time, oldest first, so that an outage does not reorder what waits behind it.
 *
 * The thread loads when a commit hook wakes it, when its last load filled a page, and at least
 * once every IDLE_POLL_MS, so that a missed wake-up delays rows by a second at most. Every wait
 * (the sink's backoff, a store that cannot be read, a removal to try again) is a deadline that
 * bounds the poll, so the thread never spins.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "deliver/job.h"

#define MODULE          "source"
#define LOAD_PAGE       256 /* rows read from the outbox at once */
#define IDLE_POLL_MS    1000
#define BUSY_POLL_MS    20        /* while stopping, or while the store's queue is full */
#define LOAD_RETRY_US   100000LL  /* the first wait after the outbox could not be read */
#define LOAD_RETRY_MAX  5000000LL /* the longest */
#define REMOVE_RETRY_US 1000000LL /* the wait before a failed removal is tried again */
#define SYSTEM_CA       "/etc/ssl/certs/ca-certificates.crt"
#define TOKEN_MAX       (64 * 1024)
#define ERROR_TEXT      256     /* bytes of a refusal's body kept for the log */
#define TOKEN_RECHECK   1000000 /* µs between two looks at the token file */

typedef struct override {
    char *name;
    char *value;
    weir_ce_type_t type;
} override_t;

/* One outbox row, from its load until the sink took it (or refused it for good). */
typedef struct row {
    weir_store_outbox_row_t r;
    bool in_flight;
    bool probe;  /* sent alone while the sink recovers */
    bool failed; /* its last attempt failed: it waits to be sent again */
    CURL *easy;
    struct curl_slist *headers;
    weir_event_t *ev;
    uint64_t start_ns;
    char retry_after[64];
    weir_buf_t answer; /* the first ERROR_TEXT bytes of the answer */
    char errbuf[CURL_ERROR_SIZE];
} row_t;

/* Rows the sink took, removed from the outbox in one write. */
typedef struct removal {
    weir_store_write_t w;
    int64_t *ids;
    struct weir_source *src;
} removal_t;

struct weir_source {
    weir_store_t *store;
    weir_source_config_t cfg; /* strings owned */
    override_t *overrides;
    size_t noverrides;
    char *ca_blob; /* the system's CAs and cfg.ca_certs, PEM */
    size_t ca_len;
    CURLM *multi;
    pthread_t thread;
    atomic_bool woken;
    atomic_bool stop;
    uint64_t stop_deadline_ns;

    /* Owned by the thread; times are monotonic µs (mono_us): */
    row_t **rows; /* loaded, not yet taken, in id order */
    size_t nrows;
    size_t in_flight;
    size_t nfailed;         /* rows whose last attempt failed */
    int64_t loaded_to;      /* the highest id loaded */
    bool more;              /* the last load filled its page */
    int64_t next_poll_us;   /* the idle poll: a load is due then, woken or not */
    int64_t load_at_us;     /* no load before this (after the outbox could not be read) */
    unsigned load_failures; /* reads of the outbox failed in a row */
    bool recovering;        /* an attempt failed: one at a time until the failed rows went */
    unsigned failures;      /* attempts failed in a row */
    int64_t retry_at_us;    /* while recovering: the next attempt's time */
    int64_t *taken;         /* ids the sink took, not yet handed to the store */
    size_t ntaken;
    char *token; /* the bearer token, or NULL */
    int64_t token_checked_us;
    struct timespec token_mtime;
    bool token_stale;

    pthread_mutex_t lock; /* guards removals and unremoved */
    pthread_cond_t removed;
    size_t removals;    /* writes submitted and not yet done */
    int64_t *unremoved; /* ids whose removal failed: handed to the store again */
    size_t nunremoved;  /* at unremoved_at_us */
    int64_t unremoved_at_us;

    atomic_uint_fast64_t sent;
    atomic_uint_fast64_t failed;
    atomic_uint_fast64_t retries;
    weir_histogram_t latency;
};

static int64_t mono_us(void)
{
    return (int64_t)(weir_mono_ns() / 1000);
}

/* ---- configuration --------------------------------------------------------------------- */

void weir_source_config_default(weir_source_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->token_file = WEIR_SOURCE_TOKEN_FILE;
    cfg->max_inflight = 1;
    cfg->timeout_us = WEIR_DELIVER_TIMEOUT_DEFAULT;
    cfg->delay_us = WEIR_DELIVER_DELAY_DEFAULT;
    cfg->wait_max_us = 60000000;
}

/* Core attributes are the event's own: an override may only add or replace extensions. */
static bool is_core(const char *name)
{
    static const char *const core[] = {
        "id",        "source",  "specversion", "type", "datacontenttype", "dataschema",
        "schemaurl", "subject", "time",        "data", "data_base64",     "datacontentencoding"};
    for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++) {
        if (strcmp(name, core[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int override_add(weir_source_t *s, const cJSON *item, weir_err_t *err)
{
    char num[24];
    const char *value = NULL;
    weir_ce_type_t type = WEIR_CE_STRING;

    if (!weir_ce_name_valid(item->string) || is_core(item->string)) {
        return weir_err_set(err, WEIR_EINVAL, "K_CE_OVERRIDES",
                            "\"%s\" is not an extension attribute name", item->string);
    }
    /* Triggers tell weir's own events by it (loops), and it names the namespace an event
     * entered: one value for every event would defeat both. */
    if (strcmp(item->string, WEIR_SOURCE_NS_ATTR) == 0) {
        return weir_err_set(err, WEIR_EINVAL, "K_CE_OVERRIDES",
                            "\"%s\" is set by weir to the event's namespace and cannot be "
                            "overridden",
                            item->string);
    }
    if (cJSON_IsString(item)) {
        value = item->valuestring;
    } else if (cJSON_IsBool(item)) {
        value = cJSON_IsTrue(item) ? "true" : "false";
        type = WEIR_CE_BOOLEAN;
    } else if (cJSON_IsNumber(item) && item->valuedouble == (double)(int32_t)item->valuedouble) {
        snprintf(num, sizeof(num), "%d", (int)item->valuedouble);
        value = num;
        type = WEIR_CE_INTEGER;
    } else {
        return weir_err_set(err, WEIR_EINVAL, "K_CE_OVERRIDES",
                            "extension %s must be a string, a boolean or a 32-bit integer",
                            item->string);
    }
    s->overrides = weir_realloc(s->overrides, (s->noverrides + 1) * sizeof(*s->overrides));
    s->overrides[s->noverrides++] =
        (override_t){weir_strdup(item->string), weir_strdup(value), type};
    return 0;
}

/* K_CE_OVERRIDES: {"extensions": {"name": value, ...}}. */
static int overrides_parse(weir_source_t *s, const char *text, weir_err_t *err)
{
    cJSON *doc = NULL;
    if (text == NULL || *text == '\0') {
        return 0;
    }
    int rc = weir_ce_json_parse(text, strlen(text), &doc, err);
    if (rc != 0) {
        return weir_err_set(err, WEIR_EINVAL, "K_CE_OVERRIDES", "%s", err->msg);
    }
    const cJSON *ext = cJSON_GetObjectItemCaseSensitive(doc, "extensions");
    if (!cJSON_IsObject(doc) || (ext != NULL && !cJSON_IsObject(ext) && !cJSON_IsNull(ext))) {
        rc = weir_err_set(err, WEIR_EINVAL, "K_CE_OVERRIDES",
                          "must be an object with an \"extensions\" object");
    }
    for (const cJSON *it = cJSON_IsObject(ext) ? ext->child : NULL; rc == 0 && it != NULL;
         it = it->next) {
        rc = override_add(s, it, err);
    }
    cJSON_Delete(doc);
    return rc;
}

static char *read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    weir_buf_t b = WEIR_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0 && b.len < max) {
        weir_buf_append(&b, chunk, n);
    }
    fclose(f);
    if (b.len > max) {
        weir_buf_free(&b);
        return NULL;
    }
    return weir_buf_take(&b, len);
}

/* The CAs trusted for an https sink: the system's, and K_CA_CERTS besides them. */
static void ca_build(weir_source_t *s)
{
    if (s->cfg.ca_certs == NULL || *s->cfg.ca_certs == '\0') {
        return;
    }
    weir_buf_t b = WEIR_BUF_INIT;
    size_t len = 0;
    char *system = read_file(SYSTEM_CA, 16u << 20, &len);
    if (system != NULL) {
        weir_buf_append(&b, system, len);
        weir_buf_putc(&b, '\n');
        weir_free(system);
    }
    weir_buf_puts(&b, s->cfg.ca_certs);
    s->ca_blob = weir_buf_take(&b, &s->ca_len);
}

/* ---- the bearer token ------------------------------------------------------------------ */

/* Reads the token file again when it changed (or after a 401), at most once a second. */
static void token_refresh(weir_source_t *s)
{
    int64_t now = weir_wall_us();
    struct stat st;

    if (s->cfg.token_file == NULL ||
        (!s->token_stale && now - s->token_checked_us < TOKEN_RECHECK)) {
        return;
    }
    s->token_checked_us = now;
    if (stat(s->cfg.token_file, &st) != 0) {
        weir_free(s->token);
        s->token = NULL;
        return;
    }
    bool changed =
        st.st_mtim.tv_sec != s->token_mtime.tv_sec || st.st_mtim.tv_nsec != s->token_mtime.tv_nsec;
    if (!changed && !s->token_stale && s->token != NULL) {
        return;
    }
    size_t len = 0;
    char *t = read_file(s->cfg.token_file, TOKEN_MAX, &len);
    while (t != NULL && len > 0 &&
           (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' ')) {
        t[--len] = '\0';
    }
    if (t != NULL && (len == 0 || strpbrk(t, "\r\n") != NULL)) {
        weir_warn(MODULE, "the token in %s is empty or spans lines: sent without one",
                  s->cfg.token_file);
        weir_free(t);
        t = NULL;
    }
    weir_free(s->token);
    s->token = t;
    s->token_mtime = st.st_mtim;
    s->token_stale = false;
}

/* ---- one attempt ----------------------------------------------------------------------- */

static void row_release(row_t *row)
{
    if (row->easy != NULL) {
        curl_easy_cleanup(row->easy);
        row->easy = NULL;
    }
    curl_slist_free_all(row->headers);
    row->headers = NULL;
    weir_buf_free(&row->answer);
}

static void row_free(row_t *row)
{
    row_release(row);
    weir_ce_free(row->ev);
    weir_free(row->r.ns);
    weir_free(row->r.json);
    weir_free(row);
}

/* The event as it goes out: its namespace named, the overrides applied. */
static int outgoing(weir_source_t *s, row_t *row, weir_err_t *err)
{
    int rc = weir_ce_decode_stored(row->r.json, row->r.json_len, &row->ev, err);
    if (rc == 0) {
        rc = weir_ce_set(row->ev, WEIR_SOURCE_NS_ATTR, row->r.ns, WEIR_CE_STRING, err);
    }
    for (size_t i = 0; rc == 0 && i < s->noverrides; i++) {
        const override_t *o = &s->overrides[i];
        rc = weir_ce_set(row->ev, o->name, o->value, o->type, err);
    }
    return rc;
}

static size_t on_answer(char *p, size_t size, size_t n, void *arg)
{
    row_t *row = arg;
    size_t len = size * n;
    if (row->answer.len < ERROR_TEXT) {
        size_t room = ERROR_TEXT - row->answer.len;
        weir_buf_append(&row->answer, p, len < room ? len : room);
    }
    return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    row_t *row = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof(name) - 1 && weir_has_prefix_ci(p, name)) {
        const char *v = p + sizeof(name) - 1;
        size_t vl = len - (sizeof(name) - 1);
        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) {
            vl--;
        }
        vl = vl < sizeof(row->retry_after) - 1 ? vl : sizeof(row->retry_after) - 1;
        memcpy(row->retry_after, v, vl);
        row->retry_after[vl] = '\0';
    }
    return len;
}

static bool request(weir_source_t *s, row_t *row)
{
    struct curl_slist *h = weir_deliver_binary_headers(row->ev);
    if (s->token != NULL) {
        weir_buf_t b = WEIR_BUF_INIT;
        weir_buf_printf(&b, "Authorization: Bearer %s", s->token);
        h = curl_slist_append(h, b.data);
        weir_buf_free(&b);
    }
    row->headers = h;
    row->retry_after[0] = '\0';
    row->errbuf[0] = '\0';
    row->easy = curl_easy_init();
    if (row->easy == NULL) {
        return false;
    }
    CURL *e = row->easy;
    long timeout_ms = (long)(s->cfg.timeout_us / 1000);
    curl_easy_setopt(e, CURLOPT_URL, s->cfg.sink);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, row->ev->data != NULL ? (char *)row->ev->data : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)row->ev->data_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, row->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 10000 ? timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "weir");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_answer);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, row);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, row);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, row->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, row);
    if (s->ca_blob != NULL) {
        struct curl_blob blob = {s->ca_blob, s->ca_len, CURL_BLOB_NOCOPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    }
    return true;
}

/* The row leaves memory: the sink took it (or refused it for good), and the store forgets it
 * with the next removal. */
static void take(weir_source_t *s, size_t i)
{
    row_t *row = s->rows[i];
    s->taken = weir_realloc(s->taken, (s->ntaken + 1) * sizeof(*s->taken));
    s->taken[s->ntaken++] = row->r.id;
    s->nfailed -= row->failed ? 1 : 0;
    memmove(&s->rows[i], &s->rows[i + 1], (s->nrows - i - 1) * sizeof(*s->rows));
    s->nrows--;
    row_free(row);
}

static size_t index_of(const weir_source_t *s, const row_t *row)
{
    size_t i = 0;
    while (s->rows[i] != row) {
        i++;
    }
    return i;
}

/* Starts the row at index i; false when it cannot be sent at all (it was taken). */
static bool start(weir_source_t *s, size_t i)
{
    row_t *row = s->rows[i];
    weir_err_t err = {0};

    if (row->ev == NULL && outgoing(s, row, &err) != 0) {
        WEIR_LOG(WEIR_LOG_ERROR, MODULE, row->r.ns,
                 "outbox event %" PRId64 " cannot be sent and is dropped: %s", row->r.id, err.msg);
        atomic_fetch_add(&s->failed, 1);
        take(s, i);
        return false;
    }
    token_refresh(s);
    if (!request(s, row) || curl_multi_add_handle(s->multi, row->easy) != CURLM_OK) {
        row_release(row);
        s->recovering = true; /* curl itself failed: try again later */
        s->retry_at_us = mono_us() + s->cfg.delay_us;
        return false;
    }
    row->in_flight = true;
    row->probe = s->recovering;
    row->start_ns = weir_mono_ns();
    s->in_flight++;
    return true;
}

/* What an attempt's status means for the source: a 401 is worth a retry (the token may have
 * been rotated since it was read); the rest follows the delivery rules. */
static weir_deliver_class_t classify(long status)
{
    return status == 401 ? WEIR_DELIVER_RETRY : weir_deliver_classify(status);
}

/*
 * The wait after the nth failure in a row, as Knative's exponential backoff: the first retry
 * comes after delay_us (its backoffDelay), and each later one waits twice as long as the one
 * before, up to wait_max_us.
 */
static int64_t backoff_us(const weir_source_t *s)
{
    weir_deliver_spec_t spec = {.backoff = WEIR_BACKOFF_EXPONENTIAL, .delay_us = s->cfg.delay_us};
    int64_t wait = weir_deliver_backoff_us(&spec, s->failures);
    return wait > s->cfg.wait_max_us ? s->cfg.wait_max_us : wait;
}

/* An attempt to retry. Only the first failure of a burst, or a probe's, moves the backoff on:
 * the attempts that were in flight beside the first failed for the same outage. */
static void failed_attempt(weir_source_t *s, row_t *row, long status, CURLcode result)
{
    atomic_fetch_add(&s->retries, 1);
    s->token_stale = s->token_stale || status == 401;
    if (!row->failed) {
        row->failed = true;
        s->nfailed++;
    }
    if (s->recovering && !row->probe) {
        return;
    }
    s->failures++;
    int64_t wait = backoff_us(s);
    const char *ra = row->retry_after[0] ? row->retry_after : NULL;
    int64_t after = weir_deliver_retry_after_us(ra, weir_wall_us());

    wait = after > wait ? after : wait;
    wait = wait > s->cfg.wait_max_us ? s->cfg.wait_max_us : wait;
    if (s->failures == 1) {
        WEIR_LOG(WEIR_LOG_WARN, MODULE, row->r.ns,
                 "the sink %s %s%ld%s: events wait in the outbox and are sent again in order",
                 s->cfg.sink, status ? "answered " : "did not answer (", status, status ? "" : ")");
        if (result != CURLE_OK) {
            weir_warn(MODULE, "curl: %s",
                      row->errbuf[0] ? row->errbuf : curl_easy_strerror(result));
        }
    }
    s->recovering = true;
    s->retry_at_us = mono_us() + wait;
}

/*
 * The sink took an event. Recovery ends once no failed row waits any more; not on an attempt
 * that was already in flight when another failed, which would cancel the backoff and let later
 * events overtake the failed one. A probe that went through shows the sink works: the other
 * failed rows follow at once, still one at a time and oldest first.
 */
static void took(weir_source_t *s, bool probe)
{
    atomic_fetch_add(&s->sent, 1);
    if (!s->recovering || (!probe && s->nfailed > 0)) {
        return;
    }
    s->failures = 0;
    if (s->nfailed > 0) {
        s->retry_at_us = 0;
        return;
    }
    weir_info(MODULE, "the sink %s takes events again", s->cfg.sink);
    s->recovering = false;
}

static void finished(weir_source_t *s, row_t *row, CURLcode result)
{
    long status = 0;
    if (result == CURLE_OK) {
        curl_easy_getinfo(row->easy, CURLINFO_RESPONSE_CODE, &status);
    }
    weir_histogram_observe(&s->latency, weir_mono_ns() - row->start_ns);
    curl_multi_remove_handle(s->multi, row->easy);
    row->in_flight = false;
    s->in_flight--;

    weir_deliver_class_t cls = classify(status);
    if (cls == WEIR_DELIVER_RETRY) {
        failed_attempt(s, row, status, result);
        row_release(row);
        return;
    }
    bool probe = row->probe;
    if (cls != WEIR_DELIVER_OK) {
        WEIR_LOG(WEIR_LOG_WARN, MODULE, row->r.ns,
                 "the sink %s refused event %s with %ld; it is dropped from the outbox: %.*s",
                 s->cfg.sink, weir_ce_get(row->ev, "id"), status, (int)row->answer.len,
                 row->answer.data != NULL ? row->answer.data : "");
        atomic_fetch_add(&s->failed, 1);
    }
    take(s, index_of(s, row));
    if (cls == WEIR_DELIVER_OK) {
        took(s, probe);
    }
}

static void reap(weir_source_t *s)
{
    CURLMsg *msg;
    int left = 0;
    while ((msg = curl_multi_info_read(s->multi, &left)) != NULL) {
        if (msg->msg == CURLMSG_DONE) {
            row_t *row = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&row);
            finished(s, row, msg->data.result);
        }
    }
}

/* ---- loading and starting -------------------------------------------------------------- */

static size_t waiting(const weir_source_t *s)
{
    return s->nrows - s->in_flight;
}

/* True when a load is owed: a commit woke the thread, or the last load filled its page. */
static bool load_owed(weir_source_t *s)
{
    return atomic_load(&s->woken) || s->more;
}

/* When the next load is due: at once when one is owed, else at the idle poll; never while
 * enough rows wait in memory, nor before the wait after a failed read is over. */
static int64_t load_due_us(weir_source_t *s, int64_t now)
{
    if (waiting(s) >= s->cfg.max_inflight) {
        return INT64_MAX; /* the end of an attempt brings the thread back */
    }
    int64_t due = load_owed(s) ? now : s->next_poll_us;
    return due > s->load_at_us ? due : s->load_at_us;
}

/* The outbox could not be read: the load is still owed, after a wait that grows. */
static void load_failed(weir_source_t *s, const weir_err_t *err, int64_t now)
{
    unsigned n = s->load_failures < 10 ? s->load_failures : 10;
    int64_t wait = LOAD_RETRY_US << n;
    wait = wait < LOAD_RETRY_MAX ? wait : LOAD_RETRY_MAX;
    if (s->load_failures++ == 0) {
        weir_error(MODULE, "cannot read the outbox (%s): trying again", err->msg);
    }
    s->load_at_us = now + wait;
    atomic_store(&s->woken, true);
}

/*
 * Loads the next page of durable rows when one is due. The wake-up is cleared only when a load
 * runs, and before it reads, so that a commit during the read is not missed.
 */
static void load(weir_source_t *s)
{
    int64_t now = mono_us();
    if (load_due_us(s, now) > now) {
        return;
    }
    atomic_store(&s->woken, false);
    s->next_poll_us = now + IDLE_POLL_MS * 1000LL;
    weir_store_outbox_row_t *got = NULL;
    size_t n = 0;
    weir_err_t err = {0};
    if (weir_store_outbox_next(s->store, s->loaded_to, LOAD_PAGE, &got, &n, &err) != 0) {
        load_failed(s, &err, now);
        return;
    }
    if (s->load_failures > 0) {
        weir_info(MODULE, "the outbox can be read again");
        s->load_failures = 0;
    }
    s->rows = weir_realloc(s->rows, (s->nrows + n) * sizeof(*s->rows));
    for (size_t i = 0; i < n; i++) {
        row_t *row = weir_calloc(1, sizeof(*row));
        row->r = got[i];
        s->rows[s->nrows++] = row;
        s->loaded_to = got[i].id;
    }
    weir_free(got); /* the rows own what it held */
    s->more = n == LOAD_PAGE;
}

/* How many attempts may be in flight now: max_inflight while the sink is well; while it recovers,
 * one once the wait is over. */
static size_t room(const weir_source_t *s)
{
    if (!s->recovering) {
        return s->cfg.max_inflight;
    }
    return s->in_flight == 0 && mono_us() >= s->retry_at_us ? 1 : 0;
}

/* Starts what may start, oldest first. */
static void start_some(weir_source_t *s)
{
    size_t n = room(s);
    for (size_t i = 0; i < s->nrows && s->in_flight < n;) {
        if (s->rows[i]->in_flight) {
            i++;
        } else if (start(s, i)) {
            i++;
        } else if (s->recovering) {
            return;
        }
    }
}

/* When the next attempt may start (INT64_MAX: only once one in flight ends). */
static int64_t start_due_us(const weir_source_t *s, int64_t now)
{
    if (waiting(s) == 0) {
        return INT64_MAX;
    }
    if (!s->recovering) {
        return s->in_flight < s->cfg.max_inflight ? now : INT64_MAX;
    }
    return s->in_flight == 0 ? s->retry_at_us : INT64_MAX;
}

/* ---- removing what was taken ----------------------------------------------------------- */

/*
 * A removal that failed (storage failed, or its sync did) leaves rows that the sink took in the
 * outbox, below the cursor. Their ids are handed to the store again after a wait, until they
 * are gone: sending the events again would only repeat what the sink has.
 */
static void on_removed(weir_store_write_t *w, int status, void *arg)
{
    removal_t *r = arg;
    weir_source_t *s = r->src;
    pthread_mutex_lock(&s->lock);
    if (status != 0) {
        if (s->nunremoved == 0) {
            weir_warn(MODULE,
                      "%zu sent events could not be removed from the outbox (%s): trying "
                      "again",
                      w->noutbox_sent, weir_strerror(status));
        }
        s->unremoved =
            weir_realloc(s->unremoved, (s->nunremoved + w->noutbox_sent) * sizeof(*s->unremoved));
        memcpy(&s->unremoved[s->nunremoved], r->ids, w->noutbox_sent * sizeof(*r->ids));
        s->nunremoved += w->noutbox_sent;
        s->unremoved_at_us = mono_us() + REMOVE_RETRY_US;
        curl_multi_wakeup(s->multi); /* under the lock: the stop frees multi after removals */
    }
    s->removals--;
    pthread_cond_signal(&s->removed);
    pthread_mutex_unlock(&s->lock);
    weir_free(r->ids);
    weir_free(r);
}

/* When the failed removals are due again (INT64_MAX: none waits). */
static int64_t unremoved_due_us(weir_source_t *s)
{
    pthread_mutex_lock(&s->lock);
    int64_t due = s->nunremoved > 0 ? s->unremoved_at_us : INT64_MAX;
    pthread_mutex_unlock(&s->lock);
    return due;
}

/* Moves the ids of failed removals back among those to remove, once their wait is over (at
 * once when now is INT64_MAX). */
static void take_unremoved(weir_source_t *s, int64_t now)
{
    pthread_mutex_lock(&s->lock);
    if (s->nunremoved > 0 && now >= s->unremoved_at_us) {
        s->taken = weir_realloc(s->taken, (s->ntaken + s->nunremoved) * sizeof(*s->taken));
        memcpy(&s->taken[s->ntaken], s->unremoved, s->nunremoved * sizeof(*s->taken));
        s->ntaken += s->nunremoved;
        weir_free(s->unremoved);
        s->unremoved = NULL;
        s->nunremoved = 0;
    }
    pthread_mutex_unlock(&s->lock);
}

static void flush_taken(weir_source_t *s, int64_t now)
{
    take_unremoved(s, now);
    if (s->ntaken == 0) {
        return;
    }
    removal_t *r = weir_calloc(1, sizeof(*r));
    r->ids = s->taken;
    r->src = s;
    r->w.outbox_sent = r->ids;
    r->w.noutbox_sent = s->ntaken;
    r->w.done = on_removed;
    r->w.arg = r;
    pthread_mutex_lock(&s->lock);
    s->removals++;
    pthread_mutex_unlock(&s->lock);
    if (weir_store_submit(s->store, &r->w) != 0) {
        pthread_mutex_lock(&s->lock);
        s->removals--;
        pthread_mutex_unlock(&s->lock);
        weir_free(r); /* the queue is full: keep the ids for the next turn */
        return;
    }
    s->taken = NULL;
    s->ntaken = 0;
}

/* ---- the thread ------------------------------------------------------------------------ */

static int64_t earliest(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* How long the thread may sleep: until the next thing it has to do, at most IDLE_POLL_MS. A
 * commit, an attempt's progress or a stop wakes it earlier. */
static int poll_timeout_ms(weir_source_t *s)
{
    int64_t now = mono_us();
    int64_t next = now + IDLE_POLL_MS * 1000LL;
    if (atomic_load(&s->stop) || s->ntaken > 0) {
        next = now + BUSY_POLL_MS * 1000LL;
    }
    next = earliest(next, load_due_us(s, now));
    next = earliest(next, start_due_us(s, now));
    next = earliest(next, unremoved_due_us(s));
    return next <= now ? 0 : (int)((next - now + 999) / 1000);
}

/* At the stop: what is still in flight is abandoned; it stays in the outbox. */
static void abandon(weir_source_t *s)
{
    for (size_t i = 0; i < s->nrows; i++) {
        if (s->rows[i]->in_flight) {
            curl_multi_remove_handle(s->multi, s->rows[i]->easy);
        }
        row_free(s->rows[i]);
    }
    s->nrows = 0;
    s->in_flight = 0;
    s->nfailed = 0;
}

static void *source_main(void *arg)
{
    weir_source_t *s = arg;
    bool stopping = false;

    for (;;) {
        stopping = stopping || atomic_load(&s->stop);
        if (!stopping) {
            load(s);
            start_some(s);
        }
        int running = 0;
        curl_multi_perform(s->multi, &running);
        reap(s);
        flush_taken(s, mono_us());
        if (stopping && (s->in_flight == 0 || weir_mono_ns() >= s->stop_deadline_ns)) {
            break;
        }
        curl_multi_poll(s->multi, NULL, 0, poll_timeout_ms(s), NULL);
    }
    abandon(s);
    /* The last removals, with a little time for a full queue or a failing store. */
    for (int tries = 0; tries < 100; tries++) {
        flush_taken(s, INT64_MAX);
        if (s->ntaken == 0 && unremoved_due_us(s) == INT64_MAX) {
            break;
        }
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    return NULL;
}

/* ---- starting and stopping ------------------------------------------------------------- */

static void on_commit(void *arg)
{
    weir_source_t *s = arg;
    atomic_store(&s->woken, true);
    curl_multi_wakeup(s->multi);
}

static void source_free(weir_source_t *s)
{
    for (size_t i = 0; i < s->noverrides; i++) {
        weir_free(s->overrides[i].name);
        weir_free(s->overrides[i].value);
    }
    weir_free(s->overrides);
    if (s->multi != NULL) {
        curl_multi_cleanup(s->multi);
    }
    weir_free(s->rows);
    weir_free(s->taken);
    weir_free(s->unremoved);
    weir_free(s->token);
    weir_free(s->ca_blob);
    weir_free((char *)s->cfg.sink);
    weir_free((char *)s->cfg.ca_certs);
    weir_free((char *)s->cfg.token_file);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->removed);
    weir_free(s);
}

static weir_source_t *source_new(weir_store_t *store, const weir_source_config_t *cfg)
{
    weir_source_t *s = weir_calloc(1, sizeof(*s));
    s->store = store;
    s->cfg = *cfg;
    s->cfg.sink = weir_strdup(cfg->sink);
    s->cfg.ca_certs = cfg->ca_certs != NULL ? weir_strdup(cfg->ca_certs) : NULL;
    s->cfg.token_file =
        cfg->token_file != NULL && *cfg->token_file ? weir_strdup(cfg->token_file) : NULL;
    s->cfg.overrides = NULL;
    s->cfg.max_inflight = cfg->max_inflight > 0 ? cfg->max_inflight : 1;
    s->token_stale = true;
    atomic_init(&s->woken, true); /* the first turn loads what an earlier run left */
    atomic_init(&s->stop, false);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->removed, NULL);
    return s;
}

int weir_source_start(weir_store_t *store, const weir_source_config_t *cfg, weir_source_t **out,
                      weir_err_t *err)
{
    *out = NULL;
    if (cfg->sink == NULL ||
        (!weir_has_prefix_ci(cfg->sink, "http://") && !weir_has_prefix_ci(cfg->sink, "https://"))) {
        return weir_err_set(err, WEIR_EINVAL, "K_SINK", "the sink must be an http or https URL");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        return weir_err_set(err, WEIR_EIO, NULL, "cannot initialise libcurl");
    }
    weir_source_t *s = source_new(store, cfg);
    int rc = overrides_parse(s, cfg->overrides, err);
    if (rc != 0) {
        source_free(s);
        return rc;
    }
    ca_build(s);
    s->multi = curl_multi_init();
    if (s->multi == NULL) {
        source_free(s);
        return weir_err_set(err, WEIR_EIO, NULL, "cannot create a curl multi handle");
    }
    curl_multi_setopt(s->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)s->cfg.max_inflight);
    /* Hooked before the thread starts, so that no commit falls between its first load and
     * the hook; a hook that runs first only wakes a multi handle that nobody polls yet. */
    rc = weir_store_add_commit_hook(store, on_commit, s);
    if (rc != 0) {
        source_free(s);
        return weir_err_set(err, rc, NULL, "cannot hook the source to the store's commits");
    }
    if (pthread_create(&s->thread, NULL, source_main, s) != 0) {
        weir_store_remove_commit_hook(store, on_commit, s);
        source_free(s);
        return weir_err_set(err, WEIR_EIO, NULL, "cannot start the source thread");
    }
    *out = s;
    return 0;
}

void weir_source_stop(weir_source_t *s, unsigned timeout_ms)
{
    if (s == NULL) {
        return;
    }
    weir_store_remove_commit_hook(s->store, on_commit, s);
    s->stop_deadline_ns = weir_mono_ns() + (uint64_t)timeout_ms * 1000000u;
    atomic_store(&s->stop, true);
    curl_multi_wakeup(s->multi);
    pthread_join(s->thread, NULL);
    pthread_mutex_lock(&s->lock);
    while (s->removals > 0) {
        pthread_cond_wait(&s->removed, &s->lock);
    }
    if (s->nunremoved > 0) {
        weir_warn(MODULE, "%zu sent events stay in the outbox: they go out again at the next start",
                  s->nunremoved);
    }
    pthread_mutex_unlock(&s->lock);
    source_free(s);
}

void weir_source_render_metrics(weir_source_t *s, weir_buf_t *out)
{
    int64_t depth = 0;
    uint64_t overflowed = 0;
    weir_store_outbox_stats(s->store, &depth, &overflowed);

    weir_buf_printf(out,
                    "# HELP weir_source_sent_total Events the source's sink took.\n"
                    "# TYPE weir_source_sent_total counter\n"
                    "weir_source_sent_total %" PRIu64 "\n"
                    "# HELP weir_source_failed_total Events dropped from the outbox: refused by "
                    "the sink, or unreadable.\n"
                    "# TYPE weir_source_failed_total counter\n"
                    "weir_source_failed_total %" PRIu64 "\n"
                    "# HELP weir_source_retries_total Attempts that failed and are tried again.\n"
                    "# TYPE weir_source_retries_total counter\n"
                    "weir_source_retries_total %" PRIu64 "\n"
                    "# HELP weir_outbox_depth Events waiting in the outbox.\n"
                    "# TYPE weir_outbox_depth gauge\n"
                    "weir_outbox_depth %" PRId64 "\n"
                    "# HELP weir_outbox_overflow_total Events stored but not queued for the "
                    "source because the outbox was full.\n"
                    "# TYPE weir_outbox_overflow_total counter\n"
                    "weir_outbox_overflow_total %" PRIu64 "\n",
                    (uint64_t)atomic_load(&s->sent), (uint64_t)atomic_load(&s->failed),
                    (uint64_t)atomic_load(&s->retries), depth, overflowed);
    weir_histogram_render(&s->latency, "weir_source_attempt_seconds",
                          "Time of one attempt to send an event to the source's sink.", out);
}
