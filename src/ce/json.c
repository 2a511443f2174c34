/* Strict JSON: the RFC 8259 checker and walker the codec relies on, and weir_ce_json_parse. */
#include <string.h>

#include "ce/ce.h"
#include "ce/codec.h"

typedef struct scan {
    const char *p;
    const char *end;
    int depth;
    const char *why; /* the first reason the text was refused */
} scan_t;

static bool scan_value(scan_t *s);

static bool fail(scan_t *s, const char *why)
{
    if (s->why == NULL) {
        s->why = why;
    }
    return false;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads four hex digits at p (bounded by end); -1 when they are not there. */
static long hex4(const char *p, const char *end)
{
    if (end - p < 4) {
        return -1;
    }
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = weir_hex_value(p[i]);
        if (h < 0) {
            return -1;
        }
        v = v * 16 + h;
    }
    return v;
}

const char *weir_ce__json_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p)) {
        p++;
    }
    return p;
}

static void skip_ws(scan_t *s)
{
    s->p = weir_ce__json_ws(s->p, s->end);
}

/*
 * A \u escape, s->p just past the 'u'. Surrogates must come in pairs: a lone one is not a
 * character, and cJSON (which sees the text later) refuses it too.
 */
static bool scan_unicode_escape(scan_t *s)
{
    long cp = hex4(s->p, s->end);
    if (cp < 0) {
        return fail(s, "bad \\u escape");
    }
    s->p += 4;
    if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return fail(s, "unpaired surrogate escape");
    }
    if (cp < 0xD800 || cp > 0xDBFF) {
        return true;
    }
    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u') {
        return fail(s, "unpaired surrogate escape");
    }
    long low = hex4(s->p + 2, s->end);
    if (low < 0xDC00 || low > 0xDFFF) {
        return fail(s, "unpaired surrogate escape");
    }
    s->p += 6;
    return true;
}

static bool scan_escape(scan_t *s)
{
    if (s->p >= s->end) {
        return fail(s, "unterminated string");
    }
    char c = *s->p++;
    if (c == 'u') {
        return scan_unicode_escape(s);
    }
    if (strchr("\"\\/bfnrt", c) == NULL || c == '\0') {
        return fail(s, "bad escape in a string");
    }
    return true;
}

static bool scan_string(scan_t *s)
{
    s->p++;
    while (s->p < s->end) {
        unsigned char c = (unsigned char)*s->p++;
        if (c == '"') {
            return true;
        }
        if (c < 0x20) {
            return fail(s, "control character in a string");
        }
        if (c == '\\' && !scan_escape(s)) {
            return false;
        }
    }
    return fail(s, "unterminated string");
}

static bool scan_digits(scan_t *s)
{
    const char *start = s->p;
    while (s->p < s->end && is_digit(*s->p)) {
        s->p++;
    }
    return s->p > start;
}

/* RFC 8259 numbers only: no leading zeros, no bare '.', no '+' sign, digits after '.' and 'e'. */
static bool scan_number(scan_t *s)
{
    if (*s->p == '-') {
        s->p++;
    }
    if (s->p < s->end && *s->p == '0') {
        s->p++;
    } else if (!scan_digits(s)) {
        return fail(s, "bad number");
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!scan_digits(s)) {
            return fail(s, "bad number");
        }
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-')) {
            s->p++;
        }
        if (!scan_digits(s)) {
            return fail(s, "bad number");
        }
    }
    return true;
}

static bool scan_literal(scan_t *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return fail(s, "unexpected character");
    }
    s->p += n;
    return true;
}

static bool enter(scan_t *s)
{
    if (++s->depth > WEIR_CE_JSON_DEPTH_MAX) {
        return fail(s, "nested too deep");
    }
    s->p++;
    skip_ws(s);
    return true;
}

/* After an element: true to go on (a ',' was eaten), false at the closing byte or an error. */
static bool next_element(scan_t *s, char close, bool *done)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == ',') {
        s->p++;
        skip_ws(s);
        return true;
    }
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        *done = true;
        return true;
    }
    return fail(s, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
}

static bool scan_array(scan_t *s)
{
    if (!enter(s)) {
        return false;
    }
    if (s->p < s->end && *s->p == ']') {
        s->p++;
        s->depth--;
        return true;
    }
    bool done = false;
    while (!done) {
        if (!scan_value(s) || !next_element(s, ']', &done)) {
            return false;
        }
    }
    return true;
}

static bool scan_member(scan_t *s)
{
    if (s->p >= s->end || *s->p != '"') {
        return fail(s, "expected a member name");
    }
    if (!scan_string(s)) {
        return false;
    }
    skip_ws(s);
    if (s->p >= s->end || *s->p != ':') {
        return fail(s, "expected ':'");
    }
    s->p++;
    skip_ws(s);
    return scan_value(s);
}

static bool scan_object(scan_t *s)
{
    if (!enter(s)) {
        return false;
    }
    if (s->p < s->end && *s->p == '}') {
        s->p++;
        s->depth--;
        return true;
    }
    bool done = false;
    while (!done) {
        if (!scan_member(s) || !next_element(s, '}', &done)) {
            return false;
        }
    }
    return true;
}

static bool scan_value(scan_t *s)
{
    if (s->p >= s->end) {
        return fail(s, "unexpected end of text");
    }
    switch (*s->p) {
    case '{':
        return scan_object(s);
    case '[':
        return scan_array(s);
    case '"':
        return scan_string(s);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (*s->p == '-' || is_digit(*s->p)) {
            return scan_number(s);
        }
        return fail(s, "unexpected character");
    }
}

int weir_ce__json_check(const char *text, size_t len, weir_err_t *err)
{
    if (!weir_utf8_valid(text, len)) {
        return weir_err_set(err, WEIR_EINVAL, "", "JSON text is not valid UTF-8");
    }
    scan_t s = {text, text + len, 0, NULL};
    skip_ws(&s);
    if (scan_value(&s)) {
        skip_ws(&s);
        if (s.p != s.end) {
            fail(&s, "more than one value");
        }
    }
    if (s.why != NULL) {
        if (s.depth > WEIR_CE_JSON_DEPTH_MAX) {
            return weir_err_set(err, WEIR_EINVAL, "", "JSON is nested deeper than %d levels",
                                WEIR_CE_JSON_DEPTH_MAX);
        }
        /* The offset tells a client where to look without echoing its bytes. */
        return weir_err_set(err, WEIR_EINVAL, "", "not valid JSON: %s at byte %zu", s.why,
                            (size_t)(s.p - text));
    }
    return 0;
}

bool weir_ce__json_is_value(const char *p, size_t len)
{
    if (!weir_utf8_valid(p, len)) {
        return false;
    }
    scan_t s = {p, p + len, 0, NULL};
    return scan_value(&s) && s.p == s.end;
}

static const char *skip_string(const char *p, const char *end)
{
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\') {
            p++;
        }
    }
    return p < end ? p + 1 : end;
}

const char *weir_ce__json_skip(const char *p, const char *end)
{
    if (p < end && *p == '"') {
        return skip_string(p, end);
    }
    if (p < end && *p != '{' && *p != '[') {
        while (p < end && *p != ',' && *p != ']' && *p != '}' && !is_ws(*p)) {
            p++;
        }
        return p;
    }
    int depth = 0;
    while (p < end) {
        if (*p == '"') {
            p = skip_string(p, end);
            continue;
        }
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        p++;
        if (depth == 0) {
            break;
        }
    }
    return p;
}

static void put_utf8(weir_buf_t *out, unsigned long cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    weir_buf_append(out, b, n);
}

/* One escape, p just past the backslash; returns the byte after it. */
static const char *unescape_one(const char *p, const char *end, weir_buf_t *out)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (*p != 'u') {
        weir_buf_putc(out, to[strchr(from, *p) - from]);
        return p + 1;
    }
    unsigned long cp = (unsigned long)hex4(p + 1, end);
    p += 5;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        /* The checker saw the low half that must follow. */
        unsigned long low = (unsigned long)hex4(p + 2, end);
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        p += 6;
    }
    put_utf8(out, cp);
    return p;
}

void weir_ce__json_unescape(const char *p, const char *end, weir_buf_t *out)
{
    weir_buf_append(out, "", 0); /* an empty string is still a string */
    for (p++; p < end && *p != '"';) {
        const char *run = p;
        while (p < end && *p != '"' && *p != '\\') {
            p++;
        }
        weir_buf_append(out, run, (size_t)(p - run));
        if (p < end && *p == '\\') {
            p = unescape_one(p + 1, end, out);
        }
    }
}

/* The type/subtype part of a media type: leading blanks and parameters dropped. */
static size_t media_essence(const char **s)
{
    while (**s == ' ' || **s == '\t') {
        (*s)++;
    }
    size_t n = strcspn(*s, "; \t");
    return n;
}

/* Whether s[0..n) ends with suffix, ignoring ASCII case. */
static bool ends_with_ci(const char *s, size_t n, const char *suffix)
{
    size_t k = strlen(suffix);
    if (k > n) {
        return false;
    }
    for (size_t i = 0; i < k; i++) {
        char a = s[n - k + i], b = suffix[i];
        a = a >= 'A' && a <= 'Z' ? (char)(a - 'A' + 'a') : a;
        if (a != b) {
            return false;
        }
    }
    return true;
}

bool weir_ce_is_json_type(const char *media_type)
{
    if (media_type == NULL) {
        return false;
    }
    /* The JSON format's rule: a subtype "json" or one ending in "+json", whatever the type. */
    const char *s = media_type;
    size_t n = media_essence(&s);
    const char *slash = memchr(s, '/', n);
    if (slash == NULL) {
        return false;
    }
    const char *subtype = slash + 1;
    size_t len = n - (size_t)(subtype - s);
    return (len == 4 && ends_with_ci(subtype, len, "json")) ||
           (len > 5 && ends_with_ci(subtype, len, "+json"));
}

bool weir_ce__is_text_type(const char *media_type)
{
    if (media_type == NULL) {
        return false;
    }
    const char *s = media_type;
    media_essence(&s);
    return weir_has_prefix_ci(s, "text/");
}

int weir_ce_json_parse(const char *text, size_t len, cJSON **out, weir_err_t *err)
{
    *out = NULL;
    int rc = weir_ce__json_check(text, len, err);
    if (rc != 0) {
        return rc;
    }
    /* cJSON 1.7.15 still refuses a few valid texts (numbers longer than 63 characters). */
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, NULL, false);
    if (root == NULL) {
        return weir_err_set(err, WEIR_EINVAL, "", "JSON text could not be parsed");
    }
    *out = root;
    return 0;
}
