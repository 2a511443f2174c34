/*
 * filter.c: Knative's filter dialects (the CloudEvents Subscriptions API filters): exact,
 * prefix, suffix, all, any, not and cesql, and the context globs of a listener's event type.
 * What is accepted, and what an odd but accepted filter means, follow Knative's webhook and
 * broker filter, so that a trigger's filters behave the same when they move to weir.
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

/* F_NONE: a filter that sets no dialect, and so has no say (see eval). */
typedef enum kind { F_EXACT, F_PREFIX, F_SUFFIX, F_ALL, F_ANY, F_NOT, F_CESQL, F_NONE } kind_t;

static const char *const kind_names[] = {"exact", "prefix", "suffix", "all", "any", "not", "cesql"};
#define NKINDS (sizeof(kind_names) / sizeof(kind_names[0]))

/* What each dialect's member must be, for errors. */
static const char *const kind_types[] = {"an object of one attribute to a string",
                                         "an object of one attribute to a string",
                                         "an object of one attribute to a string",
                                         "an array of filters",
                                         "an array of filters",
                                         "a filter",
                                         "a CESQL expression string"};

struct weir_route_filter {
    kind_t kind;
    char *attr; /* exact, prefix, suffix: one attribute and its value */
    char *value;
    weir_route_filter_t **subs; /* all, any, not */
    size_t nsubs;
    weir_cesql_t *prog; /* cesql */
};

void weir_route_filter_free(weir_route_filter_t *f)
{
    if (f == NULL) {
        return;
    }
    for (size_t i = 0; i < f->nsubs; i++) {
        weir_route_filter_free(f->subs[i]);
    }
    weir_free(f->attr);
    weir_free(f->value);
    weir_free(f->subs);
    weir_cesql_free(f->prog);
    weir_free(f);
}

/* Knative's rule for a filter's attribute: a lower-case letter, then letters and digits. */
static bool attr_name_valid(const char *name)
{
    return name[0] >= 'a' && name[0] <= 'z' && weir_ce_name_valid(name);
}

/* exact, prefix, suffix: an object of one attribute name to a string. */
static int parse_attr(weir_route_filter_t *f, const cJSON *v, const char *path, weir_err_t *err)
{
    const cJSON *a = v->child;

    if (a->next != NULL) {
        return weir_err_set(err, WEIR_EINVAL, path,
                            "must hold a single attribute (Knative takes one key-value)");
    }
    if (!attr_name_valid(a->string)) {
        return weir_err_set(err, WEIR_EINVAL, path,
                            "an attribute name is a lower-case letter followed by lower-case "
                            "letters and digits");
    }
    if (!cJSON_IsString(a)) {
        return weir_err_set(err, WEIR_EINVAL, path, "the value of %s must be a string", a->string);
    }
    f->attr = weir_strdup(a->string);
    f->value = weir_strdup(a->valuestring);
    return 0;
}

/* all, any: an array of filters; not: one filter. */
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
    if (n > WEIR_ROUTE_FILTERS_MAX) {
        return weir_err_set(err, WEIR_EINVAL, path, "must be an array of at most %d filters",
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
        return parse_attr(f, v, path, err);
    case F_CESQL:
        return parse_cesql(f, v, path, err);
    default:
        return parse_subs(f, v, path, depth, err);
    }
}

/* The dialect a member names; NKINDS when it names none. */
static size_t kind_of(const char *name)
{
    size_t k = 0;
    while (k < NKINDS && strcmp(kind_names[k], name) != 0) {
        k++;
    }
    return k;
}

/* Whether a member has its dialect's JSON type; null stands for an absent member. */
static bool type_ok(const cJSON *v, kind_t k)
{
    if (cJSON_IsNull(v)) {
        return true;
    }
    switch (k) {
    case F_ALL:
    case F_ANY:
        return cJSON_IsArray(v);
    case F_CESQL:
        return cJSON_IsString(v);
    default:
        return cJSON_IsObject(v);
    }
}

/* Whether a member sets its dialect, as Knative counts: an empty map, list or expression sets
 * nothing; `not` sets one as soon as it holds an object. */
static bool is_set(const cJSON *v, kind_t k)
{
    if (cJSON_IsNull(v)) {
        return false;
    }
    switch (k) {
    case F_NOT:
        return true;
    case F_CESQL:
        return v->valuestring[0] != '\0';
    default:
        return v->child != NULL;
    }
}

/* Checks every member of a filter; *chosen is the one that sets its dialect, or NULL. */
static int pick_dialect(const cJSON *obj, const char *path, const cJSON **chosen, weir_err_t *err)
{
    char sub[WEIR_ERR_ATTR_MAX];

    *chosen = NULL;
    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        size_t k = kind_of(m->string);
        path_fmt(sub, "%s.%s", path, m->string);
        if (k == NKINDS) {
            return weir_err_set(err, WEIR_EINVAL, sub, "unknown filter dialect");
        }
        if (!type_ok(m, (kind_t)k)) {
            return weir_err_set(err, WEIR_EINVAL, sub, "must be %s", kind_types[k]);
        }
        if (!is_set(m, (kind_t)k)) {
            continue;
        }
        if (*chosen != NULL) {
            return weir_err_set(err, WEIR_EINVAL, path,
                                "a filter sets one dialect only: exact, prefix, suffix, all, "
                                "any, not or cesql");
        }
        *chosen = m;
    }
    return 0;
}

int weir_route_filter_parse(const cJSON *obj, const char *path, int depth,
                            weir_route_filter_t **out, weir_err_t *err)
{
    char sub[WEIR_ERR_ATTR_MAX];
    const cJSON *v = NULL;

    *out = NULL;
    if (depth > WEIR_ROUTE_FILTER_DEPTH) {
        return weir_err_set(err, WEIR_EINVAL, path, "filters nest deeper than %d",
                            WEIR_ROUTE_FILTER_DEPTH);
    }
    if (!cJSON_IsObject(obj)) {
        return weir_err_set(err, WEIR_EINVAL, path,
                            "a filter is an object with one dialect: exact, prefix, suffix, "
                            "all, any, not or cesql");
    }
    int rc = pick_dialect(obj, path, &v, err);
    if (rc != 0) {
        return rc;
    }
    weir_route_filter_t *f = weir_calloc(1, sizeof(*f));
    f->kind = v != NULL ? (kind_t)kind_of(v->string) : F_NONE;
    if (v != NULL) {
        path_fmt(sub, "%s.%s", path, v->string);
        rc = parse_body(f, v, sub, depth, err);
    }
    if (rc != 0) {
        weir_route_filter_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

/* ---- matching -------------------------------------------------------------------------- */

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

/*
 * What a filter says of an event. As in Knative's broker, a filter that sets nothing (no
 * dialect, an empty value, a `not` of such a filter, an `all` or `any` of such filters) has no
 * say: it is left out of the `all` or `any` that holds it, and only a filter that fails keeps
 * an event from its listener.
 */
typedef enum verdict { V_NONE = 0, V_PASS, V_FAIL } verdict_t;

static verdict_t eval(const weir_route_filter_t *f, const weir_event_t *ev);

static verdict_t attr_test(const weir_route_filter_t *f, const weir_event_t *ev)
{
    const char *value = weir_ce_get(ev, f->attr);
    size_t wl = strlen(f->value);

    if (wl == 0) {
        return V_NONE; /* Knative builds no filter from an empty value */
    }
    if (value == NULL) {
        return V_FAIL;
    }
    size_t vl = strlen(value);
    bool ok = f->kind == F_EXACT    ? strcmp(value, f->value) == 0
              : f->kind == F_PREFIX ? strncmp(value, f->value, wl) == 0
                                    : vl >= wl && memcmp(value + vl - wl, f->value, wl) == 0;
    return ok ? V_PASS : V_FAIL;
}

/* all: fails when one fails; passes when one passes and none fails. */
static verdict_t eval_all(const weir_route_filter_t *f, const weir_event_t *ev)
{
    verdict_t v = V_NONE;
    for (size_t i = 0; i < f->nsubs; i++) {
        verdict_t s = eval(f->subs[i], ev);
        if (s == V_FAIL) {
            return V_FAIL;
        }
        v = s == V_PASS ? V_PASS : v;
    }
    return v;
}

/* any: passes when one passes; fails when one fails and none passes. */
static verdict_t eval_any(const weir_route_filter_t *f, const weir_event_t *ev)
{
    verdict_t v = V_NONE;
    for (size_t i = 0; i < f->nsubs; i++) {
        verdict_t s = eval(f->subs[i], ev);
        if (s == V_PASS) {
            return V_PASS;
        }
        v = s == V_FAIL ? V_FAIL : v;
    }
    return v;
}

static verdict_t eval_not(const weir_route_filter_t *f, const weir_event_t *ev)
{
    verdict_t v = eval(f->subs[0], ev);
    return v == V_PASS ? V_FAIL : v == V_FAIL ? V_PASS : V_NONE;
}

static verdict_t eval(const weir_route_filter_t *f, const weir_event_t *ev)
{
    switch (f->kind) {
    case F_EXACT:
    case F_PREFIX:
    case F_SUFFIX:
        return attr_test(f, ev);
    case F_CESQL:
        return cesql_match(f, ev) ? V_PASS : V_FAIL;
    case F_NOT:
        return eval_not(f, ev);
    case F_ALL:
        return eval_all(f, ev);
    case F_ANY:
        return eval_any(f, ev);
    case F_NONE:
        break;
    }
    return V_NONE;
}

bool weir_route_filter_match(const weir_route_filter_t *f, const weir_event_t *ev)
{
    return eval(f, ev) != V_FAIL;
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
