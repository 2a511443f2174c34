/*
 * Unit tests of the cesql module for what the conformance kit does not cover: limits, parse
 * error positions, precedence, overflow, Unicode, escapes, the scratch cap and the interface.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cesql/cesql.h"

static weir_event_t *event(void)
{
    weir_event_t *ev = weir_ce_new();
    assert_int_equal(weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "id", "1", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "source", "/src", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "type", "com.example.created", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "subject", "café au lait", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "exint", "42", WEIR_CE_INTEGER, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "exbool", "true", WEIR_CE_BOOLEAN, NULL), 0);
    return ev;
}

/* The program evaluated last: a string result may point into it, so it lives until the next. */
static weir_cesql_t *last;

static int free_last(void **state)
{
    weir_cesql_free(last);
    last = NULL;
    return 0;
}

/* Compiles and evaluates expr against ev; fails the test if it does not compile. */
static unsigned eval(const char *expr, const weir_event_t *ev, weir_cesql_result_t *res)
{
    weir_err_t err = {0};
    free_last(NULL);
    if (weir_cesql_compile(expr, strlen(expr), &last, &err) != 0) {
        fail_msg("`%s` does not compile: %s", expr, err.msg);
    }
    return weir_cesql_eval(last, ev, res);
}

static void expect_int(const char *expr, int32_t want, unsigned errors)
{
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    weir_event_t *ev = event();
    assert_int_equal(eval(expr, ev, &res), errors);
    assert_int_equal(res.value.type, WEIR_CESQL_INTEGER);
    assert_int_equal(res.value.i, want);
    weir_cesql_result_free(&res);
    weir_ce_free(ev);
}

static void expect_bool(const char *expr, bool want, unsigned errors)
{
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    weir_event_t *ev = event();
    assert_int_equal(eval(expr, ev, &res), errors);
    assert_int_equal(res.value.type, WEIR_CESQL_BOOLEAN);
    assert_int_equal(res.value.b, want);
    weir_cesql_result_free(&res);
    weir_ce_free(ev);
}

static void expect_str(const char *expr, const char *want, unsigned errors)
{
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    weir_event_t *ev = event();
    assert_int_equal(eval(expr, ev, &res), errors);
    assert_int_equal(res.value.type, WEIR_CESQL_STRING);
    if (res.value.len != strlen(want) || memcmp(res.value.s, want, res.value.len) != 0) {
        fail_msg("`%s` gave \"%.*s\", want \"%s\"", expr, (int)res.value.len, res.value.s, want);
    }
    weir_cesql_result_free(&res);
    weir_ce_free(ev);
}

/* The expression must not compile, with exactly this message. */
static void expect_parse_error(const char *expr, size_t len, int code, const char *msg)
{
    weir_cesql_t *prog = NULL;
    weir_err_t err = {0};
    assert_int_equal(weir_cesql_compile(expr, len, &prog, &err), code);
    assert_null(prog);
    assert_string_equal(err.msg, msg);
}

/* ---- limits ---------------------------------------------------------------------------- */

static char *repeat(const char *head, const char *unit, int n, const char *tail)
{
    size_t len = strlen(head) + strlen(unit) * (size_t)n + strlen(tail) + 1;
    char *s = weir_malloc(len);
    strcpy(s, head);
    for (int i = 0; i < n; i++) {
        strcat(s, unit);
    }
    strcat(s, tail);
    return s;
}

static void test_length_limit(void **state)
{
    char *s = repeat("'", "a", WEIR_CESQL_LEN_MAX - 2, "'");
    weir_cesql_t *prog;
    assert_int_equal(weir_cesql_compile(s, strlen(s), &prog, NULL), 0);
    weir_cesql_free(prog);
    weir_free(s);

    s = repeat("'", "a", WEIR_CESQL_LEN_MAX - 1, "'");
    expect_parse_error(s, strlen(s), WEIR_ETOOBIG, "expression longer than 4096 bytes");
    weir_free(s);
}

static void test_nesting_limit(void **state)
{
    char *s = repeat("", "(", 63, "1");
    char *t = repeat(s, ")", 63, "");
    expect_int(t, 1, 0);
    weir_free(s);
    weir_free(t);

    s = repeat("", "(", 1000, "1");
    expect_parse_error(s, strlen(s), WEIR_EINVAL,
                       "at 65: expression nested more than 64 levels deep");
    weir_free(s);

    s = repeat("", "NOT ", 500, "TRUE");
    expect_parse_error(s, strlen(s), WEIR_EINVAL,
                       "at 253: expression nested more than 64 levels deep");
    weir_free(s);

    /* postfix operators deepen the tree without recursing in the parser */
    s = repeat("'a'", " LIKE 'a'", 100, "");
    expect_parse_error(s, strlen(s), WEIR_EINVAL,
                       "at 572: expression nested more than 64 levels deep");
    weir_free(s);

    s = repeat("", "ABS(", 70, "1");
    t = repeat(s, ")", 70, "");
    expect_parse_error(t, strlen(t), WEIR_EINVAL,
                       "at 257: expression nested more than 64 levels deep");
    weir_free(s);
    weir_free(t);
}

/* Chains of one precedence level are flat, so a long one is not deep. */
static void test_long_chain(void **state)
{
    char *s = repeat("TRUE", " AND TRUE", 400, "");
    expect_bool(s, true, 0);
    weir_free(s);
    s = repeat("0", " + 1", 800, "");
    expect_int(s, 800, 0);
    weir_free(s);
}

static void test_argument_limit(void **state)
{
    char *s = repeat("CONCAT('a'", ", 'a'", WEIR_CESQL_ARGS_MAX - 1, ")");
    weir_cesql_t *prog;
    assert_int_equal(weir_cesql_compile(s, strlen(s), &prog, NULL), 0);
    weir_cesql_free(prog);
    weir_free(s);
    s = repeat("CONCAT('a'", ", 'a'", WEIR_CESQL_ARGS_MAX, ")");
    expect_parse_error(s, strlen(s), WEIR_EINVAL, "at 1: more than 64 arguments");
    weir_free(s);
}

/* ---- parse errors ---------------------------------------------------------------------- */

static void parse_error(const char *expr, const char *msg)
{
    expect_parse_error(expr, strlen(expr), WEIR_EINVAL, msg);
}

static void test_parse_errors(void **state)
{
    parse_error("", "at 1: unexpected end of expression");
    parse_error("type = 'x' AND (subject", "at 24: expected ')'");
    parse_error("1 +", "at 4: unexpected end of expression");
    parse_error("x LIKE 123", "at 8: LIKE needs a string literal as its pattern");
    parse_error("'abc", "at 1: string literal never ends");
    parse_error("a # b", "at 3: unexpected character '#'");
    parse_error("a = é", "at 5: unexpected character 'é'");
    parse_error("2147483648", "at 1: integer literal out of the 32-bit range");
    parse_error("a = 1 2", "at 7: unexpected '2'");
    parse_error("my_ext = 1", "at 1: attribute names are letters and digits only");
    parse_error("and = 1", "at 1: unexpected 'and'");
    parse_error("EXISTS", "at 7: expected an attribute name");
    parse_error("EXISTS 'x'", "at 8: expected an attribute name");
    parse_error("a IN ()", "at 7: unexpected ')'");
    parse_error("a IN 1", "at 6: expected '('");
    parse_error("ABC(", "at 5: unexpected end of expression");
    parse_error("f2(1)", "at 1: function names are letters and underscores only");
    parse_error("+a", "at 1: unexpected '+'");
    parse_error("a ! b", "at 3: unexpected character '!'");
    expect_parse_error("'\xff'", 3, WEIR_EINVAL, "at 1: the expression is not valid UTF-8");
}

/* ---- semantics ------------------------------------------------------------------------- */

static void test_precedence(void **state)
{
    expect_int("1 + 2 * 3", 7, 0);
    expect_int("1 - 2 - 3", -4, 0);
    expect_int("8 / 2 / 2", 2, 0);
    expect_int("-7 / 2", -3, 0);
    expect_int("-7 % 3", -1, 0);
    expect_int("7 % -3", 1, 0);
    /* AND, OR and XOR share one level and group left to right, as section 3.6 says */
    expect_bool("TRUE OR FALSE AND FALSE", false, 0);
    expect_bool("FALSE AND FALSE OR TRUE", true, 0);
    /* unary operators bind tighter than comparisons and LIKE */
    expect_bool("NOT TRUE = FALSE", true, 0);
    expect_bool("NOT FALSE LIKE 'tr%'", true, 0);
    /* IN binds tighter than the comparisons */
    expect_bool("TRUE = 1 IN (1, 2)", true, 0);
    expect_bool("1 < 2 = TRUE", true, 0);
}

static void test_overflow(void **state)
{
    expect_int("2147483647 + 1", INT32_MAX, WEIR_CESQL_ERR_MATH);
    expect_int("-2147483648 - 1", INT32_MIN, WEIR_CESQL_ERR_MATH);
    expect_int("65536 * 65536", INT32_MAX, WEIR_CESQL_ERR_MATH);
    expect_int("-2147483648 / -1", INT32_MAX, WEIR_CESQL_ERR_MATH);
    expect_int("-2147483648 % -1", 0, 0);
    expect_int("-(-2147483648)", INT32_MAX, WEIR_CESQL_ERR_MATH);
    expect_int("-2147483648", INT32_MIN, 0);
    expect_int("+5", 5, 0);
    /* an operand carrying an error gives the zero value further up */
    expect_bool("2147483647 + 1 > 0", false, WEIR_CESQL_ERR_MATH);
}

static void test_attributes(void **state)
{
    expect_int("exint + 1", 43, 0);
    expect_bool("exbool AND TRUE", true, 0);
    expect_bool("exint = '42'", true, 0);
    expect_bool("exint = '042'", false, 0);
    expect_bool("'042' = exint", true, 0);
    expect_bool("TYPE = 'com.example.created'", true, 0);
    expect_bool("type LIKE 'com.%.created'", true, 0);
    expect_bool("EXISTS exbool AND NOT EXISTS nothere", true, 0);
    expect_bool("nothere", false, WEIR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect_bool("NOT (nothere = 1)", false, WEIR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect_bool("nothere = 1 OR TRUE", false, WEIR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect_bool("TRUE OR nothere = 1", true, 0);
    expect_int("LENGTH(nothere)", 0, WEIR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect_bool("exint IN ('x', 42)", false, WEIR_CESQL_ERR_CAST);
    expect_bool("exint IN (42, 'x')", true, 0);
    expect_bool("1 NOT IN (nothere)", false, WEIR_CESQL_ERR_MISSING_ATTRIBUTE);
    expect_bool("'abc' = 1", false, WEIR_CESQL_ERR_CAST);
    expect_bool("'abc' != 1", false, WEIR_CESQL_ERR_CAST);
}

static void test_null_event(void **state)
{
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    assert_int_equal(eval("EXISTS id", NULL, &res), 0);
    assert_false(res.value.b);
    assert_int_equal(eval("id = 'x'", NULL, &res), WEIR_CESQL_ERR_MISSING_ATTRIBUTE);
    assert_string_equal(res.msg, "at 1: the event has no attribute id");
    assert_string_equal(weir_cesql_error_name(res.first_error), "missingAttribute");
}

static void test_unicode(void **state)
{
    expect_int("LENGTH(subject)", 12, 0);
    expect_str("UPPER(subject)", "CAFÉ AU LAIT", 0);
    expect_str("LOWER('ÀÉÎ Straße')", "àéî straße", 0);
    expect_str("SUBSTRING(subject, 3, 3)", "fé ", 0);
    expect_str("SUBSTRING(subject, -4)", "lait", 0);
    expect_str("LEFT(subject, 4)", "café", 0);
    expect_str("RIGHT('日本語', 2)", "本語", 0);
    expect_str("TRIM('\xc2\xa0\xe3\x80\x80 x y\t\n\xe2\x80\xa8')", "x y", 0);
    expect_str("TRIM('  ')", "", 0);
    expect_bool("subject LIKE 'caf_ au%'", true, 0);
    expect_bool("'日本' LIKE '__'", true, 0);
    expect_bool("'日本' LIKE '_'", false, 0);
    expect_bool("'日本語' LIKE '%語'", true, 0);
}

static void test_strings(void **state)
{
    expect_str("'it\\'s'", "it's", 0);
    /* SQL's doubled quote is not an escape in CESQL: two literals side by side do not parse. */
    expect_parse_error("'it''s'", 7, WEIR_EINVAL, "at 5: unexpected ''s''");
    expect_str("\"say \\\"hi\\\"\"", "say \"hi\"", 0);
    expect_str("'a\\\\'", "a\\\\", 0);
    expect_bool("'a\\b' LIKE 'a\\b'", true, 0);
    expect_bool("'a\\b' LIKE 'a\\\\b'", true, 0);
    expect_bool("'100%' LIKE '100\\%'", true, 0);
    expect_bool("'1000' LIKE '100\\%'", false, 0);
    expect_bool("'abc' LIKE 'a%%%c'", true, 0);
    expect_bool("'' LIKE '%'", true, 0);
    expect_bool("'aXbXc' LIKE '%X%X%'", true, 0);
    expect_bool("'aaa' LIKE '%a%a%a%a%'", false, 0);
    expect_str("CONCAT_WS('-', 1, TRUE, 'x')", "1-true-x", 0);
    expect_str("CONCAT(exint, exbool)", "42true", 0);
    expect_str("STRING(-2147483648)", "-2147483648", 0);
    expect_bool("IS_INT('+12') AND IS_BOOL('False') AND NOT IS_INT('1.5')", true, 0);
    expect_int("INT('+7')", 7, 0);
    expect_int("INT('2147483648')", 0, WEIR_CESQL_ERR_CAST);
    expect_int("INT(' 7')", 0, WEIR_CESQL_ERR_CAST);
    expect_str("SUBSTRING('abc', 2, -1)", "", WEIR_CESQL_ERR_FUNCTION_EVALUATION);
    expect_str("LEFT('abc', 'x')", "", WEIR_CESQL_ERR_CAST);
}

/* Computed strings are capped, so that CONCATs of long attributes cannot grow without bound. */
static void test_scratch_cap(void **state)
{
    weir_event_t *ev = event();
    char *big = repeat("", "a", 4000, "");
    assert_int_equal(weir_ce_set(ev, "big", big, WEIR_CE_STRING, NULL), 0);
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;

    char *fits = repeat("LENGTH(CONCAT(big", ", big", 15, "))");
    assert_int_equal(eval(fits, ev, &res), 0);
    assert_int_equal(res.value.i, 64000);

    char *over = repeat("LENGTH(CONCAT(big", ", big", 16, ")) > 0");
    assert_int_equal(eval(over, ev, &res), WEIR_CESQL_ERR_GENERIC);
    assert_int_equal(res.value.type, WEIR_CESQL_BOOLEAN);
    assert_false(res.value.b);

    /* the result can be used again after the cap was hit */
    assert_int_equal(eval("CONCAT('a', 'b') = 'ab'", ev, &res), 0);
    assert_true(res.value.b);
    weir_cesql_result_free(&res);
    weir_free(fits);
    weir_free(over);
    weir_free(big);
    weir_ce_free(ev);
}

static void test_missing_function(void **state)
{
    weir_cesql_t *prog;
    assert_int_equal(weir_cesql_compile("FOO(1) OR TRUE", 14, &prog, NULL), 0);
    assert_string_equal(weir_cesql_warning(prog), "at 1: no function FOO taking 1 arguments");
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    assert_int_equal(weir_cesql_eval(prog, NULL, &res), WEIR_CESQL_ERR_MISSING_FUNCTION);
    assert_false(res.value.b);
    weir_cesql_free(prog);

    assert_int_equal(weir_cesql_compile("length('a') = 1", 15, &prog, NULL), 0);
    assert_null(weir_cesql_warning(prog));
    weir_cesql_free(prog);
    expect_str("substring('abc', 2)", "bc", 0);
    expect_bool("LENGTH('a', 'b')", false, WEIR_CESQL_ERR_MISSING_FUNCTION);
}

static void test_match(void **state)
{
    static const struct {
        const char *expr;
        bool want;
    } cases[] = {
        {"type = 'com.example.created' AND subject LIKE 'caf%'", true},
        {"type = 'other'", false},
        {"'true'", false},
        {"1", false},
        {"nothere = 1 OR TRUE", false},
        {"TRUE OR nothere = 1", true},
    };
    weir_event_t *ev = event();
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        weir_cesql_t *prog;
        assert_int_equal(weir_cesql_compile(cases[i].expr, strlen(cases[i].expr), &prog, NULL), 0);
        assert_int_equal(weir_cesql_match(prog, ev, &res), cases[i].want);
        weir_cesql_free(prog);
    }
    weir_cesql_result_free(&res);
    weir_ce_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_limit),     cmocka_unit_test(test_nesting_limit),
        cmocka_unit_test(test_long_chain),       cmocka_unit_test(test_argument_limit),
        cmocka_unit_test(test_parse_errors),     cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_overflow),         cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_null_event),       cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_strings),          cmocka_unit_test(test_scratch_cap),
        cmocka_unit_test(test_missing_function), cmocka_unit_test(test_match),
    };
    return cmocka_run_group_tests(tests, NULL, free_last);
}
