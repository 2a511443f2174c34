/* Unit tests of the common module through its header. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"

static void test_utf8(void **state)
{
    assert_true(weir_utf8_valid("", 0));
    assert_true(weir_utf8_valid("plain ascii", 11));
    assert_true(weir_utf8_valid("caf\xC3\xA9", 5));
    assert_true(weir_utf8_valid("\xF0\x9F\x98\x80", 4));  /* U+1F600 */
    assert_true(weir_utf8_valid("\xF4\x8F\xBF\xBF", 4));  /* U+10FFFF */
    assert_false(weir_utf8_valid("\xC3\x28", 2));         /* bad continuation */
    assert_false(weir_utf8_valid("\xC0\xAF", 2));         /* overlong */
    assert_false(weir_utf8_valid("\xE0\x80\xAF", 3));     /* overlong */
    assert_false(weir_utf8_valid("\xED\xA0\x80", 3));     /* surrogate */
    assert_false(weir_utf8_valid("\xF4\x90\x80\x80", 4)); /* past U+10FFFF */
    assert_false(weir_utf8_valid("\xE2\x82", 2));         /* truncated */
    assert_false(weir_utf8_valid("\xFF", 1));
}

static void check_base64(const char *plain, const char *encoded)
{
    size_t n;
    char *enc = weir_base64_encode(plain, strlen(plain), &n);
    assert_string_equal(enc, encoded);
    assert_int_equal(n, strlen(encoded));
    unsigned char *dec;
    size_t dn;
    assert_int_equal(weir_base64_decode(enc, n, &dec, &dn), 0);
    assert_int_equal(dn, strlen(plain));
    assert_memory_equal(dec, plain, dn);
    weir_free(enc);
    weir_free(dec);
}

static void test_base64(void **state)
{
    check_base64("", "");
    check_base64("f", "Zg==");
    check_base64("fo", "Zm8=");
    check_base64("foo", "Zm9v");
    check_base64("foobar", "Zm9vYmFy");

    unsigned char *out;
    size_t n;
    assert_int_equal(weir_base64_decode("Zm9", 3, &out, &n), WEIR_EINVAL);
    assert_int_equal(weir_base64_decode("Zm9v YmFy", 9, &out, &n), WEIR_EINVAL);
    assert_int_equal(weir_base64_decode("Zg=a", 4, &out, &n), WEIR_EINVAL);
    assert_int_equal(weir_base64_decode("=Zg=", 4, &out, &n), WEIR_EINVAL);
}

static void test_glob(void **state)
{
    assert_true(weir_glob_match("", ""));
    assert_true(weir_glob_match("*", ""));
    assert_true(weir_glob_match("*", "anything"));
    assert_true(weir_glob_match("com.example.*", "com.example.created"));
    assert_true(weir_glob_match("*.created", "com.example.created"));
    assert_true(weir_glob_match("a*b*c", "aXXbYYc"));
    assert_true(weir_glob_match("a*b", "abab"));
    assert_false(weir_glob_match("a*b", "abac"));
    assert_false(weir_glob_match("exact", "exactly"));
    assert_false(weir_glob_match("", "x"));
}

static void test_time(void **state)
{
    int64_t us;
    assert_int_equal(weir_time_parse("1970-01-01T00:00:00Z", &us), 0);
    assert_int_equal(us, 0);
    assert_int_equal(weir_time_parse("2020-03-21T12:34:56.78Z", &us), 0);
    assert_int_equal(us, 1584794096780000LL);
    assert_int_equal(weir_time_parse("2020-03-21T14:34:56.78+02:00", &us), 0);
    assert_int_equal(us, 1584794096780000LL);
    assert_int_equal(weir_time_parse("2024-02-29t00:00:00z", &us), 0);

    const char *bad[] = {"",
                         "2020-03-21",
                         "2020-03-21T12:34:56",
                         "2023-02-29T00:00:00Z",
                         "2020-13-01T00:00:00Z",
                         "2020-03-21T24:00:00Z",
                         "2020-03-21T12:34:56.Z",
                         "2020-03-21T12:34:56Z trailing",
                         "yesterday"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(weir_time_parse(bad[i], &us), WEIR_EINVAL);
    }

    char text[WEIR_TIME_STR_MAX];
    weir_time_format(1584794096780000LL, text);
    assert_string_equal(text, "2020-03-21T12:34:56.780000Z");
    weir_time_format(-1, text);
    assert_string_equal(text, "1969-12-31T23:59:59.999999Z");
}

static void test_duration(void **state)
{
    int64_t us;
    assert_int_equal(weir_duration_parse("PT1S", &us), 0);
    assert_int_equal(us, 1000000);
    assert_int_equal(weir_duration_parse("PT1.5S", &us), 0);
    assert_int_equal(us, 1500000);
    assert_int_equal(weir_duration_parse("P1DT2H3M4S", &us), 0);
    assert_int_equal(us, (86400LL + 7200 + 180 + 4) * 1000000);
    assert_int_equal(weir_duration_parse("P2W", &us), 0);
    assert_int_equal(us, 14LL * 86400 * 1000000);
    assert_int_equal(weir_duration_parse("P1W2D", &us), 0);
    assert_int_equal(us, 9LL * 86400 * 1000000);
    assert_int_equal(weir_duration_parse("P0.5D", &us), 0);
    assert_int_equal(us, 43200LL * 1000000);
    assert_int_equal(weir_duration_parse("PT1H0.25M", &us), 0);
    assert_int_equal(us, 3615LL * 1000000);
    assert_int_equal(weir_duration_parse("PT1,5S", &us), 0);
    assert_int_equal(us, 1500000);
    assert_int_equal(weir_duration_parse("PT0.29S", &us), 0);
    assert_int_equal(us, 290000);
    assert_int_equal(weir_duration_parse("PT0.0000019S", &us), 0);
    assert_int_equal(us, 1);
    assert_int_equal(weir_duration_parse("PT0S", &us), 0);
    assert_int_equal(us, 0);
    assert_int_equal(weir_duration_parse("P106000000D", &us), 0);
    assert_int_equal(us, 106000000LL * 86400 * 1000000);

    const char *bad[] = {
        "",          "P",        "PT",           "1S",          "PT1",      "P1M",   "PT1S2M",
        "P1DT",      "PTS",      "P1Y",          "P1e3D",       "PT1.5e2S", "PT1.S", "PT.5S",
        "PT1.5H30M", "P1.5DT1H", "PT0.0000001S", "P107000000D", "PT1H1H",   "P1D2W", "P-1D",
        "PT+1S",     "PT1 S",    " PT1S",        "PT1S ",       "P1DT1H1D", "pt1s",  "P0x10D",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(weir_duration_parse(bad[i], &us), WEIR_EINVAL);
    }
}

static void test_parse_uint(void **state)
{
    uint64_t v = 7;
    assert_true(weir_parse_uint("0", 10, &v));
    assert_int_equal(v, 0);
    assert_true(weir_parse_uint("0042", 100, &v));
    assert_int_equal(v, 42);
    assert_true(weir_parse_uint("18446744073709551615", UINT64_MAX, &v));
    assert_true(v == UINT64_MAX);
    assert_true(weir_parse_uint("9223372036854775807", INT64_MAX, &v));
    assert_true(v == INT64_MAX);

    v = 7;
    const char *bad[] = {"", " 5", "5 ", "+5", "-5", "-0", "5x", "0x5", "1e3", "11", "5.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(weir_parse_uint(bad[i], 10, &v));
    }
    assert_false(weir_parse_uint(NULL, 10, &v));
    assert_false(weir_parse_uint("18446744073709551616", UINT64_MAX, &v));
    assert_false(weir_parse_uint("9223372036854775808", INT64_MAX, &v));
    assert_false(weir_parse_uint("1", 0, &v));
    assert_int_equal(v, 7); /* untouched */
}

static void test_buf_json_str(void **state)
{
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_json_str(&b, "a\"b\\c\n\x01", 7);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\"");
    weir_buf_reset(&b);
    weir_buf_json_str(&b, "caf\xC3\xA9 \xFF", 7);
    assert_string_equal(b.data, "\"caf\xC3\xA9 \xEF\xBF\xBD\"");
    weir_buf_reset(&b);
    weir_buf_printf(&b, "%d-%s", 42, "x");
    assert_string_equal(b.data, "42-x");
    size_t len;
    char *taken = weir_buf_take(&b, &len);
    assert_int_equal(len, 4);
    assert_null(b.data);
    weir_free(taken);
}

static void test_err(void **state)
{
    weir_err_t err;
    assert_int_equal(weir_err_set(&err, WEIR_EINVAL, "id", "bad %s", "thing"), WEIR_EINVAL);
    assert_int_equal(err.code, WEIR_EINVAL);
    assert_string_equal(err.attr, "id");
    assert_string_equal(err.msg, "bad thing");
    /* A message may wrap the one it replaces, and keep its own attribute. */
    weir_err_set(&err, WEIR_EINVAL, err.attr, "the body is not valid JSON: %s", err.msg);
    assert_string_equal(err.attr, "id");
    assert_string_equal(err.msg, "the body is not valid JSON: bad thing");
    assert_int_equal(weir_err_set(NULL, WEIR_EIO, NULL, "ignored"), WEIR_EIO);
    assert_string_equal(weir_strerror(WEIR_ENOTFOUND), "not found");
    assert_string_equal(weir_strerror(-999), "unknown error");
}

static void test_ratelimit(void **state)
{
    weir_ratelimit_t rl = WEIR_RATELIMIT_INIT(0.001, 3);
    assert_true(weir_ratelimit_allow(&rl));
    assert_true(weir_ratelimit_allow(&rl));
    assert_true(weir_ratelimit_allow(&rl));
    assert_false(weir_ratelimit_allow(&rl));
}

static uint64_t timespec_ns(struct timespec ts)
{
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_mono_deadline(void **state)
{
    /* Normalised, and as far ahead as asked, for waits under and over a second. */
    uint64_t waits[] = {0, 1, 999999999u, 1000000000u, 2500000000u};
    for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
        uint64_t before = weir_mono_ns();
        struct timespec ts = weir_mono_deadline(waits[i]);
        uint64_t after = weir_mono_ns();
        assert_true(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L);
        assert_true(timespec_ns(ts) >= before + waits[i]);
        assert_true(timespec_ns(ts) <= after + waits[i]);
    }

    /* A timed wait on a monotonic condition variable ends at that deadline. */
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cond;
    weir_cond_init_mono(&cond);
    pthread_mutex_lock(&lock);
    struct timespec until = weir_mono_deadline(20000000u);
    while (pthread_cond_timedwait(&cond, &lock, &until) != ETIMEDOUT) {
    }
    assert_true(weir_mono_ns() >= timespec_ns(until));
    pthread_mutex_unlock(&lock);
    pthread_cond_destroy(&cond);
}

static void test_case(void **state)
{
    assert_int_equal(weir_strcasecmp("Content-Type", "content-type"), 0);
    assert_true(weir_strcasecmp("a", "b") < 0);
    assert_true(weir_has_prefix_ci("CE-Id", "ce-"));
    assert_false(weir_has_prefix_ci("c", "ce-"));
    char id[WEIR_UUID_STR];
    weir_uuid(id);
    assert_int_equal(strlen(id), 36);
    assert_int_equal(id[14], '4');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),          cmocka_unit_test(test_base64),
        cmocka_unit_test(test_glob),          cmocka_unit_test(test_time),
        cmocka_unit_test(test_duration),      cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_buf_json_str),  cmocka_unit_test(test_err),
        cmocka_unit_test(test_ratelimit),     cmocka_unit_test(test_case),
        cmocka_unit_test(test_mono_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
