/* Text helpers: UTF-8 validation, ids, ASCII case-insensitive comparison, whole numbers. */
#include <ctype.h>
#include <string.h>

#include <uuid/uuid.h>

#include "common/common.h"

/* Bytes that may follow a lead byte, per RFC 3629's table: [lo, hi] of the second byte. */
static bool second_byte_ok(unsigned char lead, unsigned char c)
{
    switch (lead) {
    case 0xE0:
        return c >= 0xA0 && c <= 0xBF;
    case 0xED:
        return c >= 0x80 && c <= 0x9F; /* no surrogates */
    case 0xF0:
        return c >= 0x90 && c <= 0xBF;
    case 0xF4:
        return c >= 0x80 && c <= 0x8F; /* nothing past U+10FFFF */
    default:
        return c >= 0x80 && c <= 0xBF;
    }
}

bool weir_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = c < 0xC2 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
        if (len == 0 || n - i < len || !second_byte_ok(c, p[i + 1])) {
            return false;
        }
        for (size_t k = 2; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) {
                return false;
            }
        }
        i += len;
    }
    return true;
}

void weir_uuid(char out[WEIR_UUID_STR])
{
    uuid_t u;
    uuid_generate_random(u);
    uuid_unparse_lower(u, out);
}

int weir_strcasecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        int ca = tolower((unsigned char)*a);
        int cb = tolower((unsigned char)*b);
        if (ca != cb || ca == 0) {
            return ca - cb;
        }
    }
}

bool weir_has_prefix_ci(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        if (tolower((unsigned char)*s) != tolower((unsigned char)*prefix)) {
            return false;
        }
    }
    return true;
}

size_t weir_bsearch_at(const void *key, const void *base, size_t n, size_t size,
                       int (*cmp)(const void *key, const void *element), bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp(key, (const char *)base + mid * size);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c > 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

int weir_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

bool weir_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (s == NULL || *s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
        unsigned d = (unsigned)(*s - '0');
        if (d > max || v > (max - d) / 10) {
            return false; /* v * 10 + d > max, without overflowing */
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}
