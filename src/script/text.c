/*
 * Duktape's strings are not always UTF-8: a surrogate pair written with escapes ("\ud83d\ude00")
 * is kept as two 3-byte sequences (CESU-8), and a lone surrogate as one. Everything that leaves
 * the engine as text (the result's JSON, nslog lines, error messages) passes through here and
 * comes out as UTF-8: pairs joined into the character they encode, anything else invalid
 * replaced with U+FFFD.
 */
#include <string.h>

#include "script/engine.h"

static bool is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

/* The 10 bits a 3-byte surrogate sequence carries, when s[0..n) starts with one in [lo, hi]. */
static int surrogate(const unsigned char *s, size_t n, unsigned char lo, unsigned char hi)
{
    if (n < 3 || s[0] != 0xED || s[1] < lo || s[1] > hi || !is_cont(s[2])) {
        return -1;
    }
    return ((s[1] & 0x0F) << 6) | (s[2] & 0x3F);
}

/* Writes the character at s[0..n) as UTF-8 into out; returns its length, *used the bytes read. */
static size_t next_char(const char *src, size_t n, char out[4], size_t *used)
{
    const unsigned char *s = (const unsigned char *)src;
    int hi = surrogate(s, n, 0xA0, 0xAF);
    int lo = hi >= 0 ? surrogate(s + 3, n - 3, 0xB0, 0xBF) : -1;
    if (lo >= 0) {
        unsigned cp = 0x10000u + ((unsigned)hi << 10) + (unsigned)lo;
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        *used = 6;
        return 4;
    }

    size_t len = s[0] < 0x80 ? 1 : s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2;
    bool valid = len <= n && weir_utf8_valid(src, len);
    if (valid) {
        memcpy(out, src, len);
    } else {
        /* A lone surrogate is one character, so one replacement; other bad bytes one each. */
        memcpy(out, "\xEF\xBF\xBD", 3);
    }
    *used = valid ? len : surrogate(s, n, 0xA0, 0xBF) >= 0 ? 3 : 1;
    return valid ? len : 3;
}

size_t weir_script__utf8_copy(char *dst, size_t cap, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        char c[4];
        size_t used;
        size_t len = next_char(src + i, n - i, c, &used);
        if (o + len >= cap) {
            break;
        }
        memcpy(dst + o, c, len);
        o += len;
        i += used;
    }
    dst[o] = '\0';
    return o;
}

void weir_script__utf8_fix(weir_buf_t *out, const char *src, size_t n)
{
    weir_buf_reserve(out, n);
    for (size_t i = 0; i < n;) {
        char c[4];
        size_t used;
        weir_buf_append(out, c, next_char(src + i, n - i, c, &used));
        i += used;
    }
}
