/* The HTTP binding: percent-encoding, binary mode both ways, mode detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ce_test.h"

#define NHEADERS(h) (sizeof(h) / sizeof((h)[0]))

static char *decode_ok(const char *in)
{
    char *out = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_percent_decode(in, &out, &err);
    if (rc != 0) {
        print_error("percent-decoding \"%s\" failed: %s\n", in, err.msg);
    }
    assert_int_equal(rc, 0);
    assert_non_null(out);
    return out;
}

static void test_percent_decode(void **state)
{
    static const char *const cases[][2] = {
        {"100% caf\xC3\xA9", "100% caf\xC3\xA9"},
        {"%2", "%2"},
        {"a%", "a%"},
        {"%ZZ", "%ZZ"},
        {"%C3%A9", "\xC3\xA9"},
        {"%c3%a9", "\xC3\xA9"},
        {"%25", "%"},
        {"%2525", "%25"},
        {"%20%22", " \""},
        {"", ""},
        {"%%41", "%A"},
        {"%4", "%4"},
        {"%G1%41", "%G1A"},
    };
    for (size_t i = 0; i < NHEADERS(cases); i++) {
        char *out = decode_ok(cases[i][0]);
        assert_string_equal(out, cases[i][1]);
        weir_free(out);
    }
}

static void test_percent_decode_refuses(void **state)
{
    static const char *const bad[] = {"%FF", "a%C3", "%C3%28", "%ED%A0%80", "\xFF", "a%00b"};
    for (size_t i = 0; i < NHEADERS(bad); i++) {
        char *out = (char *)1;
        weir_err_t err = {0};
        assert_int_equal(weir_ce_percent_decode(bad[i], &out, &err), WEIR_EINVAL);
        assert_null(out);
        assert_true(err.msg[0] != '\0');
    }
}

static void test_percent_encode(void **state)
{
    weir_buf_t out = WEIR_BUF_INIT;
    weir_ce_percent_encode("100% caf\xC3\xA9 \"x\"\t~!", &out);
    assert_string_equal(out.data, "100%25%20caf%C3%A9%20%22x%22%09~!");
    weir_buf_free(&out);

    /* Encoding then decoding gives back the input. */
    const char *s = "a%b%25 %zz\x7F\x01\xE2\x82\xAC";
    weir_ce_percent_encode(s, &out);
    char *back = decode_ok(out.data);
    assert_string_equal(back, s);
    weir_free(back);
    weir_buf_free(&out);
}

static weir_event_t *binary_ok(const weir_ce_header_t *h, size_t n, const char *body, size_t len)
{
    weir_event_t *ev = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_decode_binary(h, n, body, len, &ev, &err);
    if (rc != 0) {
        print_error("binary decode failed: %s: %s\n", err.attr, err.msg);
    }
    assert_int_equal(rc, 0);
    return ev;
}

static void binary_fails(const weir_ce_header_t *h, size_t n, const char *attr)
{
    weir_event_t *ev = NULL;
    weir_err_t err = {0};
    int rc = weir_ce_decode_binary(h, n, "x", 1, &ev, &err);
    if (rc != WEIR_EINVAL || strcmp(err.attr, attr) != 0) {
        print_error("expected failure on %s, got %d %s: %s\n", attr, rc, err.attr, err.msg);
    }
    assert_int_equal(rc, WEIR_EINVAL);
    assert_string_equal(err.attr, attr);
    assert_null(ev);
}

static void test_binary_decode(void **state)
{
    const weir_ce_header_t h[] = {
        {"CE-SpecVersion", "1.0"},
        {"ce-id", "abc"},
        {"Ce-Source", "%2Fmy/source"},
        {"ce-type", "dev.example"},
        {"ce-subject", "100% caf\xC3\xA9"},
        {"ce-count", "42"},
        {"Content-Type", "application/json"},
        {"Host", "x"},
        {"X-Ce-Other", "y"},
    };
    weir_event_t *ev = binary_ok(h, NHEADERS(h), "{\"a\": 1}", 8);
    assert_string_equal(weir_ce_get(ev, "specversion"), "1.0");
    assert_string_equal(weir_ce_get(ev, "source"), "/my/source");
    assert_string_equal(weir_ce_get(ev, "subject"), "100% caf\xC3\xA9");
    assert_int_equal(weir_ce_attr(ev, "count")->type, WEIR_CE_STRING);
    assert_string_equal(weir_ce_get(ev, "datacontenttype"), "application/json");
    assert_null(weir_ce_attr(ev, "host"));
    assert_int_equal(ev->nattrs, 7);
    assert_int_equal(ev->data_kind, WEIR_CE_DATA_BYTES);
    assert_int_equal(ev->data_len, 8);
    assert_memory_equal(ev->data, "{\"a\": 1}", 8);
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);
}

/* Binary-mode header values as the HTTP binding reads them: without the white space around
 * them, double-quoted strings unescaped, then one round of percent-decoding. */
static void test_binary_header_values(void **state)
{
    const weir_ce_header_t h[] = {
        {"ce-specversion", "1.0"},
        {"ce-id", "\"id 1\""},
        {"ce-source", "\"/s\""},
        {"ce-type", "t \t "},
        {"ce-xtra", "\"a\\\"b\""},
        {"ce-subject", "\"100%25\" x"},
        {"content-type", "text/plain; charset=utf-8 "},
    };
    weir_event_t *ev = binary_ok(h, NHEADERS(h), "x", 1);
    assert_string_equal(weir_ce_get(ev, "id"), "id 1");
    assert_string_equal(weir_ce_get(ev, "source"), "/s");
    assert_string_equal(weir_ce_get(ev, "xtra"), "a\"b");
    assert_string_equal(weir_ce_get(ev, "type"), "t");
    assert_string_equal(weir_ce_get(ev, "subject"), "100% x");
    assert_string_equal(weir_ce_get(ev, "datacontenttype"), "text/plain; charset=utf-8");
    weir_ce_free(ev);

    const weir_ce_header_t open_quote[] = {
        {"ce-specversion", "1.0"}, {"ce-id", "1"}, {"ce-source", "/s"}, {"ce-type", "\"t"}};
    binary_fails(open_quote, NHEADERS(open_quote), "type");

    /* The Content-Type header gives the data's type, never a ce- header. */
    const weir_ce_header_t type_header[] = {{"ce-specversion", "1.0"},
                                            {"ce-id", "1"},
                                            {"ce-source", "/s"},
                                            {"ce-type", "t"},
                                            {"ce-datacontenttype", "text/plain"}};
    binary_fails(type_header, NHEADERS(type_header), "datacontenttype");
}

/* The String type excludes Unicode's noncharacters, as it does control characters. */
static void test_binary_noncharacters(void **state)
{
    static const char *const bad[] = {"a%EF%BF%BFb",  "%EF%BF%BE",    "%EF%B7%90", "%EF%B7%AF",
                                      "%F0%9F%BF%BE", "%F4%8F%BF%BF", "%C2%85"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const weir_ce_header_t h[] = {{"ce-specversion", "1.0"},
                                      {"ce-id", "1"},
                                      {"ce-source", "/s"},
                                      {"ce-type", "t"},
                                      {"ce-subject", bad[i]}};
        binary_fails(h, NHEADERS(h), "subject");
    }
    /* Their neighbours are characters like any other. */
    const weir_ce_header_t ok[] = {{"ce-specversion", "1.0"},
                                   {"ce-id", "%EF%BF%BD%EF%B7%8F%EF%B7%B0%F0%9F%BF%BD"},
                                   {"ce-source", "/s"},
                                   {"ce-type", "t"}};
    weir_ce_free(binary_ok(ok, NHEADERS(ok), "x", 1));
}

static void test_binary_body_kept_byte_for_byte(void **state)
{
    const weir_ce_header_t h[] = {
        {"ce-specversion", "0.3"}, {"ce-id", "1"}, {"ce-source", "/s"}, {"ce-type", "t"}};
    weir_event_t *ev = binary_ok(h, NHEADERS(h), "\x00\xFF\r\n", 4);
    assert_int_equal(ev->data_kind, WEIR_CE_DATA_BYTES);
    assert_memory_equal(ev->data, "\x00\xFF\r\n", 4);
    assert_null(weir_ce_attr(ev, "datacontenttype"));
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);

    ev = binary_ok(h, NHEADERS(h), NULL, 0);
    assert_int_equal(ev->data_kind, WEIR_CE_DATA_NONE);
    weir_ce_free(ev);
}

static void test_binary_errors(void **state)
{
    const weir_ce_header_t no_version[] = {{"ce-id", "1"}, {"ce-source", "/s"}, {"ce-type", "t"}};
    binary_fails(no_version, NHEADERS(no_version), "specversion");

    const weir_ce_header_t dup[] = {{"ce-specversion", "1.0"},
                                    {"ce-id", "1"},
                                    {"ce-source", "/s"},
                                    {"ce-type", "t"},
                                    {"CE-ID", "2"}};
    binary_fails(dup, NHEADERS(dup), "id");

    /* A control character, decoded from %0A or sent raw, is not a String value. */
    const weir_ce_header_t ctl[] = {{"ce-specversion", "1.0"},
                                    {"ce-id", "1"},
                                    {"ce-source", "/s"},
                                    {"ce-type", "t"},
                                    {"ce-subject", "a%0Ab"}};
    binary_fails(ctl, NHEADERS(ctl), "subject");
    const weir_ce_header_t del[] = {{"ce-specversion", "1.0"},
                                    {"ce-id", "1"},
                                    {"ce-source", "/s"},
                                    {"ce-type", "t"},
                                    {"ce-myext", "a\x7F"}};
    binary_fails(del, NHEADERS(del), "myext");

    const weir_ce_header_t bad_utf8[] = {{"ce-specversion", "1.0"},
                                         {"ce-id", "1"},
                                         {"ce-source", "/s"},
                                         {"ce-type", "t"},
                                         {"ce-subject", "caf%FF"}};
    binary_fails(bad_utf8, NHEADERS(bad_utf8), "subject");

    const weir_ce_header_t raw_bad[] = {
        {"ce-specversion", "1.0"}, {"ce-id", "\xC3"}, {"ce-source", "/s"}, {"ce-type", "t"}};
    binary_fails(raw_bad, NHEADERS(raw_bad), "id");

    const weir_ce_header_t nul[] = {
        {"ce-specversion", "1.0"}, {"ce-id", "a%00"}, {"ce-source", "/s"}, {"ce-type", "t"}};
    binary_fails(nul, NHEADERS(nul), "id");

    const weir_ce_header_t bad_name[] = {{"ce-specversion", "1.0"},
                                         {"ce-id", "1"},
                                         {"ce-source", "/s"},
                                         {"ce-type", "t"},
                                         {"ce-My_Ext", "x"}};
    binary_fails(bad_name, NHEADERS(bad_name), "My_Ext");

    const weir_ce_header_t odd_name[] = {{"ce-specversion", "1.0"},
                                         {"ce-id", "1"},
                                         {"ce-source", "/s"},
                                         {"ce-type", "t"},
                                         {"ce-a<b>", "x"}};
    binary_fails(odd_name, NHEADERS(odd_name), "");

    const weir_ce_header_t empty_name[] = {{"ce-", "x"}};
    binary_fails(empty_name, NHEADERS(empty_name), "");

    const weir_ce_header_t bad_time[] = {{"ce-specversion", "1.0"},
                                         {"ce-id", "1"},
                                         {"ce-source", "/s"},
                                         {"ce-type", "t"},
                                         {"ce-time", "noon"}};
    binary_fails(bad_time, NHEADERS(bad_time), "time");

    const weir_ce_header_t two_types[] = {{"ce-specversion", "1.0"},
                                          {"ce-id", "1"},
                                          {"ce-source", "/s"},
                                          {"ce-type", "t"},
                                          {"content-type", "text/plain"},
                                          {"ce-datacontenttype", "text/html"}};
    binary_fails(two_types, NHEADERS(two_types), "datacontenttype");

    const weir_ce_header_t empty_id[] = {
        {"ce-specversion", "1.0"}, {"ce-id", ""}, {"ce-source", "/s"}, {"ce-type", "t"}};
    binary_fails(empty_id, NHEADERS(empty_id), "id");
}

static void test_binary_v03_encoding_dropped(void **state)
{
    const weir_ce_header_t h[] = {{"ce-specversion", "0.3"},
                                  {"ce-id", "1"},
                                  {"ce-source", "/s"},
                                  {"ce-type", "t"},
                                  {"ce-datacontentencoding", "base64"}};
    weir_event_t *ev = binary_ok(h, NHEADERS(h), "\x01\x02", 2);
    assert_null(weir_ce_attr(ev, "datacontentencoding"));
    ce_assert_roundtrip(ev);
    weir_ce_free(ev);

    /* RFC 2045's encoding names ignore case, as structured mode does. */
    const weir_ce_header_t upper[] = {{"ce-specversion", "0.3"},
                                      {"ce-id", "1"},
                                      {"ce-source", "/s"},
                                      {"ce-type", "t"},
                                      {"ce-datacontentencoding", "Base64"}};
    ev = binary_ok(upper, NHEADERS(upper), "\x01\x02", 2);
    assert_null(weir_ce_attr(ev, "datacontentencoding"));
    weir_ce_free(ev);
}

typedef struct collected {
    weir_ce_header_t h[WEIR_CE_ATTRS_MAX + 1];
    size_t n;
} collected_t;

static void collect(void *ctx, const char *name, const char *value)
{
    collected_t *c = ctx;
    assert_true(c->n < NHEADERS(c->h));
    c->h[c->n].name = weir_strdup(name);
    c->h[c->n].value = weir_strdup(value);
    c->n++;
}

static void collected_free(collected_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        weir_free((char *)c->h[i].name);
        weir_free((char *)c->h[i].value);
    }
    c->n = 0;
}

static const char *collected_get(const collected_t *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->h[i].name, name) == 0) {
            return c->h[i].value;
        }
    }
    return NULL;
}

static void test_binary_encode(void **state)
{
    weir_event_t *ev = ce_decode_ok(
        "{\"specversion\":\"1.0\",\"id\":\"a b\",\"source\":\"/s\",\"type\":\"t\",\"n\":5,"
        "\"subject\":\"100% caf\xC3\xA9 \\\"x\\\"\xC3\xBF\",\"datacontenttype\":\"text/plain\","
        "\"data\":\"hello\"}");
    collected_t c = {0};
    weir_ce_encode_binary(ev, collect, &c);
    assert_int_equal(c.n, 7);
    assert_string_equal(collected_get(&c, "ce-id"), "a%20b");
    assert_string_equal(collected_get(&c, "ce-n"), "5");
    assert_string_equal(collected_get(&c, "ce-subject"), "100%25%20caf%C3%A9%20%22x%22%C3%BF");
    assert_string_equal(collected_get(&c, "Content-Type"), "text/plain");
    assert_null(collected_get(&c, "ce-datacontenttype"));

    /* Decoding the headers gives back the attributes, as strings. */
    weir_event_t *back = binary_ok(c.h, c.n, (const char *)ev->data, ev->data_len);
    assert_string_equal(weir_ce_get(back, "subject"), weir_ce_get(ev, "subject"));
    assert_int_equal(weir_ce_attr(back, "n")->type, WEIR_CE_STRING);
    assert_memory_equal(back->data, "hello", 5);
    weir_ce_free(back);
    collected_free(&c);
    weir_ce_free(ev);
}

static void test_binary_encode_json_type(void **state)
{
    weir_event_t *ev = ce_decode_ok(
        "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\",\"data\":[1]}");
    collected_t c = {0};
    weir_ce_encode_binary(ev, collect, &c);
    assert_string_equal(collected_get(&c, "Content-Type"), "application/json");
    collected_free(&c);

    weir_ce_set(ev, "datacontenttype", "text/plain; a=\"b\r\nX: y\"", WEIR_CE_STRING, NULL);
    weir_ce_encode_binary(ev, collect, &c);
    const char *type = collected_get(&c, "Content-Type");
    assert_non_null(type);
    assert_null(strpbrk(type, "\r\n"));
    collected_free(&c);
    weir_ce_free(ev);
}

static void test_binary_roundtrip(void **state)
{
    const weir_ce_header_t h[] = {{"ce-specversion", "1.0"}, {"ce-id", "%zz 100%"},
                                  {"ce-source", "urn:x"},    {"ce-type", "t"},
                                  {"ce-xtra", "\"q\" %25"},  {"content-type", "image/png"}};
    weir_event_t *ev = binary_ok(h, NHEADERS(h), "\x89PNG", 4);
    collected_t c = {0};
    weir_ce_encode_binary(ev, collect, &c);
    weir_event_t *back = binary_ok(c.h, c.n, (const char *)ev->data, ev->data_len);
    assert_true(ce_equal(ev, back));
    ce_assert_roundtrip(ev);
    weir_ce_free(back);
    collected_free(&c);
    weir_ce_free(ev);
}

static void test_detect_mode(void **state)
{
    static const struct {
        const char *type;
        int rc;
        weir_ce_mode_t mode;
    } cases[] = {
        {NULL, 0, WEIR_CE_MODE_BINARY},
        {"application/json", 0, WEIR_CE_MODE_BINARY},
        {"text/plain", 0, WEIR_CE_MODE_BINARY},
        {"application/cloudevents+json", 0, WEIR_CE_MODE_STRUCTURED},
        {"Application/CloudEvents+JSON; charset=UTF-8", 0, WEIR_CE_MODE_STRUCTURED},
        {"application/cloudevents", 0, WEIR_CE_MODE_STRUCTURED},
        {"application/cloudevents-batch+json", 0, WEIR_CE_MODE_BATCH},
        {" application/cloudevents-batch+json;charset=utf-8", 0, WEIR_CE_MODE_BATCH},
        {"application/cloudevents+avro", WEIR_EUNSUPPORTED, WEIR_CE_MODE_STRUCTURED},
        {"application/cloudevents+protobuf", WEIR_EUNSUPPORTED, WEIR_CE_MODE_STRUCTURED},
        {"application/cloudevents-batch+protobuf", WEIR_EUNSUPPORTED, WEIR_CE_MODE_BATCH},
        {"application/cloudevents+jsonx", WEIR_EUNSUPPORTED, WEIR_CE_MODE_STRUCTURED},
    };
    for (size_t i = 0; i < NHEADERS(cases); i++) {
        weir_ce_mode_t mode = 99;
        weir_err_t err = {0};
        assert_int_equal(weir_ce_detect_mode(cases[i].type, &mode, &err), cases[i].rc);
        assert_int_equal(mode, cases[i].mode);
    }
}

static void test_decode_http(void **state)
{
    weir_event_t **evs;
    size_t n;
    weir_err_t err = {0};
    const char *one = "{\"specversion\":\"1.0\",\"id\":\"1\",\"source\":\"/s\",\"type\":\"t\"}";

    const weir_ce_header_t structured[] = {{"ce-id", "ignored"},
                                           {"Content-Type", "application/cloudevents+json"}};
    assert_int_equal(weir_ce_decode_http(structured, 2, one, strlen(one), &evs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(weir_ce_get(evs[0], "id"), "1");
    weir_ce_free_all(evs, n);

    char batch[256];
    snprintf(batch, sizeof(batch), "[%s,%s]", one, one);
    const weir_ce_header_t batched[] = {{"content-type", "application/cloudevents-batch+json"}};
    assert_int_equal(weir_ce_decode_http(batched, 1, batch, strlen(batch), &evs, &n, &err), 0);
    assert_int_equal(n, 2);
    weir_ce_free_all(evs, n);

    const weir_ce_header_t binary[] = {
        {"ce-specversion", "1.0"}, {"ce-id", "9"}, {"ce-source", "/s"}, {"ce-type", "t"}};
    assert_int_equal(weir_ce_decode_http(binary, 4, "x", 1, &evs, &n, &err), 0);
    assert_string_equal(weir_ce_get(evs[0], "id"), "9");
    weir_ce_free_all(evs, n);

    /* Content-Type picks the mode: given twice, in any mode, neither is taken. */
    const weir_ce_header_t twice[] = {{"Content-Type", "application/cloudevents+json"},
                                      {"content-type", "application/json"}};
    assert_int_equal(weir_ce_decode_http(twice, 2, one, strlen(one), &evs, &n, &err), WEIR_EINVAL);
    assert_string_equal(err.msg, "Content-Type is given more than once");
    assert_null(evs);

    const weir_ce_header_t avro[] = {{"Content-Type", "application/cloudevents+avro"}};
    assert_int_equal(weir_ce_decode_http(avro, 1, "x", 1, &evs, &n, &err), WEIR_EUNSUPPORTED);
    assert_null(evs);
    assert_int_equal(n, 0);

    assert_int_equal(weir_ce_decode_http(structured, 2, NULL, 0, &evs, &n, &err), WEIR_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percent_decode),
        cmocka_unit_test(test_percent_decode_refuses),
        cmocka_unit_test(test_percent_encode),
        cmocka_unit_test(test_binary_decode),
        cmocka_unit_test(test_binary_body_kept_byte_for_byte),
        cmocka_unit_test(test_binary_errors),
        cmocka_unit_test(test_binary_v03_encoding_dropped),
        cmocka_unit_test(test_binary_encode),
        cmocka_unit_test(test_binary_encode_json_type),
        cmocka_unit_test(test_binary_roundtrip),
        cmocka_unit_test(test_binary_header_values),
        cmocka_unit_test(test_binary_noncharacters),
        cmocka_unit_test(test_detect_mode),
        cmocka_unit_test(test_decode_http),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
