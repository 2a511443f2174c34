/* Fuzzes batch decoding: each event, and the batch written out again, must decode equal. */
#include <stddef.h>
#include <stdint.h>

#include "ce_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_batch_roundtrip(weir_event_t **evs, size_t n)
{
    weir_buf_t out = WEIR_BUF_INIT;
    weir_buf_putc(&out, '[');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            weir_buf_putc(&out, ',');
        }
        weir_ce_encode_structured(evs[i], &out);
    }
    weir_buf_putc(&out, ']');

    weir_event_t **back = NULL;
    size_t nback = 0;
    weir_err_t err = {0};
    if (weir_ce_decode_batch(out.data, out.len, &back, &nback, &err) != 0 || nback != n) {
        ce_fuzz_fail("encoded batch refused", err.msg);
    }
    for (size_t i = 0; i < n; i++) {
        if (!ce_fuzz_equal(evs[i], back[i], true)) {
            ce_fuzz_fail("batch round trip differs", out.data);
        }
    }
    weir_ce_free_all(back, nback);
    weir_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weir_event_t **evs = NULL;
    size_t n = 0;
    weir_err_t err = {0};
    int rc = weir_ce_decode_batch((const char *)data, size, &evs, &n, &err);
    if (rc != 0) {
        ce_fuzz_check_err(rc, &err);
        if (evs != NULL || n != 0) {
            ce_fuzz_fail("output left on error", NULL);
        }
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        ce_fuzz_structured_roundtrip(evs[i]);
    }
    check_batch_roundtrip(evs, n);
    weir_ce_free_all(evs, n);
    return 0;
}
