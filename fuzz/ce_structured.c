/* Fuzzes structured-mode decoding and the encoders' round trips. */
#include <stddef.h>
#include <stdint.h>

#include "ce_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weir_event_t *ev = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_decode_structured((const char *)data, size, &ev, &err);
    if (rc != 0) {
        ce_fuzz_check_err(rc, &err);
        return 0;
    }
    ce_fuzz_structured_roundtrip(ev);
    ce_fuzz_binary_roundtrip(ev);
    ce_fuzz_views(ev);
    weir_ce_free(ev);
    return 0;
}
