/* Checks shared by the ce fuzz targets: every property failure aborts, which libFuzzer reports. */
#ifndef WEIR_FUZZ_CE_H
#define WEIR_FUZZ_CE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ce/ce.h"

static inline void ce_fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "ce fuzz: %s: %s\n", what, detail ? detail : "");
    abort();
}

/* An error for a client: safe text, and the code a decoder may return. */
static inline void ce_fuzz_check_err(int rc, const weir_err_t *err)
{
    if (rc != WEIR_EINVAL && rc != WEIR_ETOOBIG && rc != WEIR_EUNSUPPORTED) {
        ce_fuzz_fail("unexpected code", weir_strerror(rc));
    }
    if (err->msg[0] == '\0' || !weir_utf8_valid(err->msg, strlen(err->msg)) ||
        !weir_utf8_valid(err->attr, strlen(err->attr))) {
        ce_fuzz_fail("bad error text", err->attr);
    }
}

/* Equal attribute names and values; types too when same_types. Data byte for byte. */
static inline bool ce_fuzz_equal(const weir_event_t *a, const weir_event_t *b, bool same_types)
{
    if (a->nattrs != b->nattrs) {
        return false;
    }
    for (size_t i = 0; i < a->nattrs; i++) {
        if (strcmp(a->attrs[i].name, b->attrs[i].name) != 0 ||
            strcmp(a->attrs[i].value, b->attrs[i].value) != 0 ||
            (same_types && a->attrs[i].type != b->attrs[i].type)) {
            return false;
        }
    }
    if ((a->data_kind == WEIR_CE_DATA_NONE) != (b->data_kind == WEIR_CE_DATA_NONE)) {
        return false;
    }
    return a->data_len == b->data_len &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

/* Structured encoding, then decoding: an equal event. */
static inline void ce_fuzz_structured_roundtrip(const weir_event_t *ev)
{
    weir_buf_t out = WEIR_BUF_INIT;
    weir_err_t err = {0};
    weir_event_t *back = NULL;
    weir_ce_encode_structured(ev, &out);
    if (weir_ce_decode_structured(out.data, out.len, &back, &err) != 0) {
        fprintf(stderr, "%s: %s\n", err.attr, err.msg);
        ce_fuzz_fail("encoded event refused", out.data);
    }
    if (!ce_fuzz_equal(ev, back, true)) {
        ce_fuzz_fail("structured round trip differs", out.data);
    }
    weir_ce_free(back);
    weir_buf_free(&out);
}

typedef struct ce_fuzz_headers {
    weir_ce_header_t h[WEIR_CE_ATTRS_MAX + 1];
    size_t n;
} ce_fuzz_headers_t;

static inline void ce_fuzz_collect(void *ctx, const char *name, const char *value)
{
    ce_fuzz_headers_t *c = ctx;
    if (c->n == sizeof(c->h) / sizeof(c->h[0])) {
        ce_fuzz_fail("too many headers", name);
    }
    c->h[c->n].name = weir_strdup(name);
    c->h[c->n].value = weir_strdup(value);
    c->n++;
}

static inline void ce_fuzz_headers_free(ce_fuzz_headers_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        weir_free((char *)c->h[i].name);
        weir_free((char *)c->h[i].value);
    }
    c->n = 0;
}

/*
 * Binary encoding, then decoding: the same attributes as strings and the same data, except that
 * JSON data without a type gains Content-Type: application/json.
 */
static inline void ce_fuzz_binary_roundtrip(const weir_event_t *ev)
{
    ce_fuzz_headers_t c = {0};
    weir_err_t err = {0};
    weir_event_t *back = NULL;
    weir_ce_encode_binary(ev, ce_fuzz_collect, &c);
    if (weir_ce_decode_binary(c.h, c.n, ev->data, ev->data_len, &back, &err) != 0) {
        fprintf(stderr, "%s: %s\n", err.attr, err.msg);
        ce_fuzz_fail("binary-encoded event refused", err.msg);
    }
    if (ev->data_kind == WEIR_CE_DATA_JSON && weir_ce_attr(ev, "datacontenttype") == NULL) {
        weir_ce_remove(back, "datacontenttype");
    }
    /* An empty body is no data: binary mode cannot tell empty bytes from none. */
    if (ev->data_kind != WEIR_CE_DATA_NONE && ev->data_len == 0) {
        weir_ce_set_data(back, WEIR_CE_DATA_BYTES, "", 0);
    }
    if (!ce_fuzz_equal(ev, back, false)) {
        ce_fuzz_fail("binary round trip differs", NULL);
    }
    weir_ce_free(back);
    ce_fuzz_headers_free(&c);
}

/* The JSON view of the data is one JSON value; the cJSON form decodes again. */
static inline void ce_fuzz_views(const weir_event_t *ev)
{
    char *view = weir_ce_data_json(ev, NULL);
    cJSON *parsed = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_json_parse(view, strlen(view), &parsed, &err);
    /* cJSON 1.7.15 cannot read numbers of more than 63 characters; strict JSON can. */
    if (rc != 0 && strstr(err.msg, "could not be parsed") == NULL) {
        ce_fuzz_fail("data view is not JSON", view);
    }
    cJSON_Delete(parsed);
    weir_free(view);

    cJSON *obj = weir_ce_to_cjson(ev);
    weir_event_t *back = NULL;
    if (weir_ce_from_cjson(obj, &back, &err) != 0) {
        ce_fuzz_fail("cJSON form refused", err.msg);
    }
    weir_ce_free(back);
    cJSON_Delete(obj);
}

#endif
