/* Listener specs: what is accepted, and what is refused with the field named. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "route/route.h"

static weir_listener_t *parse_ok(const char *json)
{
    weir_listener_t *l = NULL;
    weir_err_t err = {0};
    int rc = weir_route_listener_parse(json, strlen(json), &l, &err);
    if (rc != 0) {
        fail_msg("%s: %s: %s", json, err.attr, err.msg);
    }
    return l;
}

static void refused(const char *json, const char *attr)
{
    weir_listener_t *l = NULL;
    weir_err_t err = {0};
    assert_int_equal(weir_route_listener_parse(json, strlen(json), &l, &err), WEIR_EINVAL);
    assert_null(l);
    assert_string_equal(err.attr, attr);
    assert_true(err.msg[0] != '\0');
}

static void test_valid(void **state)
{
    weir_listener_t *l = parse_ok("{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"context\":"
                                  "{\"subject\":\"x*\"}}],\"sink\":\"http://h/\"}");
    assert_int_equal(l->mode, WEIR_ROUTE_SIMPLE);
    assert_int_equal(l->ntypes, 1);
    assert_string_equal(l->types[0].context[0].pattern, "x*");
    weir_route_listener_free(l);

    l = parse_ok("{\"mode\":\"and\",\"events\":[{\"type\":\"a\"},{\"type\":\"b\",\"filters\":"
                 "[{\"not\":{\"cesql\":\"subject = 'x'\"}}]}],\"lifespan\":\"PT1M\","
                 "\"correlate\":[\"subject\"],\"delivery\":{\"retry\":1}}");
    assert_int_equal(l->mode, WEIR_ROUTE_AND);
    assert_int_equal(l->lifespan_us, 60000000);
    assert_int_equal(l->ncorrelate, 1);
    assert_int_equal(l->types[1].nfilters, 1);
    weir_route_listener_free(l);
}

static void test_refused(void **state)
{
    refused("[1]", "");
    refused("{\"mode\":\"x\",\"events\":[{\"type\":\"a\"}]}", "mode");
    refused("{\"mode\":\"simple\",\"events\":[]}", "events");
    refused("{\"mode\":\"xor\",\"events\":{}}", "events");
    refused("{\"mode\":\"simple\",\"events\":[{\"type\":\"\"}]}", "events[0].type");
    refused("{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"x\":1}]}", "events[0].x");
    refused("{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"context\":{\"A\":\"x\"}}]}",
            "events[0].context.A");
    refused("{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"filters\":[{\"all\":[[]]}]}]}",
            "events[0].filters[0].all[0]");
    refused("{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"filters\":[{\"cesql\":"
            "\"NOSUCH(1)\"}]}]}",
            "events[0].filters[0].cesql");
    refused("{\"mode\":\"and\",\"events\":[{\"type\":\"a\"},{\"type\":\"b\"}],\"lifespan\":"
            "\"soon\"}",
            "lifespan");
    refused("{\"mode\":\"and\",\"events\":[{\"type\":\"a\"}],\"lifespan\":\"PT1S\"}", "events");
    refused("{\"mode\":\"xor\",\"events\":[{\"type\":\"a\"}],\"correlate\":[\"x\"]}", "correlate");
    refused("{\"mode\":\"xor\",\"events\":[{\"type\":\"a\"}],\"extra\":1}", "extra");
}

/* Filters as Knative's webhook takes them: one dialect, one key-value, a letter first in an
 * attribute name; empty dialects are accepted. */
static void test_knative_filters(void **state)
{
    static const char *const accepted[] = {
        "[{\"all\":[]}]",
        "[{\"any\":[]}]",
        "[{}]",
        "[{\"not\":{}}]",
        "[{\"exact\":{}}]",
        "[{\"cesql\":\"\"}]",
        "[{\"prefix\":{\"subject\":\"\"}}]",
        "[{\"exact\":{},\"prefix\":{\"subject\":\"x\"}}]",
        "[{\"exact\":null,\"suffix\":{\"subject\":\"x\"}}]",
        "[{\"all\":[{\"any\":[]},{\"exact\":{\"a1\":\"x\"}}]}]",
    };
    static const char *const refused_filters[][2] = {
        {"[{\"exact\":{\"a\":\"x\",\"b\":\"y\"}}]", "events[0].filters[0].exact"},
        {"[{\"prefix\":{\"a\":\"x\",\"b\":\"y\"}}]", "events[0].filters[0].prefix"},
        {"[{\"suffix\":{\"a\":\"x\",\"b\":\"y\"}}]", "events[0].filters[0].suffix"},
        {"[{\"any\":[{\"exact\":{\"a\":\"x\",\"b\":\"y\"}}]}]",
         "events[0].filters[0].any[0].exact"},
        {"[{\"exact\":{\"1a\":\"x\"}}]", "events[0].filters[0].exact"},
        {"[{\"exact\":{\"a\":1}}]", "events[0].filters[0].exact"},
        {"[{\"exact\":{\"a\":\"x\"},\"prefix\":{\"a\":\"y\"}}]", "events[0].filters[0]"},
        {"[{\"not\":{},\"cesql\":\"true\"}]", "events[0].filters[0]"},
        {"[{\"all\":{}}]", "events[0].filters[0].all"},
        {"[{\"cesql\":1}]", "events[0].filters[0].cesql"},
        {"[{\"sql\":\"true\"}]", "events[0].filters[0].sql"},
        {"[7]", "events[0].filters[0]"},
    };
    char json[512];

    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"filters\":%s}]}", accepted[i]);
        weir_route_listener_free(parse_ok(json));
    }
    for (size_t i = 0; i < sizeof(refused_filters) / sizeof(refused_filters[0]); i++) {
        snprintf(json, sizeof(json),
                 "{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"filters\":%s}]}",
                 refused_filters[i][0]);
        refused(json, refused_filters[i][1]);
    }
}

/* Nesting past the limit is refused rather than recursed into. */
static void test_depth(void **state)
{
    char json[1024] = "{\"mode\":\"simple\",\"events\":[{\"type\":\"a\",\"filters\":[";
    for (int i = 0; i < 12; i++) {
        strcat(json, "{\"not\":");
    }
    strcat(json, "{\"exact\":{\"a\":\"b\"}}");
    for (int i = 0; i < 12; i++) {
        strcat(json, "}");
    }
    strcat(json, "]}]}");
    weir_listener_t *l = NULL;
    weir_err_t err = {0};
    assert_int_equal(weir_route_listener_parse(json, strlen(json), &l, &err), WEIR_EINVAL);
    assert_non_null(strstr(err.msg, "deeper"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_knative_filters),
        cmocka_unit_test(test_depth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
