/* The delivery spec, Knative's retry rules and backoff math, and the events the engine builds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "deliver/deliver.h"

static int parse(const char *json, weir_deliver_spec_t *s, weir_err_t *err)
{
    cJSON *doc = cJSON_Parse(json);
    int rc = weir_deliver_spec_parse(doc, s, err);
    cJSON_Delete(doc);
    return rc;
}

static void refused(const char *json, const char *attr)
{
    weir_deliver_spec_t s;
    weir_err_t err = {0};
    assert_int_equal(parse(json, &s, &err), WEIR_EINVAL);
    assert_string_equal(err.attr, attr);
    weir_deliver_spec_clear(&s);
}

static void test_spec(void **state)
{
    weir_deliver_spec_t s;
    assert_int_equal(parse("{\"sink\":\"http://t/\"}", &s, NULL), 0);
    assert_int_equal(s.retry, WEIR_DELIVER_RETRY_DEFAULT);
    assert_int_equal(s.backoff, WEIR_BACKOFF_EXPONENTIAL);
    assert_null(s.dead_letter_sink);
    weir_deliver_spec_clear(&s);

    assert_int_equal(parse("{\"sink\":\"https://t:8443/x\",\"delivery\":{\"retry\":2,"
                           "\"backoffPolicy\":\"linear\",\"backoffDelay\":\"PT1.5S\","
                           "\"timeout\":\"PT3S\",\"deadLetterSink\":\"http://d/\"}}",
                           &s, NULL),
                     0);
    assert_int_equal(s.retry, 2);
    assert_int_equal(s.backoff, WEIR_BACKOFF_LINEAR);
    assert_int_equal(s.delay_us, 1500000);
    assert_int_equal(s.timeout_us, 3000000);
    assert_string_equal(s.dead_letter_sink, "http://d/");
    weir_deliver_spec_clear(&s);

    refused("{}", "sink");
    refused("{\"sink\":\"http:///x\"}", "sink");
    refused("{\"sink\":\"http://t/\",\"delivery\":[]}", "delivery");
    refused("{\"sink\":\"http://t/\",\"delivery\":{\"retry\":1.5}}", "delivery.retry");
    refused("{\"sink\":\"http://t/\",\"delivery\":{\"backoffDelay\":\"PT2H\"}}",
            "delivery.backoffDelay");
    refused("{\"sink\":\"http://t/\",\"delivery\":{\"deadLetterSink\":\"t\"}}",
            "delivery.deadLetterSink");

    /* credentials in a URL would show in logs, system events and knativeerrordest */
    refused("{\"sink\":\"https://user:pass@t/\"}", "sink");
    refused("{\"sink\":\"http://token@t:8080\"}", "sink");
    refused("{\"sink\":\"http://t/\",\"delivery\":{\"deadLetterSink\":\"http://u:p@d/x\"}}",
            "delivery.deadLetterSink");
    /* an @ past the authority is no credential */
    assert_int_equal(parse("{\"sink\":\"http://t/a@b?c=d@e#f@g\"}", &s, NULL), 0);
    weir_deliver_spec_clear(&s);
}

static void test_classify(void **state)
{
    long retried[] = {0, 404, 408, 409, 429, 500, 502, 503, 504};
    long refused_codes[] = {300, 400, 401, 403, 405, 410, 413, 415, 422};
    for (size_t i = 0; i < sizeof(retried) / sizeof(retried[0]); i++) {
        assert_int_equal(weir_deliver_classify(retried[i]), WEIR_DELIVER_RETRY);
    }
    for (size_t i = 0; i < sizeof(refused_codes) / sizeof(refused_codes[0]); i++) {
        assert_int_equal(weir_deliver_classify(refused_codes[i]), WEIR_DELIVER_REFUSED);
    }
    assert_int_equal(weir_deliver_classify(200), WEIR_DELIVER_OK);
    assert_int_equal(weir_deliver_classify(202), WEIR_DELIVER_OK);
}

static void test_backoff(void **state)
{
    weir_deliver_spec_t s = {.delay_us = 200000, .backoff = WEIR_BACKOFF_EXPONENTIAL};
    assert_int_equal(weir_deliver_backoff_us(&s, 1), 200000); /* the first retry: the delay */
    assert_int_equal(weir_deliver_backoff_us(&s, 2), 400000);
    assert_int_equal(weir_deliver_backoff_us(&s, 3), 800000);
    assert_int_equal(weir_deliver_backoff_us(&s, 60), WEIR_DELIVER_WAIT_MAX);
    s.backoff = WEIR_BACKOFF_LINEAR;
    assert_int_equal(weir_deliver_backoff_us(&s, 1), 200000);
    assert_int_equal(weir_deliver_backoff_us(&s, 3), 600000);
}

static void test_retry_after(void **state)
{
    assert_int_equal(weir_deliver_retry_after_us("3", 0), 3000000);
    assert_int_equal(weir_deliver_retry_after_us(NULL, 0), -1);
    assert_int_equal(weir_deliver_retry_after_us("soon", 0), -1);
    /* Thu, 01 Jan 1970 00:00:10 GMT is 10 s after the epoch */
    assert_int_equal(weir_deliver_retry_after_us("Thu, 01 Jan 1970 00:00:10 GMT", 4000000),
                     6000000);
}

static void test_decide(void **state)
{
    weir_deliver_spec_t s = {.retry = 2, .delay_us = 100000, .backoff = WEIR_BACKOFF_LINEAR};
    int64_t due = 0;
    assert_int_equal(weir_deliver_decide(&s, false, 1, 200, -1, 0, &due), WEIR_STORE_DELIVERED);
    assert_int_equal(weir_deliver_decide(&s, false, 1, 503, -1, 1000, &due), WEIR_STORE_RETRY);
    assert_int_equal(due, 101000);
    /* Retry-After longer than the backoff wins */
    assert_int_equal(weir_deliver_decide(&s, false, 2, 429, 5000000, 0, &due), WEIR_STORE_RETRY);
    assert_int_equal(due, 5000000);
    /* exhausted, no dead-letter sink */
    assert_int_equal(weir_deliver_decide(&s, false, 3, 503, -1, 0, &due), WEIR_STORE_FAILED);
    /* refused at once */
    assert_int_equal(weir_deliver_decide(&s, false, 1, 400, -1, 0, &due), WEIR_STORE_FAILED);
    s.dead_letter_sink = "http://d/";
    assert_int_equal(weir_deliver_decide(&s, false, 1, 400, -1, 0, &due), WEIR_STORE_DEAD_LETTER);
    assert_int_equal(weir_deliver_decide(&s, false, 3, 0, -1, 0, &due), WEIR_STORE_DEAD_LETTER);
    /* the dead-letter sink refusing ends it */
    assert_int_equal(weir_deliver_decide(&s, true, 1, 400, -1, 0, &due), WEIR_STORE_FAILED);
}

static void test_events(void **state)
{
    weir_event_t *ev = weir_ce_new();
    weir_deliver_dead_letter_mark(ev, "http://t/", 500, "boom");
    assert_string_equal(weir_ce_get(ev, "knativeerrordest"), "http://t/");
    assert_string_equal(weir_ce_get(ev, "knativeerrorcode"), "500");
    assert_string_equal(weir_ce_get(ev, "knativeerrordata"), "Ym9vbQ==");
    weir_ce_free(ev);

    const char *set = "{\"a\":{\"id\":\"1\",\"weirhops\":2},\"b\":{\"id\":\"2\"}}";
    ev = weir_deliver_and_event("ns", "L", 7, 0, set);
    assert_non_null(ev);
    assert_int_equal(weir_ce_validate(ev, NULL), 0);
    assert_string_equal(weir_ce_get(ev, "type"), WEIR_DELIVER_AND_TYPE);
    assert_string_equal(weir_ce_get(ev, "source"), "/weir/namespaces/ns/listeners/L");
    assert_string_equal(weir_ce_get(ev, "id"), "7");
    assert_int_equal(weir_deliver_hops(ev, set), 2);
    weir_ce_free(ev);
    assert_null(weir_deliver_and_event("ns", "L", 7, 0, "[]"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec),    cmocka_unit_test(test_classify),
        cmocka_unit_test(test_backoff), cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_decide),  cmocka_unit_test(test_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
