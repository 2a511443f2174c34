/* Growable buffers. */
#include <stdio.h>
#include <string.h>

#include "common/common.h"

void weir_buf_reserve(weir_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        cap *= 2;
    }
    b->data = weir_realloc(b->data, cap);
    b->cap = cap;
}

void weir_buf_append(weir_buf_t *b, const void *p, size_t n)
{
    weir_buf_reserve(b, n);
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
}

void weir_buf_puts(weir_buf_t *b, const char *s)
{
    weir_buf_append(b, s, strlen(s));
}

void weir_buf_putc(weir_buf_t *b, char c)
{
    weir_buf_append(b, &c, 1);
}

void weir_buf_vprintf(weir_buf_t *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, again);
    va_end(again);
    if (n <= 0) {
        return;
    }
    weir_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void weir_buf_printf(weir_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    weir_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* Length of the valid UTF-8 sequence starting at s (at most n bytes), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] < 0x80   ? 1
                 : s[0] < 0xC2 ? 0
                 : s[0] < 0xE0 ? 2
                 : s[0] < 0xF0 ? 3
                 : s[0] < 0xF5 ? 4
                               : 0;
    if (len == 0 || len > n) {
        return 0;
    }
    return weir_utf8_valid((const char *)s, len) ? len : 0;
}

void weir_buf_json_str(weir_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;

    weir_buf_reserve(b, n + 2);
    weir_buf_putc(b, '"');
    for (size_t i = 0; i < n;) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') {
            run++; /* plain ASCII, the common case, is copied in one piece */
        }
        if (run > i) {
            weir_buf_append(b, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            weir_buf_append(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            weir_buf_append(b, esc, 6);
            i++;
        } else {
            size_t len = utf8_seq_len(p + i, n - i);
            if (len == 0) {
                weir_buf_puts(b, "\xEF\xBF\xBD");
                i++;
            } else {
                weir_buf_append(b, p + i, len);
                i += len;
            }
        }
    }
    weir_buf_putc(b, '"');
}

void weir_buf_reset(weir_buf_t *b)
{
    b->len = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

void weir_buf_free(weir_buf_t *b)
{
    weir_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

char *weir_buf_take(weir_buf_t *b, size_t *len)
{
    if (b->data == NULL) {
        weir_buf_reserve(b, 0);
        b->data[0] = '\0';
    }
    char *p = b->data;
    if (len != NULL) {
        *len = b->len;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
