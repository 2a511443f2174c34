/*
 * Fuzzes binary-mode decoding. The input is "name:value" lines (at most 16), an empty line,
 * then the body; a line without ':' is a header with an empty value.
 */
#include <stddef.h>
#include <stdint.h>

#include "ce_fuzz.h"

#define HEADERS_MAX 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Splits the input; returns where the body starts. Names and values are allocated. */
static size_t split(const char *in, size_t size, weir_ce_header_t *h, size_t *n)
{
    size_t pos = 0;
    *n = 0;
    while (pos < size && *n < HEADERS_MAX) {
        const char *line = in + pos;
        const char *nl = memchr(line, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - line) : size - pos;
        pos += len + (nl != NULL);
        if (len == 0) {
            break;
        }
        const char *colon = memchr(line, ':', len);
        size_t name_len = colon ? (size_t)(colon - line) : len;
        h[*n].name = weir_strndup(line, name_len);
        h[*n].value = colon ? weir_strndup(colon + 1, len - name_len - 1) : weir_strdup("");
        (*n)++;
    }
    return pos;
}

/* Percent-encoding a value that decoding accepted, then decoding, gives it back. */
static void check_percent(const char *raw)
{
    char *decoded = NULL, *again = NULL;
    if (weir_ce_percent_decode(raw, &decoded, NULL) != 0) {
        return;
    }
    weir_buf_t enc = WEIR_BUF_INIT;
    weir_ce_percent_encode(decoded, &enc);
    weir_buf_append(&enc, "", 0);
    if (weir_ce_percent_decode(enc.data, &again, NULL) != 0 || strcmp(again, decoded) != 0) {
        ce_fuzz_fail("percent round trip differs", enc.data);
    }
    weir_free(again);
    weir_free(decoded);
    weir_buf_free(&enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weir_ce_header_t h[HEADERS_MAX];
    size_t n;
    size_t body = split((const char *)data, size, h, &n);
    for (size_t i = 0; i < n; i++) {
        check_percent(h[i].value);
    }

    weir_event_t *ev = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_decode_binary(h, n, data + body, size - body, &ev, &err);
    if (rc != 0) {
        ce_fuzz_check_err(rc, &err);
    } else {
        ce_fuzz_binary_roundtrip(ev);
        ce_fuzz_structured_roundtrip(ev);
        ce_fuzz_views(ev);
        weir_ce_free(ev);
    }
    for (size_t i = 0; i < n; i++) {
        weir_free((char *)h[i].name);
        weir_free((char *)h[i].value);
    }
    return 0;
}
