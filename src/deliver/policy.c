/*
 * policy.c: the delivery spec, Knative's retry rules, and the events the engine builds: the
 * dead-lettered copy and the event of a completed `and` set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deliver/deliver.h"

#define ERROR_DATA_MAX 1024 /* Knative's cap on knativeerrordata */

static const char *const delivery_keys[] = {"retry", "backoffPolicy", "backoffDelay", "timeout",
                                            "deadLetterSink"};

static bool url_ok(const char *s)
{
    size_t scheme = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
    if (scheme == 0 || s[scheme] == '\0' || s[scheme] == '/' || strlen(s) > 2048) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            return false;
        }
    }
    return true;
}

/* Whether the URL's authority carries userinfo (user:password@host). */
static bool has_userinfo(const char *s)
{
    const char *authority = strstr(s, "://") + 3;
    size_t len = strcspn(authority, "/?#");
    return memchr(authority, '@', len) != NULL;
}

/*
 * A sink is an http(s) URL without credentials: the URL goes into logs, system events and
 * knativeerrordest, where a password must never appear. Knative's sinks authenticate with
 * tokens, not with userinfo.
 */
static int parse_url(const cJSON *v, const char *attr, char **out, weir_err_t *err)
{
    if (!cJSON_IsString(v) || !url_ok(v->valuestring)) {
        return weir_err_set(err, WEIR_EINVAL, attr, "must be an http:// or https:// URL");
    }
    if (has_userinfo(v->valuestring)) {
        return weir_err_set(err, WEIR_EINVAL, attr,
                            "must not carry credentials (user:password@): they would show in "
                            "logs and events");
    }
    *out = weir_strdup(v->valuestring);
    return 0;
}

static int parse_duration(const cJSON *v, const char *attr, int64_t *out, weir_err_t *err)
{
    int64_t us = 0;
    if (!cJSON_IsString(v) || weir_duration_parse(v->valuestring, &us) != 0 || us <= 0 ||
        us > WEIR_DELIVER_WAIT_MAX) {
        return weir_err_set(err, WEIR_EINVAL, attr,
                            "must be a positive ISO 8601 duration of at most an hour (\"PT2S\")");
    }
    *out = us;
    return 0;
}

static int parse_retry(const cJSON *v, weir_deliver_spec_t *s, weir_err_t *err)
{
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble || v->valuedouble < 0 ||
        v->valuedouble > WEIR_DELIVER_RETRY_MAX) {
        return weir_err_set(err, WEIR_EINVAL, "delivery.retry", "must be an integer from 0 to %d",
                            WEIR_DELIVER_RETRY_MAX);
    }
    s->retry = (unsigned)v->valuedouble;
    return 0;
}

static int parse_backoff(const cJSON *v, weir_deliver_spec_t *s, weir_err_t *err)
{
    if (cJSON_IsString(v) && strcmp(v->valuestring, "exponential") == 0) {
        s->backoff = WEIR_BACKOFF_EXPONENTIAL;
    } else if (cJSON_IsString(v) && strcmp(v->valuestring, "linear") == 0) {
        s->backoff = WEIR_BACKOFF_LINEAR;
    } else {
        return weir_err_set(err, WEIR_EINVAL, "delivery.backoffPolicy",
                            "must be \"linear\" or \"exponential\"");
    }
    return 0;
}

static int parse_member(const cJSON *m, weir_deliver_spec_t *s, weir_err_t *err)
{
    if (strcmp(m->string, "retry") == 0) {
        return parse_retry(m, s, err);
    }
    if (strcmp(m->string, "backoffPolicy") == 0) {
        return parse_backoff(m, s, err);
    }
    if (strcmp(m->string, "backoffDelay") == 0) {
        return parse_duration(m, "delivery.backoffDelay", &s->delay_us, err);
    }
    if (strcmp(m->string, "timeout") == 0) {
        return parse_duration(m, "delivery.timeout", &s->timeout_us, err);
    }
    return parse_url(m, "delivery.deadLetterSink", &s->dead_letter_sink, err);
}

static int parse_delivery(const cJSON *v, weir_deliver_spec_t *s, weir_err_t *err)
{
    char attr[WEIR_ERR_ATTR_MAX];

    if (!cJSON_IsObject(v)) {
        return weir_err_set(err, WEIR_EINVAL, "delivery", "must be an object");
    }
    for (const cJSON *m = v->child; m != NULL; m = m->next) {
        bool known = false;
        for (size_t i = 0; i < sizeof(delivery_keys) / sizeof(delivery_keys[0]); i++) {
            known = known || strcmp(m->string, delivery_keys[i]) == 0;
        }
        if (!known) {
            snprintf(attr, sizeof(attr), "delivery.%.40s", m->string);
            return weir_err_set(err, WEIR_EINVAL, attr, "unknown member");
        }
        int rc = parse_member(m, s, err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int weir_deliver_spec_parse(const cJSON *doc, weir_deliver_spec_t *out, weir_err_t *err)
{
    memset(out, 0, sizeof(*out));
    out->retry = WEIR_DELIVER_RETRY_DEFAULT;
    out->backoff = WEIR_BACKOFF_EXPONENTIAL;
    out->delay_us = WEIR_DELIVER_DELAY_DEFAULT;
    out->timeout_us = WEIR_DELIVER_TIMEOUT_DEFAULT;

    int rc = parse_url(cJSON_GetObjectItemCaseSensitive(doc, "sink"), "sink", &out->sink, err);
    const cJSON *delivery = cJSON_GetObjectItemCaseSensitive(doc, "delivery");
    if (rc == 0 && delivery != NULL) {
        rc = parse_delivery(delivery, out, err);
    }
    return rc;
}

void weir_deliver_spec_clear(weir_deliver_spec_t *s)
{
    weir_free(s->sink);
    weir_free(s->dead_letter_sink);
    memset(s, 0, sizeof(*s));
}

/* ---- retries --------------------------------------------------------------------------- */

weir_deliver_class_t weir_deliver_classify(long status)
{
    if (status >= 200 && status < 300) {
        return WEIR_DELIVER_OK;
    }
    if (status == 0 || status == 404 || status == 408 || status == 409 || status == 429 ||
        status >= 500) {
        return WEIR_DELIVER_RETRY;
    }
    return WEIR_DELIVER_REFUSED;
}

int64_t weir_deliver_backoff_us(const weir_deliver_spec_t *s, unsigned n)
{
    double wait = (double)s->delay_us;
    unsigned doublings = n > 0 ? n - 1 : 0;
    if (s->backoff == WEIR_BACKOFF_LINEAR) {
        wait *= n > 0 ? n : 1;
    } else {
        wait *= doublings >= 40 ? 1e12 : (double)(1ULL << doublings);
    }
    return wait > (double)WEIR_DELIVER_WAIT_MAX ? WEIR_DELIVER_WAIT_MAX : (int64_t)wait;
}

int64_t weir_deliver_retry_after_us(const char *value, int64_t now_us)
{
    struct tm tm = {0};
    char *end;

    if (value == NULL || *value == '\0') {
        return -1;
    }
    long secs = strtol(value, &end, 10);
    if (*end == '\0' && secs >= 0) {
        return secs > WEIR_DELIVER_WAIT_MAX / 1000000 ? WEIR_DELIVER_WAIT_MAX : secs * 1000000LL;
    }
    end = strptime(value, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0') {
        return -1;
    }
    int64_t at = (int64_t)timegm(&tm) * 1000000LL;
    int64_t wait = at > now_us ? at - now_us : 0;
    return wait > WEIR_DELIVER_WAIT_MAX ? WEIR_DELIVER_WAIT_MAX : wait;
}

weir_store_outcome_kind_t weir_deliver_decide(const weir_deliver_spec_t *s, bool dead_letter,
                                              unsigned attempts, long status,
                                              int64_t retry_after_us, int64_t now_us,
                                              int64_t *due_us)
{
    weir_deliver_class_t c = weir_deliver_classify(status);
    if (c == WEIR_DELIVER_OK) {
        return WEIR_STORE_DELIVERED;
    }
    if (c == WEIR_DELIVER_RETRY && attempts <= s->retry) {
        int64_t wait = weir_deliver_backoff_us(s, attempts);
        *due_us = now_us + (retry_after_us > wait ? retry_after_us : wait);
        return WEIR_STORE_RETRY;
    }
    if (!dead_letter && s->dead_letter_sink != NULL) {
        return WEIR_STORE_DEAD_LETTER;
    }
    return WEIR_STORE_FAILED;
}

/* ---- the events the engine builds ------------------------------------------------------ */

void weir_deliver_dead_letter_mark(weir_event_t *ev, const char *dest, int status, const char *data)
{
    char code[16];
    const char *d = data != NULL ? data : "";
    size_t n = strlen(d) > ERROR_DATA_MAX ? ERROR_DATA_MAX : strlen(d);

    snprintf(code, sizeof(code), "%d", status);
    char *b64 = weir_base64_encode(d, n, NULL);
    weir_ce_set(ev, "knativeerrordest", dest, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "knativeerrorcode", code, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "knativeerrordata", b64, WEIR_CE_STRING, NULL);
    weir_free(b64);
}

weir_event_t *weir_deliver_and_event(const char *ns, const char *listener, int64_t delivery,
                                     int64_t created_us, const char *payload)
{
    char id[32];
    char when[WEIR_TIME_STR_MAX];
    weir_buf_t source = WEIR_BUF_INIT;

    if (payload == NULL || payload[0] != '{') {
        return NULL;
    }
    snprintf(id, sizeof(id), "%lld", (long long)delivery);
    weir_time_format(created_us, when);
    weir_buf_printf(&source, "/weir/namespaces/%s/listeners/%s", ns, listener);
    weir_event_t *ev = weir_ce_new();
    weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "id", id, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "source", source.data, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "type", WEIR_DELIVER_AND_TYPE, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "time", when, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "datacontenttype", "application/json", WEIR_CE_STRING, NULL);
    weir_ce_set_data(ev, WEIR_CE_DATA_JSON, payload, strlen(payload));
    weir_buf_free(&source);
    return ev;
}

static unsigned hops_of(const char *s)
{
    uint64_t v;
    return weir_parse_uint(s, 999999, &v) ? (unsigned)v : 0;
}

/* The highest hop count among the members of an `and` set. */
static unsigned set_hops(const char *payload)
{
    unsigned most = 0;
    cJSON *set = cJSON_Parse(payload);
    for (const cJSON *m = set != NULL ? set->child : NULL; m != NULL; m = m->next) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(m, WEIR_DELIVER_HOPS_ATTR);
        unsigned v = cJSON_IsNumber(h) ? (unsigned)(h->valuedouble > 0 ? h->valuedouble : 0)
                                       : hops_of(cJSON_GetStringValue(h));
        most = v > most ? v : most;
    }
    cJSON_Delete(set);
    return most;
}

unsigned weir_deliver_hops(const weir_event_t *ev, const char *payload)
{
    if (payload != NULL) {
        return set_hops(payload);
    }
    return hops_of(weir_ce_get(ev, WEIR_DELIVER_HOPS_ATTR));
}
