/*
 * filter.c: Knative's filter dialects (the CloudEvents Subscriptions API filters): exact,
 * prefix, suffix, all, any, not and cesql, and the context globs of a listener's event type.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cesql/cesql.h"
#include "route/route.h"

/* Formats the path of a field for an error; a long path is cut to fit, which is fine. */
static void path_fmt(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void path_fmt(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, WEIR_ERR_ATTR_MAX, fmt, ap);
    va_end(ap);
}

typedef enum kind { F_EXACT, F_PREFIX, F_SUFFIX, F_ALL, F_ANY, F_NOT, F_CESQL } kind_t;

static const char *const kind_names[] = {"exact", "prefix", "suffix", "all", "any", "not", "cesql"};
#define NKINDS (sizeof(kind_names) / sizeof(kind_names[0]))

struct weir_route_filter {
    kind_t kind;
    char **attrs; /* exact, prefix, suffix */
    char **values;
    size_t n;
    weir_route_filter_t **subs; /* all, any, not */
    size_t nsubs;
    weir_cesql_t *prog; /* cesql */
};

void weir_route_filter_free(weir_route_filter_t *f)
{
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < f->n; i++) {
        weir_free(f->attrs[i]);
        weir_free(f->values[i]);
    }
    for (size_t i = 0; i < f->nsubs; i++) {
        weir_route_filter_free(f->subs[i]);
    }
    weir_free(f->attrs);
    weir_free(f->values);
    weir_free(f->subs);
    weir_cesql_free(f->prog);
    weir_free(f);
}

/* exact, prefix, suffix: an object of attribute name to string. */
static int parse_attrs(weir_route_filter_t *f, const cJSON *v, const char *path, weir_err_t *err)
{
    if (!cJSON_IsObject(v) || v->child == NULL) {
        return weir_err_set(err, WEIR_EINVAL, path,
                            "must be a non-empty object of attribute "
                            "to string");
    }
    size_t n = (size_t)cJSON_GetArraySize(v);
    f->attrs = weir_calloc(n, sizeof(char *));
    f->values = weir_calloc(n, sizeof(char *));
    for (const cJSON *a = v->child; a != NULL; a = a->next) {
        if (!weir_ce_name_valid(a->string)) {
            return weir_err_set(err, WEIR_EINVAL, path,
                                "attribute names are lower-case letters and digits");
        }
        if (!cJSON_IsString(a) || (f->kind != F_EXACT && a->valuestring[0] == '\0')) {
            return weir_err_set(err, WEIR_EINVAL, path, "the value of %s must be a%s string",
                                a->string, f->kind != F_EXACT ? " non-empty" : "");
        }
        f->attrs[f->n] = weir_strdup(a->string);
        f->values[f->n++] = weir_strdup(a->valuestring);
    }
    return 0;
}

/* all, any: a non-empty array of filters; not: one filter. */
static int parse_subs(weir_route_filter_t *f, const cJSON *v, const char *path, int depth,
                      weir_err_t *err)
{
    char sub[WEIR_ERR_ATTR_MAX];

    if (f->kind == F_NOT) {
        f->subs = weir_calloc(1, sizeof(*f->subs));
        f->nsubs = 1;
        return weir_route_filter_parse(v, path, depth + 1, &f->subs[0], err);
    }
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n == 0 || n > WEIR_ROUTE_FILTERS_MAX) {
        return weir_err_set(err, WEIR_EINVAL, path, "must be an array of 1 to %d filters",
                            WEIR_ROUTE_FILTERS_MAX);
    }
    f->subs = weir_calloc((size_t)n, sizeof(*f->subs));
    for (const cJSON *s = v->child; s != NULL; s = s->next) {
        path_fmt(sub, "%s[%zu]", path, f->nsubs);
        int rc = weir_route_filter_parse(s, sub, depth + 1, &f->subs[f->nsubs++], err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_cesql(weir_route_filter_t *f, const cJSON *v, const char *path, weir_err_t *err)
{
    if (!cJSON_IsString(v)) {
        return weir_err_set(err, WEIR_EINVAL, path, "must be a CESQL expression string");
    }
    weir_err_t e = {0};
    if (weir_cesql_compile(v->valuestring, strlen(v->valuestring), &f->prog, &e) != 0) {
        return weir_err_set(err, WEIR_EINVAL, path, "%s", e.msg);
    }
    const char *warning = weir_cesql_warning(f->prog);
    if (warning != NULL) {
        return weir_err_set(err, WEIR_EINVAL, path, "%s", warning);
    }
    return 0;
}

static int parse_body(weir_route_filter_t *f, const cJSON *v, const char *path, int depth,
                      weir_err_t *err)
{
    switch (f->kind) {
    case F_EXACT:
    case F_PREFIX:
    case F_SUFFIX:
        return parse_attrs(f, v, path, err);
    case F_CESQL:
        return parse_cesql(f, v, path, err);
    default:
        return parse_subs(f, v, path, depth, err);
    }
}

int weir_route_filter_parse(const cJSON *obj, const char *path, int depth,
                            weir_route_filter_t **out, weir_err_t *err)
{
    char sub[WEIR_ERR_ATTR_MAX];

    *out = NULL;
    if (depth > WEIR_ROUTE_FILTER_DEPTH) {
        return weir_err_set(err, WEIR_EINVAL, path, "filters nest deeper than %d",
                            WEIR_ROUTE_FILTER_DEPTH);
    }
    if (!cJSON_IsObject(obj) || obj->child == NULL || obj->child->next != NULL) {
        return weir_err_set(err, WEIR_EINVAL, path,
                            "a filter is an object with exactly one dialect: exact, prefix, "
                            "suffix, all, any, not or cesql");
    }
    const cJSON *v = obj->child;
    size_t k = 0;
    while (k < NKINDS && strcmp(kind_names[k], v->string) != 0) {
        k++;
    }
    path_fmt(sub, "%s.%s", path, v->string);
    if (k == NKINDS) {
        return weir_err_set(err, WEIR_EINVAL, sub, "unknown filter dialect");
    }
    weir_route_filter_t *f = weir_calloc(1, sizeof(*f));
    f->kind = (kind_t)k;
    int rc = parse_body(f, v, sub, depth, err);
    if (rc != 0) {
        weir_route_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- matching -------------------------------------------------------------------------- */

static bool attr_test(kind_t kind, const char *value, const char *want)
{
    size_t vl = strlen(value), wl = strlen(want);
    switch (kind) {
    case F_EXACT:
        return strcmp(value, want) == 0;
    case F_PREFIX:
        return strncmp(value, want, wl) == 0;
    default:
        return vl >= wl && memcmp(value + vl - wl, want, wl) == 0;
    }
}

static bool attrs_match(const weir_route_filter_t *f, const weir_event_t *ev)
{
    for (size_t i = 0; i < f->n; i++) {
        const char *value = weir_ce_get(ev, f->attrs[i]);
        if (value == NULL || !attr_test(f->kind, value, f->values[i])) {
            return false;
        }
    }
    return true;
}

/*
 * One CESQL result per thread, kept from one match to the next: a result that once held a
 * computed string longer than its inline space keeps the scratch block it allocated, so that
 * such expressions cost one allocation per thread rather than one per event. The key's
 * destructor releases it when its thread ends (libmicrohttpd ends a thread per connection).
 */
static pthread_key_t result_key;
static pthread_once_t result_once = PTHREAD_ONCE_INIT;

static void result_release(void *p)
{
    weir_cesql_result_free(p);
    weir_free(p);
}

static void result_key_create(void)
{
    if (pthread_key_create(&result_key, result_release) != 0) {
        abort(); /* only when the process has run out of keys: nothing sensible is left */
    }
}

static weir_cesql_result_t *thread_result(void)
{
    pthread_once(&result_once, result_key_create);
    weir_cesql_result_t *res = pthread_getspecific(result_key);
    if (res == NULL) {
        res = weir_calloc(1, sizeof(*res)); /* all zero: WEIR_CESQL_RESULT_INIT */
        pthread_setspecific(result_key, res);
    }
    return res;
}

static bool cesql_match(const weir_route_filter_t *f, const weir_event_t *ev)
{
    return weir_cesql_match(f->prog, ev, thread_result());
}

bool weir_route_filter_match(const weir_route_filter_t *f, const weir_event_t *ev)
{
    switch (f->kind) {
    case F_EXACT:
    case F_PREFIX:
    case F_SUFFIX:
        return attrs_match(f, ev);
    case F_CESQL:
        return cesql_match(f, ev);
    case F_NOT:
        return !weir_route_filter_match(f->subs[0], ev);
    case F_ALL:
        for (size_t i = 0; i < f->nsubs; i++) {
            if (!weir_route_filter_match(f->subs[i], ev)) {
                return false;
            }
        }
        return true;
    case F_ANY:
        for (size_t i = 0; i < f->nsubs; i++) {
            if (weir_route_filter_match(f->subs[i], ev)) {
                return true;
            }
        }
        return false;
    }
    return false;
}

bool weir_route_type_match(const weir_route_type_t *t, const weir_event_t *ev)
{
    const char *type = weir_ce_get(ev, "type");
    if (type == NULL || strcmp(type, t->type) != 0) {
        return false;
    }
    for (size_t i = 0; i < t->ncontext; i++) {
        const char *value = weir_ce_get(ev, t->context[i].attr);
        if (value == NULL || !weir_glob_match(t->context[i].pattern, value)) {
            return false;
        }
    }
    for (size_t i = 0; i < t->nfilters; i++) {
        if (!weir_route_filter_match(t->filters[i], ev)) {
            return false;
        }
    }
    return true;
}
