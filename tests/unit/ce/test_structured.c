/* The JSON event format: structured mode, batches, cJSON, and encoding back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ce_test.h"

#define HEAD10 "\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\""
#define HEAD03 "\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\""

static void assert_data(const weir_event_t *ev, weir_ce_data_kind_t kind, const char *data,
                        size_t len)
{
    assert_int_equal(ev->data_kind, kind);
    assert_int_equal(ev->data_len, len);
    assert_memory_equal(ev->data, data, len);
}

static void test_minimal_v10(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD10 "}");
    assert_int_equal(ev->nattrs, 4);
    assert_string_equal(weir_ce_get(ev, "specversion"), "1.0");
    assert_string_equal(weir_ce_get(ev, "id"), "1");
    assert_string_equal(weir_ce_get(ev, "source"), "/s");
    assert_string_equal(weir_ce_get(ev, "type"), "t");
    assert_int_equal(ev->data_kind, WEIR_CE_DATA_NONE);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);
}

static void test_full_v10(void **state)
{
    weir_event_t *ev = ce_decode_ok(
        " {\n" HEAD10 ",\"time\":\"2024-01-02T03:04:05Z\",\"subject\":\"caf\xC3\xA9 \\\"q\\\"\","
        "\"dataschema\":\"https://x.example/s\",\"datacontenttype\":\"application/json\","
        "\"count\":-42,\"big\":2147483647,\"small\":-2147483648,\"ok\":true,\"no\":false,"
        "\"gone\":null,\"data\":{\"a\":1}}\n");
    assert_string_equal(weir_ce_get(ev, "subject"), "caf\xC3\xA9 \"q\"");
    assert_int_equal(weir_ce_attr(ev, "count")->type, WEIR_CE_INTEGER);
    assert_string_equal(weir_ce_get(ev, "count"), "-42");
    assert_string_equal(weir_ce_get(ev, "big"), "2147483647");
    assert_string_equal(weir_ce_get(ev, "small"), "-2147483648");
    assert_int_equal(weir_ce_attr(ev, "ok")->type, WEIR_CE_BOOLEAN);
    assert_string_equal(weir_ce_get(ev, "ok"), "true");
    assert_string_equal(weir_ce_get(ev, "no"), "false");
    assert_null(weir_ce_attr(ev, "gone"));
    assert_data(ev, WEIR_CE_DATA_JSON, "{\"a\":1}", 7);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);
}

static void test_minimal_v03(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD03 ",\"schemaurl\":\"/schema\",\"data\":[1,2]}");
    assert_string_equal(weir_ce_get(ev, "specversion"), "0.3");
    assert_string_equal(weir_ce_get(ev, "schemaurl"), "/schema");
    assert_data(ev, WEIR_CE_DATA_JSON, "[1,2]", 5);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);
}

static void test_data_kept_verbatim(void **state)
{
    static const char *const datas[] = {
        "1.0e10",
        "-0",
        "1E+2",
        "0.000",
        "\"caf\\u00e9 \\/ \xC3\xA9\"",
        "[ 1 ,\n\t2 ]",
        "{ \"b\" : 1,\"a\":{\"x\":[ ]} }",
        "true",
        "{\"s\":\"}]\\\"\\\\\"}",
        "123456789012345678901234567890",
        "\"\"",
    };
    for (size_t i = 0; i < sizeof(datas) / sizeof(datas[0]); i++) {
        char body[512];
        snprintf(body, sizeof(body), "{" HEAD10 ",\"data\" :  %s  \n,\"x\":1}", datas[i]);
        weir_event_t *ev = ce_decode_ok(body);
        assert_data(ev, WEIR_CE_DATA_JSON, datas[i], strlen(datas[i]));
        assert_string_equal(weir_ce_get(ev, "x"), "1");
        ce_assert_roundtrip(ev);
        weir_ce_free(ev);
    }
}

static void test_data_last_member(void **state)
{
    weir_event_t *ev = ce_decode_ok("{\"data\":{\"k\":[{}]}\t," HEAD10 "}");
    assert_data(ev, WEIR_CE_DATA_JSON, "{\"k\":[{}]}", 10);
    weir_ce_free(ev);
}

static void test_string_data_under_other_types_is_text(void **state)
{
    weir_event_t *ev = ce_decode_ok(
        "{" HEAD10 ",\"datacontenttype\":\"text/plain\",\"data\":\"a\\u0000b\\n\\u00e9\"}");
    assert_data(ev, WEIR_CE_DATA_TEXT, "a\0b\n\xC3\xA9", 6);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);

    /* Under any type that is not JSON a string stays one: the JSON format writes String data as
     * a string, and so does weir when it writes the event again. */
    ev = ce_decode_ok("{" HEAD10 ",\"datacontenttype\":\"application/xml\",\"data\":\"<a/>\"}");
    assert_data(ev, WEIR_CE_DATA_TEXT, "<a/>", 4);
    ce_assert_roundtrip(ev);
    weir_buf_t out = WEIR_BUF_INIT;
    weir_ce_encode_structured(ev, &out);
    assert_non_null(strstr(out.data, "\"data\":\"<a/>\""));
    weir_buf_free(&out);
    weir_ce_free(ev);
}

static void test_string_data_under_json_type_is_json(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD10 ",\"data\":\"hi\"}");
    assert_data(ev, WEIR_CE_DATA_JSON, "\"hi\"", 4);
    weir_ce_free(ev);
    ev = ce_decode_ok("{" HEAD10 ",\"datacontenttype\":\"application/x+json\",\"data\":\"hi\"}");
    assert_data(ev, WEIR_CE_DATA_JSON, "\"hi\"", 4);
    weir_ce_free(ev);
    ev = ce_decode_ok("{" HEAD10 ",\"datacontenttype\":\"model/json\",\"data\":\"hi\"}");
    assert_data(ev, WEIR_CE_DATA_JSON, "\"hi\"", 4);
    weir_ce_free(ev);
    /* Not a string: JSON whatever the type says. */
    ev = ce_decode_ok("{" HEAD10 ",\"datacontenttype\":\"text/plain\",\"data\":{\"a\":1}}");
    assert_data(ev, WEIR_CE_DATA_JSON, "{\"a\":1}", 7);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);
}

static void test_data_null_is_no_data(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD10 ",\"data\":null}");
    assert_int_equal(ev->data_kind, WEIR_CE_DATA_NONE);
    weir_ce_free(ev);
}

static void test_data_base64(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD10 ",\"data_base64\":\"AP8BaGk=\"}");
    assert_data(ev, WEIR_CE_DATA_BYTES, "\x00\xff\x01hi", 5);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);

    ev = ce_decode_ok("{" HEAD10 ",\"data_base64\":\"\"}");
    assert_int_equal(ev->data_kind, WEIR_CE_DATA_BYTES);
    assert_int_equal(ev->data_len, 0);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);

    ce_decode_fails("{" HEAD10 ",\"data_base64\":\"AP8\"}", WEIR_EINVAL, "data_base64");
    ce_decode_fails("{" HEAD10 ",\"subject\":\"a\\u0001b\"}", WEIR_EINVAL, "subject");
    ce_decode_fails("{" HEAD10 ",\"subject\":\"a\xC2\x85\"}", WEIR_EINVAL, "subject");
    ce_decode_fails("{" HEAD10 ",\"data_base64\":\"A P8=\"}", WEIR_EINVAL, "data_base64");
    ce_decode_fails("{" HEAD10 ",\"data_base64\":12}", WEIR_EINVAL, "data_base64");
    ce_decode_fails("{" HEAD10 ",\"data\":1,\"data_base64\":\"AA==\"}", WEIR_EINVAL, "data");
}

static void test_v03_base64_encoding(void **state)
{
    weir_event_t *ev =
        ce_decode_ok("{" HEAD03 ",\"datacontentencoding\":\"base64\",\"data\":\"AP8=\"}");
    assert_data(ev, WEIR_CE_DATA_BYTES, "\x00\xff", 2);
    assert_null(weir_ce_attr(ev, "datacontentencoding"));
    ce_assert_roundtrip(ev);

    weir_buf_t out = WEIR_BUF_INIT;
    weir_ce_encode_structured(ev, &out);
    assert_non_null(strstr(out.data, "\"datacontentencoding\":\"base64\",\"data\":\"AP8=\""));
    assert_null(strstr(out.data, "data_base64"));
    weir_buf_free(&out);
    weir_ce_free(ev);

    ce_decode_fails("{" HEAD03 ",\"datacontentencoding\":\"base64\",\"data\":{}}", WEIR_EINVAL,
                    "data");
    ce_decode_fails("{" HEAD03 ",\"datacontentencoding\":\"7bit\",\"data\":\"x\"}", WEIR_EINVAL,
                    "datacontentencoding");
    /* data_base64 is a 1.0 member; in 0.3 it is an attribute with a bad name. */
    ce_decode_fails("{" HEAD03 ",\"data_base64\":\"AA==\"}", WEIR_EINVAL, "data_base64");
}

static void test_bytes_encode_forms(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD10 ",\"datacontenttype\":\"application/json\"}");
    weir_buf_t out = WEIR_BUF_INIT;

    /* Bytes that are one JSON value under a JSON type go out as that value. */
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "{\"a\": 1.50}", 11);
    weir_ce_encode_structured(ev, &out);
    assert_non_null(strstr(out.data, ",\"data\":{\"a\": 1.50}}"));
    ce_assert_roundtrip(ev);

    /* Surrounding white space makes them not one bare value: base64. */
    weir_buf_reset(&out);
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, " 1", 2);
    weir_ce_encode_structured(ev, &out);
    assert_non_null(strstr(out.data, "\"data_base64\":\"IDE=\""));
    ce_assert_roundtrip(ev);

    /* Text under a text type goes out as a string. */
    weir_buf_reset(&out);
    weir_ce_set(ev, "datacontenttype", "text/plain; charset=utf-8", WEIR_CE_STRING, NULL);
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "l\xC3\xA9 \"1\"", 7);
    weir_ce_encode_structured(ev, &out);
    assert_non_null(strstr(out.data, "\"data\":\"l\xC3\xA9 \\\"1\\\"\""));
    ce_assert_roundtrip(ev);

    /* Bytes that are not UTF-8 under a text type: base64. */
    weir_buf_reset(&out);
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "\xFF", 1);
    weir_ce_encode_structured(ev, &out);
    assert_non_null(strstr(out.data, "\"data_base64\":\"/w==\""));
    ce_assert_roundtrip(ev);

    /* Text under a type that is not text: base64. */
    weir_buf_reset(&out);
    weir_ce_set(ev, "datacontenttype", "application/octet-stream", WEIR_CE_STRING, NULL);
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "hi", 2);
    weir_ce_encode_structured(ev, &out);
    assert_non_null(strstr(out.data, "\"data_base64\":\"aGk=\""));
    ce_assert_roundtrip(ev);

    /* No type: JSON is assumed, so JSON bytes go out as JSON, others as base64. */
    weir_ce_remove(ev, "datacontenttype");
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "[true]", 6);
    ce_assert_roundtrip(ev);
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "hi", 2);
    ce_assert_roundtrip(ev);
    /* "data": null would read as no data. */
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "null", 4);
    ce_assert_roundtrip(ev);
    weir_buf_free(&out);
    weir_ce_free(ev);
}

static void test_encode_order_and_types(void **state)
{
    weir_event_t *ev = ce_decode_ok("{\"zeta\":\"z\",\"n\":7,\"b\":false,\"type\":\"t\","
                                    "\"source\":\"/s\",\"id\":\"1\",\"specversion\":\"1.0\","
                                    "\"data\":1.0e10}");
    weir_buf_t out = WEIR_BUF_INIT;
    weir_ce_encode_structured(ev, &out);
    assert_string_equal(out.data,
                        "{" HEAD10 ",\"b\":false,\"n\":7,\"zeta\":\"z\",\"data\":1.0e10}");
    weir_buf_free(&out);
    weir_ce_free(ev);
}

static void test_bad_attribute_types(void **state)
{
    ce_decode_fails("{" HEAD10 ",\"x\":{}}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":[1]}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":1.5}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":1.0}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":1e3}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":2147483648}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":-2147483649}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":99999999999999999999999}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"x\":\"a\\u0000b\"}", WEIR_EINVAL, "x");
    ce_decode_fails("{\"specversion\":1,\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
                    WEIR_EINVAL, "specversion");
    ce_decode_fails("{\"specversion\":\"1.0\",\"id\":7,\"source\":\"/s\",\"type\":\"t\"}",
                    WEIR_EINVAL, "id");
    ce_decode_fails("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":null,\"type\":\"t\"}",
                    WEIR_EINVAL, "source");
    ce_decode_fails("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":true}",
                    WEIR_EINVAL, "type");
    ce_decode_fails("{" HEAD10 ",\"time\":5}", WEIR_EINVAL, "time");
    ce_decode_fails("{" HEAD10 ",\"time\":\"yesterday\"}", WEIR_EINVAL, "time");
    ce_decode_fails("{" HEAD10 ",\"datacontenttype\":true}", WEIR_EINVAL, "datacontenttype");
    /* It would travel as Content-Type, which cannot hold control characters. */
    ce_decode_fails("{" HEAD10 ",\"datacontenttype\":\"text/plain; a=\\\"\\r\\n\\\"\"}",
                    WEIR_EINVAL, "datacontenttype");
}

static void test_missing_required(void **state)
{
    ce_decode_fails("{\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}", WEIR_EINVAL, "specversion");
    ce_decode_fails("{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}", WEIR_EINVAL,
                    "id");
    ce_decode_fails("{\"specversion\":\"1.0\",\"id\":\"1\",\"type\":\"t\"}", WEIR_EINVAL, "source");
    ce_decode_fails("{\"specversion\":\"0.3\",\"id\":\"1\",\"source\":\"/s\"}", WEIR_EINVAL,
                    "type");
    ce_decode_fails("{\"specversion\":\"1.0\",\"id\":\"\",\"source\":\"/s\",\"type\":\"t\"}",
                    WEIR_EINVAL, "id");
    ce_decode_fails("{\"specversion\":\"2.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}",
                    WEIR_EINVAL, "specversion");
}

static void test_bad_names(void **state)
{
    ce_decode_fails("{" HEAD10 ",\"Foo\":\"x\"}", WEIR_EINVAL, "Foo");
    ce_decode_fails("{" HEAD10 ",\"my-ext.v2\":\"x\"}", WEIR_EINVAL, "my-ext.v2");
    ce_decode_fails("{" HEAD10 ",\"my_ext\":\"x\"}", WEIR_EINVAL, "my_ext");
    ce_decode_fails("{" HEAD10 ",\"\":\"x\"}", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 ",\"a\\u0000\":\"x\"}", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 ",\"\\\"><\":\"x\"}", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 ",\"a23456789012345678901234567890123456789012345678901234567890123"
                    "45\":\"x\"}",
                    WEIR_EINVAL, "");
}

static void test_duplicates(void **state)
{
    ce_decode_fails("{" HEAD10 ",\"id\":\"2\"}", WEIR_EINVAL, "id");
    ce_decode_fails("{" HEAD10 ",\"x\":null,\"x\":null}", WEIR_EINVAL, "x");
    ce_decode_fails("{" HEAD10 ",\"data\":1,\"data\":2}", WEIR_EINVAL, "data");
    /* The same name spelled with an escape is the same name. */
    ce_decode_fails("{" HEAD10 ",\"\\u0069d\":\"2\"}", WEIR_EINVAL, "id");
    /* Names inside data are data's business. */
    weir_event_t *ev = ce_decode_ok("{" HEAD10 ",\"data\":{\"id\":1,\"id\":2}}");
    weir_ce_free(ev);
}

static void test_whole_body_problems(void **state)
{
    ce_decode_fails("", WEIR_EINVAL, "");
    ce_decode_fails("[]", WEIR_EINVAL, "");
    ce_decode_fails("\"x\"", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 "", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 "}{}", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 ",\"data\":01}", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 ",\"subject\":\"\xFF\"}", WEIR_EINVAL, "");
    ce_decode_fails("{" HEAD10 ",\"data\":\"\xC3\x28\"}", WEIR_EINVAL, "");
    ce_decode_fails("\xEF\xBB\xBF{" HEAD10 "}", WEIR_EINVAL, "");
}

static char *deep_event(int depth)
{
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_puts(&b, "{" HEAD10 ",\"data\":");
    for (int i = 1; i < depth; i++) {
        weir_buf_putc(&b, '[');
    }
    for (int i = 1; i < depth; i++) {
        weir_buf_putc(&b, ']');
    }
    weir_buf_putc(&b, '}');
    return weir_buf_take(&b, NULL);
}

static void test_depth(void **state)
{
    char *ok = deep_event(WEIR_CE_JSON_DEPTH_MAX);
    char *deep = deep_event(WEIR_CE_JSON_DEPTH_MAX + 1);
    weir_event_t *ev = ce_decode_ok(ok);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);
    ce_decode_fails(deep, WEIR_EINVAL, "");
    weir_free(ok);
    weir_free(deep);
}

static void test_too_many_attributes(void **state)
{
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_puts(&b, "{" HEAD10);
    for (int i = 0; i < WEIR_CE_ATTRS_MAX - 4; i++) {
        weir_buf_printf(&b, ",\"x%d\":%d", i, i);
    }
    weir_buf_puts(&b, ",\"data\":null}");
    weir_event_t *ev = ce_decode_ok(b.data);
    assert_int_equal(ev->nattrs, WEIR_CE_ATTRS_MAX);
    weir_ce_free(ev);

    b.len -= strlen(",\"data\":null}");
    weir_buf_puts(&b, ",\"one\":1,\"two\":2,\"three\":3,\"four\":4}");
    ce_decode_fails(b.data, WEIR_EINVAL, "");
    weir_buf_free(&b);
}

static void test_error_messages_are_safe(void **state)
{
    static const char *const bodies[] = {
        "{\"\xC3\xA9\xFF\":1}",
        "{" HEAD10 ",\"\\u00e9\\n\":\"x\"}",
        "{" HEAD10 ",\"time\":\"\\u0000\\n\\u00ff\"}",
        "{" HEAD10 ",\"subject\":\"",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        weir_event_t *ev = NULL;
        weir_err_t err = {0};
        assert_int_equal(weir_ce_decode_structured(bodies[i], strlen(bodies[i]), &ev, &err),
                         WEIR_EINVAL);
        for (const char *p = err.msg; *p; p++) {
            assert_true(*p >= 0x20 && *p < 0x7F);
        }
        for (const char *p = err.attr; *p; p++) {
            assert_true(*p >= 0x20 && *p < 0x7F);
        }
    }
}

/* An event weir stored reads back whatever this version's checks would say of it, as long as it
 * has what every event has. */
static void test_decode_stored(void **state)
{
    static const char *const older[] = {
        "{" HEAD10 ",\"datacontenttype\":\"text/plain \",\"data\":\"x\"}",
        "{" HEAD10 ",\"dataschema\":\"https://example.com/s#frag\"}",
        "{" HEAD10 ",\"subject\":\"a\\ufdd0b\"}",
    };
    for (size_t i = 0; i < sizeof(older) / sizeof(older[0]); i++) {
        weir_event_t *ev = NULL;
        weir_err_t err = {0};
        assert_int_equal(weir_ce_decode_structured(older[i], strlen(older[i]), &ev, &err),
                         WEIR_EINVAL);
        assert_int_equal(weir_ce_decode_stored(older[i], strlen(older[i]), &ev, &err), 0);
        weir_ce_free(ev);
    }
    weir_event_t *ev = NULL;
    weir_err_t err = {0};
    const char *no_id = "{\"specversion\":\"1.0\",\"source\":\"/s\",\"type\":\"t\"}";
    assert_int_equal(weir_ce_decode_stored(no_id, strlen(no_id), &ev, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "id");
    assert_int_equal(weir_ce_decode_stored("{", 1, &ev, &err), WEIR_EINVAL);
    assert_null(ev);
}

/* ---- batches --------------------------------------------------------------------------- */

static void test_batch(void **state)
{
    const char *body = " [ {" HEAD10 ",\"data\":[1, 2]} ,\n{" HEAD10 "} ] ";
    weir_event_t **evs;
    size_t n;
    weir_err_t err = {0};
    assert_int_equal(weir_ce_decode_batch(body, strlen(body), &evs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_data(evs[0], WEIR_CE_DATA_JSON, "[1, 2]", 6);
    assert_int_equal(evs[1]->data_kind, WEIR_CE_DATA_NONE);
    weir_ce_free_all(evs, n);

    body = "[{" HEAD03 "},{" HEAD03 "}]";
    assert_int_equal(weir_ce_decode_batch(body, strlen(body), &evs, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(weir_ce_get(evs[1], "specversion"), "0.3");
    weir_ce_free_all(evs, n);

    assert_int_equal(weir_ce_decode_batch("[]", 2, &evs, &n, &err), 0);
    assert_int_equal(n, 0);
    weir_ce_free_all(evs, n);
}

static void test_batch_errors(void **state)
{
    weir_event_t **evs;
    size_t n;
    weir_err_t err = {0};
    const char *body = "[{" HEAD10 "},{" HEAD10 "},{" HEAD10 ",\"time\":1}]";
    assert_int_equal(weir_ce_decode_batch(body, strlen(body), &evs, &n, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "time");
    assert_non_null(strstr(err.msg, "element 2"));
    assert_null(evs);
    assert_int_equal(n, 0);

    /* The HTTP binding: every event of a batch has the same specversion. */
    body = "[{" HEAD10 "},{\"specversion\":\"0.3\",\"id\":\"2\",\"source\":\"/s\","
           "\"type\":\"t\"}]";
    assert_int_equal(weir_ce_decode_batch(body, strlen(body), &evs, &n, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "specversion");
    assert_string_equal(err.msg, "batch element 1: is not that of element 0 (1.0)");
    assert_null(evs);

    body = "[{" HEAD10 "}, 3]";
    assert_int_equal(weir_ce_decode_batch(body, strlen(body), &evs, &n, &err), WEIR_EINVAL);
    assert_non_null(strstr(err.msg, "element 1"));

    body = "{" HEAD10 "}";
    assert_int_equal(weir_ce_decode_batch(body, strlen(body), &evs, &n, &err), WEIR_EINVAL);
    body = "[{" HEAD10 "},]";
    assert_int_equal(weir_ce_decode_batch(body, strlen(body), &evs, &n, &err), WEIR_EINVAL);
    assert_int_equal(weir_ce_decode_batch("[\xFF]", 3, &evs, &n, &err), WEIR_EINVAL);
    assert_int_equal(weir_ce_decode_batch(NULL, 0, &evs, &n, &err), WEIR_EINVAL);
}

static void test_batch_limit(void **state)
{
    weir_buf_t b = WEIR_BUF_INIT;
    weir_event_t **evs;
    size_t n;
    weir_err_t err = {0};
    weir_buf_putc(&b, '[');
    for (int i = 0; i < WEIR_CE_BATCH_MAX; i++) {
        weir_buf_printf(&b, "%s{" HEAD10 "}", i ? "," : "");
    }
    weir_buf_putc(&b, ']');
    assert_int_equal(weir_ce_decode_batch(b.data, b.len, &evs, &n, &err), 0);
    assert_int_equal(n, WEIR_CE_BATCH_MAX);
    weir_ce_free_all(evs, n);

    b.len--;
    weir_buf_puts(&b, ",{}]");
    assert_int_equal(weir_ce_decode_batch(b.data, b.len, &evs, &n, &err), WEIR_ETOOBIG);
    weir_buf_free(&b);
}

/* ---- cJSON ------------------------------------------------------------------------------ */

static void test_to_and_from_cjson(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD10 ",\"n\":-3,\"ok\":true,\"data\":{\"a\":[1,2]}}");
    cJSON *obj = weir_ce_to_cjson(ev);
    assert_string_equal(cJSON_GetObjectItem(obj, "id")->valuestring, "1");
    assert_int_equal(cJSON_GetObjectItem(obj, "n")->valueint, -3);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(obj, "ok")));
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(obj, "data")));

    weir_event_t *back = NULL;
    assert_int_equal(weir_ce_from_cjson(obj, &back, NULL), 0);
    assert_true(ce_equal(ev, back));
    weir_ce_free(back);

    cJSON_AddNumberToObject(obj, "f", 1.5);
    weir_err_t err = {0};
    assert_int_equal(weir_ce_from_cjson(obj, &back, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "f");
    cJSON_Delete(obj);
    weir_ce_free(ev);
}

static void test_cjson_bytes(void **state)
{
    weir_event_t *ev = ce_decode_ok("{" HEAD10 ",\"data_base64\":\"AP8=\"}");
    cJSON *obj = weir_ce_to_cjson(ev);
    assert_string_equal(cJSON_GetObjectItem(obj, "data_base64")->valuestring, "AP8=");
    weir_event_t *back = NULL;
    assert_int_equal(weir_ce_from_cjson(obj, &back, NULL), 0);
    assert_true(ce_equal(ev, back));
    weir_ce_free(back);
    cJSON_Delete(obj);
    weir_ce_free(ev);

    /* cJSON checks no UTF-8; data it would print must still be strict JSON. */
    obj = cJSON_Parse("{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}");
    cJSON_AddStringToObject(obj, "data", "\xFF");
    weir_err_t err = {0};
    assert_int_equal(weir_ce_from_cjson(obj, &back, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, "data");
    cJSON_Delete(obj);

    cJSON *arr = cJSON_CreateArray();
    assert_int_equal(weir_ce_from_cjson(arr, &back, NULL), WEIR_EINVAL);
    cJSON_Delete(arr);
}

static void test_data_json(void **state)
{
    bool b64 = true;
    weir_event_t *ev = ce_decode_ok("{" HEAD10 "}");
    char *s = weir_ce_data_json(ev, &b64);
    assert_string_equal(s, "null");
    assert_false(b64);
    weir_free(s);

    weir_ce_set_data(ev, WEIR_CE_DATA_JSON, "{ \"a\" : 1 }", 11);
    s = weir_ce_data_json(ev, &b64);
    assert_string_equal(s, "{ \"a\" : 1 }");
    weir_free(s);

    weir_ce_set(ev, "datacontenttype", "text/plain", WEIR_CE_STRING, NULL);
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "a\"b", 3);
    s = weir_ce_data_json(ev, &b64);
    assert_string_equal(s, "\"a\\\"b\"");
    assert_false(b64);
    weir_free(s);

    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, "\xFF\x00", 2);
    s = weir_ce_data_json(ev, &b64);
    assert_string_equal(s, "\"/wA=\"");
    assert_true(b64);
    weir_free(s);
    weir_ce_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal_v10),
        cmocka_unit_test(test_full_v10),
        cmocka_unit_test(test_minimal_v03),
        cmocka_unit_test(test_data_kept_verbatim),
        cmocka_unit_test(test_data_last_member),
        cmocka_unit_test(test_string_data_under_other_types_is_text),
        cmocka_unit_test(test_string_data_under_json_type_is_json),
        cmocka_unit_test(test_data_null_is_no_data),
        cmocka_unit_test(test_data_base64),
        cmocka_unit_test(test_v03_base64_encoding),
        cmocka_unit_test(test_bytes_encode_forms),
        cmocka_unit_test(test_encode_order_and_types),
        cmocka_unit_test(test_bad_attribute_types),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_bad_names),
        cmocka_unit_test(test_duplicates),
        cmocka_unit_test(test_whole_body_problems),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_too_many_attributes),
        cmocka_unit_test(test_error_messages_are_safe),
        cmocka_unit_test(test_decode_stored),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_batch_errors),
        cmocka_unit_test(test_batch_limit),
        cmocka_unit_test(test_to_and_from_cjson),
        cmocka_unit_test(test_cjson_bytes),
        cmocka_unit_test(test_data_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
