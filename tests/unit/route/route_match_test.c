/* Matching: context globs, every Knative dialect, and the correlation key. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "route/route.h"

static weir_event_t *event(const char *type, const char *subject, const char *region)
{
    weir_event_t *ev = weir_ce_new();
    weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "id", "1", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "source", "/src/a", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "type", type, WEIR_CE_STRING, NULL);
    if (subject != NULL) {
        weir_ce_set(ev, "subject", subject, WEIR_CE_STRING, NULL);
    }
    if (region != NULL) {
        weir_ce_set(ev, "region", region, WEIR_CE_STRING, NULL);
    }
    return ev;
}

/* Parses {"mode":"simple","events":[<type_json>]} and tests ev against its one type. */
static bool matches(const char *type_json, const weir_event_t *ev)
{
    char json[2048];
    weir_listener_t *l = NULL;
    weir_err_t err = {0};

    snprintf(json, sizeof(json), "{\"mode\":\"simple\",\"events\":[%s]}", type_json);
    if (weir_route_listener_parse(json, strlen(json), &l, &err) != 0) {
        fail_msg("%s: %s: %s", json, err.attr, err.msg);
    }
    bool ok = weir_route_type_match(&l->types[0], ev);
    weir_route_listener_free(l);
    return ok;
}

static void test_glob(void **state)
{
    weir_event_t *ev = event("t", "order-42-eu", NULL);
    assert_true(matches("{\"type\":\"t\"}", ev));
    assert_false(matches("{\"type\":\"u\"}", ev));
    assert_true(matches("{\"type\":\"t\",\"context\":{\"subject\":\"order-*-eu\"}}", ev));
    assert_true(
        matches("{\"type\":\"t\",\"context\":{\"subject\":\"*\",\"source\":\"/src/*\"}}", ev));
    assert_false(matches("{\"type\":\"t\",\"context\":{\"subject\":\"order-*-us\"}}", ev));
    /* every key must exist, even for "*" */
    assert_false(matches("{\"type\":\"t\",\"context\":{\"region\":\"*\"}}", ev));
    weir_ce_free(ev);
}

static void test_dialects(void **state)
{
    weir_event_t *ev = event("t", "order-eu", "a");
    assert_true(matches("{\"type\":\"t\",\"filters\":[{\"exact\":{\"region\":\"a\"}}]}", ev));
    assert_false(matches("{\"type\":\"t\",\"filters\":[{\"exact\":{\"region\":\"A\"}}]}", ev));
    assert_false(matches("{\"type\":\"t\",\"filters\":[{\"exact\":{\"nope\":\"a\"}}]}", ev));
    assert_true(matches("{\"type\":\"t\",\"filters\":[{\"prefix\":{\"subject\":\"ord\"}}]}", ev));
    assert_false(matches("{\"type\":\"t\",\"filters\":[{\"prefix\":{\"subject\":\"eu\"}}]}", ev));
    assert_true(matches("{\"type\":\"t\",\"filters\":[{\"suffix\":{\"subject\":\"-eu\"}}]}", ev));
    assert_false(
        matches("{\"type\":\"t\",\"filters\":[{\"suffix\":{\"subject\":\"order-eu-x\"}}]}", ev));
    assert_true(matches("{\"type\":\"t\",\"filters\":[{\"any\":[{\"exact\":{\"region\":\"b\"}},"
                        "{\"exact\":{\"region\":\"a\"}}]}]}",
                        ev));
    assert_false(matches("{\"type\":\"t\",\"filters\":[{\"all\":[{\"exact\":{\"region\":\"a\"}},"
                         "{\"exact\":{\"subject\":\"x\"}}]}]}",
                         ev));
    assert_true(
        matches("{\"type\":\"t\",\"filters\":[{\"not\":{\"exact\":{\"nope\":\"a\"}}}]}", ev));
    assert_true(matches("{\"type\":\"t\",\"filters\":[{\"cesql\":\"region = 'a' AND "
                        "subject LIKE 'order%'\"}]}",
                        ev));
    /* a CESQL error (a missing attribute) is no match */
    assert_false(matches("{\"type\":\"t\",\"filters\":[{\"cesql\":\"nope = 'a'\"}]}", ev));
    /* every filter of the list must match */
    assert_false(matches("{\"type\":\"t\",\"filters\":[{\"exact\":{\"region\":\"a\"}},"
                         "{\"exact\":{\"region\":\"b\"}}]}",
                         ev));
    weir_ce_free(ev);
}

/* Filters that set nothing have no say, as in Knative's broker: left out of all and any. */
static void test_filters_without_say(void **state)
{
    weir_event_t *ev = event("t", "order-eu", "a");
    static const char *const pass[] = {
        "[{\"all\":[]}]",
        "[{\"any\":[]}]",
        "[{}]",
        "[{\"not\":{}}]",
        "[{\"not\":{\"any\":[]}}]",
        "[{\"cesql\":\"\"}]",
        "[{\"exact\":{\"subject\":\"\"}}]",
        "[{\"prefix\":{\"nope\":\"\"}}]",
        "[{\"any\":[{\"all\":[]},{\"exact\":{\"region\":\"a\"}}]}]",
        "[{\"all\":[{\"any\":[]},{\"exact\":{\"region\":\"a\"}}]}]",
        "[{\"not\":{\"all\":[{},{\"exact\":{\"region\":\"b\"}}]}}]",
    };
    static const char *const fail[] = {
        "[{\"any\":[{\"all\":[]},{\"exact\":{\"region\":\"b\"}}]}]",
        "[{\"all\":[{},{\"exact\":{\"region\":\"b\"}}]}]",
        "[{\"not\":{\"any\":[{},{\"exact\":{\"region\":\"a\"}}]}}]",
        "[{\"all\":[]},{\"exact\":{\"region\":\"b\"}}]",
    };
    char json[512];

    for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
        snprintf(json, sizeof(json), "{\"type\":\"t\",\"filters\":%s}", pass[i]);
        if (!matches(json, ev)) {
            fail_msg("%s should pass", pass[i]);
        }
    }
    for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++) {
        snprintf(json, sizeof(json), "{\"type\":\"t\",\"filters\":%s}", fail[i]);
        if (matches(json, ev)) {
            fail_msg("%s should fail", fail[i]);
        }
    }
    weir_ce_free(ev);
}

static void test_correlation_key(void **state)
{
    const char *json = "{\"mode\":\"and\",\"events\":[{\"type\":\"a\"},{\"type\":\"b\"}],"
                       "\"lifespan\":\"PT1S\",\"correlate\":[\"subject\",\"region\"]}";
    weir_listener_t *l = NULL;
    assert_int_equal(weir_route_listener_parse(json, strlen(json), &l, NULL), 0);

    weir_event_t *ev = event("a", "s\"1", "eu");
    char *key = weir_route_correlation_key(l, ev);
    assert_string_equal(key, "[\"s\\\"1\",\"eu\"]");
    weir_free(key);
    weir_ce_free(ev);

    ev = event("a", "s1", NULL);
    assert_null(weir_route_correlation_key(l, ev));
    weir_ce_free(ev);
    weir_route_listener_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_dialects),
        cmocka_unit_test(test_filters_without_say),
        cmocka_unit_test(test_correlation_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
