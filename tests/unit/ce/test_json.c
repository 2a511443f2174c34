/* Strict JSON parsing and JSON media types. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ce/ce.h"

static int parse(const char *text, size_t len, weir_err_t *err)
{
    cJSON *root = NULL;
    int rc = weir_ce_json_parse(text, len, &root, err);
    if (rc == 0) {
        assert_non_null(root);
        cJSON_Delete(root);
    } else {
        assert_null(root);
    }
    return rc;
}

static int parse_str(const char *text)
{
    weir_err_t err = {0};
    int rc = parse(text, strlen(text), &err);
    if (rc != 0) {
        assert_string_equal(err.attr, "");
        assert_true(err.msg[0] != '\0');
    }
    return rc;
}

/* n arrays inside each other. */
static char *nested(int n)
{
    char *s = weir_malloc((size_t)n * 2 + 1);
    memset(s, '[', (size_t)n);
    memset(s + n, ']', (size_t)n);
    s[n * 2] = '\0';
    return s;
}

static void test_accepts_valid(void **state)
{
    static const char *const ok[] = {
        "{}",
        "[]",
        "0",
        "-0",
        "1.5e-3",
        "1E+10",
        "-12.0",
        "\"\"",
        "true",
        "false",
        "null",
        " \t\r\n{\"a\" : [1, 2, {\"b\": null}] } \n",
        "\"\\u00e9\\ud83d\\ude00\\n\\/\"",
        "\"caf\xC3\xA9\"",
        "[[],{}]",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(parse_str(ok[i]), 0);
    }
}

static void test_refuses_invalid(void **state)
{
    static const char *const bad[] = {
        "",
        " ",
        "01",
        "-01",
        "1.",
        ".5",
        "+1",
        "-",
        "1e",
        "1.e5",
        "[1,]",
        "{,}",
        "{\"a\"}",
        "{\"a\":1,}",
        "[1 2]",
        "{} {}",
        "{}x",
        "nul",
        "True",
        "'a'",
        "\"a",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\ud800\"",
        "\"\\udc00\"",
        "\"\\ud800\\u0041\"",
        "NaN",
        "\"a\tb\"",
        "\"a\nb\"",
        "[1]\x01",
        "\xEF\xBB\xBF{}",
        "{\"a\":1 \"b\":2}",
        "{1:2}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_str(bad[i]) != WEIR_EINVAL) {
            fail_msg("accepted: %s", bad[i]);
        }
    }
}

static void test_refuses_invalid_utf8(void **state)
{
    static const char *const bad[] = {
        "\"\xFF\"", "\"\xC3\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"", "\"\xF4\x90\x80\x80\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        weir_err_t err = {0};
        assert_int_equal(parse(bad[i], strlen(bad[i]), &err), WEIR_EINVAL);
        assert_non_null(strstr(err.msg, "UTF-8"));
        /* The message never carries the bytes it refused. */
        assert_true(weir_utf8_valid(err.msg, strlen(err.msg)));
    }
}

static void test_embedded_nul_refused(void **state)
{
    weir_err_t err = {0};
    assert_int_equal(parse("[1]\0", 4, &err), WEIR_EINVAL);
    assert_int_equal(parse("\"a\0b\"", 5, &err), WEIR_EINVAL);
    assert_int_equal(parse("[1]", 3, &err), 0);
}

static void test_depth_limit(void **state)
{
    char *ok = nested(WEIR_CE_JSON_DEPTH_MAX);
    char *deep = nested(WEIR_CE_JSON_DEPTH_MAX + 1);
    weir_err_t err = {0};
    assert_int_equal(parse(ok, strlen(ok), &err), 0);
    assert_int_equal(parse(deep, strlen(deep), &err), WEIR_EINVAL);
    assert_non_null(strstr(err.msg, "nested"));
    weir_free(ok);
    weir_free(deep);
}

static void test_depth_counts_objects_too(void **state)
{
    weir_buf_t b = WEIR_BUF_INIT;
    for (int i = 0; i < WEIR_CE_JSON_DEPTH_MAX; i++) {
        weir_buf_puts(&b, i % 2 ? "[" : "{\"a\":");
    }
    for (int i = WEIR_CE_JSON_DEPTH_MAX - 1; i >= 0; i--) {
        weir_buf_puts(&b, i % 2 ? "]" : "}");
    }
    assert_int_equal(parse_str(b.data), 0);
    weir_buf_reset(&b);
    weir_buf_puts(&b, "[");
    for (int i = 0; i < WEIR_CE_JSON_DEPTH_MAX; i++) {
        weir_buf_puts(&b, "{\"a\":");
    }
    weir_buf_puts(&b, "1");
    for (int i = 0; i < WEIR_CE_JSON_DEPTH_MAX; i++) {
        weir_buf_puts(&b, "}");
    }
    weir_buf_puts(&b, "]");
    assert_int_equal(parse_str(b.data), WEIR_EINVAL);
    weir_buf_free(&b);
}

static void test_parsed_values(void **state)
{
    cJSON *root;
    const char *text = "{\"a\":[1,\"x\"],\"b\":true}";
    assert_int_equal(weir_ce_json_parse(text, strlen(text), &root, NULL), 0);
    assert_true(cJSON_IsArray(cJSON_GetObjectItem(root, "a")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "b")));
    cJSON_Delete(root);
}

static void test_length_bounds_the_text(void **state)
{
    /* Only the first len bytes count, whatever follows them. */
    weir_err_t err = {0};
    assert_int_equal(parse("[1]garbage", 3, &err), 0);
    assert_int_equal(parse("[1,2]", 3, &err), WEIR_EINVAL);
}

static void test_is_json_type(void **state)
{
    assert_true(weir_ce_is_json_type("application/json"));
    assert_true(weir_ce_is_json_type("Application/JSON; charset=utf-8"));
    assert_true(weir_ce_is_json_type("text/json"));
    assert_true(weir_ce_is_json_type("application/cloudevents+json"));
    assert_true(weir_ce_is_json_type("application/vnd.foo+json;v=1"));
    assert_true(weir_ce_is_json_type(" application/json"));
    /* The JSON format's rule is about the subtype alone. */
    assert_true(weir_ce_is_json_type("model/json"));
    assert_true(weir_ce_is_json_type("application/vnd.a-very-long-name-that-goes-on-and-on-and-on"
                                     "-past-one-hundred-and-twenty-eight-characters-in-all-of-"
                                     "its-type+json"));
    assert_false(weir_ce_is_json_type(NULL));
    assert_false(weir_ce_is_json_type(""));
    assert_false(weir_ce_is_json_type("text/plain"));
    assert_false(weir_ce_is_json_type("application/jsonx"));
    assert_false(weir_ce_is_json_type("application/json-seq"));
    assert_false(weir_ce_is_json_type("+json"));
    assert_false(weir_ce_is_json_type("json"));
    assert_false(weir_ce_is_json_type("application/+json"));
    assert_false(weir_ce_is_json_type("application/xml; note=+json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_valid),
        cmocka_unit_test(test_refuses_invalid),
        cmocka_unit_test(test_refuses_invalid_utf8),
        cmocka_unit_test(test_embedded_nul_refused),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_depth_counts_objects_too),
        cmocka_unit_test(test_parsed_values),
        cmocka_unit_test(test_length_bounds_the_text),
        cmocka_unit_test(test_is_json_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
