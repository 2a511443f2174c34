/*
 * Encoding in the JSON event format. The rules for writing data mirror those of the decoder
 * (structured.c) so that decoding what is written here gives back the same event.
 */
#include <stdlib.h>
#include <string.h>

#include "ce/ce.h"
#include "ce/codec.h"

/* How bytes are written: as JSON text, as a string of text, or base64. */
typedef enum data_form {
    FORM_NONE = 0,
    FORM_JSON,
    FORM_STRING,
    FORM_BASE64,
} data_form_t;

static const char *const required[] = {"specversion", "id", "source", "type"};

static bool is_v03(const weir_event_t *ev)
{
    const char *v = weir_ce_get(ev, "specversion");
    return v != NULL && strcmp(v, "0.3") == 0;
}

static bool is_required(const char *name)
{
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        if (strcmp(name, required[i]) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * In 0.3 "datacontentencoding" describes how "data" is written, which the encoder decides
 * itself; the decoders never keep it, so it is not written from the attributes.
 */
static bool skipped(const weir_event_t *ev, const char *name)
{
    return is_required(name) || (is_v03(ev) && strcmp(name, "datacontentencoding") == 0);
}

static data_form_t data_form(const weir_event_t *ev)
{
    if (ev->data_kind == WEIR_CE_DATA_NONE) {
        return FORM_NONE;
    }
    if (ev->data_kind == WEIR_CE_DATA_JSON) {
        return FORM_JSON;
    }
    if (ev->data_kind == WEIR_CE_DATA_TEXT) {
        return FORM_STRING; /* a string stays one, as the JSON format says of String data */
    }
    /* With no datacontenttype the JSON format reads "data" as JSON. */
    const char *type = weir_ce_get(ev, "datacontenttype");
    const char *bytes = (const char *)ev->data;
    bool json = type == NULL || weir_ce_is_json_type(type);
    /* "data": null reads as no data at all, so the bytes "null" cannot be written as JSON. */
    bool null = ev->data_len == 4 && memcmp(bytes, "null", 4) == 0;
    if (json && !null && weir_ce__json_is_value(bytes, ev->data_len)) {
        return FORM_JSON;
    }
    if (!json && weir_ce__is_text_type(type) && weir_utf8_valid(bytes, ev->data_len)) {
        return FORM_STRING;
    }
    return FORM_BASE64;
}

static void put_name(weir_buf_t *out, const char *name, bool *first)
{
    if (!*first) {
        weir_buf_putc(out, ',');
    }
    *first = false;
    weir_buf_json_str(out, name, strlen(name));
    weir_buf_putc(out, ':');
}

static void put_attr(weir_buf_t *out, const weir_ce_attr_t *a, bool *first)
{
    put_name(out, a->name, first);
    if (a->type == WEIR_CE_STRING) {
        weir_buf_json_str(out, a->value, strlen(a->value));
    } else {
        weir_buf_puts(out, a->value); /* INTEGER and BOOLEAN values are JSON as they stand */
    }
}

static void put_base64(const weir_event_t *ev, weir_buf_t *out, bool *first)
{
    size_t n;
    char *b64 = weir_base64_encode(ev->data, ev->data_len, &n);
    if (is_v03(ev)) {
        put_name(out, "datacontentencoding", first);
        weir_buf_puts(out, "\"base64\"");
        put_name(out, "data", first);
    } else {
        put_name(out, "data_base64", first);
    }
    weir_buf_json_str(out, b64, n);
    weir_free(b64);
}

static void put_data(const weir_event_t *ev, weir_buf_t *out, bool *first)
{
    switch (data_form(ev)) {
    case FORM_JSON:
        put_name(out, "data", first);
        weir_buf_append(out, ev->data, ev->data_len);
        break;
    case FORM_STRING:
        put_name(out, "data", first);
        weir_buf_json_str(out, (const char *)ev->data, ev->data_len);
        break;
    case FORM_BASE64:
        put_base64(ev, out, first);
        break;
    default:
        break;
    }
}

void weir_ce_encode_structured(const weir_event_t *ev, weir_buf_t *out)
{
    bool first = true;
    weir_buf_putc(out, '{');
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const weir_ce_attr_t *a = weir_ce_attr(ev, required[i]);
        if (a != NULL) {
            put_attr(out, a, &first);
        }
    }
    for (size_t i = 0; i < ev->nattrs; i++) {
        if (!skipped(ev, ev->attrs[i].name)) {
            put_attr(out, &ev->attrs[i], &first);
        }
    }
    put_data(ev, out, &first);
    weir_buf_putc(out, '}');
}

/* ---- cJSON ------------------------------------------------------------------------------ */

static void add_attr(cJSON *obj, const weir_ce_attr_t *a)
{
    switch (a->type) {
    case WEIR_CE_INTEGER:
        cJSON_AddNumberToObject(obj, a->name, (double)strtol(a->value, NULL, 10));
        break;
    case WEIR_CE_BOOLEAN:
        cJSON_AddBoolToObject(obj, a->name, strcmp(a->value, "true") == 0);
        break;
    default:
        cJSON_AddStringToObject(obj, a->name, a->value);
        break;
    }
}

static void add_base64(const weir_event_t *ev, cJSON *obj)
{
    char *b64 = weir_base64_encode(ev->data, ev->data_len, NULL);
    if (is_v03(ev)) {
        cJSON_AddStringToObject(obj, "datacontentencoding", "base64");
        cJSON_AddStringToObject(obj, "data", b64);
    } else {
        cJSON_AddStringToObject(obj, "data_base64", b64);
    }
    weir_free(b64);
}

static void add_data(const weir_event_t *ev, cJSON *obj)
{
    data_form_t form = data_form(ev);
    if (form == FORM_JSON) {
        cJSON *value = cJSON_ParseWithLengthOpts((const char *)ev->data, ev->data_len, NULL, 0);
        if (value != NULL) {
            cJSON_AddItemToObject(obj, "data", value);
            return;
        }
        /* cJSON 1.7.15 refuses numbers longer than 63 characters: keep the text instead. */
        form = FORM_STRING;
    }
    /* A cJSON string ends at its first NUL, so text holding one goes as base64. */
    if (form == FORM_STRING && memchr(ev->data, '\0', ev->data_len) == NULL) {
        cJSON_AddStringToObject(obj, "data", (const char *)ev->data);
    } else if (form != FORM_NONE) {
        add_base64(ev, obj);
    }
}

cJSON *weir_ce_to_cjson(const weir_event_t *ev)
{
    cJSON *obj = cJSON_CreateObject();
    if (obj == NULL) {
        weir_error("ce", "out of memory building a JSON event");
        abort();
    }
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        const weir_ce_attr_t *a = weir_ce_attr(ev, required[i]);
        if (a != NULL) {
            add_attr(obj, a);
        }
    }
    for (size_t i = 0; i < ev->nattrs; i++) {
        if (!skipped(ev, ev->attrs[i].name)) {
            add_attr(obj, &ev->attrs[i]);
        }
    }
    add_data(ev, obj);
    return obj;
}

char *weir_ce_data_json(const weir_event_t *ev, bool *is_base64)
{
    if (is_base64 != NULL) {
        *is_base64 = false;
    }
    data_form_t form = data_form(ev);
    if (form == FORM_NONE) {
        return weir_strdup("null");
    }
    if (form == FORM_JSON) {
        return weir_strndup((const char *)ev->data, ev->data_len);
    }
    weir_buf_t out = WEIR_BUF_INIT;
    if (weir_utf8_valid((const char *)ev->data, ev->data_len)) {
        weir_buf_json_str(&out, (const char *)ev->data, ev->data_len);
        return weir_buf_take(&out, NULL);
    }
    size_t n;
    char *b64 = weir_base64_encode(ev->data, ev->data_len, &n);
    weir_buf_json_str(&out, b64, n);
    weir_free(b64);
    if (is_base64 != NULL) {
        *is_base64 = true;
    }
    return weir_buf_take(&out, NULL);
}
