/*
 * listener.c: a listener spec from JSON: validation with errors that name the field, and the
 * correlation key of an `and` listener.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

static const char *const modes[] = {"simple", "xor", "and"};

/* Members of a spec and of one of its event types; sink and delivery are deliver's. */
static const char *const spec_keys[] = {"mode",     "events", "correlate",
                                        "lifespan", "sink",   "delivery"};
static const char *const type_keys[] = {"type", "context", "filters"};

static bool known(const char *key, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, keys[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int check_keys(const cJSON *obj, const char *const *keys, size_t n, const char *prefix,
                      weir_err_t *err)
{
    char path[WEIR_ERR_ATTR_MAX];

    for (const cJSON *m = obj->child; m != NULL; m = m->next) {
        if (!known(m->string, keys, n)) {
            path_fmt(path, "%s%s", prefix, m->string);
            return weir_err_set(err, WEIR_EINVAL, path, "unknown member");
        }
    }
    return 0;
}

void weir_route_listener_free(weir_listener_t *l)
{
    if (l == NULL) {
        return;
    }
    for (size_t i = 0; i < l->ntypes; i++) {
        weir_route_type_t *t = &l->types[i];
        for (size_t j = 0; j < t->ncontext; j++) {
            weir_free(t->context[j].attr);
            weir_free(t->context[j].pattern);
        }
        for (size_t j = 0; j < t->nfilters; j++) {
            weir_route_filter_free(t->filters[j]);
        }
        weir_free(t->context);
        weir_free(t->filters);
        weir_free(t->type);
    }
    for (size_t i = 0; i < l->ncorrelate; i++) {
        weir_free(l->correlate[i]);
    }
    weir_free(l->types);
    weir_free(l->correlate);
    cJSON_Delete(l->doc);
    weir_free(l->id);
    weir_free(l->ns);
    weir_free(l);
}

/* ---- one event type -------------------------------------------------------------------- */

static int parse_context(weir_route_type_t *t, const cJSON *v, const char *path, weir_err_t *err)
{
    char sub[WEIR_ERR_ATTR_MAX];

    path_fmt(sub, "%s.context", path);
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsObject(v) || n > WEIR_ROUTE_CONTEXT_MAX) {
        return weir_err_set(err, WEIR_EINVAL, sub,
                            "must be an object of at most %d attribute "
                            "globs",
                            WEIR_ROUTE_CONTEXT_MAX);
    }
    t->context = weir_calloc((size_t)n + 1, sizeof(*t->context));
    for (const cJSON *a = v->child; a != NULL; a = a->next) {
        path_fmt(sub, "%s.context.%s", path, a->string);
        if (!weir_ce_name_valid(a->string)) {
            return weir_err_set(err, WEIR_EINVAL, sub,
                                "attribute names are lower-case letters and digits");
        }
        if (!cJSON_IsString(a)) {
            return weir_err_set(err, WEIR_EINVAL, sub, "must be a glob pattern string");
        }
        t->context[t->ncontext].attr = weir_strdup(a->string);
        t->context[t->ncontext++].pattern = weir_strdup(a->valuestring);
    }
    return 0;
}

static int parse_filters(weir_route_type_t *t, const cJSON *v, const char *path, weir_err_t *err)
{
    char sub[WEIR_ERR_ATTR_MAX];

    path_fmt(sub, "%s.filters", path);
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n > WEIR_ROUTE_FILTERS_MAX) {
        return weir_err_set(err, WEIR_EINVAL, sub, "must be an array of at most %d filters",
                            WEIR_ROUTE_FILTERS_MAX);
    }
    t->filters = weir_calloc((size_t)n + 1, sizeof(*t->filters));
    for (const cJSON *f = v->child; f != NULL; f = f->next) {
        path_fmt(sub, "%s.filters[%zu]", path, t->nfilters);
        int rc = weir_route_filter_parse(f, sub, 0, &t->filters[t->nfilters++], err);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_type(weir_route_type_t *t, const cJSON *obj, size_t index, weir_err_t *err)
{
    char path[WEIR_ERR_ATTR_MAX];
    char sub[WEIR_ERR_ATTR_MAX];

    path_fmt(path, "events[%zu]", index);
    if (!cJSON_IsObject(obj)) {
        return weir_err_set(err, WEIR_EINVAL, path, "must be an object");
    }
    path_fmt(sub, "%s.", path);
    int rc = check_keys(obj, type_keys, sizeof(type_keys) / sizeof(type_keys[0]), sub, err);
    if (rc != 0) {
        return rc;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!cJSON_IsString(type) || type->valuestring[0] == '\0') {
        path_fmt(sub, "%s.type", path);
        return weir_err_set(err, WEIR_EINVAL, sub, "must be a non-empty string");
    }
    t->type = weir_strdup(type->valuestring);
    const cJSON *context = cJSON_GetObjectItemCaseSensitive(obj, "context");
    if (context != NULL && (rc = parse_context(t, context, path, err)) != 0) {
        return rc;
    }
    const cJSON *filters = cJSON_GetObjectItemCaseSensitive(obj, "filters");
    return filters != NULL ? parse_filters(t, filters, path, err) : 0;
}

/* ---- the spec -------------------------------------------------------------------------- */

static int parse_mode(weir_listener_t *l, const cJSON *v, weir_err_t *err)
{
    for (size_t i = 0; cJSON_IsString(v) && i < sizeof(modes) / sizeof(modes[0]); i++) {
        if (strcmp(v->valuestring, modes[i]) == 0) {
            l->mode = (weir_route_mode_t)i;
            return 0;
        }
    }
    return weir_err_set(err, WEIR_EINVAL, "mode", "must be \"simple\", \"xor\" or \"and\"");
}

static bool type_repeated(const weir_listener_t *l)
{
    for (size_t i = 0; i < l->ntypes; i++) {
        for (size_t j = i + 1; j < l->ntypes; j++) {
            if (strcmp(l->types[i].type, l->types[j].type) == 0) {
                return true;
            }
        }
    }
    return false;
}

static int parse_events(weir_listener_t *l, const cJSON *v, weir_err_t *err)
{
    static const size_t least[] = {1, 1, 2};
    static const size_t most[] = {1, WEIR_ROUTE_TYPES_MAX, WEIR_ROUTE_TYPES_MAX};
    size_t n = cJSON_IsArray(v) ? (size_t)cJSON_GetArraySize(v) : 0;

    if (n < least[l->mode] || n > most[l->mode]) {
        return weir_err_set(err, WEIR_EINVAL, "events",
                            "a %s listener takes %zu to %zu event types", modes[l->mode],
                            least[l->mode], most[l->mode]);
    }
    l->types = weir_calloc(n, sizeof(*l->types));
    for (const cJSON *t = v->child; t != NULL; t = t->next) {
        int rc = parse_type(&l->types[l->ntypes], t, l->ntypes, err);
        l->ntypes++;
        if (rc != 0) {
            return rc;
        }
    }
    if (l->mode == WEIR_ROUTE_AND && type_repeated(l)) {
        return weir_err_set(err, WEIR_EINVAL, "events", "an and listener names each type once");
    }
    return 0;
}

static int parse_correlate(weir_listener_t *l, const cJSON *v, weir_err_t *err)
{
    int n = cJSON_GetArraySize(v);
    if (!cJSON_IsArray(v) || n > WEIR_ROUTE_CORRELATE_MAX) {
        return weir_err_set(err, WEIR_EINVAL, "correlate",
                            "must be an array of at most %d attribute names",
                            WEIR_ROUTE_CORRELATE_MAX);
    }
    l->correlate = weir_calloc((size_t)n + 1, sizeof(char *));
    for (const cJSON *a = v->child; a != NULL; a = a->next) {
        if (!cJSON_IsString(a) || !weir_ce_name_valid(a->valuestring)) {
            return weir_err_set(err, WEIR_EINVAL, "correlate",
                                "attribute names are lower-case letters and digits");
        }
        l->correlate[l->ncorrelate++] = weir_strdup(a->valuestring);
    }
    return 0;
}

/* correlate and lifespan belong to `and` listeners, which need a lifespan. */
static int parse_and(weir_listener_t *l, const cJSON *doc, weir_err_t *err)
{
    const cJSON *correlate = cJSON_GetObjectItemCaseSensitive(doc, "correlate");
    const cJSON *lifespan = cJSON_GetObjectItemCaseSensitive(doc, "lifespan");

    if (l->mode != WEIR_ROUTE_AND) {
        if (correlate != NULL || lifespan != NULL) {
            return weir_err_set(err, WEIR_EINVAL, correlate ? "correlate" : "lifespan",
                                "only an and listener takes this");
        }
        return 0;
    }
    if (!cJSON_IsString(lifespan) ||
        weir_duration_parse(lifespan->valuestring, &l->lifespan_us) != 0 || l->lifespan_us <= 0) {
        return weir_err_set(err, WEIR_EINVAL, "lifespan",
                            "an and listener needs a positive ISO 8601 duration (\"PT10M\")");
    }
    return correlate != NULL ? parse_correlate(l, correlate, err) : 0;
}

static int parse_spec(weir_listener_t *l, weir_err_t *err)
{
    const cJSON *doc = l->doc;

    if (!cJSON_IsObject(doc)) {
        return weir_err_set(err, WEIR_EINVAL, "", "a listener is a JSON object");
    }
    int rc = check_keys(doc, spec_keys, sizeof(spec_keys) / sizeof(spec_keys[0]), "", err);
    if (rc == 0) {
        rc = parse_mode(l, cJSON_GetObjectItemCaseSensitive(doc, "mode"), err);
    }
    if (rc == 0) {
        rc = parse_events(l, cJSON_GetObjectItemCaseSensitive(doc, "events"), err);
    }
    return rc == 0 ? parse_and(l, doc, err) : rc;
}

int weir_route_listener_parse(const char *json, size_t len, weir_listener_t **out, weir_err_t *err)
{
    weir_listener_t *l = weir_calloc(1, sizeof(*l));
    weir_err_t e = {0};

    *out = NULL;
    int rc = weir_ce_json_parse(json, len, &l->doc, &e);
    if (rc != 0) {
        rc = weir_err_set(err, WEIR_EINVAL, "", "the body: %s", e.msg);
    } else {
        rc = parse_spec(l, err);
    }
    if (rc != 0) {
        weir_route_listener_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

char *weir_route_correlation_key(const weir_listener_t *l, const weir_event_t *ev)
{
    weir_buf_t b = WEIR_BUF_INIT;

    weir_buf_putc(&b, '[');
    for (size_t i = 0; i < l->ncorrelate; i++) {
        const char *v = weir_ce_get(ev, l->correlate[i]);
        if (v == NULL) {
            weir_buf_free(&b);
            return NULL;
        }
        weir_buf_puts(&b, i > 0 ? "," : "");
        weir_buf_json_str(&b, v, strlen(v));
    }
    weir_buf_putc(&b, ']');
    return weir_buf_take(&b, NULL);
}
