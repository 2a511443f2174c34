/*
 * The built-in functions of CESQL (section 3.5) and the casting functions INT, BOOL, STRING,
 * IS_BOOL and IS_INT. Strings are sequences of Unicode characters, so lengths and positions
 * count characters, not bytes; the strings handled are valid UTF-8 (events and expressions are
 * checked), and every cut falls on a character boundary.
 */
#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <wctype.h>

#include "cesql/program.h"

/* The parameter types and the return type of each built-in. */
static const struct sig {
    uint8_t ret;
    uint8_t params[3];
} sigs[] = {
    [FN_ABS] = {WEIR_CESQL_INTEGER, {WEIR_CESQL_INTEGER}},
    [FN_LENGTH] = {WEIR_CESQL_INTEGER, {WEIR_CESQL_STRING}},
    [FN_CONCAT] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING}},
    [FN_CONCAT_WS] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING}},
    [FN_LOWER] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING}},
    [FN_UPPER] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING}},
    [FN_TRIM] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING}},
    [FN_LEFT] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING, WEIR_CESQL_INTEGER}},
    [FN_RIGHT] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING, WEIR_CESQL_INTEGER}},
    [FN_SUBSTRING] = {WEIR_CESQL_STRING,
                      {WEIR_CESQL_STRING, WEIR_CESQL_INTEGER, WEIR_CESQL_INTEGER}},
    [FN_INT] = {WEIR_CESQL_INTEGER, {WEIR_CESQL_INTEGER}},
    [FN_BOOL] = {WEIR_CESQL_BOOLEAN, {WEIR_CESQL_BOOLEAN}},
    [FN_STRING] = {WEIR_CESQL_STRING, {WEIR_CESQL_STRING}},
    [FN_IS_BOOL] = {WEIR_CESQL_BOOLEAN, {WEIR_CESQL_STRING}},
    [FN_IS_INT] = {WEIR_CESQL_BOOLEAN, {WEIR_CESQL_STRING}},
};

/* ---- UTF-8 ----------------------------------------------------------------------------- */

static size_t char_len(unsigned char lead)
{
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* Decodes the character at s[0..len); returns its length in bytes. */
static size_t decode(const char *s, size_t len, uint32_t *cp)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = char_len(u[0]);
    if (n > len) {
        *cp = 0xFFFD;
        return len;
    }
    uint32_t v = n == 1 ? u[0] : u[0] & (0x7F >> n);
    for (size_t i = 1; i < n; i++) {
        v = (v << 6) | (u[i] & 0x3F);
    }
    *cp = v;
    return n;
}

static size_t encoded_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

static size_t encode(uint32_t cp, char *out)
{
    size_t n = encoded_len(cp);
    static const unsigned char lead[] = {0, 0, 0xC0, 0xE0, 0xF0};
    for (size_t i = n - 1; i > 0; i--) {
        out[i] = (char)(0x80 | (cp & 0x3F));
        cp >>= 6;
    }
    out[0] = (char)(n == 1 ? cp : (lead[n] | cp));
    return n;
}

static size_t count_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        n += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return n;
}

/* The byte offset of character k in s[0..len), or len when s is shorter. */
static size_t char_offset(const char *s, size_t len, size_t k)
{
    size_t i = 0;
    for (; i < len && k > 0; k--) {
        i += char_len((unsigned char)s[i]);
    }
    return i < len ? i : len;
}

/* ---- case and white space -------------------------------------------------------------- */

/* Unicode case mapping comes from the C library, under a UTF-8 locale made once. */
static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void make_locale(void)
{
    utf8_locale = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static uint32_t map_case(uint32_t cp, bool upper)
{
    if (cp < 0x80) {
        bool lower_letter = cp >= 'a' && cp <= 'z', upper_letter = cp >= 'A' && cp <= 'Z';
        return upper && lower_letter ? cp - 32 : !upper && upper_letter ? cp + 32 : cp;
    }
    pthread_once(&utf8_once, make_locale);
    if (utf8_locale == (locale_t)0) {
        return cp; /* no UTF-8 locale: only ASCII letters change case */
    }
    wint_t r = upper ? towupper_l((wint_t)cp, utf8_locale) : towlower_l((wint_t)cp, utf8_locale);
    bool scalar = r <= 0x10FFFF && (r < 0xD800 || r > 0xDFFF);
    return scalar ? (uint32_t)r : cp;
}

/* Mapping can change a character's length in bytes, so the output is measured first. */
static val_t change_case(ctx_t *c, const node_t *n, val_t x, bool upper)
{
    size_t out_len = 0;
    uint32_t cp;
    for (size_t i = 0; i < x.len;) {
        i += decode(x.s + i, x.len - i, &cp);
        out_len += encoded_len(map_case(cp, upper));
    }
    char *out = weir_cesql_scratch(c, out_len);
    if (out == NULL) {
        return weir_cesql_raise(c, n->pos, WEIR_CESQL_ERR_GENERIC, WEIR_CESQL_STRING,
                                "computed strings too long");
    }
    size_t o = 0;
    for (size_t i = 0; i < x.len;) {
        i += decode(x.s + i, x.len - i, &cp);
        o += encode(map_case(cp, upper), out + o);
    }
    return val_str(out, o);
}

/* The Unicode White_Space property. */
static bool is_white(uint32_t cp)
{
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

static val_t trim(val_t x)
{
    size_t start = 0, end = x.len;
    uint32_t cp;
    while (start < end) {
        size_t n = decode(x.s + start, end - start, &cp);
        if (!is_white(cp)) {
            break;
        }
        start += n;
    }
    while (end > start) {
        size_t b = end - 1;
        while (b > start && ((unsigned char)x.s[b] & 0xC0) == 0x80) {
            b--;
        }
        decode(x.s + b, end - b, &cp);
        if (!is_white(cp)) {
            break;
        }
        end = b;
    }
    return val_str(x.s + start, end - start);
}

/* ---- substrings ------------------------------------------------------------------------ */

/* LEFT and RIGHT: a negative length returns x itself with an error. */
static val_t left_right(ctx_t *c, const node_t *n, const val_t *v, bool left)
{
    val_t x = v[0];
    if (v[1].i < 0) {
        val_t r = weir_cesql_raise(c, n->pos, WEIR_CESQL_ERR_FUNCTION_EVALUATION, WEIR_CESQL_STRING,
                                   "the length must not be negative");
        r.s = x.s;
        r.len = x.len;
        return r;
    }
    size_t k = (size_t)v[1].i;
    if (left) {
        return val_str(x.s, char_offset(x.s, x.len, k));
    }
    size_t chars = count_chars(x.s, x.len);
    size_t off = chars <= k ? 0 : char_offset(x.s, x.len, chars - k);
    return val_str(x.s + off, x.len - off);
}

/* SUBSTRING(x, pos [, len]): pos counts from 1, or from the end when negative. */
static val_t substring(ctx_t *c, const node_t *n, const val_t *v)
{
    val_t x = v[0];
    int64_t chars = (int64_t)count_chars(x.s, x.len), pos = v[1].i;
    bool has_len = n->b == 3;
    if (pos > chars || pos < -chars || (has_len && v[2].i < 0)) {
        return weir_cesql_raise(c, n->pos, WEIR_CESQL_ERR_FUNCTION_EVALUATION, WEIR_CESQL_STRING,
                                "position or length out of range");
    }
    if (pos == 0) {
        return val_str(x.s, 0);
    }
    int64_t start = pos > 0 ? pos - 1 : chars + pos;
    int64_t count = chars - start;
    if (has_len && v[2].i < count) {
        count = v[2].i;
    }
    size_t b0 = char_offset(x.s, x.len, (size_t)start);
    size_t b1 = b0 + char_offset(x.s + b0, x.len - b0, (size_t)count);
    return val_str(x.s + b0, b1 - b0);
}

/* ---- the rest -------------------------------------------------------------------------- */

static val_t fn_abs(ctx_t *c, const node_t *n, int32_t x)
{
    if (x == INT32_MIN) {
        val_t r = weir_cesql_raise(c, n->pos, WEIR_CESQL_ERR_MATH, WEIR_CESQL_INTEGER,
                                   "ABS(-2147483648) overflows");
        r.i = INT32_MAX;
        return r;
    }
    return val_int(x < 0 ? -x : x);
}

static val_t is_type(val_t x, weir_cesql_type_t type)
{
    return val_bool(weir_cesql_from_string(&x, type));
}

/* CONCAT(x1, ...) and CONCAT_WS(delimiter, x1, ...), into one piece of scratch. */
static val_t concat(ctx_t *c, const node_t *n)
{
    struct piece {
        const char *s;
        size_t len;
    } parts[WEIR_CESQL_ARGS_MAX];
    size_t total = 0;
    uint32_t first = n->sub == FN_CONCAT_WS ? 1 : 0;
    for (uint32_t k = 0; k < n->b; k++) {
        const arg_t *a = &c->prog->args[n->a + k];
        val_t v = weir_cesql_eval_node(c, a->node);
        if (v.err || !weir_cesql_cast(c, a->pos, &v, WEIR_CESQL_STRING)) {
            return weir_cesql_zero(WEIR_CESQL_STRING);
        }
        parts[k] = (struct piece){v.s, v.len};
        total += k >= first ? v.len : 0;
    }
    size_t nitems = n->b - first;
    if (first == 1 && nitems > 1) {
        total += parts[0].len * (nitems - 1);
    }
    char *out = weir_cesql_scratch(c, total);
    if (out == NULL) {
        return weir_cesql_raise(c, n->pos, WEIR_CESQL_ERR_GENERIC, WEIR_CESQL_STRING,
                                "computed strings too long");
    }
    size_t o = 0;
    for (uint32_t k = first; k < n->b; k++) {
        if (first == 1 && k > first) {
            memcpy(out + o, parts[0].s, parts[0].len);
            o += parts[0].len;
        }
        memcpy(out + o, parts[k].s, parts[k].len);
        o += parts[k].len;
    }
    return val_str(out, o);
}

static val_t apply(ctx_t *c, const node_t *n, const val_t *v)
{
    switch (n->sub) {
    case FN_ABS:
        return fn_abs(c, n, v[0].i);
    case FN_LENGTH:
        return val_int((int32_t)count_chars(v[0].s, v[0].len));
    case FN_LOWER:
    case FN_UPPER:
        return change_case(c, n, v[0], n->sub == FN_UPPER);
    case FN_TRIM:
        return trim(v[0]);
    case FN_LEFT:
    case FN_RIGHT:
        return left_right(c, n, v, n->sub == FN_LEFT);
    case FN_SUBSTRING:
        return substring(c, n, v);
    case FN_IS_BOOL:
        return is_type(v[0], WEIR_CESQL_BOOLEAN);
    case FN_IS_INT:
        return is_type(v[0], WEIR_CESQL_INTEGER);
    default:
        return v[0]; /* INT, BOOL, STRING: the cast of the argument is the whole work */
    }
}

/* Arguments are cast to the parameter types; one that carries an error stops the call. */
val_t weir_cesql_call(ctx_t *c, const node_t *n)
{
    if (n->sub == FN_CONCAT || n->sub == FN_CONCAT_WS) {
        return concat(c, n);
    }
    const struct sig *sg = &sigs[n->sub];
    val_t v[3];
    for (uint32_t k = 0; k < n->b && k < 3; k++) {
        const arg_t *a = &c->prog->args[n->a + k];
        v[k] = weir_cesql_eval_node(c, a->node);
        if (v[k].err || !weir_cesql_cast(c, a->pos, &v[k], sg->params[k])) {
            return weir_cesql_zero(sg->ret);
        }
    }
    return apply(c, n, v);
}
