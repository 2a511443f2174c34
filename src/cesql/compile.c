/*
 * The CESQL compiler: a lexer that cuts the whole text into tokens first, and a recursive-
 * descent parser that writes nodes into growable arrays, which are packed into one block at
 * the end. Recursion is bounded by WEIR_CESQL_DEPTH_MAX, checked before each descent, and the
 * height of the tree by the same limit, so that evaluation is bounded too.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cesql/program.h"

enum tok {
    T_EOF,
    T_INT,
    T_STR,
    T_WORD,
    T_LP,
    T_RP,
    T_COMMA,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PCT,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
};

typedef struct token {
    uint8_t kind;
    uint16_t pos; /* 0-based byte offset */
    uint16_t len;
} token_t;

typedef struct comp {
    const char *text;
    size_t len;
    weir_err_t *err;

    token_t *toks;
    size_t ntoks;
    size_t cur;
    int depth;

    node_t *nodes;
    uint8_t *heights;
    size_t nnodes;
    size_t cap_nodes;

    arg_t *args;
    size_t nargs;
    size_t cap_args;

    /* operands of the chains, calls and sets being parsed; each pops what it pushed */
    arg_t *stack;
    size_t nstack;
    size_t cap_stack;

    weir_buf_t pool;
    char warning[WEIR_CESQL_MSG_MAX];
} comp_t;

/* ---- errors ---------------------------------------------------------------------------- */

static int fail(comp_t *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Records a parse error at the 0-based byte offset pos; returns -1 for the caller to pass on. */
static int fail(comp_t *p, size_t pos, const char *fmt, ...)
{
    char what[WEIR_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    weir_err_set(p->err, WEIR_EINVAL, NULL, "at %zu: %s", pos + 1, what);
    return -1;
}

/* Length of the token's text to quote in a message: at most 24 bytes, ending on a character. */
static int quote_len(const comp_t *p, const token_t *t)
{
    size_t n = t->len < 24 ? t->len : 24;
    while (n > 0 && n < t->len && ((unsigned char)p->text[t->pos + n] & 0xC0) == 0x80) {
        n--;
    }
    return (int)n;
}

static int unexpected(comp_t *p, const token_t *t)
{
    if (t->kind == T_EOF) {
        return fail(p, t->pos, "unexpected end of expression");
    }
    return fail(p, t->pos, "unexpected '%.*s'", quote_len(p, t), p->text + t->pos);
}

/* ---- lexer ----------------------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Bytes in the UTF-8 character that starts with c (the text was checked to be UTF-8). */
static int char_len(char c)
{
    unsigned char u = (unsigned char)c;
    return u < 0x80 ? 1 : u < 0xE0 ? 2 : u < 0xF0 ? 3 : 4;
}

/* Length of the string literal starting at i (quotes included), or 0 when it never ends. */
static size_t string_len(const char *s, size_t n, size_t i)
{
    char q = s[i];
    for (size_t j = i + 1; j < n; j++) {
        if (s[j] == '\\' && j + 1 < n) {
            j++;
        } else if (s[j] == q) {
            return j + 1 - i;
        }
    }
    return 0;
}

/* Kind and length of the operator at s[i], or T_EOF when there is none. */
static int operator_at(const char *s, size_t n, size_t i, size_t *len)
{
    static const struct {
        const char *text;
        uint8_t kind;
    } ops[] = {
        {"!=", T_NE},   {"<>", T_NE},   {"<=", T_LE},  {">=", T_GE},   {"(", T_LP},
        {")", T_RP},    {",", T_COMMA}, {"+", T_PLUS}, {"-", T_MINUS}, {"*", T_STAR},
        {"/", T_SLASH}, {"%", T_PCT},   {"=", T_EQ},   {"<", T_LT},    {">", T_GT},
    };
    for (size_t k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
        size_t l = strlen(ops[k].text);
        if (i + l <= n && memcmp(s + i, ops[k].text, l) == 0) {
            *len = l;
            return ops[k].kind;
        }
    }
    return T_EOF;
}

/* Cuts one token at s[i] into *t. */
static int lex_one(comp_t *p, size_t i, token_t *t)
{
    const char *s = p->text;
    size_t n = p->len, len = 0;
    int kind;

    t->pos = (uint16_t)i;
    if (s[i] == '\'' || s[i] == '"') {
        len = string_len(s, n, i);
        if (len == 0) {
            return fail(p, i, "string literal never ends");
        }
        kind = T_STR;
    } else if (is_word(s[i])) {
        bool digits = true;
        while (i + len < n && is_word(s[i + len])) {
            digits = digits && is_digit(s[i + len]);
            len++;
        }
        kind = digits ? T_INT : T_WORD;
    } else {
        kind = operator_at(s, n, i, &len);
        if (kind == T_EOF) {
            return fail(p, i, "unexpected character '%.*s'", char_len(s[i]), s + i);
        }
    }
    t->kind = (uint8_t)kind;
    t->len = (uint16_t)len;
    return 0;
}

static int lex(comp_t *p)
{
    p->toks = weir_malloc((p->len + 1) * sizeof(token_t));
    size_t i = 0;
    for (;;) {
        while (i < p->len && is_space(p->text[i])) {
            i++;
        }
        token_t *t = &p->toks[p->ntoks++];
        if (i == p->len) {
            *t = (token_t){T_EOF, (uint16_t)i, 0};
            return 0;
        }
        if (lex_one(p, i, t) != 0) {
            return -1;
        }
        i += t->len;
    }
}

/* ---- token helpers --------------------------------------------------------------------- */

static const token_t *peek_at(const comp_t *p, size_t ahead)
{
    size_t i = p->cur + ahead;
    return &p->toks[i < p->ntoks ? i : p->ntoks - 1];
}

static const token_t *peek(const comp_t *p)
{
    return peek_at(p, 0);
}

static const token_t *next(comp_t *p)
{
    const token_t *t = peek(p);
    if (t->kind != T_EOF) {
        p->cur++;
    }
    return t;
}

/* True when t is the word kw, in any case. */
static bool is_kw(const comp_t *p, const token_t *t, const char *kw)
{
    size_t n = strlen(kw);
    if (t->kind != T_WORD || t->len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = p->text[t->pos + i];
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 'a' + 'A');
        }
        if (c != kw[i]) {
            return false;
        }
    }
    return true;
}

static bool is_reserved(const comp_t *p, const token_t *t)
{
    static const char *const words[] = {"AND", "OR", "XOR", "NOT", "LIKE", "IN", "EXISTS"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (is_kw(p, t, words[i])) {
            return true;
        }
    }
    return false;
}

static int expect(comp_t *p, int kind, const char *what)
{
    const token_t *t = peek(p);
    if (t->kind != kind) {
        return fail(p, t->pos, "expected %s", what);
    }
    next(p);
    return 0;
}

/* ---- building ------------------------------------------------------------------------- */

/* Appends a node of the given height; fails when the tree would grow too deep. */
static int add_node(comp_t *p, node_t n, unsigned height)
{
    if (height > WEIR_CESQL_DEPTH_MAX) {
        return fail(p, n.pos ? n.pos - 1u : 0, "expression nested more than %d levels deep",
                    WEIR_CESQL_DEPTH_MAX);
    }
    if (p->nnodes == p->cap_nodes) {
        p->cap_nodes = p->cap_nodes ? p->cap_nodes * 2 : 16;
        p->nodes = weir_realloc(p->nodes, p->cap_nodes * sizeof(node_t));
        p->heights = weir_realloc(p->heights, p->cap_nodes);
    }
    p->nodes[p->nnodes] = n;
    p->heights[p->nnodes] = (uint8_t)height;
    return (int)p->nnodes++;
}

static node_t mknode(int op, const token_t *t)
{
    return (node_t){.op = (uint8_t)op, .pos = (uint16_t)(t->pos + 1)};
}

static void push(comp_t *p, int node, int op, const token_t *t)
{
    if (p->nstack == p->cap_stack) {
        p->cap_stack = p->cap_stack ? p->cap_stack * 2 : 16;
        p->stack = weir_realloc(p->stack, p->cap_stack * sizeof(arg_t));
    }
    p->stack[p->nstack++] = (arg_t){(uint16_t)node, (uint16_t)(t->pos + 1), (uint8_t)op};
}

/* Moves the stack above base into the argument array; returns where they start there. */
static uint32_t pop_args(comp_t *p, size_t base, unsigned *height)
{
    size_t n = p->nstack - base;
    if (p->nargs + n > p->cap_args) {
        p->cap_args = (p->nargs + n) * 2;
        p->args = weir_realloc(p->args, p->cap_args * sizeof(arg_t));
    }
    uint32_t start = (uint32_t)p->nargs;
    *height = 0;
    for (size_t i = 0; i < n; i++) {
        arg_t a = p->stack[base + i];
        p->args[p->nargs++] = a;
        if (p->heights[a.node] > *height) {
            *height = p->heights[a.node];
        }
    }
    p->nstack = base;
    return start;
}

/* Adds bytes to the string pool, NUL-terminated; returns their offset. */
static uint32_t pool_add(comp_t *p, const char *s, size_t n)
{
    uint32_t off = (uint32_t)p->pool.len;
    weir_buf_append(&p->pool, s, n);
    weir_buf_putc(&p->pool, '\0');
    return off;
}

/* ---- literals -------------------------------------------------------------------------- */

/* Unescapes the string literal t into the pool: \q stands for q (a doubled quote is not an
 * escape in CESQL: 'a''b' is two literals side by side, which does not parse). */
static uint32_t unescape(comp_t *p, const token_t *t, uint32_t *len)
{
    const char *s = p->text + t->pos;
    char q = s[0];
    uint32_t off = (uint32_t)p->pool.len;
    for (size_t i = 1; i + 1 < t->len; i++) {
        if (s[i] == '\\' && s[i + 1] == q && i + 2 < t->len) {
            i++;
        } else if (s[i] == '\\') {
            weir_buf_putc(&p->pool, s[i++]);
        }
        weir_buf_putc(&p->pool, s[i]);
    }
    *len = (uint32_t)(p->pool.len - off);
    weir_buf_putc(&p->pool, '\0');
    return off;
}

/*
 * Rewrites the unescaped pattern pool[off .. off+len) in place into its compiled form: the
 * wildcards become LIKE_ANY and LIKE_ONE, \% \_ \\ the plain character. Returns the new length.
 */
static uint32_t compile_pattern(comp_t *p, uint32_t off, uint32_t len)
{
    char *s = p->pool.data + off;
    uint32_t o = 0;
    for (uint32_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < len && (s[i + 1] == '%' || s[i + 1] == '_' || s[i + 1] == '\\')) {
            c = s[++i];
        } else if (c == '%') {
            c = (char)LIKE_ANY;
        } else if (c == '_') {
            c = (char)LIKE_ONE;
        }
        s[o++] = c;
    }
    return o;
}

/* An integer literal, negated when neg; INT32_MIN is reachable only through the sign. */
static int int_literal(comp_t *p, const token_t *t, bool neg)
{
    int64_t v = 0;
    for (size_t i = 0; i < t->len; i++) {
        v = v * 10 + (p->text[t->pos + i] - '0');
        if (v > (int64_t)INT32_MAX + 1) {
            break;
        }
    }
    v = neg ? -v : v;
    if (v > INT32_MAX || v < INT32_MIN) {
        return fail(p, t->pos, "integer literal out of the 32-bit range");
    }
    node_t n = mknode(OP_INT, t);
    n.ival = (int32_t)v;
    return add_node(p, n, 1);
}

static int string_literal(comp_t *p, const token_t *t)
{
    node_t n = mknode(OP_STR, t);
    n.a = unescape(p, t, &n.b);
    return add_node(p, n, 1);
}

/* An attribute name: letters and digits, looked up in lower case. */
static int attribute(comp_t *p, const token_t *t, int op)
{
    const char *s = p->text + t->pos;
    char name[WEIR_CE_NAME_MAX];
    if (t->kind != T_WORD && t->kind != T_INT) {
        return fail(p, t->pos, "expected an attribute name");
    }
    if (t->len > WEIR_CE_NAME_MAX) {
        return fail(p, t->pos, "attribute name longer than %d characters", WEIR_CE_NAME_MAX);
    }
    for (size_t i = 0; i < t->len; i++) {
        char c = s[i];
        if (c == '_') {
            return fail(p, t->pos, "attribute names are letters and digits only");
        }
        name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    node_t n = mknode(op, t);
    n.a = pool_add(p, name, t->len);
    n.b = t->len;
    return add_node(p, n, 1);
}

/* ---- the grammar ----------------------------------------------------------------------- */

static int parse_expr(comp_t *p);
static int parse_unary(comp_t *p);

static const struct builtin_def {
    const char *name;
    uint8_t id;
    uint8_t min;
    uint8_t max; /* 255: variadic */
} builtins[] = {
    {"ABS", FN_ABS, 1, 1},         {"LENGTH", FN_LENGTH, 1, 1},
    {"CONCAT", FN_CONCAT, 0, 255}, {"CONCAT_WS", FN_CONCAT_WS, 1, 255},
    {"LOWER", FN_LOWER, 1, 1},     {"UPPER", FN_UPPER, 1, 1},
    {"TRIM", FN_TRIM, 1, 1},       {"LEFT", FN_LEFT, 2, 2},
    {"RIGHT", FN_RIGHT, 2, 2},     {"SUBSTRING", FN_SUBSTRING, 2, 3},
    {"INT", FN_INT, 1, 1},         {"BOOL", FN_BOOL, 1, 1},
    {"STRING", FN_STRING, 1, 1},   {"IS_BOOL", FN_IS_BOOL, 1, 1},
    {"IS_INT", FN_IS_INT, 1, 1},
};

static const struct builtin_def *find_builtin(const comp_t *p, const token_t *t, size_t argc)
{
    for (size_t i = 0; i < sizeof(builtins) / sizeof(builtins[0]); i++) {
        const struct builtin_def *d = &builtins[i];
        if (is_kw(p, t, d->name) && argc >= d->min && (d->max == 255 || argc <= d->max)) {
            return d;
        }
    }
    return NULL;
}

static bool valid_function_name(const comp_t *p, const token_t *t)
{
    const char *s = p->text + t->pos;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        return false;
    }
    for (size_t i = 1; i < t->len; i++) {
        if (is_digit(s[i])) {
            return false;
        }
    }
    return true;
}

/* Parses "(" [expr ("," expr)*] ")" onto the stack. */
static int parse_list(comp_t *p, bool allow_empty)
{
    if (expect(p, T_LP, "'('") != 0) {
        return -1;
    }
    if (allow_empty && peek(p)->kind == T_RP) {
        next(p);
        return 0;
    }
    for (;;) {
        const token_t *t = peek(p);
        int e = parse_expr(p);
        if (e < 0) {
            return -1;
        }
        push(p, e, 0, t);
        if (peek(p)->kind != T_COMMA) {
            return expect(p, T_RP, "')'");
        }
        next(p);
    }
}

/* A function call; one that cannot be dispatched compiles to OP_NOFUNC with a warning. */
static int parse_call(comp_t *p, const token_t *name)
{
    if (!valid_function_name(p, name)) {
        return fail(p, name->pos, "function names are letters and underscores only");
    }
    size_t base = p->nstack;
    if (parse_list(p, true) != 0) {
        return -1;
    }
    size_t argc = p->nstack - base;
    if (argc > WEIR_CESQL_ARGS_MAX) {
        return fail(p, name->pos, "more than %d arguments", WEIR_CESQL_ARGS_MAX);
    }
    const struct builtin_def *d = find_builtin(p, name, argc);
    if (d == NULL) {
        if (p->warning[0] == '\0') {
            snprintf(p->warning, sizeof(p->warning), "at %u: no function %.*s taking %zu arguments",
                     name->pos + 1u, quote_len(p, name), p->text + name->pos, argc);
        }
        p->nstack = base;
        return add_node(p, mknode(OP_NOFUNC, name), 1);
    }
    node_t n = mknode(OP_CALL, name);
    unsigned h;
    n.sub = d->id;
    n.a = pop_args(p, base, &h);
    n.b = (uint32_t)argc;
    return add_node(p, n, h + 1);
}

static int parse_word(comp_t *p, const token_t *t)
{
    if (peek(p)->kind == T_LP) {
        return parse_call(p, t);
    }
    if (is_kw(p, t, "TRUE") || is_kw(p, t, "FALSE")) {
        node_t n = mknode(OP_BOOL, t);
        n.ival = is_kw(p, t, "TRUE");
        return add_node(p, n, 1);
    }
    if (is_kw(p, t, "EXISTS")) {
        const token_t *id = next(p);
        if (is_reserved(p, id)) {
            return fail(p, id->pos, "expected an attribute name");
        }
        return attribute(p, id, OP_EXISTS);
    }
    if (is_reserved(p, t)) {
        return unexpected(p, t);
    }
    return attribute(p, t, OP_ATTR);
}

static int parse_primary(comp_t *p)
{
    const token_t *t = next(p);
    switch (t->kind) {
    case T_INT:
        return int_literal(p, t, false);
    case T_STR:
        return string_literal(p, t);
    case T_WORD:
        return parse_word(p, t);
    case T_LP: {
        int e = parse_expr(p);
        if (e < 0 || expect(p, T_RP, "')'") != 0) {
            return -1;
        }
        return e;
    }
    default:
        return unexpected(p, t);
    }
}

/* NOT x and -x; a sign directly before an integer literal belongs to the literal. */
static int parse_unary(comp_t *p)
{
    const token_t *t = peek(p);
    bool is_not = is_kw(p, t, "NOT");
    if (!is_not && t->kind != T_MINUS && t->kind != T_PLUS) {
        return parse_primary(p);
    }
    next(p);
    if (!is_not && peek(p)->kind == T_INT) {
        return int_literal(p, next(p), t->kind == T_MINUS);
    }
    if (t->kind == T_PLUS) {
        return unexpected(p, t);
    }
    if (++p->depth > WEIR_CESQL_DEPTH_MAX) {
        return fail(p, t->pos, "expression nested more than %d levels deep", WEIR_CESQL_DEPTH_MAX);
    }
    int child = parse_unary(p);
    p->depth--;
    if (child < 0) {
        return -1;
    }
    node_t n = mknode(is_not ? OP_NOT : OP_NEG, t);
    n.a = (uint32_t)child;
    return add_node(p, n, p->heights[child] + 1u);
}

/* x [NOT] LIKE 'pattern': the pattern must be a string literal. */
static int parse_like(comp_t *p)
{
    int left = parse_unary(p);
    while (left >= 0) {
        const token_t *t = peek(p);
        bool neg = is_kw(p, t, "NOT") && is_kw(p, peek_at(p, 1), "LIKE");
        if (!neg && !is_kw(p, t, "LIKE")) {
            break;
        }
        p->cur += neg ? 2 : 1;
        const token_t *pat = next(p);
        if (pat->kind != T_STR) {
            return fail(p, pat->pos, "LIKE needs a string literal as its pattern");
        }
        node_t n = mknode(OP_LIKE, t);
        uint32_t len;
        n.sub = neg;
        n.a = (uint32_t)left;
        n.b = unescape(p, pat, &len);
        n.ival = (int32_t)compile_pattern(p, n.b, len);
        left = add_node(p, n, p->heights[left] + 1u);
    }
    return left;
}

/* x [NOT] IN (y1, y2, ...) */
static int parse_in(comp_t *p)
{
    int left = parse_like(p);
    while (left >= 0) {
        const token_t *t = peek(p);
        bool neg = is_kw(p, t, "NOT") && is_kw(p, peek_at(p, 1), "IN");
        if (!neg && !is_kw(p, t, "IN")) {
            break;
        }
        p->cur += neg ? 2 : 1;
        size_t base = p->nstack;
        push(p, left, 0, t);
        if (parse_list(p, false) != 0) {
            return -1;
        }
        node_t n = mknode(OP_IN, t);
        unsigned h;
        n.sub = neg;
        n.b = (uint32_t)(p->nstack - base);
        n.a = pop_args(p, base, &h);
        left = add_node(p, n, h + 1);
    }
    return left;
}

/* The binary operator of the given level that t is, or -1. */
static int binop_at(const comp_t *p, const token_t *t, int level)
{
    static const uint8_t sym[][2] = {
        [T_STAR] = {LVL_MUL, BIN_MUL}, [T_SLASH] = {LVL_MUL, BIN_DIV}, [T_PCT] = {LVL_MUL, BIN_MOD},
        [T_PLUS] = {LVL_ADD, BIN_ADD}, [T_MINUS] = {LVL_ADD, BIN_SUB}, [T_EQ] = {LVL_CMP, BIN_EQ},
        [T_NE] = {LVL_CMP, BIN_NE},    [T_LT] = {LVL_CMP, BIN_LT},     [T_LE] = {LVL_CMP, BIN_LE},
        [T_GT] = {LVL_CMP, BIN_GT},    [T_GE] = {LVL_CMP, BIN_GE},
    };
    if (level == LVL_LOGIC) {
        return is_kw(p, t, "AND")   ? BIN_AND
               : is_kw(p, t, "OR")  ? BIN_OR
               : is_kw(p, t, "XOR") ? BIN_XOR
                                    : -1;
    }
    if (t->kind >= T_PLUS && t->kind <= T_GE && sym[t->kind][0] == level) {
        return sym[t->kind][1];
    }
    return -1;
}

/* Operands of one precedence level joined by its operators, into one chain node. */
static int parse_chain(comp_t *p, int level)
{
    if (level > LVL_MUL) {
        return parse_in(p);
    }
    int first = parse_chain(p, level + 1);
    if (first < 0 || binop_at(p, peek(p), level) < 0) {
        return first;
    }
    const token_t *start = peek(p);
    size_t base = p->nstack;
    push(p, first, 0, start);
    int op;
    while ((op = binop_at(p, peek(p), level)) >= 0) {
        const token_t *t = next(p);
        int operand = parse_chain(p, level + 1);
        if (operand < 0) {
            return -1;
        }
        push(p, operand, op, t);
    }
    node_t n = mknode(OP_CHAIN, start);
    unsigned h;
    n.sub = (uint8_t)level;
    n.b = (uint32_t)(p->nstack - base);
    n.a = pop_args(p, base, &h);
    return add_node(p, n, h + 1);
}

static int parse_expr(comp_t *p)
{
    if (++p->depth > WEIR_CESQL_DEPTH_MAX) {
        return fail(p, peek(p)->pos, "expression nested more than %d levels deep",
                    WEIR_CESQL_DEPTH_MAX);
    }
    int e = parse_chain(p, LVL_LOGIC);
    p->depth--;
    return e;
}

/* ---- the program ----------------------------------------------------------------------- */

static size_t align8(size_t n)
{
    return (n + 7) & ~(size_t)7;
}

/* Packs the arrays into one block: the header, the nodes, the arguments, the pool. */
static weir_cesql_t *pack(comp_t *p, int root)
{
    size_t off_nodes = align8(sizeof(weir_cesql_t));
    size_t off_args = align8(off_nodes + p->nnodes * sizeof(node_t));
    size_t off_pool = align8(off_args + p->nargs * sizeof(arg_t));
    char *block = weir_malloc(off_pool + p->pool.len + 1);
    weir_cesql_t *prog = (weir_cesql_t *)(void *)block;

    memcpy(block + off_nodes, p->nodes, p->nnodes * sizeof(node_t));
    if (p->nargs > 0) {
        memcpy(block + off_args, p->args, p->nargs * sizeof(arg_t));
    }
    if (p->pool.len > 0) {
        memcpy(block + off_pool, p->pool.data, p->pool.len);
    }
    block[off_pool + p->pool.len] = '\0';
    prog->nodes = (const node_t *)(void *)(block + off_nodes);
    prog->args = (const arg_t *)(void *)(block + off_args);
    prog->pool = block + off_pool;
    prog->root = (uint32_t)root;
    prog->nnodes = (uint32_t)p->nnodes;
    memcpy(prog->warning, p->warning, sizeof(prog->warning));
    return prog;
}

static int parse_all(comp_t *p)
{
    if (!weir_utf8_valid(p->text, p->len)) {
        return fail(p, 0, "the expression is not valid UTF-8");
    }
    if (lex(p) != 0) {
        return -1;
    }
    int root = parse_expr(p);
    if (root >= 0 && peek(p)->kind != T_EOF) {
        return unexpected(p, peek(p));
    }
    return root;
}

int weir_cesql_compile(const char *text, size_t len, weir_cesql_t **out, weir_err_t *err)
{
    *out = NULL;
    if (len > WEIR_CESQL_LEN_MAX) {
        return weir_err_set(err, WEIR_ETOOBIG, NULL, "expression longer than %d bytes",
                            WEIR_CESQL_LEN_MAX);
    }
    comp_t p = {.text = text, .len = len, .err = err};
    int root = parse_all(&p);
    if (root >= 0) {
        *out = pack(&p, root);
    }
    weir_free(p.toks);
    weir_free(p.nodes);
    weir_free(p.heights);
    weir_free(p.args);
    weir_free(p.stack);
    weir_buf_free(&p.pool);
    return root >= 0 ? 0 : WEIR_EINVAL;
}

void weir_cesql_free(weir_cesql_t *prog)
{
    weir_free(prog);
}

const char *weir_cesql_warning(const weir_cesql_t *prog)
{
    return prog->warning[0] ? prog->warning : NULL;
}
