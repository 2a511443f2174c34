/*
 * The CESQL evaluator: operators, casts, LIKE and the scratch that computed strings live in.
 * Recursion follows the tree, whose height the compiler bounds by WEIR_CESQL_DEPTH_MAX.
 * Values refer to strings where they already are (the event, the program), so that a filter
 * that only compares and matches attributes evaluates without allocating.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cesql/program.h"

/* ---- values, errors, scratch ----------------------------------------------------------- */

val_t weir_cesql_zero(weir_cesql_type_t type)
{
    val_t v = {.type = type, .err = true, .s = ""};
    return v;
}

val_t weir_cesql_raise(ctx_t *c, unsigned pos, unsigned kind, weir_cesql_type_t type,
                       const char *fmt, ...)
{
    weir_cesql_result_t *res = c->res;
    if (res->first_error == 0) {
        int k = snprintf(res->msg, sizeof(res->msg), "at %u: ", pos);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res->msg + k, sizeof(res->msg) - (size_t)k, fmt, ap);
        va_end(ap);
        res->first_error = kind;
    }
    res->errors |= kind;
    return weir_cesql_zero(type);
}

/*
 * The scratch is a bump allocator over two areas that never move: the result's inline bytes,
 * then a block allocated the first time they do not suffice. Strings never straddle the two.
 */
char *weir_cesql_scratch(ctx_t *c, size_t n)
{
    weir_cesql_result_t *res = c->res;
    if (res->used + n <= WEIR_CESQL_SMALL_SCRATCH) {
        char *p = res->small + res->used;
        res->used += n;
        return p;
    }
    if (res->used < WEIR_CESQL_SMALL_SCRATCH) {
        res->used = WEIR_CESQL_SMALL_SCRATCH;
    }
    size_t big_used = res->used - WEIR_CESQL_SMALL_SCRATCH;
    if (n > WEIR_CESQL_SCRATCH_MAX - big_used) {
        return NULL;
    }
    if (res->big == NULL) {
        res->big = weir_malloc(WEIR_CESQL_SCRATCH_MAX);
    }
    res->used += n;
    return res->big + big_used;
}

static const char *type_name(weir_cesql_type_t t)
{
    return t == WEIR_CESQL_BOOLEAN ? "Boolean" : t == WEIR_CESQL_INTEGER ? "Integer" : "String";
}

/* ---- casts (section 3.7) --------------------------------------------------------------- */

/* A base-10 32-bit integer with an optional sign and nothing else. */
static bool parse_int(const char *s, size_t len, int32_t *out)
{
    size_t i = (len > 0 && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    bool neg = i == 1 && s[0] == '-';
    int64_t v = 0;
    if (i == len) {
        return false;
    }
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
        if (v > (int64_t)INT32_MAX + 1) {
            return false;
        }
    }
    v = neg ? -v : v;
    if (v > INT32_MAX) {
        return false;
    }
    *out = (int32_t)v;
    return true;
}

/* "true" or "false" in any case. */
static bool parse_bool(const char *s, size_t len, bool *out)
{
    if (len == 4 && strncasecmp(s, "true", 4) == 0) {
        *out = true;
        return true;
    }
    if (len == 5 && strncasecmp(s, "false", 5) == 0) {
        *out = false;
        return true;
    }
    return false;
}

static bool int_to_string(ctx_t *c, val_t *v)
{
    char digits[16];
    int n = snprintf(digits, sizeof(digits), "%d", (int)v->i);
    char *s = weir_cesql_scratch(c, (size_t)n);
    if (s == NULL) {
        return false;
    }
    memcpy(s, digits, (size_t)n);
    *v = val_str(s, (size_t)n);
    return true;
}

bool weir_cesql_from_string(val_t *v, weir_cesql_type_t to)
{
    if (to == WEIR_CESQL_INTEGER) {
        int32_t i;
        if (!parse_int(v->s, v->len, &i)) {
            return false;
        }
        *v = val_int(i);
        return true;
    }
    bool b;
    if (!parse_bool(v->s, v->len, &b)) {
        return false;
    }
    *v = val_bool(b);
    return true;
}

bool weir_cesql_cast(ctx_t *c, unsigned pos, val_t *v, weir_cesql_type_t to)
{
    weir_cesql_type_t from = v->type;
    bool ok = true;
    if (from == to) {
        return true;
    }
    if (from == WEIR_CESQL_STRING) {
        ok = weir_cesql_from_string(v, to);
    } else if (to == WEIR_CESQL_STRING && from == WEIR_CESQL_BOOLEAN) {
        *v = v->b ? val_str("true", 4) : val_str("false", 5);
    } else if (to == WEIR_CESQL_STRING) {
        if (!int_to_string(c, v)) {
            *v = weir_cesql_raise(c, pos, WEIR_CESQL_ERR_GENERIC, to, "computed strings too long");
            return false;
        }
    } else if (to == WEIR_CESQL_INTEGER) {
        *v = val_int(v->b ? 1 : 0);
    } else {
        *v = val_bool(v->i != 0);
    }
    if (!ok) {
        *v = weir_cesql_raise(c, pos, WEIR_CESQL_ERR_CAST, to, "cannot cast the %s to %s",
                              type_name(from), type_name(to));
    }
    return ok;
}

/* ---- leaves ---------------------------------------------------------------------------- */

static const char *pool_str(const ctx_t *c, uint32_t off)
{
    return c->prog->pool + off;
}

static const weir_ce_attr_t *lookup(const ctx_t *c, const node_t *n)
{
    return c->ev ? weir_ce_attr(c->ev, pool_str(c, n->a)) : NULL;
}

/* An attribute has the type the event model gives it; anything but those two is a String. */
static val_t eval_attr(ctx_t *c, const node_t *n)
{
    const weir_ce_attr_t *a = lookup(c, n);
    if (a == NULL) {
        return weir_cesql_raise(c, n->pos, WEIR_CESQL_ERR_MISSING_ATTRIBUTE, WEIR_CESQL_BOOLEAN,
                                "the event has no attribute %s", pool_str(c, n->a));
    }
    size_t len = strlen(a->value);
    val_t v = val_str(a->value, len);
    if (a->type == WEIR_CE_INTEGER) {
        weir_cesql_from_string(&v, WEIR_CESQL_INTEGER);
    } else if (a->type == WEIR_CE_BOOLEAN) {
        weir_cesql_from_string(&v, WEIR_CESQL_BOOLEAN);
    }
    return v;
}

/* ---- operators ------------------------------------------------------------------------- */

static val_t eval_arg(ctx_t *c, const node_t *n, uint32_t k)
{
    return weir_cesql_eval_node(c, c->prog->args[n->a + k].node);
}

static val_t eval_not(ctx_t *c, const node_t *n)
{
    val_t v = weir_cesql_eval_node(c, n->a);
    if (v.err) {
        return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
    }
    if (!weir_cesql_cast(c, n->pos, &v, WEIR_CESQL_BOOLEAN)) {
        return v;
    }
    return val_bool(!v.b);
}

/* A value out of the 32-bit range saturates and raises a math error, as ABS does. */
static val_t saturate(ctx_t *c, unsigned pos, int64_t v)
{
    if (v >= INT32_MIN && v <= INT32_MAX) {
        return val_int((int32_t)v);
    }
    val_t r = weir_cesql_raise(c, pos, WEIR_CESQL_ERR_MATH, WEIR_CESQL_INTEGER, "integer overflow");
    r.i = v > 0 ? INT32_MAX : INT32_MIN;
    return r;
}

static val_t eval_neg(ctx_t *c, const node_t *n)
{
    val_t v = weir_cesql_eval_node(c, n->a);
    if (v.err) {
        return weir_cesql_zero(WEIR_CESQL_INTEGER);
    }
    if (!weir_cesql_cast(c, n->pos, &v, WEIR_CESQL_INTEGER)) {
        return v;
    }
    return saturate(c, n->pos, -(int64_t)v.i);
}

/* Bytes in the UTF-8 character that starts at s[0]. */
static size_t char_len(const unsigned char *s)
{
    return s[0] < 0x80 ? 1 : s[0] < 0xE0 ? 2 : s[0] < 0xF0 ? 3 : 4;
}

/*
 * Matches s against a compiled pattern. The classic wildcard algorithm: on a mismatch, go back
 * to the last % and let it swallow one more character. O(len * plen) at worst, no recursion.
 */
static bool like(const unsigned char *s, size_t len, const unsigned char *pat, size_t plen)
{
    size_t si = 0, pi = 0, star = SIZE_MAX, mark = 0;
    while (si < len) {
        if (pi < plen && pat[pi] == LIKE_ONE) {
            si += char_len(s + si);
            pi++;
        } else if (pi < plen && pat[pi] == LIKE_ANY) {
            star = ++pi;
            mark = si;
        } else if (pi < plen && pat[pi] == s[si]) {
            si++;
            pi++;
        } else if (star != SIZE_MAX) {
            mark += char_len(s + mark);
            si = mark;
            pi = star;
        } else {
            return false;
        }
    }
    while (pi < plen && pat[pi] == LIKE_ANY) {
        pi++;
    }
    return pi == plen && si == len;
}

static val_t eval_like(ctx_t *c, const node_t *n)
{
    val_t v = weir_cesql_eval_node(c, n->a);
    if (v.err) {
        return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
    }
    if (!weir_cesql_cast(c, n->pos, &v, WEIR_CESQL_STRING)) {
        return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
    }
    const unsigned char *pat = (const unsigned char *)pool_str(c, n->b);
    bool m = like((const unsigned char *)v.s, v.len, pat, (size_t)n->ival);
    return val_bool(m != (n->sub != 0));
}

static bool equal(const val_t *x, const val_t *y)
{
    switch (x->type) {
    case WEIR_CESQL_BOOLEAN:
        return x->b == y->b;
    case WEIR_CESQL_INTEGER:
        return x->i == y->i;
    default:
        return x->len == y->len && memcmp(x->s, y->s, x->len) == 0;
    }
}

/* x IN (y1, ...): each element is cast to the type of x; stops at the first match. */
static val_t eval_in(ctx_t *c, const node_t *n)
{
    val_t x = eval_arg(c, n, 0);
    if (x.err) {
        return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
    }
    bool found = false;
    for (uint32_t k = 1; k < n->b && !found; k++) {
        val_t y = eval_arg(c, n, k);
        if (y.err || !weir_cesql_cast(c, c->prog->args[n->a + k].pos, &y, x.type)) {
            return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
        }
        found = equal(&x, &y);
    }
    return val_bool(found != (n->sub != 0));
}

/* ---- chains of binary operators -------------------------------------------------------- */

static val_t eval_logic(ctx_t *c, const node_t *n)
{
    const arg_t *args = c->prog->args + n->a;
    val_t acc = weir_cesql_eval_node(c, args[0].node);
    if (acc.err) {
        return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
    }
    if (!weir_cesql_cast(c, n->pos, &acc, WEIR_CESQL_BOOLEAN)) {
        return acc;
    }
    for (uint32_t k = 1; k < n->b; k++) {
        int op = args[k].op;
        if ((op == BIN_AND && !acc.b) || (op == BIN_OR && acc.b)) {
            continue; /* short-circuit: the right operand is not evaluated */
        }
        val_t r = weir_cesql_eval_node(c, args[k].node);
        if (r.err) {
            return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
        }
        if (!weir_cesql_cast(c, args[k].pos, &r, WEIR_CESQL_BOOLEAN)) {
            return r;
        }
        acc.b = op == BIN_XOR ? acc.b != r.b : r.b;
    }
    return acc;
}

/* = != <> cast x to the type of y (section 3.7); the ordering operators take Integers. */
static val_t compare(ctx_t *c, unsigned pos, int op, val_t x, val_t y)
{
    if (op == BIN_EQ || op == BIN_NE) {
        if (!weir_cesql_cast(c, pos, &x, y.type)) {
            return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
        }
        return val_bool(equal(&x, &y) == (op == BIN_EQ));
    }
    if (!weir_cesql_cast(c, pos, &x, WEIR_CESQL_INTEGER) ||
        !weir_cesql_cast(c, pos, &y, WEIR_CESQL_INTEGER)) {
        return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
    }
    switch (op) {
    case BIN_LT:
        return val_bool(x.i < y.i);
    case BIN_LE:
        return val_bool(x.i <= y.i);
    case BIN_GT:
        return val_bool(x.i > y.i);
    default:
        return val_bool(x.i >= y.i);
    }
}

static val_t eval_compare(ctx_t *c, const node_t *n)
{
    const arg_t *args = c->prog->args + n->a;
    val_t acc = weir_cesql_eval_node(c, args[0].node);
    for (uint32_t k = 1; k < n->b && !acc.err; k++) {
        val_t r = weir_cesql_eval_node(c, args[k].node);
        if (r.err) {
            return weir_cesql_zero(WEIR_CESQL_BOOLEAN);
        }
        acc = compare(c, args[k].pos, args[k].op, acc, r);
    }
    return acc.err ? weir_cesql_zero(WEIR_CESQL_BOOLEAN) : acc;
}

static val_t arith(ctx_t *c, unsigned pos, int op, int32_t x, int32_t y)
{
    if ((op == BIN_DIV || op == BIN_MOD) && y == 0) {
        return weir_cesql_raise(c, pos, WEIR_CESQL_ERR_MATH, WEIR_CESQL_INTEGER,
                                "division by zero");
    }
    switch (op) {
    case BIN_MUL:
        return saturate(c, pos, (int64_t)x * y);
    case BIN_DIV:
        return saturate(c, pos, (int64_t)x / y); /* C truncates toward zero, as CESQL does */
    case BIN_MOD:
        return val_int((int32_t)((int64_t)x % y)); /* the sign of x, as CESQL wants */
    case BIN_ADD:
        return saturate(c, pos, (int64_t)x + y);
    default:
        return saturate(c, pos, (int64_t)x - y);
    }
}

static val_t eval_arith(ctx_t *c, const node_t *n)
{
    const arg_t *args = c->prog->args + n->a;
    val_t acc = weir_cesql_eval_node(c, args[0].node);
    if (acc.err || !weir_cesql_cast(c, n->pos, &acc, WEIR_CESQL_INTEGER)) {
        return weir_cesql_zero(WEIR_CESQL_INTEGER);
    }
    for (uint32_t k = 1; k < n->b; k++) {
        val_t r = weir_cesql_eval_node(c, args[k].node);
        if (r.err || !weir_cesql_cast(c, args[k].pos, &r, WEIR_CESQL_INTEGER)) {
            return weir_cesql_zero(WEIR_CESQL_INTEGER);
        }
        acc = arith(c, args[k].pos, args[k].op, acc.i, r.i);
        if (acc.err) {
            return acc;
        }
    }
    return acc;
}

static val_t eval_chain(ctx_t *c, const node_t *n)
{
    switch (n->sub) {
    case LVL_LOGIC:
        return eval_logic(c, n);
    case LVL_CMP:
        return eval_compare(c, n);
    default:
        return eval_arith(c, n);
    }
}

val_t weir_cesql_eval_node(ctx_t *c, uint32_t idx)
{
    const node_t *n = &c->prog->nodes[idx];
    switch (n->op) {
    case OP_BOOL:
        return val_bool(n->ival != 0);
    case OP_INT:
        return val_int(n->ival);
    case OP_STR:
        return val_str(pool_str(c, n->a), n->b);
    case OP_ATTR:
        return eval_attr(c, n);
    case OP_EXISTS:
        return val_bool(lookup(c, n) != NULL);
    case OP_NOT:
        return eval_not(c, n);
    case OP_NEG:
        return eval_neg(c, n);
    case OP_LIKE:
        return eval_like(c, n);
    case OP_IN:
        return eval_in(c, n);
    case OP_CHAIN:
        return eval_chain(c, n);
    case OP_CALL:
        return weir_cesql_call(c, n);
    default:
        return weir_cesql_raise(c, n->pos, WEIR_CESQL_ERR_MISSING_FUNCTION, WEIR_CESQL_BOOLEAN,
                                "no such function with that number of arguments");
    }
}

/* ---- the interface --------------------------------------------------------------------- */

unsigned weir_cesql_eval(const weir_cesql_t *prog, const weir_event_t *ev, weir_cesql_result_t *res)
{
    ctx_t c = {prog, ev, res};
    res->errors = 0;
    res->first_error = 0;
    res->msg[0] = '\0';
    res->used = 0;

    val_t v = weir_cesql_eval_node(&c, prog->root);
    res->value = (weir_cesql_value_t){v.type, v.b, v.i, v.s ? v.s : "", v.len};
    return res->errors;
}

bool weir_cesql_match(const weir_cesql_t *prog, const weir_event_t *ev, weir_cesql_result_t *res)
{
    return weir_cesql_eval(prog, ev, res) == 0 && res->value.type == WEIR_CESQL_BOOLEAN &&
           res->value.b;
}

void weir_cesql_result_free(weir_cesql_result_t *res)
{
    weir_free(res->big);
    res->big = NULL;
    res->used = 0;
}

const char *weir_cesql_error_name(unsigned kind)
{
    switch (kind) {
    case WEIR_CESQL_ERR_PARSE:
        return "parse";
    case WEIR_CESQL_ERR_MATH:
        return "math";
    case WEIR_CESQL_ERR_CAST:
        return "cast";
    case WEIR_CESQL_ERR_MISSING_FUNCTION:
        return "missingFunction";
    case WEIR_CESQL_ERR_FUNCTION_EVALUATION:
        return "functionEvaluation";
    case WEIR_CESQL_ERR_MISSING_ATTRIBUTE:
        return "missingAttribute";
    case WEIR_CESQL_ERR_GENERIC:
        return "generic";
    default:
        return "";
    }
}
