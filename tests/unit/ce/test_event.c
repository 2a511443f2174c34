/* The event model: attributes, data, clone, and validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ce_test.h"

static weir_event_t *minimal(const char *version)
{
    weir_event_t *ev = weir_ce_new();
    assert_int_equal(weir_ce_set(ev, "specversion", version, WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "id", "1", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "source", "/s", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "type", "t", WEIR_CE_STRING, NULL), 0);
    return ev;
}

static void test_attributes_sorted_and_replaced(void **state)
{
    weir_event_t *ev = minimal("1.0");
    assert_int_equal(weir_ce_set(ev, "b", "2", WEIR_CE_INTEGER, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "a", "x", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "b", "3", WEIR_CE_INTEGER, NULL), 0);
    assert_int_equal(ev->nattrs, 6);
    for (size_t i = 1; i < ev->nattrs; i++) {
        assert_true(strcmp(ev->attrs[i - 1].name, ev->attrs[i].name) < 0);
    }
    assert_string_equal(weir_ce_get(ev, "b"), "3");
    weir_ce_remove(ev, "a");
    weir_ce_remove(ev, "missing");
    assert_null(weir_ce_get(ev, "a"));
    assert_int_equal(ev->nattrs, 5);
    weir_ce_free(ev);
}

static void test_set_refuses(void **state)
{
    weir_event_t *ev = weir_ce_new();
    weir_err_t err = {0};
    assert_int_equal(weir_ce_set(ev, "Bad", "x", WEIR_CE_STRING, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "Bad");
    assert_int_equal(weir_ce_set(ev, "", "x", WEIR_CE_STRING, &err), WEIR_EINVAL);
    assert_int_equal(weir_ce_set(ev, "a", "\xFF", WEIR_CE_STRING, &err), WEIR_EINVAL);
    assert_int_equal(weir_ce_set(ev, "a", "01", WEIR_CE_INTEGER, &err), WEIR_EINVAL);
    assert_int_equal(weir_ce_set(ev, "a", "2147483648", WEIR_CE_INTEGER, &err), WEIR_EINVAL);
    assert_int_equal(weir_ce_set(ev, "a", "yes", WEIR_CE_BOOLEAN, &err), WEIR_EINVAL);
    assert_int_equal(ev->nattrs, 0);
    weir_ce_free(ev);
}

/* A value may be as long as the event the spec says consumers should accept, and no longer. */
static void test_value_length(void **state)
{
    weir_event_t *ev = weir_ce_new();
    weir_err_t err = {0};
    char *value = weir_malloc(WEIR_CE_VALUE_MAX + 2);
    memset(value, 'v', WEIR_CE_VALUE_MAX + 1);
    value[WEIR_CE_VALUE_MAX + 1] = '\0';
    assert_int_equal(weir_ce_set(ev, "big", value, WEIR_CE_STRING, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "big");
    assert_string_equal(err.msg, "value is longer than 65536 bytes");
    assert_int_equal(ev->nattrs, 0);
    value[WEIR_CE_VALUE_MAX] = '\0';
    assert_int_equal(weir_ce_set(ev, "big", value, WEIR_CE_STRING, &err), 0);
    assert_int_equal(strlen(weir_ce_get(ev, "big")), WEIR_CE_VALUE_MAX);
    weir_free(value);
    weir_ce_free(ev);
}

static void test_clone_and_data(void **state)
{
    weir_event_t *ev = minimal("0.3");
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "a\0b", 3);
    weir_event_t *copy = weir_ce_clone(ev);
    assert_true(ce_equal(ev, copy));
    assert_int_equal(copy->data[3], '\0');
    weir_ce_set_data(copy, WEIR_CE_DATA_NONE, NULL, 0);
    assert_null(copy->data);
    assert_false(ce_equal(ev, copy));
    weir_ce_free(copy);
    weir_ce_free(ev);
}

static void test_validate(void **state)
{
    weir_event_t *ev = minimal("1.0");
    weir_err_t err = {0};
    assert_int_equal(weir_ce_validate(ev, &err), 0);

    weir_ce_set(ev, "time", "2020-01-01T00:00:00.123+01:00", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "dataschema", "https://example.com/s", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "datacontenttype", "application/json; charset=utf-8", WEIR_CE_STRING, NULL);
    assert_int_equal(weir_ce_validate(ev, &err), 0);

    weir_ce_set(ev, "dataschema", "/relative", WEIR_CE_STRING, NULL);
    assert_int_equal(weir_ce_validate(ev, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "dataschema");
    weir_ce_remove(ev, "dataschema");

    weir_ce_set(ev, "source", "has space", WEIR_CE_STRING, NULL);
    assert_int_equal(weir_ce_validate(ev, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "source");

    weir_ce_set(ev, "source", "/s", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "specversion", "0.2", WEIR_CE_STRING, NULL);
    assert_int_equal(weir_ce_validate(ev, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "specversion");
    weir_ce_free(ev);
}

/* Whether ev validates with attr set to value. */
static bool valid_with(weir_event_t *ev, const char *attr, const char *value)
{
    weir_err_t err = {0};
    weir_ce_set(ev, attr, value, WEIR_CE_STRING, NULL);
    int rc = weir_ce_validate(ev, &err);
    if (rc != 0 && strcmp(err.attr, attr) != 0) {
        print_error("%s=%s: refused for %s\n", attr, value, err.attr);
        fail();
    }
    return rc == 0;
}

/* Checks that ev validates with attr set to each of values, or with none of them. */
static void all_valid_with(weir_event_t *ev, const char *attr, const char *const *values, size_t n,
                           bool valid)
{
    for (size_t i = 0; i < n; i++) {
        if (valid_with(ev, attr, values[i]) != valid) {
            print_error("%s %s %s\n", attr, values[i], valid ? "refused" : "accepted");
            fail();
        }
    }
}

/* source is an RFC 3986 URI reference and dataschema an absolute URI: their grammar, not only
 * their characters. */
static void test_uris(void **state)
{
    static const char *const refs[] = {"/s",
                                       "urn:event:1",
                                       "https://example.com/a/b?x=1&y=%20#frag",
                                       "//host:8080/p",
                                       "a/b:c",
                                       "mailto:a@b.example",
                                       "http://[::1]:8080/",
                                       "http://[2001:db8::7]/",
                                       "http://[v1.fe]/",
                                       "http://user:pw@h/",
                                       "?q",
                                       "#f",
                                       "./a",
                                       "http:///p",
                                       "/apis/v1/namespaces/ns/pingsources/p",
                                       "tag:example.com,2024:x"};
    static const char *const bad_refs[] = {
        "/a[b]",         "/a#b#c",     "1:abc",     "://x", "http://h:abc/", "http://[::1",
        "http://[::g]/", "http://[]/", "has space", "/%zz", "/a%2",          "http://h/a b",
        "http://a@b@c/", "x\\y",       "/a<b>",     "\"q\""};
    weir_event_t *ev = minimal("1.0");
    all_valid_with(ev, "source", refs, sizeof(refs) / sizeof(refs[0]), true);
    all_valid_with(ev, "source", bad_refs, sizeof(bad_refs) / sizeof(bad_refs[0]), false);
    weir_ce_set(ev, "source", "/s", WEIR_CE_STRING, NULL);

    assert_true(valid_with(ev, "dataschema", "https://example.com/schemas/v1?x=1"));
    assert_true(valid_with(ev, "dataschema", "urn:schema:1"));
    assert_false(valid_with(ev, "dataschema", "https://example.com/s#frag"));
    assert_false(valid_with(ev, "dataschema", "/relative"));
    weir_ce_free(ev);

    /* 0.3's schemaurl is a URI reference. */
    ev = minimal("0.3");
    assert_true(valid_with(ev, "schemaurl", "/relative#frag"));
    assert_false(valid_with(ev, "schemaurl", "/a#b#c"));
    weir_ce_free(ev);
}

/* datacontenttype is an RFC 7231 media type, parameters included. */
static void test_media_types(void **state)
{
    static const char *const good[] = {"text/plain",
                                       "text/plain; charset=utf-8",
                                       "text/plain;charset=\"utf-8\"",
                                       "application/json ; a=b ;c=d",
                                       "multipart/mixed; boundary=\"a b\\\"c\"",
                                       "application/vnd.x+json"};
    static const char *const bad[] = {"text/plain; ,,,\"\"garbage",
                                      "text/plain;",
                                      "text/plain; charset",
                                      "text/plain; =x",
                                      "text/plain; a=",
                                      "text/plain; a=\"open",
                                      "text",
                                      "/plain",
                                      "text/",
                                      "text/plain x",
                                      "text/plain; a=b c",
                                      "text/plain ",
                                      "text/plain; a=b ",
                                      " text/plain"};
    weir_event_t *ev = minimal("1.0");
    all_valid_with(ev, "datacontenttype", good, sizeof(good) / sizeof(good[0]), true);
    all_valid_with(ev, "datacontenttype", bad, sizeof(bad) / sizeof(bad[0]), false);
    weir_ce_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attributes_sorted_and_replaced),
        cmocka_unit_test(test_set_refuses),
        cmocka_unit_test(test_value_length),
        cmocka_unit_test(test_uris),
        cmocka_unit_test(test_media_types),
        cmocka_unit_test(test_clone_and_data),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
