/* What filters do to events: keep, drop, change; the lazy data; nslog; compile errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "fixture.h"

static int setup(void **state)
{
    *state = weir_script_pool_new(NULL);
    return 0;
}

static int teardown(void **state)
{
    weir_script_pool_free(*state);
    return 0;
}

static void renames_the_source(void **state)
{
    weir_event_t *in = fx_typed("order.created");
    weir_event_t *out = NULL;
    weir_err_t err;
    assert_int_equal(
        fx_run(*state, "event.source = '/renamed'; return event;", in, &out, NULL, &err), 0);
    assert_non_null(out);
    assert_string_equal(weir_ce_get(out, "source"), "/renamed");
    assert_string_equal(weir_ce_get(out, "type"), "order.created");
    assert_string_equal(weir_ce_get(in, "source"), "/src");
    weir_ce_free(out);
    weir_ce_free(in);
}

static void drops_by_type(void **state)
{
    const char *src = "if (event.type === 'noise') return null;\n"
                      "if (event.type === 'quiet') return;\n"
                      "if (event.type === 'silent') return undefined;\n"
                      "return event;";
    const char *dropped[] = {"noise", "quiet", "silent"};
    for (size_t i = 0; i < 3; i++) {
        weir_event_t *in = fx_typed(dropped[i]);
        weir_event_t *out = (weir_event_t *)1;
        weir_err_t err;
        assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), 0);
        assert_null(out);
        weir_ce_free(in);
    }

    weir_event_t *in = fx_typed("signal");
    weir_event_t *out = NULL;
    weir_err_t err;
    assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), 0);
    assert_non_null(out);
    weir_ce_free(out);
    weir_ce_free(in);
}

static void no_return_drops(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = (weir_event_t *)1;
    weir_err_t err;
    assert_int_equal(fx_run(*state, "event.type = 'x';", in, &out, NULL, &err), 0);
    assert_null(out);
    weir_ce_free(in);
}

static void enriches_with_extensions(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    const char *src = "event.region = 'eu-' + event.type; event.attempt = 3;\n"
                      "event.urgent = true; return event;";
    assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), 0);
    assert_string_equal(weir_ce_get(out, "region"), "eu-t");
    assert_int_equal(weir_ce_attr(out, "region")->type, WEIR_CE_STRING);
    assert_string_equal(weir_ce_get(out, "attempt"), "3");
    assert_int_equal(weir_ce_attr(out, "attempt")->type, WEIR_CE_INTEGER);
    assert_string_equal(weir_ce_get(out, "urgent"), "true");
    assert_int_equal(weir_ce_attr(out, "urgent")->type, WEIR_CE_BOOLEAN);
    weir_ce_free(out);
    weir_ce_free(in);
}

static void sees_typed_extensions(void **state)
{
    weir_event_t *in = fx_event("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\","
                                "\"type\":\"t\",\"count\":7,\"flag\":false}");
    weir_event_t *out = NULL;
    weir_err_t err;
    const char *src = "if (event.count !== 7 || event.flag !== false) throw new Error('types');\n"
                      "if ('data' in event) throw new Error('no data expected');\n"
                      "event.count++; return event;";
    assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), 0);
    assert_string_equal(weir_ce_get(out, "count"), "8");
    assert_int_equal(out->data_kind, WEIR_CE_DATA_NONE);
    weir_ce_free(out);
    weir_ce_free(in);
}

static void changes_data(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    assert_int_equal(fx_run(*state, "event.data.count += 41; delete event.data.pad; return event;",
                            in, &out, NULL, &err),
                     0);
    assert_int_equal(out->data_kind, WEIR_CE_DATA_JSON);
    assert_string_equal((const char *)out->data, "{\"count\":42}");
    weir_ce_free(out);
    weir_ce_free(in);
}

static void replaces_and_removes_data(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    assert_int_equal(fx_run(*state, "event.data = [1, 'two']; return event;", in, &out, NULL, &err),
                     0);
    assert_string_equal((const char *)out->data, "[1,\"two\"]");
    weir_ce_free(out);

    assert_int_equal(fx_run(*state, "event.data = undefined; return event;", in, &out, NULL, &err),
                     0);
    assert_int_equal(out->data_kind, WEIR_CE_DATA_NONE);
    weir_ce_free(out);
    weir_ce_free(in);
}

static void returns_a_new_event(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    const char *src = "return {specversion: '1.0', id: 'new-' + event.id, source: '/filter',\n"
                      "        type: 'derived', data: {from: event.data.count}};";
    assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), 0);
    assert_string_equal(weir_ce_get(out, "id"), "new-e-1");
    assert_string_equal((const char *)out->data, "{\"from\":1}");
    weir_ce_free(out);
    weir_ce_free(in);
}

static void text_data_is_a_string(void **state)
{
    weir_event_t *in = fx_bytes("hello, world", 12, "text/plain");
    weir_event_t *out = NULL;
    weir_err_t err;
    assert_int_equal(fx_run(*state, "event.data = event.data.toUpperCase(); return event;", in,
                            &out, NULL, &err),
                     0);
    assert_int_equal(out->data_kind, WEIR_CE_DATA_TEXT);
    assert_int_equal(out->data_len, 12);
    assert_memory_equal(out->data, "HELLO, WORLD", 12);
    weir_ce_free(out);
    weir_ce_free(in);
}

static void binary_data_is_base64(void **state)
{
    const unsigned char bytes[] = {0x00, 0xff, 0xfe, 0x80, 0x01};
    weir_event_t *in = fx_bytes(bytes, sizeof(bytes), "application/octet-stream");
    weir_event_t *out = NULL;
    weir_err_t err;
    const char *src = "if ('data' in event) throw new Error('data');\n"
                      "if (event.data_base64 !== 'AP/+gAE=') throw new Error(event.data_base64);\n"
                      "event.data_base64 = 'AQID'; return event;";
    assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), 0);
    assert_int_equal(out->data_kind, WEIR_CE_DATA_BYTES);
    assert_int_equal(out->data_len, 3);
    assert_memory_equal(out->data, "\x01\x02\x03", 3);
    weir_ce_free(out);
    weir_ce_free(in);
}

/* The proof of laziness: the engine counts the data it decodes into JavaScript. */
static void attribute_only_filter_does_not_decode_data(void **state)
{
    const unsigned char bytes[] = {0x00, 0xff, 0xfe, 0x80, 0x01, 0x20};
    weir_event_t *events[] = {fx_typed("order"), fx_bytes(bytes, sizeof(bytes), NULL),
                              fx_bytes("{ \"spaced\" : 1 }", 16, "application/json")};
    for (size_t i = 0; i < 3; i++) {
        weir_event_t *out = NULL;
        weir_err_t err;
        uint64_t before = weir_script_data_decodes();
        assert_int_equal(fx_run(*state,
                                "if (event.type.indexOf('x') >= 0) return null;\n"
                                "event.seen = true; return event;",
                                events[i], &out, NULL, &err),
                         0);
        assert_int_equal(weir_script_data_decodes(), before);
        assert_int_equal(out->data_kind, events[i]->data_kind);
        assert_int_equal(out->data_len, events[i]->data_len);
        assert_memory_equal(out->data, events[i]->data, events[i]->data_len);
        weir_ce_free(out);

        assert_int_equal(fx_run(*state, "var d = event.data || event.data_base64; return event;",
                                events[i], &out, NULL, &err),
                         0);
        assert_int_equal(weir_script_data_decodes(), before + 1);
        weir_ce_free(out);
        weir_ce_free(events[i]);
    }
}

static void nslog_reaches_the_callback(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    fx_log_t log = {{0}, 0};
    const char *src = "nslog('seen', event.type, 42, {a: [1]}, null);\n"
                      "nslog('x'.repeat(5000));\n"
                      "nslog();\n"
                      "return event;";
    assert_int_equal(fx_run(*state, src, in, &out, &log, &err), 0);
    assert_int_equal(log.lines, 3);
    assert_memory_equal(log.text, "seen t 42 {\"a\":[1]} null\nxxxx", 29);
    assert_int_equal(strlen(log.text), 25 + WEIR_SCRIPT_LOG_LINE_MAX + 1);
    weir_ce_free(out);

    /* Without a callback nslog does nothing. */
    assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), 0);
    weir_ce_free(out);
    weir_ce_free(in);
}

static void nslog_lines_are_utf8(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    fx_log_t log = {{0}, 0};
    assert_int_equal(
        fx_run(*state, "nslog('caf\\u00e9', '\\ud800'); return event;", in, &out, &log, &err), 0);
    assert_true(weir_utf8_valid(log.text, strlen(log.text)));
    assert_memory_equal(log.text, "caf\xc3\xa9 ", 6);
    weir_ce_free(out);
    weir_ce_free(in);
}

/* Duktape keeps escaped surrogate pairs as CESU-8; what leaves the engine is UTF-8. */
static void non_bmp_text_comes_out_as_utf8(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    fx_log_t log = {{0}, 0};
    const char *src = "event.subject = '\\ud83d\\ude00 \xf0\x9f\x98\x80';\n"
                      "event.data = {lone: '\\udc00'};\n"
                      "nslog(event.subject); return event;";
    assert_int_equal(fx_run(*state, src, in, &out, &log, &err), 0);
    assert_string_equal(weir_ce_get(out, "subject"), "\xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
    assert_string_equal((const char *)out->data, "{\"lone\":\"\xef\xbf\xbd\"}");
    assert_string_equal(log.text, "\xf0\x9f\x98\x80 \xf0\x9f\x98\x80");
    weir_ce_free(out);
    weir_ce_free(in);
}

static void compile_errors_name_the_line(void **state)
{
    weir_script_t *script = NULL;
    weir_err_t err;
    const char *src = "var a = 1;\nvar b = 2;\nvar = 3;\nreturn event;";
    assert_int_equal(weir_script_compile(src, strlen(src), &script, &err), WEIR_EINVAL);
    assert_null(script);
    assert_non_null(strstr(err.msg, "line 3: "));
    assert_null(strstr(err.msg, "(line"));

    const char *open = "if (true) {\n  return event;\n";
    assert_int_equal(weir_script_compile(open, strlen(open), &script, &err), WEIR_EINVAL);
    assert_non_null(strstr(err.msg, "line "));

    /* What follows a brace that closes the wrapping function early is parsed all the same. */
    const char *escape = "return event; } junk(";
    assert_int_equal(weir_script_compile(escape, strlen(escape), &script, &err), WEIR_EINVAL);

    const char *bad_utf8 = "return '\xff';";
    assert_int_equal(weir_script_compile(bad_utf8, strlen(bad_utf8), &script, &err), WEIR_EINVAL);

    char *huge = weir_malloc(WEIR_SCRIPT_SRC_MAX + 2);
    memset(huge, ' ', WEIR_SCRIPT_SRC_MAX + 1);
    huge[WEIR_SCRIPT_SRC_MAX + 1] = '\0';
    assert_int_equal(weir_script_compile(huge, strlen(huge), &script, &err), WEIR_ETOOBIG);
    weir_free(huge);

    /* A short body that compiling blows up: a regexp's quantified group is copied as many times
     * as it repeats, and this group holds a class of 150 ranges. */
    char big[4096] = "var r = /(?:(?:[";
    for (int i = 0; i < 150; i++) {
        size_t used = strlen(big);
        snprintf(big + used, sizeof(big) - used, "\\u%04x-\\u%04x", 0x100 + 4 * i, 0x101 + 4 * i);
    }
    strcat(big, "]|x){1000}){100}/;\nreturn event;");
    assert_int_equal(weir_script_compile(big, strlen(big), &script, &err), WEIR_ETOOBIG);
    assert_null(script);
    assert_string_equal(err.msg, "the filter is too large to compile: it needs more than 64 MiB");

    /* A trailing line comment does not swallow the closing brace. */
    const char *comment = "return event; // done";
    assert_int_equal(weir_script_compile(comment, strlen(comment), &script, &err), 0);
    weir_script_unref(script);
}

static void runtime_errors_name_the_line(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    const char *src = "var x = 1;\n\nthrow new Error('no such customer: ' + event.id);";
    assert_int_equal(fx_run(*state, src, in, &out, NULL, &err), WEIR_ESCRIPT);
    assert_null(out);
    assert_string_equal(err.msg, "filter threw at line 3: Error: no such customer: e-1");

    assert_int_equal(fx_run(*state, "throw 'plain';", in, &out, NULL, &err), WEIR_ESCRIPT);
    assert_string_equal(err.msg, "filter threw: plain");

    assert_int_equal(fx_run(*state, "return event.nope.deeper;", in, &out, NULL, &err),
                     WEIR_ESCRIPT);
    assert_non_null(strstr(err.msg, "TypeError"));
    weir_ce_free(in);
}

static void returns_that_are_not_events(void **state)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    struct {
        const char *src;
        const char *msg;
    } cases[] = {
        {"return 42;", "filter returned a number, not an event"},
        {"return 'event';", "filter returned a string, not an event"},
        {"return [event];", "filter returned an array, not an event"},
        {"return function () {};", "filter returned a function, not an event"},
        {"return {};", "filter returned an invalid event: "},
        {"event.id = ''; return event;", "filter returned an invalid event: "},
        {"event.count = 1.5; return event;", "filter returned an invalid event: "},
        {"event.Bad = 1; return event;", "filter returned an invalid event: "},
        {"var o = {}; o.self = o; return o;", "filter threw: TypeError: cyclic input"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(fx_run(*state, cases[i].src, in, &out, NULL, &err), WEIR_ESCRIPT);
        assert_null(out);
        if (strncmp(err.msg, cases[i].msg, strlen(cases[i].msg)) != 0) {
            fail_msg("%s: got \"%s\"", cases[i].src, err.msg);
        }
    }
    fx_still_works(*state);
    weir_ce_free(in);
}

static void scripts_are_shared_and_cached(void **state)
{
    weir_script_t *a = fx_compile("event.tag = 'a'; return event;");
    weir_script_t *b = fx_compile("event.tag = 'b'; return event;");
    weir_event_t *in = fx_typed("t");
    for (int i = 0; i < 50; i++) {
        weir_script_t *s = i % 2 ? a : b;
        weir_event_t *out = NULL;
        weir_err_t err;
        assert_int_equal(weir_script_run(*state, s, in, &out, NULL, NULL, &err), 0);
        assert_string_equal(weir_ce_get(out, "tag"), i % 2 ? "a" : "b");
        weir_ce_free(out);
    }
    weir_script_t *again = weir_script_ref(a);
    weir_script_unref(a);
    weir_script_unref(again);
    weir_script_unref(b);
    weir_ce_free(in);
}

static void spec_03_base64(void **state)
{
    weir_event_t *in = fx_event("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\","
                                "\"type\":\"t\",\"datacontentencoding\":\"base64\","
                                "\"data\":\"AP8=\"}");
    weir_event_t *out = NULL;
    weir_err_t err;
    assert_int_equal(fx_run(*state, "event.x = 1; return event;", in, &out, NULL, &err), 0);
    assert_int_equal(out->data_len, 2);
    assert_memory_equal(out->data, "\x00\xff", 2);
    weir_ce_free(out);

    assert_int_equal(fx_run(*state, "if (event.data !== 'AP8=') throw event.data; return event;",
                            in, &out, NULL, &err),
                     0);
    assert_memory_equal(out->data, "\x00\xff", 2);
    weir_ce_free(out);
    weir_ce_free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(renames_the_source, setup, teardown),
        cmocka_unit_test_setup_teardown(drops_by_type, setup, teardown),
        cmocka_unit_test_setup_teardown(no_return_drops, setup, teardown),
        cmocka_unit_test_setup_teardown(enriches_with_extensions, setup, teardown),
        cmocka_unit_test_setup_teardown(sees_typed_extensions, setup, teardown),
        cmocka_unit_test_setup_teardown(changes_data, setup, teardown),
        cmocka_unit_test_setup_teardown(replaces_and_removes_data, setup, teardown),
        cmocka_unit_test_setup_teardown(returns_a_new_event, setup, teardown),
        cmocka_unit_test_setup_teardown(text_data_is_a_string, setup, teardown),
        cmocka_unit_test_setup_teardown(binary_data_is_base64, setup, teardown),
        cmocka_unit_test_setup_teardown(attribute_only_filter_does_not_decode_data, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(nslog_reaches_the_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(nslog_lines_are_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(non_bmp_text_comes_out_as_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(compile_errors_name_the_line, setup, teardown),
        cmocka_unit_test_setup_teardown(runtime_errors_name_the_line, setup, teardown),
        cmocka_unit_test_setup_teardown(returns_that_are_not_events, setup, teardown),
        cmocka_unit_test_setup_teardown(scripts_are_shared_and_cached, setup, teardown),
        cmocka_unit_test_setup_teardown(spec_03_base64, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
