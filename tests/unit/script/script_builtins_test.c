/*
 * The built-ins the sandbox replaces (src/script/builtins.c): each answers as Duktape's own does,
 * on short inputs (where the original runs) and on long ones (where the replacement does), and
 * each long case that ran for seconds or minutes past the time limit now ends as a timeout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "fixture.h"

#define TIMEOUT_MS 50u
/* A run stopped by its time limit ends long before this, sanitizers included; before the
 * replacements every case below took several seconds at least. */
#define BOUND_MS (TIMEOUT_MS + 1000u)

static int setup(void **state)
{
    /* Room for inputs long enough that the originals would run for seconds. */
    weir_script_limits_t limits = {.timeout_ms = TIMEOUT_MS, .mem_bytes = 64u << 20};
    *state = weir_script_pool_new(&limits);
    return 0;
}

/* For the answers: time enough for every fact, even on a slow sanitizer build. */
static int setup_patient(void **state)
{
    weir_script_limits_t limits = {.timeout_ms = 10000, .mem_bytes = 64u << 20};
    *state = weir_script_pool_new(&limits);
    return 0;
}

static int teardown(void **state)
{
    weir_script_pool_free(*state);
    return 0;
}

/* Runs src and returns what it logged, which must be want. */
static void expect_log(weir_script_pool_t *pool, const char *src, const char *want)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    fx_log_t log = {0};
    weir_err_t err;
    if (fx_run(pool, src, in, &out, &log, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    assert_string_equal(log.text, want);
    weir_ce_free(out);
    weir_ce_free(in);
}

/*
 * Facts about the string searches, the same whether the strings are short or long. The pad is
 * made of two-byte characters, so that positions and byte offsets differ; the needle is long
 * enough that, with the pad, the replacements do the searching.
 */
static const char string_facts[] =
    "var P = '\\u00e9'.repeat(PAD), L = P.length, N = 'n'.repeat(60) + '\\u00fcZ', out = [];\n"
    "function t(v) { out.push(JSON.stringify(v)); }\n"
    "var h1 = P + N + 'tail', h2 = P + N + 'mid' + N, k = L + N.length + 3;\n"
    "t(h1.indexOf(N) === L); t(h1.indexOf(N, L + 1)); t(h2.indexOf(N, L + 1) === k);\n"
    "t(h2.lastIndexOf(N) === k); t(h2.lastIndexOf(N, k - 1) === L);\n"
    "t(h2.lastIndexOf(N, NaN) === k); t(h2.lastIndexOf(N, undefined) === k);\n"
    "t(h2.lastIndexOf(N, -5) === (L ? -1 : 0)); t((N + P).lastIndexOf(N, -5));\n"
    "t(h2.lastIndexOf(N, Infinity) === k); t(h2.indexOf(N, -Infinity) === L);\n"
    "t(h2.indexOf(N, 1e20)); t(h1.includes(N)); t(h1.includes(N, L + 1)); t(h1.indexOf(''));\n"
    "t(h1.indexOf('', 1e9) === h1.length); t(h1.lastIndexOf('') === h1.length);\n"
    "try { h1.includes(/n/); t('no'); } catch (e) { t(String(e)); }\n"
    "t(h1.replace(N, '[$&|$`|$\\'|$$|$1|$]') ===\n"
    "  P + '[' + N + '|' + P + '|tail|$|$1|$]' + 'tail');\n"
    "t(h1.replace(N, '$') === P + '$tail'); t(h1.replace(N, '') === P + 'tail');\n"
    "t(h1.replace(N, '$\\u0000$`$') === P + '$\\u0000' + P + '$tail');\n"
    "t(h1.replace(N, '$`'.repeat(20)) === P + P.repeat(20) + 'tail');\n"
    "var seen; t(h2.replace(N, function (m, pos, s) {\n"
    "    seen = [m === N, pos === L, s === h2, arguments.length]; return 42;\n"
    "}) === P + '42mid' + N); t(seen); t(h1.replace(N + 'x', 'y') === h1);\n"
    "var cnt = 0, obj = {toString: function () { cnt++; return N; }};\n"
    "t(h1.replace(obj, 'Q') === P + 'Qtail'); t(h1.indexOf(obj) === L); t(h1.includes(obj));\n"
    "t(h1.split(obj).length); t(cnt);\n"
    "var h3 = P + N + 'a' + N + N + 'b', sp = h3.split(N);\n"
    "t(sp.length); t(sp[0] === P); t(sp.slice(1)); t(h3.split(N, 2).length); t(h3.split(N, 0));\n"
    "t(h3.split(N, -1).length); t((N + P).split(N)[0]); t((P + N).split(N)[1]);\n"
    "var order = '';\n"
    "t(h3.split({toString: function () { order += 's'; return N; }},\n"
    "           {valueOf: function () { order += 'l'; return 5; }}).length); t(order);\n"
    "t(String.prototype.indexOf.call(12345, 34));\n"
    "try { String.prototype.indexOf.call(null, 'x'); } catch (e) { t(e.name); }\n"
    "t(h1.replace(/n+/, 'R') === P + 'R\\u00fcZtail'); t(h1.split(undefined).length);\n"
    "t(h1.split(/\\u00fc/).length);\n"
    "nslog(out.join(' '));\n"
    "return null;";

static const char string_answers[] =
    "true -1 true true true true true true 0 true true -1 true false 0 true true "
    "\"TypeError: invalid args\" true true true true true true [true,true,true,3] true true true "
    "true 2 4 "
    "4 true [\"a\",\"\",\"b\"] 2 [] 4 \"\" \"\" 4 \"ls\" 2 \"TypeError\" true 1 2";

static void string_searches_answer_as_before(void **state)
{
    static const int pads[] = {0, 3, 70000};
    for (size_t i = 0; i < sizeof(pads) / sizeof(pads[0]); i++) {
        char src[sizeof(string_facts) + 32];
        snprintf(src, sizeof(src), "var PAD = %d;\n%s", pads[i], string_facts);
        expect_log(*state, src, string_answers);
    }
}

/* Sort, and the array methods around it, on arrays and on everything else, as before. */
static void sort_answers_as_before(void **state)
{
    expect_log(
        *state,
        "var a = [3, 1, 2], r = a.sort(); nslog(r === a, a);\n"
        "var o = {length: 3, 0: 'c', 1: 'a', 2: 'b'};\n"
        "nslog(Array.prototype.sort.call(o) === o, JSON.stringify(o));\n"
        "nslog(Array.prototype.reverse.call(o) === o, Array.prototype.join.call('abc', '-'),\n"
        "      Array.prototype.slice.call('abc', 1));\n"
        "var p = new Proxy({length: 2, 0: 'x', 1: 'y'}, {});\n"
        "nslog(Array.prototype.reverse.call(p) === p, p[0], Array.prototype.splice.call(p, 0, 1),\n"
        "      p.length, JSON.stringify(p));\n"
        "try { Array.prototype.shift.call('abc'); } catch (e) { nslog(e); }\n"
        "try { Array.prototype.reverse.call(Object.freeze({length: 2, 0: 1, 1: 2})); }\n"
        "catch (e) { nslog(e); }\n"
        "(function () {\n"
        "    nslog(Array.prototype.slice.call(arguments, 1),\n"
        "          Array.prototype.indexOf.call(arguments, 3),\n"
        "          Array.prototype.lastIndexOf.call(arguments, 1, -4),\n"
        "          Array.prototype.lastIndexOf.call(arguments, 3));\n"
        "})(1, 2, 3);\n"
        "var u = [undefined, 'b', , 'a', null, 10, 9, '\\u00e9', 'z', {}, true];\n"
        "u.sort(); nslog(JSON.stringify(u), u.length, 10 in u, 9 in u);\n"
        "try { Array.prototype.join.call(null); } catch (e) { nslog(e.name); }\n"
        "var s = ['b', 'a']; s.sort(function (x, y) { return x < y ? -1 : 1; }); nslog(s);\n"
        "try { [1, 2].sort(1); } catch (e) { nslog(e.name); }\n"
        "nslog(Array.prototype.indexOf.name, Array.prototype.splice.length,\n"
        "      String.prototype.split.length, Object.keys(Array.prototype).length);\n"
        "return null;",
        "true [1,2,3]\n"
        "true {\"0\":\"a\",\"1\":\"b\",\"2\":\"c\",\"length\":3}\n"
        "true a-b-c [\"b\",\"c\"]\n"
        "true y [\"y\"] 1 {\"0\":\"x\",\"length\":1}\n"
        "TypeError: not writable\n"
        "TypeError: not writable\n"
        "[2,3] 2 -1 2\n"
        "[10,9,{},\"a\",\"b\",null,true,\"z\",\"\u00e9\",null,null] 11 false true\n"
        "TypeError\n"
        "[\"a\",\"b\"]\n"
        "TypeError\n"
        "indexOf 2 2 0");
}

/* Searches that took minutes: each call once took time in the product of the two lengths. */
static void long_string_searches_time_out(void **state)
{
    static const char *const searches[] = {
        "h.indexOf(q)",      "h.lastIndexOf(q)", "h.includes(q)",
        "h.replace(q, 'x')", "h.split(q)",       "h.replace(q, function () { return 'x'; })",
    };
    for (size_t i = 0; i < sizeof(searches) / sizeof(searches[0]); i++) {
        char src[256];
        snprintf(src, sizeof(src),
                 "var a = 'a'.repeat(1 << 20), h = a + a, q = a + 'b';\n"
                 "for (;;) { %s; }",
                 searches[i]);
        fx_expect_error(*state, src, "filter timed out after 50 ms", BOUND_MS);
    }
}

/* The default sort compared in C; a million values took seconds. */
static void sort_without_comparator_times_out(void **state)
{
    fx_expect_error(*state, "var a = 'tf'.repeat(5e5).split(''); for (;;) { a.sort(); }",
                    "filter timed out after 50 ms", BOUND_MS);
}

/* Binary data is not part of the sandbox: its loops over elements never reach the time check. */
static void binary_builtins_are_gone(void **state)
{
    expect_log(*state,
               "nslog(['ArrayBuffer', 'DataView', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray',\n"
               "       'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array',\n"
               "       'Float64Array', 'Buffer', 'TextEncoder', 'TextDecoder', 'CBOR']\n"
               "    .filter(function (k) { return typeof Function('return this')()[k] !== "
               "'undefined'; }).length);\n"
               "return null;",
               "0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(string_searches_answer_as_before, setup_patient, teardown),
        cmocka_unit_test_setup_teardown(sort_answers_as_before, setup_patient, teardown),
        cmocka_unit_test_setup_teardown(long_string_searches_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(sort_without_comparator_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(binary_builtins_are_gone, setup_patient, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
