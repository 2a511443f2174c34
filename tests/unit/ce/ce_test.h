/* Helpers shared by the ce unit tests. Include after <cmocka.h>. */
#ifndef WEIR_TEST_CE_H
#define WEIR_TEST_CE_H

#include <string.h>

#include "ce/ce.h"

/* Equal attributes (name, value, type), and data byte for byte (NONE only equals NONE). */
static inline bool ce_equal(const weir_event_t *a, const weir_event_t *b)
{
    if (a->nattrs != b->nattrs) {
        return false;
    }
    for (size_t i = 0; i < a->nattrs; i++) {
        if (strcmp(a->attrs[i].name, b->attrs[i].name) != 0 ||
            strcmp(a->attrs[i].value, b->attrs[i].value) != 0 ||
            a->attrs[i].type != b->attrs[i].type) {
            return false;
        }
    }
    if ((a->data_kind == WEIR_CE_DATA_NONE) != (b->data_kind == WEIR_CE_DATA_NONE)) {
        return false;
    }
    return a->data_len == b->data_len &&
           (a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

/* Decodes a structured body that must be valid. */
static inline weir_event_t *ce_decode_ok(const char *body)
{
    weir_event_t *ev = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_decode_structured(body, strlen(body), &ev, &err);
    if (rc != 0) {
        print_error("decode failed: %s: %s (%s)\n", err.attr, err.msg, body);
    }
    assert_int_equal(rc, 0);
    assert_non_null(ev);
    return ev;
}

/* Decodes a structured body that must be refused with code, naming attr. */
static inline void ce_decode_fails(const char *body, int code, const char *attr)
{
    weir_event_t *ev = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_decode_structured(body, strlen(body), &ev, &err);
    if (rc != code || strcmp(err.attr, attr) != 0) {
        print_error("expected %d/%s, got %d/%s: %s (%s)\n", code, attr, rc, err.attr, err.msg,
                    body);
    }
    assert_int_equal(rc, code);
    assert_string_equal(err.attr, attr);
    assert_true(err.msg[0] != '\0');
    assert_null(ev);
}

/* Encodes ev, decodes the result and checks that it is equal to ev. */
static inline void ce_assert_roundtrip(const weir_event_t *ev)
{
    weir_buf_t out = WEIR_BUF_INIT;
    weir_ce_encode_structured(ev, &out);
    weir_event_t *back = ce_decode_ok(out.data);
    if (!ce_equal(ev, back)) {
        print_error("round trip differs: %s\n", out.data);
    }
    assert_true(ce_equal(ev, back));
    weir_ce_free(back);
    weir_buf_free(&out);
}

#endif
