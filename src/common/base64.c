/* Base64 as RFC 4648 section 4 defines it, with padding. */
#include <string.h>

#include "common/common.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *weir_base64_encode(const void *p, size_t n, size_t *out_len)
{
    const unsigned char *in = p;
    size_t len = (n + 2) / 3 * 4;
    char *out = weir_malloc(len + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t)in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
    if (out_len != NULL) {
        *out_len = o;
    }
    return out;
}

static int sextet(char c)
{
    const char *at = c ? strchr(alphabet, c) : NULL;
    return at ? (int)(at - alphabet) : -1;
}

int weir_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len)
{
    if (n % 4 != 0) {
        return WEIR_EINVAL;
    }
    size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
    unsigned char *buf = weir_malloc(n / 4 * 3 + 1);
    size_t o = 0;

    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        uint32_t v = 0;
        for (size_t k = 0; k < 4; k++) {
            int x = (last && k >= 4 - pad) ? 0 : sextet(s[i + k]);
            if (x < 0) {
                weir_free(buf);
                return WEIR_EINVAL;
            }
            v = v << 6 | (uint32_t)x;
        }
        buf[o++] = (unsigned char)(v >> 16);
        if (!last || pad < 2) {
            buf[o++] = (unsigned char)(v >> 8);
        }
        if (!last || pad < 1) {
            buf[o++] = (unsigned char)v;
        }
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
}
