/*
 * The HTTP binding: mode detection, binary mode both ways, percent-encoding of header values,
 * and the one entry point that decodes whatever a request carries.
 */
#include <string.h>

#include "ce/ce.h"
#include "ce/codec.h"

#define CE_PREFIX         "ce-"
#define STRUCTURED_PREFIX "application/cloudevents"
#define BATCH_PREFIX      "application/cloudevents-batch"

/* ---- percent-encoding ------------------------------------------------------------------ */

int weir_ce_percent_decode(const char *in, char **out, weir_err_t *err)
{
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_reserve(&b, strlen(in));
    weir_buf_append(&b, "", 0); /* terminated even when in is empty */
    for (size_t i = 0; in[i];) {
        int hi = in[i] == '%' ? weir_hex_value(in[i + 1]) : -1;
        int lo = hi >= 0 ? weir_hex_value(in[i + 2]) : -1;
        if (lo >= 0) {
            weir_buf_putc(&b, (char)(hi * 16 + lo));
            i += 3;
        } else {
            /* SDKs send values raw, so a '%' that starts no escape stands for itself. */
            weir_buf_putc(&b, in[i]);
            i++;
        }
    }
    int rc = 0;
    if (strlen(b.data) != b.len) {
        rc = weir_err_set(err, WEIR_EINVAL, "", "value holds %%00 (U+0000)");
    } else if (!weir_utf8_valid(b.data, b.len)) {
        rc = weir_err_set(err, WEIR_EINVAL, "", "value is not valid UTF-8 once percent-decoded");
    }
    if (rc != 0) {
        weir_buf_free(&b);
        *out = NULL;
        return rc;
    }
    *out = weir_buf_take(&b, NULL);
    return 0;
}

void weir_ce_percent_encode(const char *in, weir_buf_t *out)
{
    static const char hex[] = "0123456789ABCDEF";
    weir_buf_reserve(out, strlen(in));
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if (*p < 0x21 || *p > 0x7E || *p == '"' || *p == '%') {
            char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            weir_buf_append(out, esc, 3);
        } else {
            weir_buf_putc(out, (char)*p);
        }
    }
}

/* ---- mode ------------------------------------------------------------------------------ */

/* What follows "application/cloudevents[-batch]": nothing or "+json" is JSON. */
static bool format_is_json(const char *rest)
{
    size_t n = strcspn(rest, "; \t");
    return n == 0 || (n == 5 && weir_has_prefix_ci(rest, "+json"));
}

int weir_ce_detect_mode(const char *content_type, weir_ce_mode_t *mode, weir_err_t *err)
{
    *mode = WEIR_CE_MODE_BINARY;
    if (content_type == NULL) {
        return 0;
    }
    const char *s = content_type + strspn(content_type, " \t");
    const char *rest;
    if (weir_has_prefix_ci(s, BATCH_PREFIX)) {
        *mode = WEIR_CE_MODE_BATCH;
        rest = s + strlen(BATCH_PREFIX);
    } else if (weir_has_prefix_ci(s, STRUCTURED_PREFIX)) {
        *mode = WEIR_CE_MODE_STRUCTURED;
        rest = s + strlen(STRUCTURED_PREFIX);
    } else {
        return 0;
    }
    if (!format_is_json(rest)) {
        return weir_err_set(err, WEIR_EUNSUPPORTED, "",
                            "only the JSON event format is supported (application/cloudevents"
                            "+json, application/cloudevents-batch+json)");
    }
    return 0;
}

static bool has_control(const char *s)
{
    for (; *s; s++) {
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7F) {
            return true;
        }
    }
    return false;
}

int weir_ce__check_encodable(const weir_event_t *ev, weir_err_t *err)
{
    const char *type = weir_ce_get(ev, "datacontenttype");
    if (type != NULL && has_control(type)) {
        return weir_err_set(err, WEIR_EINVAL, "datacontenttype",
                            "must not hold control characters");
    }
    return 0;
}

/* ---- binary mode in ------------------------------------------------------------------- */

/* The attribute name of a ce- header, lower-cased into name; false when it is not one. */
static bool header_attr_name(const char *rest, char name[WEIR_CE_NAME_MAX + 1])
{
    size_t n = 0;
    for (; rest[n]; n++) {
        char c = rest[n];
        c = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
        if (n == WEIR_CE_NAME_MAX || !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
        name[n] = c;
    }
    name[n] = '\0';
    return n > 0;
}

/*
 * The length of a header's value without the white space (SP, HTAB) that may end it: RFC 7230
 * puts optional white space around a field value, and libmicrohttpd strips only what leads.
 */
static size_t value_len(const char *value)
{
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t')) {
        n--;
    }
    return n;
}

/*
 * value[0..n) with its double-quoted strings unescaped (RFC 7230, section 3.2.6: the quotes go,
 * and a backslash gives the character after it), into *out (allocated). The HTTP binding has
 * receivers do that for senders of its older versions, which did not percent-encode spaces and
 * quotes; percent-decoding follows.
 */
static int unquote(const char *value, size_t n, const char *name, char **out, weir_err_t *err)
{
    char *text = weir_malloc(n + 1);
    size_t len = 0;
    bool quoted = false;

    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (value[i] == '"') {
            quoted = !quoted;
        } else if (quoted && value[i] == '\\' && i + 1 < n) {
            text[len++] = value[++i];
        } else {
            text[len++] = value[i];
        }
    }
    if (quoted) {
        weir_free(text);
        return weir_err_set(err, WEIR_EINVAL, name, "a double-quoted string is not closed");
    }
    text[len] = '\0';
    *out = text;
    return 0;
}

static int put_ce_header(weir_event_t *ev, const char *rest, const char *value, weir_err_t *err)
{
    char name[WEIR_CE_NAME_MAX + 1];
    if (!header_attr_name(rest, name)) {
        return weir_err_set(err, WEIR_EINVAL, weir_ce__name_shown(rest),
                            "a ce- header must name an attribute of 1 to %d letters and digits",
                            WEIR_CE_NAME_MAX);
    }
    if (strcmp(name, "datacontenttype") == 0) {
        return weir_err_set(err, WEIR_EINVAL, name,
                            "in binary mode the Content-Type header gives it, never a ce- header");
    }
    if (weir_ce_attr(ev, name) != NULL) {
        return weir_err_set(err, WEIR_EINVAL, name, "given more than once");
    }
    /* Most values have neither quotes nor white space at their end: no copy for them. */
    size_t n = value_len(value);
    char *unquoted = NULL;
    if (value[n] != '\0' || strchr(value, '"') != NULL) {
        int rc = unquote(value, n, name, &unquoted, err);
        if (rc != 0) {
            return rc;
        }
    }
    char *decoded;
    weir_err_t why;
    int rc = weir_ce_percent_decode(unquoted != NULL ? unquoted : value, &decoded, &why);
    weir_free(unquoted);
    if (rc != 0) {
        return weir_err_set(err, rc, name, "%s", why.msg);
    }
    rc = weir_ce_set(ev, name, decoded, WEIR_CE_STRING, err);
    weir_free(decoded);
    return rc;
}

/* Content-Type is an ordinary HTTP header: taken as it is, not percent-decoded. */
static int put_content_type(weir_event_t *ev, const char *value, weir_err_t *err)
{
    size_t n = value_len(value);
    if (n == 0) {
        return 0;
    }
    if (weir_ce_attr(ev, "datacontenttype") != NULL) {
        return weir_err_set(err, WEIR_EINVAL, "datacontenttype", "given more than once");
    }
    char *trimmed = value[n] != '\0' ? weir_strndup(value, n) : NULL; /* copied only if need be */
    int rc =
        weir_ce_set(ev, "datacontenttype", trimmed != NULL ? trimmed : value, WEIR_CE_STRING, err);
    weir_free(trimmed);
    return rc;
}

static int put_headers(weir_event_t *ev, const weir_ce_header_t *headers, size_t n, weir_err_t *err)
{
    for (size_t i = 0; i < n; i++) {
        const char *name = headers[i].name;
        const char *value = headers[i].value ? headers[i].value : "";
        int rc = 0;
        if (weir_has_prefix_ci(name, CE_PREFIX)) {
            rc = put_ce_header(ev, name + strlen(CE_PREFIX), value, err);
        } else if (weir_strcasecmp(name, "content-type") == 0) {
            rc = put_content_type(ev, value, err);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/*
 * 0.3's datacontentencoding says how the JSON format wrote "data"; in binary mode the body is
 * the data itself, so the attribute describes nothing and is not kept.
 */
static void drop_encoding(weir_event_t *ev)
{
    const char *version = weir_ce_get(ev, "specversion");
    const char *encoding = weir_ce_get(ev, "datacontentencoding");
    if (version != NULL && strcmp(version, "0.3") == 0 && encoding != NULL &&
        weir_strcasecmp(encoding, "base64") == 0) {
        weir_ce_remove(ev, "datacontentencoding");
    }
}

int weir_ce_decode_binary(const weir_ce_header_t *headers, size_t nheaders, const void *body,
                          size_t len, weir_event_t **out, weir_err_t *err)
{
    *out = NULL;
    weir_event_t *ev = weir_ce_new();
    int rc = put_headers(ev, headers, nheaders, err);
    if (rc == 0 && weir_ce_attr(ev, "specversion") == NULL) {
        rc = weir_err_set(err, WEIR_EINVAL, "specversion",
                          "required attribute is missing (no ce-specversion header)");
    }
    if (rc == 0) {
        drop_encoding(ev);
        if (len > 0) {
            weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, body, len);
        }
        rc = weir_ce_validate(ev, err);
    }
    if (rc == 0) {
        rc = weir_ce__check_encodable(ev, err);
    }
    if (rc != 0) {
        weir_ce_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

/* ---- binary mode out ------------------------------------------------------------------- */

/*
 * Content-Type cannot be percent-encoded. Decoded events hold no control characters there, but
 * one built by hand might: they become spaces so that no value can end the header early.
 */
static char *header_safe(const char *value)
{
    char *copy = weir_strdup(value);
    for (char *p = copy; *p; p++) {
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7F) {
            *p = ' ';
        }
    }
    return copy;
}

static void put_content_type_out(const weir_event_t *ev, weir_ce_header_cb cb, void *ctx)
{
    const char *type = weir_ce_get(ev, "datacontenttype");
    if (type != NULL) {
        char *safe = header_safe(type);
        cb(ctx, "Content-Type", safe);
        weir_free(safe);
    } else if (ev->data_kind == WEIR_CE_DATA_JSON) {
        cb(ctx, "Content-Type", "application/json");
    }
}

void weir_ce_encode_binary(const weir_event_t *ev, weir_ce_header_cb cb, void *ctx)
{
    const char *version = weir_ce_get(ev, "specversion");
    bool v03 = version != NULL && strcmp(version, "0.3") == 0;
    weir_buf_t name = WEIR_BUF_INIT, value = WEIR_BUF_INIT;
    for (size_t i = 0; i < ev->nattrs; i++) {
        const weir_ce_attr_t *a = &ev->attrs[i];
        if (strcmp(a->name, "datacontenttype") == 0 ||
            (v03 && strcmp(a->name, "datacontentencoding") == 0)) {
            continue;
        }
        weir_buf_reset(&name);
        weir_buf_reset(&value);
        weir_buf_puts(&name, CE_PREFIX);
        weir_buf_puts(&name, a->name);
        weir_ce_percent_encode(a->value, &value);
        weir_buf_append(&value, "", 0); /* an empty value is still a string */
        cb(ctx, name.data, value.data);
    }
    put_content_type_out(ev, cb, ctx);
    weir_buf_free(&name);
    weir_buf_free(&value);
}

/* ---- any mode -------------------------------------------------------------------------- */

/* The value of the header name, or NULL; *count says how many times it came. */
static const char *find_header(const weir_ce_header_t *headers, size_t n, const char *name,
                               unsigned *count)
{
    const char *value = NULL;
    *count = 0;
    for (size_t i = 0; i < n; i++) {
        if (weir_strcasecmp(headers[i].name, name) == 0) {
            value = value != NULL ? value : headers[i].value;
            (*count)++;
        }
    }
    return value;
}

int weir_ce_decode_http(const weir_ce_header_t *headers, size_t nheaders, const void *body,
                        size_t len, weir_event_t ***out, size_t *n, weir_err_t *err)
{
    *out = NULL;
    *n = 0;
    weir_ce_mode_t mode;
    unsigned types;
    const char *type = find_header(headers, nheaders, "content-type", &types);
    if (types > 1) {
        /* It picks the mode and the data's type: no reading of two may win. */
        return weir_err_set(err, WEIR_EINVAL, "", "Content-Type is given more than once");
    }
    int rc = weir_ce_detect_mode(type, &mode, err);
    if (rc != 0) {
        return rc;
    }
    const char *text = body != NULL ? body : "";
    if (mode == WEIR_CE_MODE_BATCH) {
        return weir_ce_decode_batch(text, len, out, n, err);
    }
    weir_event_t *ev;
    rc = mode == WEIR_CE_MODE_STRUCTURED
             ? weir_ce_decode_structured(text, len, &ev, err)
             : weir_ce_decode_binary(headers, nheaders, body, len, &ev, err);
    if (rc != 0) {
        return rc;
    }
    *out = weir_calloc(1, sizeof(**out));
    (*out)[0] = ev;
    *n = 1;
    return 0;
}
