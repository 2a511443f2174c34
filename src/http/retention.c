/*
 * Retention as the API shows it: ages as ISO 8601 durations or seconds, the optional body of
 * PUT /namespaces/{ns}, and the "retention" member of a namespace.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define US_PER_S 1000000LL
/* Ages are capped where microseconds still fit comfortably in 64 bits (about 290,000 years). */
#define AGE_MAX_S 9200000000000LL

int weir_retention_age_parse(const char *s, int64_t *us)
{
    if (s == NULL || *s == '\0') {
        return WEIR_EINVAL;
    }
    if (*s == 'P') {
        return weir_duration_parse(s, us);
    }
    uint64_t v;
    if (!weir_parse_uint(s, AGE_MAX_S, &v)) {
        return WEIR_EINVAL;
    }
    *us = (int64_t)v * US_PER_S;
    return 0;
}

/* Appends an age as an ISO 8601 duration: days, then hours, minutes and seconds. */
static void age_json(weir_buf_t *b, int64_t us)
{
    int64_t s = us / US_PER_S;
    int64_t frac = us % US_PER_S;

    weir_buf_putc(b, '"');
    weir_buf_putc(b, 'P');
    if (s >= 86400) {
        weir_buf_printf(b, "%" PRId64 "D", s / 86400);
    }
    s %= 86400;
    if (s > 0 || frac > 0 || us == 0) {
        weir_buf_putc(b, 'T');
        if (s >= 3600) {
            weir_buf_printf(b, "%" PRId64 "H", s / 3600);
        }
        if (s % 3600 >= 60) {
            weir_buf_printf(b, "%" PRId64 "M", s % 3600 / 60);
        }
        if (s % 60 > 0 || frac > 0 || us == 0) {
            weir_buf_printf(b, frac ? "%" PRId64 ".%06" PRId64 "S" : "%" PRId64 "S", s % 60, frac);
        }
    }
    weir_buf_putc(b, '"');
}

/* ---- the body of PUT /namespaces/{ns} -------------------------------------------------- */

static int age_member(const cJSON *v, int64_t *us, weir_err_t *err)
{
    static const char attr[] = "retention.max_age";

    if (v == NULL || cJSON_IsNull(v)) {
        *us = -1;
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        double d = cJSON_GetNumberValue(v);
        if (d < 0 || d > (double)AGE_MAX_S || d != (double)(int64_t)d) {
            return weir_err_set(err, WEIR_EINVAL, attr, "must be whole seconds, 0 or more");
        }
        *us = (int64_t)d * US_PER_S;
        return 0;
    }
    if (!cJSON_IsString(v) || weir_retention_age_parse(v->valuestring, us) != 0) {
        return weir_err_set(err, WEIR_EINVAL, attr,
                            "must be an ISO 8601 duration such as \"P7D\", or whole seconds");
    }
    return 0;
}

static int count_member(const cJSON *v, int64_t *count, weir_err_t *err)
{
    if (v == NULL || cJSON_IsNull(v)) {
        *count = -1;
        return 0;
    }
    double d = cJSON_IsNumber(v) ? cJSON_GetNumberValue(v) : -1;
    /* Beyond 2^53 a JSON number is no longer exact. */
    if (d < 0 || d > 9007199254740992.0 || d != (double)(int64_t)d) {
        return weir_err_set(err, WEIR_EINVAL, "retention.max_count",
                            "must be a whole number, 0 or more");
    }
    *count = (int64_t)d;
    return 0;
}

/* The members of obj must all be named in allowed (NULL-terminated). */
static int only_members(const cJSON *obj, const char *const *allowed, const char *prefix,
                        weir_err_t *err)
{
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], m->string) != 0) {
            i++;
        }
        if (allowed[i] == NULL) {
            return weir_err_set(err, WEIR_EINVAL, prefix, "has an unknown member \"%.64s\"",
                                m->string);
        }
    }
    return 0;
}

static int retention_member(const cJSON *v, weir_store_retention_t *r, weir_err_t *err)
{
    static const char *const names[] = {"max_age", "max_count", NULL};

    r->max_age_us = r->max_count = -1;
    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    if (!cJSON_IsObject(v)) {
        return weir_err_set(err, WEIR_EINVAL, "retention", "must be an object or null");
    }
    int rc = only_members(v, names, "retention", err);
    if (rc == 0) {
        rc = age_member(cJSON_GetObjectItemCaseSensitive(v, "max_age"), &r->max_age_us, err);
    }
    if (rc == 0) {
        rc = count_member(cJSON_GetObjectItemCaseSensitive(v, "max_count"), &r->max_count, err);
    }
    return rc;
}

int weir_retention_from_body(weir_req_t *req, weir_store_retention_t *r, bool *given,
                             weir_err_t *err)
{
    static const char *const names[] = {"retention", NULL};
    cJSON *doc = NULL;

    *given = req->body.len > 0;
    r->max_age_us = r->max_count = -1;
    if (!*given) {
        return 0;
    }
    int rc = weir_ce_json_parse(req->body.data, req->body.len, &doc, err);
    if (rc != 0) {
        return weir_err_set(err, WEIR_EINVAL, "", "the body: %s", err->msg);
    }
    if (!cJSON_IsObject(doc)) {
        rc = weir_err_set(err, WEIR_EINVAL, "", "the body must be a JSON object");
    } else if ((rc = only_members(doc, names, "", err)) == 0) {
        rc = retention_member(cJSON_GetObjectItemCaseSensitive(doc, "retention"), r, err);
    }
    cJSON_Delete(doc);
    return rc;
}

/* ---- the namespace's "retention" member ------------------------------------------------ */

/* Appends "max_age":...,"max_count":... (null where unset). */
static void pair_members(weir_buf_t *b, int64_t age_us, int64_t count)
{
    weir_buf_puts(b, "\"max_age\":");
    if (age_us < 0) {
        weir_buf_puts(b, "null");
    } else {
        age_json(b, age_us);
    }
    if (count < 0) {
        weir_buf_puts(b, ",\"max_count\":null");
    } else {
        weir_buf_printf(b, ",\"max_count\":%" PRId64, count);
    }
}

int weir_retention_json(weir_req_t *req, const char *ns, weir_buf_t *b, weir_err_t *err)
{
    const weir_settings_t *s = req->srv->settings;
    weir_store_retention_t own;

    int rc = weir_store_retention_get(req->srv->store, ns, &own, err);
    if (rc != 0) {
        return rc;
    }
    weir_buf_puts(b, ",\"retention\":{");
    pair_members(b, own.max_age_us, own.max_count);
    weir_buf_puts(b, ",\"effective\":{");
    pair_members(b, own.max_age_us >= 0 ? own.max_age_us : s->retention_max_age_us,
                 own.max_count >= 0 ? own.max_count : (int64_t)s->retention_max_count);
    weir_buf_puts(b, "}}");
    return 0;
}

int weir_retention_start(weir_server_t *srv)
{
    const weir_settings_t *s = srv->settings;
    weir_store_retention_t defaults = {.max_age_us = s->retention_max_age_us,
                                       .max_count = (int64_t)s->retention_max_count};
    weir_err_t err = {0};

    if (weir_store_retainer_start(srv->store, &defaults, s->retention_interval_s * 1000u,
                                  &srv->retainer, &err) != 0) {
        weir_error("serve", "cannot apply retention: %s", err.msg);
        return -1;
    }
    return 0;
}
