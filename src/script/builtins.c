/*
 * Built-ins that the sandbox replaces, because Duktape's own can run far past a run's time limit.
 *
 * The time limit is enforced where Duktape calls weir's checks: between bytecode instructions, at
 * every function call, and inside the regexp matcher, the compiler, JSON and number conversion. A
 * built-in that loops in C without reaching any of them runs to its end, however long that is:
 *
 *   - String.prototype indexOf, lastIndexOf, includes, and replace and split with a string
 *     pattern search naively, in time proportional to the product of the two lengths: a search of
 *     a 4 MiB string for a 2 MiB one takes minutes. When that product is small the original runs;
 *     otherwise the search here runs in linear time (memmem), or, backwards, checks the time as
 *     it goes.
 *   - Array.prototype.sort without a comparator compares in C: it gets a comparator written in
 *     C, with the same order, whose every call reaches the check.
 *
 * (The other generic array methods loop in C too, but over an array, whose elements take heap
 * memory enough to bound the work, or over anything else by way of number conversion, which
 * checks. The typed arrays, where neither holds, are not in the sandbox at all.)
 *
 * The replacements have the names, lengths and results of the originals; they are installed
 * before the sandbox freezes the built-ins.
 */
#include <stdio.h>
#include <string.h>

#include "script/engine.h"

/* Searches whose naive cost (bytes searched times bytes sought) is below this are Duktape's. */
#define CHEAP_SEARCH (1u << 22)

/* Bytes a backward search compares between two reads of the clock. */
#define WORK_PER_CHECK (1u << 20)

typedef enum which {
    STR_INDEX_OF,
    STR_LAST_INDEX_OF,
    STR_INCLUDES,
    STR_REPLACE,
    STR_SPLIT,
    ARR_SORT,
    REPLACED /* how many */
} which_t;

_Static_assert(REPLACED <= ENGINE_ORIGINALS, "engine_t keeps too few originals");

static duk_ret_t str_search(duk_context *ctx);
static duk_ret_t str_replace(duk_context *ctx);
static duk_ret_t str_split(duk_context *ctx);
static duk_ret_t arr_sort(duk_context *ctx);

static const struct {
    const char *ctor;
    const char *name;
    duk_c_function fn;
    duk_idx_t nargs;
} replaced[REPLACED] = {
    [STR_INDEX_OF] = {"String", "indexOf", str_search, 2},
    [STR_LAST_INDEX_OF] = {"String", "lastIndexOf", str_search, 2},
    [STR_INCLUDES] = {"String", "includes", str_search, 2},
    [STR_REPLACE] = {"String", "replace", str_replace, 2},
    [STR_SPLIT] = {"String", "split", str_split, 2},
    [ARR_SORT] = {"Array", "sort", arr_sort, 1},
};

/* ---- shared --------------------------------------------------------------------------------- */

/*
 * Throws the timeout once the run is past its time; it stays thrown (see
 * weir_script_timeout_check). Calls reach Duktape's own check only every so many calls, so the
 * searches here that take long (milliseconds) read the clock themselves.
 */
static void check_time(duk_context *ctx)
{
    if (weir_script_timeout_check(weir_script__engine_of(ctx))) {
        (void)duk_range_error(ctx, "execution timeout");
    }
}

/* [ args... ] -> [ args... result ]: the original built-in, called with this_idx as its this. */
static void call_original(duk_context *ctx, which_t which, duk_idx_t this_idx, duk_idx_t nargs)
{
    duk_push_heapptr(ctx, weir_script__engine_of(ctx)->originals[which]);
    duk_dup(ctx, this_idx);
    for (duk_idx_t i = 0; i < nargs; i++) {
        duk_dup(ctx, i);
    }
    duk_call_method(ctx, nargs);
}

/* Pushes this as a string, as String.prototype's methods see it. */
static void push_this_string(duk_context *ctx)
{
    duk_push_this(ctx);
    if (duk_is_null_or_undefined(ctx, -1)) {
        (void)duk_type_error(ctx, "not object coercible");
    }
    duk_to_string(ctx, -1);
}

/*
 * Whether the value at idx is a RegExp, as Duktape's string methods decide it (by its class, which
 * neither instanceof nor Object.prototype.toString tell): the original getter of
 * RegExp.prototype.global answers a boolean for a RegExp and nothing else.
 */
static bool is_regexp(duk_context *ctx, duk_idx_t idx)
{
    if (!duk_is_object(ctx, idx)) {
        return false;
    }
    duk_push_heapptr(ctx, weir_script__engine_of(ctx)->regexp_global);
    duk_dup(ctx, idx);
    bool yes = duk_pcall_method(ctx, 0) == DUK_EXEC_SUCCESS && duk_is_boolean(ctx, -1);
    duk_pop(ctx);
    return yes;
}

/* ---- strings: characters and bytes ---------------------------------------------------------- */

/*
 * Duktape counts string positions in characters, each stored as one to four bytes; the first byte
 * of each is the one that is not 10xxxxxx. Turning a position into an offset means counting from a
 * known point: the engine keeps the last point it found in the last string it searched (held in
 * the stash, so that the string cannot be freed and another take its address), which makes a loop
 * that searches one string from successive positions linear, as Duktape's own cache does.
 */
static bool is_cont(unsigned char c)
{
    return (c & 0xC0) == 0x80;
}

typedef struct text {
    const unsigned char *s;
    size_t n;    /* bytes */
    size_t clen; /* characters */
    duk_idx_t idx;
} text_t;

static text_t text_at(duk_context *ctx, duk_idx_t idx)
{
    text_t t = {.idx = duk_normalize_index(ctx, idx)};
    t.s = (const unsigned char *)duk_get_lstring(ctx, idx, &t.n);
    t.clen = duk_get_length(ctx, idx);
    return t;
}

/* The engine's known point, moved to t's string if it was another's. */
static engine_t *anchor(duk_context *ctx, const text_t *t)
{
    engine_t *e = weir_script__engine_of(ctx);
    if (e->scan_str != duk_get_heapptr(ctx, t->idx)) {
        duk_dup(ctx, t->idx);
        e->scan_str = weir_script__engine_keep(ctx, "scan");
        duk_pop(ctx);
        e->scan_char = 0;
        e->scan_byte = 0;
    }
    return e;
}

/* The byte offset where character c (at most t->clen) starts. */
static size_t byte_of(duk_context *ctx, const text_t *t, size_t c)
{
    if (t->clen == t->n) {
        return c;
    }
    engine_t *e = anchor(ctx, t);
    size_t ac = e->scan_char;
    size_t ab = e->scan_byte;
    if (c < ac && c < ac - c) { /* nearer the start */
        ac = ab = 0;
    } else if (c > ac && t->clen - c < c - ac) { /* nearer the end */
        ac = t->clen;
        ab = t->n;
    }
    while (ac < c) {
        ab++;
        while (ab < t->n && is_cont(t->s[ab])) {
            ab++;
        }
        ac++;
    }
    while (ac > c) {
        ab--;
        while (ab > 0 && is_cont(t->s[ab])) {
            ab--;
        }
        ac--;
    }
    e->scan_char = ac;
    e->scan_byte = ab;
    return ab;
}

/* The character position of byte offset b: the characters that start before it. */
static size_t char_of(duk_context *ctx, const text_t *t, size_t b)
{
    if (t->clen == t->n) {
        return b;
    }
    engine_t *e = anchor(ctx, t);
    size_t c = e->scan_char;
    for (size_t i = e->scan_byte; i < b; i++) {
        c += !is_cont(t->s[i]);
    }
    for (size_t i = b; i < e->scan_byte; i++) {
        c -= !is_cont(t->s[i]);
    }
    e->scan_char = c;
    e->scan_byte = b;
    return c;
}

/* ---- strings: searching -----------------------------------------------------------------------
 */

/* The first match of q[0..m) in t at or after byte from, or -1. Linear: memmem is two-way. */
static ptrdiff_t find_forward(const text_t *t, size_t from, const char *q, size_t m)
{
    const unsigned char *p = memmem(t->s + from, t->n - from, q, m);
    return p != NULL ? p - t->s : -1;
}

/* The last match of q[0..m) in t that starts at or before byte from, or -1. Naive, so it checks
 * the time as it works. */
static ptrdiff_t find_backward(duk_context *ctx, const text_t *t, size_t from, const char *q,
                               size_t m)
{
    if (m > t->n) {
        return -1;
    }
    size_t end = (from < t->n - m ? from : t->n - m) + 1; /* candidates are [0, end) */
    size_t work = 0;
    while (end > 0) {
        const unsigned char *p = memrchr(t->s, (unsigned char)q[0], end);
        if (p == NULL) {
            return -1;
        }
        size_t at = (size_t)(p - t->s);
        if (memcmp(p, q, m) == 0) {
            return (ptrdiff_t)at;
        }
        work += end - at + m;
        if (work >= WORK_PER_CHECK) {
            work = 0;
            check_time(ctx);
        }
        end = at;
    }
    return -1;
}

/* [ search position this ] -> [ ... result ]: indexOf, lastIndexOf or includes of a long string. */
static void search_long(duk_context *ctx, which_t which, const text_t *t, const char *q, size_t m)
{
    /* The position as an integer within the string; lastIndexOf reads NaN as its end. */
    double d = duk_to_number(ctx, 1);
    size_t pos = d > 0 ? (d < (double)t->clen ? (size_t)d : t->clen) : 0;
    if (which == STR_LAST_INDEX_OF && d != d) {
        pos = t->clen;
    }

    ptrdiff_t at = (ptrdiff_t)pos; /* an empty string is found where the search starts */
    if (m > 0) {
        size_t from = byte_of(ctx, t, pos);
        at = which == STR_LAST_INDEX_OF ? find_backward(ctx, t, from, q, m)
                                        : find_forward(t, from, q, m);
        at = at < 0 ? -1 : (ptrdiff_t)char_of(ctx, t, (size_t)at);
    }
    if (which == STR_INCLUDES) {
        duk_push_boolean(ctx, at >= 0);
    } else {
        duk_push_number(ctx, (double)at);
    }
}

static bool search_is_cheap(const text_t *t, size_t m)
{
    return m == 0 || t->n <= CHEAP_SEARCH / m;
}

/* String.prototype.indexOf, lastIndexOf and includes (searchString, position). */
static duk_ret_t str_search(duk_context *ctx)
{
    which_t which = (which_t)duk_get_current_magic(ctx);
    push_this_string(ctx);
    if (which == STR_INCLUDES && is_regexp(ctx, 0)) {
        return duk_type_error(ctx, "invalid args");
    }
    duk_to_string(ctx, 0);

    text_t t = text_at(ctx, 2);
    size_t m;
    const char *q = duk_get_lstring(ctx, 0, &m);
    if (search_is_cheap(&t, m)) {
        call_original(ctx, which, 2, 2);
    } else {
        search_long(ctx, which, &t, q, m);
        check_time(ctx);
    }
    return 1;
}

/* A string being assembled in a heap buffer, at stack index idx: linear however many parts. */
typedef struct assembly {
    duk_idx_t idx;
    unsigned char *data;
    size_t len;
    size_t cap;
} assembly_t;

static void assemble_start(duk_context *ctx, assembly_t *a, size_t cap)
{
    a->data = duk_push_dynamic_buffer(ctx, cap);
    a->idx = duk_get_top_index(ctx);
    a->len = 0;
    a->cap = cap;
}

static void assemble(duk_context *ctx, assembly_t *a, const void *src, size_t n)
{
    if (n == 0) {
        return;
    }
    if (n > a->cap - a->len) {
        size_t cap = a->cap * 2 > a->len + n ? a->cap * 2 : a->len + n;
        a->data = duk_resize_buffer(ctx, a->idx, cap);
        a->cap = cap;
    }
    memcpy(a->data + a->len, src, n);
    a->len += n;
}

/* [ ... buffer ] -> [ ... string ] */
static void assemble_end(duk_context *ctx, assembly_t *a)
{
    duk_resize_buffer(ctx, a->idx, a->len);
    duk_buffer_to_string(ctx, a->idx);
}

/*
 * Appends the replacement string r[0..rn) with $$, $&, $` and $' expanded for a match of m bytes
 * at byte at of t; any other $ is itself, as there are no captures.
 */
static void assemble_expanded(duk_context *ctx, assembly_t *a, const char *r, size_t rn,
                              const text_t *t, size_t at, size_t m)
{
    size_t lit = 0; /* start of the literal run not yet appended */
    for (size_t i = 0; i + 1 < rn; i++) {
        if (r[i] != '$' || memchr("$&`'", r[i + 1], 4) == NULL) {
            continue;
        }
        assemble(ctx, a, r + lit, i - lit);
        switch (r[i + 1]) {
        case '$':
            assemble(ctx, a, "$", 1);
            break;
        case '&':
            assemble(ctx, a, t->s + at, m);
            break;
        case '`':
            assemble(ctx, a, t->s, at);
            break;
        default:
            assemble(ctx, a, t->s + at + m, t->n - at - m);
            break;
        }
        lit = i + 2;
        i++;
    }
    assemble(ctx, a, r + lit, rn - lit);
}

/* String.prototype.replace (searchValue, replaceValue): the search of a string pattern. */
static duk_ret_t str_replace(duk_context *ctx)
{
    push_this_string(ctx);
    if (is_regexp(ctx, 0)) {
        call_original(ctx, STR_REPLACE, 2, 2); /* the regexp matcher checks the time itself */
        return 1;
    }
    duk_to_string(ctx, 0);
    bool by_function = duk_is_function(ctx, 1);
    if (!by_function) {
        duk_to_string(ctx, 1);
    }

    text_t t = text_at(ctx, 2);
    size_t m;
    const char *q = duk_get_lstring(ctx, 0, &m);
    if (search_is_cheap(&t, m)) {
        call_original(ctx, STR_REPLACE, 2, 2);
        return 1;
    }
    ptrdiff_t found = find_forward(&t, 0, q, m);
    check_time(ctx);
    if (found < 0) {
        duk_dup(ctx, 2);
        return 1;
    }

    size_t at = (size_t)found;
    size_t rn;
    const char *r;
    if (by_function) {
        duk_dup(ctx, 1);
        duk_dup(ctx, 0);
        duk_push_number(ctx, (double)char_of(ctx, &t, at));
        duk_dup(ctx, 2);
        duk_call(ctx, 3);
        r = duk_to_lstring(ctx, -1, &rn);
    } else {
        r = duk_get_lstring(ctx, 1, &rn);
    }

    assembly_t a;
    assemble_start(ctx, &a, t.n - m + rn);
    assemble(ctx, &a, t.s, at);
    if (by_function) {
        assemble(ctx, &a, r, rn);
    } else {
        assemble_expanded(ctx, &a, r, rn, &t, at, m);
    }
    assemble(ctx, &a, t.s + at + m, t.n - at - m);
    assemble_end(ctx, &a);
    return 1;
}

/* String.prototype.split (separator, limit): the search of a non-empty string separator. */
static duk_ret_t str_split(duk_context *ctx)
{
    push_this_string(ctx);
    if (duk_is_undefined(ctx, 0) || is_regexp(ctx, 0)) {
        call_original(ctx, STR_SPLIT, 2, 2);
        return 1;
    }
    /* Duktape reads the limit before it turns the separator into a string. */
    duk_uint32_t limit = duk_is_undefined(ctx, 1) ? 0xFFFFFFFFu : duk_to_uint32(ctx, 1);
    duk_push_uint(ctx, limit);
    duk_replace(ctx, 1);
    duk_to_string(ctx, 0);

    text_t t = text_at(ctx, 2);
    size_t m;
    const char *q = duk_get_lstring(ctx, 0, &m);
    if (limit == 0 || search_is_cheap(&t, m)) {
        call_original(ctx, STR_SPLIT, 2, 2);
        return 1;
    }

    duk_idx_t arr = duk_push_array(ctx);
    duk_uarridx_t n = 0;
    size_t prev = 0;
    for (ptrdiff_t at; (at = find_forward(&t, prev, q, m)) >= 0; prev = (size_t)at + m) {
        if (n % 1024 == 0) {
            check_time(ctx);
        }
        duk_push_lstring(ctx, (const char *)t.s + prev, (size_t)at - prev);
        duk_put_prop_index(ctx, arr, n++);
        if (n >= limit) {
            return 1;
        }
    }
    duk_push_lstring(ctx, (const char *)t.s + prev, t.n - prev);
    duk_put_prop_index(ctx, arr, n);
    return 1;
}

/* ---- arrays -----------------------------------------------------------------------------------
 */

/* Sort's default order: both values as strings, compared by code unit, as Duktape compares them. */
static duk_ret_t sort_compare(duk_context *ctx)
{
    size_t n1;
    size_t n2;
    const char *s1 = duk_to_lstring(ctx, 0, &n1);
    const char *s2 = duk_to_lstring(ctx, 1, &n2);
    int c = memcmp(s1, s2, n1 < n2 ? n1 : n2);
    if (c == 0) {
        c = n1 < n2 ? -1 : n1 > n2;
    }
    duk_push_int(ctx, c < 0 ? -1 : c > 0);
    return 1;
}

/* Array.prototype.sort (comparefn) */
static duk_ret_t arr_sort(duk_context *ctx)
{
    if (duk_is_undefined(ctx, 0)) {
        duk_push_heapptr(ctx, weir_script__engine_of(ctx)->compare);
        duk_replace(ctx, 0);
    }
    duk_push_this(ctx);
    call_original(ctx, ARR_SORT, 1, 1);
    return 1;
}

/* ---- installing -------------------------------------------------------------------------------
 */

/* [ ... proto ] -> [ ... proto ]: proto[name] becomes fn, named and sized as the original. */
static void replace_one(duk_context *ctx, engine_t *e, which_t which)
{
    char key[32];
    duk_get_prop_string(ctx, -1, replaced[which].name);
    snprintf(key, sizeof(key), "%s.%s", replaced[which].ctor, replaced[which].name);
    e->originals[which] = weir_script__engine_keep(ctx, key);

    duk_push_c_function(ctx, replaced[which].fn, replaced[which].nargs);
    duk_set_magic(ctx, -1, (duk_int_t)which);
    static const char *const copied[] = {"length", "name"};
    for (size_t i = 0; i < 2; i++) {
        duk_push_string(ctx, copied[i]);
        duk_get_prop_string(ctx, -3, copied[i]);
        duk_def_prop(ctx, -3, DUK_DEFPROP_HAVE_VALUE | DUK_DEFPROP_FORCE);
    }
    duk_remove(ctx, -2);

    duk_push_string(ctx, replaced[which].name);
    duk_insert(ctx, -2);
    duk_def_prop(ctx, -3,
                 DUK_DEFPROP_HAVE_VALUE | DUK_DEFPROP_SET_WRITABLE | DUK_DEFPROP_CLEAR_ENUMERABLE |
                     DUK_DEFPROP_SET_CONFIGURABLE);
}

void weir_script__builtins_install(duk_context *ctx, engine_t *e)
{
    for (int i = 0; i < REPLACED; i++) {
        duk_get_global_string(ctx, replaced[i].ctor);
        duk_get_prop_string(ctx, -1, "prototype");
        replace_one(ctx, e, (which_t)i);
        duk_pop_2(ctx);
    }

    duk_get_global_string(ctx, "RegExp");
    duk_get_prop_string(ctx, -1, "prototype");
    duk_push_string(ctx, "global");
    duk_get_prop_desc(ctx, -2, 0);
    duk_get_prop_string(ctx, -1, "get");
    e->regexp_global = weir_script__engine_keep(ctx, "RegExp.global");
    duk_pop_n(ctx, 4);

    duk_push_c_function(ctx, sort_compare, 2);
    e->compare = weir_script__engine_keep(ctx, "compare");
    duk_pop(ctx);
}
