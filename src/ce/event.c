/* The CloudEvent model: attributes kept sorted by name, data with its kind, and validation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ce/ce.h"
#include "ce/codec.h"

weir_event_t *weir_ce_new(void)
{
    return weir_calloc(1, sizeof(weir_event_t));
}

void weir_ce_free(weir_event_t *ev)
{
    if (ev == NULL) {
        return;
    }
    for (size_t i = 0; i < ev->nattrs; i++) {
        weir_free(ev->attrs[i].name);
        weir_free(ev->attrs[i].value);
    }
    weir_free(ev->attrs);
    weir_free(ev->data);
    weir_free(ev);
}

weir_event_t *weir_ce_clone(const weir_event_t *ev)
{
    weir_event_t *copy = weir_ce_new();
    copy->attrs = weir_calloc(ev->nattrs ? ev->nattrs : 1, sizeof(weir_ce_attr_t));
    copy->cap = ev->nattrs ? ev->nattrs : 1;
    copy->nattrs = ev->nattrs;
    for (size_t i = 0; i < ev->nattrs; i++) {
        copy->attrs[i].name = weir_strdup(ev->attrs[i].name);
        copy->attrs[i].value = weir_strdup(ev->attrs[i].value);
        copy->attrs[i].type = ev->attrs[i].type;
    }
    weir_ce_set_data(copy, ev->data_kind, ev->data, ev->data_len);
    return copy;
}

static int attr_cmp(const void *name, const void *attr)
{
    return strcmp(name, ((const weir_ce_attr_t *)attr)->name);
}

/* Index of name, or of where it would be inserted (with *found false). */
static size_t find(const weir_event_t *ev, const char *name, bool *found)
{
    return weir_bsearch_at(name, ev->attrs, ev->nattrs, sizeof(weir_ce_attr_t), attr_cmp, found);
}

const weir_ce_attr_t *weir_ce_attr(const weir_event_t *ev, const char *name)
{
    bool found;
    size_t i = find(ev, name, &found);
    return found ? &ev->attrs[i] : NULL;
}

const char *weir_ce_get(const weir_event_t *ev, const char *name)
{
    const weir_ce_attr_t *a = weir_ce_attr(ev, name);
    return a ? a->value : NULL;
}

bool weir_ce_name_valid(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return n > 0 && n <= WEIR_CE_NAME_MAX;
}

const char *weir_ce__name_shown(const char *name)
{
    size_t n = 0;
    for (; name[n]; n++) {
        char c = name[n];
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '.';
        if (!word) {
            return "";
        }
    }
    return n < WEIR_ERR_ATTR_MAX ? name : "";
}

static bool integer_valid(const char *s)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    bool canonical = s[0] == '-' ? s[1] != '0' && s[1] != '\0' : s[0] != '+';
    return *s && *end == '\0' && errno == 0 && v >= INT32_MIN && v <= INT32_MAX && canonical &&
           (s[0] != '0' || s[1] == '\0');
}

static int value_valid(const char *name, const char *value, weir_ce_type_t type, weir_err_t *err)
{
    size_t len = strlen(value);
    if (len > WEIR_CE_VALUE_MAX) {
        return weir_err_set(err, WEIR_EINVAL, name, "value is longer than %d bytes",
                            WEIR_CE_VALUE_MAX);
    }
    if (!weir_utf8_valid(value, len)) {
        return weir_err_set(err, WEIR_EINVAL, name, "value is not valid UTF-8");
    }
    if (type == WEIR_CE_INTEGER && !integer_valid(value)) {
        return weir_err_set(err, WEIR_EINVAL, name, "value is not a 32-bit integer");
    }
    if (type == WEIR_CE_BOOLEAN && strcmp(value, "true") != 0 && strcmp(value, "false") != 0) {
        return weir_err_set(err, WEIR_EINVAL, name, "value is not a boolean");
    }
    return 0;
}

int weir_ce_set(weir_event_t *ev, const char *name, const char *value, weir_ce_type_t type,
                weir_err_t *err)
{
    if (!weir_ce_name_valid(name)) {
        return weir_err_set(err, WEIR_EINVAL, weir_ce__name_shown(name),
                            "attribute names are 1 to %d lower-case letters and digits",
                            WEIR_CE_NAME_MAX);
    }
    int rc = value_valid(name, value, type, err);
    if (rc != 0) {
        return rc;
    }

    bool found;
    size_t i = find(ev, name, &found);
    if (found) {
        weir_free(ev->attrs[i].value);
    } else {
        if (ev->nattrs == ev->cap) {
            ev->cap = ev->cap ? ev->cap * 2 : 8;
            ev->attrs = weir_realloc(ev->attrs, ev->cap * sizeof(weir_ce_attr_t));
        }
        memmove(&ev->attrs[i + 1], &ev->attrs[i], (ev->nattrs - i) * sizeof(weir_ce_attr_t));
        ev->attrs[i].name = weir_strdup(name);
        ev->nattrs++;
    }
    ev->attrs[i].value = weir_strdup(value);
    ev->attrs[i].type = type;
    return 0;
}

void weir_ce_remove(weir_event_t *ev, const char *name)
{
    bool found;
    size_t i = find(ev, name, &found);
    if (!found) {
        return;
    }
    weir_free(ev->attrs[i].name);
    weir_free(ev->attrs[i].value);
    memmove(&ev->attrs[i], &ev->attrs[i + 1], (ev->nattrs - i - 1) * sizeof(weir_ce_attr_t));
    ev->nattrs--;
}

void weir_ce_set_data(weir_event_t *ev, weir_ce_data_kind_t kind, const void *data, size_t len)
{
    unsigned char *copy = NULL;
    if (kind != WEIR_CE_DATA_NONE) {
        copy = weir_malloc(len + 1);
        if (len > 0) {
            memcpy(copy, data, len);
        }
        copy[len] = '\0';
    }
    weir_free(ev->data);
    ev->data = copy;
    ev->data_len = kind != WEIR_CE_DATA_NONE ? len : 0;
    ev->data_kind = kind;
}
