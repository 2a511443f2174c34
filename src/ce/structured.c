/*
 * Decoding the JSON event format: one event (structured mode), a batch, or a parsed cJSON
 * object. Each source is first turned into a list of members, so that one set of rules builds
 * the event whichever way it arrived.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ce/ce.h"
#include "ce/codec.h"

/* Attributes, plus "data", "data_base64" and 0.3's "datacontentencoding". */
#define MEMBERS_MAX (WEIR_CE_ATTRS_MAX + 3)

typedef enum member_kind {
    M_NULL = 0,
    M_BOOL,
    M_NUMBER,
    M_STRING,
    M_OTHER, /* an object or an array */
} member_kind_t;

typedef struct member {
    char *name; /* escapes resolved; never holds U+0000 */
    member_kind_t kind;
    bool truth;      /* M_BOOL */
    bool is_int;     /* M_NUMBER: an integer within 32 bits, in ival */
    long long ival;  /* M_NUMBER */
    weir_buf_t str;  /* M_STRING: the content, which may hold U+0000 */
    const char *raw; /* the value's JSON text */
    size_t raw_len;  /* (from cJSON: only for "data", printed into raw_owned) */
    char *raw_owned; /* freed with cJSON_free */
} member_t;

typedef struct members {
    member_t m[MEMBERS_MAX];
    size_t n;
} members_t;

static void members_free(members_t *ms)
{
    for (size_t i = 0; i < ms->n; i++) {
        weir_free(ms->m[i].name);
        weir_buf_free(&ms->m[i].str);
        if (ms->m[i].raw_owned != NULL) {
            cJSON_free(ms->m[i].raw_owned);
        }
    }
    ms->n = 0;
}

static const member_t *find_member(const members_t *ms, const char *name)
{
    for (size_t i = 0; i < ms->n; i++) {
        if (strcmp(ms->m[i].name, name) == 0) {
            return &ms->m[i];
        }
    }
    return NULL;
}

/* Takes name (allocated) into a new member, refusing NUL, duplicates and too many members. */
static int add_member(members_t *ms, char *name, size_t len, member_t **out, weir_err_t *err)
{
    int rc = 0;
    if (strlen(name) != len) {
        rc = weir_err_set(err, WEIR_EINVAL, "", "an attribute name contains U+0000");
    } else if (find_member(ms, name) != NULL) {
        rc = weir_err_set(err, WEIR_EINVAL, weir_ce__name_shown(name), "attribute appears twice");
    } else if (ms->n == MEMBERS_MAX) {
        rc = weir_err_set(err, WEIR_EINVAL, "", "more than %d attributes", WEIR_CE_ATTRS_MAX);
    }
    if (rc != 0) {
        weir_free(name);
        return rc;
    }
    member_t *m = &ms->m[ms->n++];
    memset(m, 0, sizeof(*m));
    m->name = name;
    *out = m;
    return 0;
}

/* An integer attribute is written without fraction or exponent and fits in 32 bits. */
static void parse_integer(member_t *m)
{
    char digits[16];
    if (m->raw_len >= sizeof(digits) || memchr(m->raw, '.', m->raw_len) ||
        memchr(m->raw, 'e', m->raw_len) || memchr(m->raw, 'E', m->raw_len)) {
        return;
    }
    memcpy(digits, m->raw, m->raw_len);
    digits[m->raw_len] = '\0';
    long long v = strtoll(digits, NULL, 10);
    if (v >= INT32_MIN && v <= INT32_MAX) {
        m->is_int = true;
        m->ival = v;
    }
}

/* Sets the kind of a member from its (checked) JSON text. */
static void classify_text(member_t *m, const char *end)
{
    switch (m->raw[0]) {
    case 'n':
        m->kind = M_NULL;
        break;
    case 't':
    case 'f':
        m->kind = M_BOOL;
        m->truth = m->raw[0] == 't';
        break;
    case '"':
        m->kind = M_STRING;
        weir_ce__json_unescape(m->raw, end, &m->str);
        break;
    case '{':
    case '[':
        m->kind = M_OTHER;
        break;
    default:
        m->kind = M_NUMBER;
        parse_integer(m);
        break;
    }
}

/* One "name": value pair of checked text at *pp; leaves *pp after the value. */
static int collect_member(const char **pp, const char *end, members_t *ms, weir_err_t *err)
{
    const char *p = *pp;
    weir_buf_t name = WEIR_BUF_INIT;
    weir_ce__json_unescape(p, end, &name);
    size_t name_len = name.len;
    member_t *m;
    int rc = add_member(ms, weir_buf_take(&name, NULL), name_len, &m, err);
    if (rc != 0) {
        return rc;
    }

    p = weir_ce__json_ws(weir_ce__json_skip(p, end), end);
    p = weir_ce__json_ws(p + 1, end); /* past the ':' */
    m->raw = p;
    *pp = weir_ce__json_skip(p, end);
    m->raw_len = (size_t)(*pp - p);
    classify_text(m, *pp);
    return 0;
}

/* The members of the checked object text[0..end). */
static int collect_text(const char *p, const char *end, members_t *ms, weir_err_t *err)
{
    p = weir_ce__json_ws(p, end);
    if (p == end || *p != '{') {
        return weir_err_set(err, WEIR_EINVAL, "", "an event must be a JSON object");
    }
    p = weir_ce__json_ws(p + 1, end);
    while (p < end && *p == '"') {
        int rc = collect_member(&p, end, ms, err);
        if (rc != 0) {
            return rc;
        }
        p = weir_ce__json_ws(p, end);
        if (p < end && *p == ',') {
            p = weir_ce__json_ws(p + 1, end);
        }
    }
    return 0;
}

static bool is_required(const char *name)
{
    return strcmp(name, "specversion") == 0 || strcmp(name, "id") == 0 ||
           strcmp(name, "source") == 0 || strcmp(name, "type") == 0;
}

static int put_scalar(weir_event_t *ev, const member_t *m, weir_err_t *err)
{
    char num[16];
    switch (m->kind) {
    case M_STRING:
        if (strlen(m->str.data) != m->str.len) {
            return weir_err_set(err, WEIR_EINVAL, m->name, "must not contain U+0000");
        }
        return weir_ce_set(ev, m->name, m->str.data, WEIR_CE_STRING, err);
    case M_BOOL:
        return weir_ce_set(ev, m->name, m->truth ? "true" : "false", WEIR_CE_BOOLEAN, err);
    case M_NUMBER:
        if (!m->is_int) {
            return weir_err_set(err, WEIR_EINVAL, m->name,
                                "a number must be an integer within 32 bits");
        }
        snprintf(num, sizeof(num), "%lld", m->ival);
        return weir_ce_set(ev, m->name, num, WEIR_CE_INTEGER, err);
    default:
        return weir_err_set(err, WEIR_EINVAL, m->name, "must be a string, a boolean or an integer");
    }
}

/* One context attribute; null means absent, as the JSON format says. */
static int put_attr(weir_event_t *ev, const member_t *m, weir_err_t *err)
{
    if (!weir_ce_name_valid(m->name)) {
        return weir_err_set(err, WEIR_EINVAL, weir_ce__name_shown(m->name),
                            "attribute names are 1 to %d lower-case letters and digits",
                            WEIR_CE_NAME_MAX);
    }
    if (is_required(m->name) && m->kind != M_STRING) {
        return weir_err_set(err, WEIR_EINVAL, m->name, "must be a string");
    }
    if (m->kind == M_NULL) {
        return 0;
    }
    return put_scalar(ev, m, err);
}

static int put_base64(weir_event_t *ev, const member_t *m, const char *attr, weir_err_t *err)
{
    unsigned char *bytes;
    size_t n;
    if (m->kind != M_STRING || weir_base64_decode(m->str.data, m->str.len, &bytes, &n) != 0) {
        return weir_err_set(err, WEIR_EINVAL, attr, "must be a base64 string (RFC 4648)");
    }
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, bytes, n);
    weir_free(bytes);
    return 0;
}

/* 0.3 says how "data" is encoded in a member of its own; only base64 exists. */
static int base64_encoded(const members_t *ms, bool v03, bool *yes, weir_err_t *err)
{
    const member_t *enc = v03 ? find_member(ms, "datacontentencoding") : NULL;
    *yes = false;
    if (enc == NULL || enc->kind == M_NULL) {
        return 0;
    }
    if (enc->kind != M_STRING || weir_strcasecmp(enc->str.data, "base64") != 0) {
        return weir_err_set(err, WEIR_EINVAL, "datacontentencoding", "must be \"base64\"");
    }
    *yes = true;
    return 0;
}

static int put_data(weir_event_t *ev, const members_t *ms, bool v03, weir_err_t *err)
{
    const member_t *data = find_member(ms, "data");
    const member_t *b64 = v03 ? NULL : find_member(ms, "data_base64");
    bool encoded;
    int rc = base64_encoded(ms, v03, &encoded, err);
    if (rc != 0) {
        return rc;
    }
    if (data != NULL && b64 != NULL) {
        return weir_err_set(err, WEIR_EINVAL, "data", "data and data_base64 are both present");
    }
    if (b64 != NULL && b64->kind != M_NULL) {
        return put_base64(ev, b64, "data_base64", err);
    }
    if (data == NULL || data->kind == M_NULL) {
        return 0;
    }
    if (encoded) {
        return put_base64(ev, data, "data", err);
    }
    const weir_ce_attr_t *type = weir_ce_attr(ev, "datacontenttype");
    if (data->kind == M_STRING && type != NULL && !weir_ce_is_json_type(type->value)) {
        /* A string under a type that is not JSON carries that type's content itself. */
        weir_ce_set_data(ev, WEIR_CE_DATA_TEXT, data->str.data, data->str.len);
        return 0;
    }
    weir_ce_set_data(ev, WEIR_CE_DATA_JSON, data->raw, data->raw_len);
    return 0;
}

static bool is_data_member(const char *name, bool v03)
{
    return strcmp(name, "data") == 0 || (!v03 && strcmp(name, "data_base64") == 0) ||
           (v03 && strcmp(name, "datacontentencoding") == 0);
}

/* With validate clear (a stored event), only what weir_ce__check_required checks. */
static int put_members(weir_event_t *ev, const members_t *ms, bool validate, weir_err_t *err)
{
    const member_t *version = find_member(ms, "specversion");
    if (version == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "specversion", "required attribute is missing");
    }
    bool v03 = version->kind == M_STRING && strcmp(version->str.data, "0.3") == 0;
    for (size_t i = 0; i < ms->n; i++) {
        if (is_data_member(ms->m[i].name, v03)) {
            continue;
        }
        int rc = put_attr(ev, &ms->m[i], err);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = put_data(ev, ms, v03, err);
    if (rc == 0) {
        rc = validate ? weir_ce_validate(ev, err) : weir_ce__check_required(ev, err);
    }
    return rc != 0 ? rc : weir_ce__check_encodable(ev, err);
}

static int build(members_t *ms, bool validate, weir_event_t **out, weir_err_t *err)
{
    weir_event_t *ev = weir_ce_new();
    int rc = put_members(ev, ms, validate, err);
    members_free(ms);
    if (rc != 0) {
        weir_ce_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

/* One event from the checked JSON text p[0..end). */
static int decode_object(const char *p, const char *end, bool validate, weir_event_t **out,
                         weir_err_t *err)
{
    members_t ms;
    ms.n = 0;
    int rc = collect_text(p, end, &ms, err);
    if (rc != 0) {
        members_free(&ms);
        return rc;
    }
    return build(&ms, validate, out, err);
}

static int decode_text(const char *body, size_t len, bool validate, weir_event_t **out,
                       weir_err_t *err)
{
    *out = NULL;
    body = body != NULL ? body : "";
    int rc = weir_ce__json_check(body, len, err);
    if (rc != 0) {
        return rc;
    }
    return decode_object(body, body + len, validate, out, err);
}

int weir_ce_decode_structured(const char *body, size_t len, weir_event_t **out, weir_err_t *err)
{
    return decode_text(body, len, true, out, err);
}

int weir_ce_decode_stored(const char *json, size_t len, weir_event_t **out, weir_err_t *err)
{
    return decode_text(json, len, false, out, err);
}

/* ---- from cJSON ------------------------------------------------------------------------ */

static void classify_item(member_t *m, const cJSON *item)
{
    if (cJSON_IsNull(item)) {
        m->kind = M_NULL;
    } else if (cJSON_IsBool(item)) {
        m->kind = M_BOOL;
        m->truth = cJSON_IsTrue(item);
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
        m->kind = M_NUMBER;
        m->is_int = d >= INT32_MIN && d <= INT32_MAX && (double)(long long)d == d;
        m->ival = m->is_int ? (long long)d : 0;
    } else if (cJSON_IsString(item) && item->valuestring != NULL) {
        m->kind = M_STRING;
        weir_buf_puts(&m->str, item->valuestring);
    } else {
        m->kind = M_OTHER;
    }
}

/* The data's text as cJSON prints it, checked as strictly as a body (cJSON checks no UTF-8). */
static int print_data(member_t *m, const cJSON *item, weir_err_t *err)
{
    m->raw_owned = cJSON_PrintUnformatted(item);
    if (m->raw_owned == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "data", "cannot be printed as JSON");
    }
    m->raw = m->raw_owned;
    m->raw_len = strlen(m->raw_owned);
    if (weir_ce__json_check(m->raw, m->raw_len, err) != 0) {
        return weir_err_set(err, WEIR_EINVAL, "data", "is not valid JSON text");
    }
    return 0;
}

static int collect_cjson(const cJSON *obj, members_t *ms, weir_err_t *err)
{
    if (!cJSON_IsObject(obj)) {
        return weir_err_set(err, WEIR_EINVAL, "", "an event must be a JSON object");
    }
    for (const cJSON *item = obj->child; item != NULL; item = item->next) {
        const char *name = item->string ? item->string : "";
        member_t *m;
        int rc = add_member(ms, weir_strdup(name), strlen(name), &m, err);
        if (rc != 0) {
            return rc;
        }
        classify_item(m, item);
        if (strcmp(name, "data") == 0 && (rc = print_data(m, item, err)) != 0) {
            return rc;
        }
    }
    return 0;
}

int weir_ce_from_cjson(const cJSON *obj, weir_event_t **out, weir_err_t *err)
{
    members_t ms;
    ms.n = 0;
    *out = NULL;
    int rc = collect_cjson(obj, &ms, err);
    if (rc != 0) {
        members_free(&ms);
        return rc;
    }
    return build(&ms, true, out, err);
}

/* ---- batches --------------------------------------------------------------------------- */

/* The elements of the checked array at p, counted up to one past the limit. */
static size_t count_elements(const char *p, const char *end)
{
    size_t n = 0;
    p = weir_ce__json_ws(p + 1, end);
    while (p < end && *p != ']' && n <= WEIR_CE_BATCH_MAX) {
        n++;
        p = weir_ce__json_ws(weir_ce__json_skip(p, end), end);
        if (p < end && *p == ',') {
            p = weir_ce__json_ws(p + 1, end);
        }
    }
    return n;
}

/* Puts the element's index in front of what went wrong with it. */
static int element_error(weir_err_t *err, int rc, size_t index)
{
    if (err == NULL) {
        return rc;
    }
    weir_err_t inner = *err;
    return weir_err_set(err, rc, inner.attr, "batch element %zu: %s", index, inner.msg);
}

static int decode_elements(const char *p, const char *end, weir_event_t **evs, size_t n,
                           weir_err_t *err)
{
    p = weir_ce__json_ws(p + 1, end);
    for (size_t i = 0; i < n; i++) {
        const char *next = weir_ce__json_skip(p, end);
        int rc = decode_object(p, next, true, &evs[i], err);
        if (rc == 0 && i > 0 &&
            strcmp(weir_ce_get(evs[i], "specversion"), weir_ce_get(evs[0], "specversion")) != 0) {
            /* The HTTP binding: every event of a batch has the same specversion. */
            rc = weir_err_set(err, WEIR_EINVAL, "specversion", "is not that of element 0 (%s)",
                              weir_ce_get(evs[0], "specversion"));
            weir_ce_free(evs[i]);
        }
        if (rc != 0) {
            weir_ce_free_all(evs, i);
            return element_error(err, rc, i);
        }
        p = weir_ce__json_ws(next, end);
        p = weir_ce__json_ws(p + 1, end); /* past ',' or the closing ']' */
    }
    return 0;
}

int weir_ce_decode_batch(const char *body, size_t len, weir_event_t ***out, size_t *n,
                         weir_err_t *err)
{
    *out = NULL;
    *n = 0;
    body = body != NULL ? body : "";
    int rc = weir_ce__json_check(body, len, err);
    if (rc != 0) {
        return rc;
    }
    const char *end = body + len, *p = weir_ce__json_ws(body, end);
    if (*p != '[') {
        return weir_err_set(err, WEIR_EINVAL, "", "a batch must be a JSON array");
    }
    size_t count = count_elements(p, end);
    if (count > WEIR_CE_BATCH_MAX) {
        return weir_err_set(err, WEIR_ETOOBIG, "", "a batch holds at most %d events",
                            WEIR_CE_BATCH_MAX);
    }
    weir_event_t **evs = weir_calloc(count ? count : 1, sizeof(*evs));
    if ((rc = decode_elements(p, end, evs, count, err)) != 0) {
        return rc;
    }
    *out = evs;
    *n = count;
    return 0;
}

void weir_ce_free_all(weir_event_t **evs, size_t n)
{
    if (evs == NULL) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        weir_ce_free(evs[i]);
    }
    weir_free(evs);
}
