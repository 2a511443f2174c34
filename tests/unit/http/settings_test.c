/* Unit tests of weir serve's settings: defaults, environment, flags, and every refusal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/internal.h"

extern char **environ;

/* Clears every variable a setting reads, so that the machine's environment plays no part. */
static int clear_env(void **state)
{
    (void)state;
    for (;;) {
        char *found = NULL;
        for (char **e = environ; *e != NULL; e++) {
            if (strncmp(*e, "WEIR_", 5) == 0 || strncmp(*e, "K_", 2) == 0) {
                found = *e;
                break;
            }
        }
        if (found == NULL) {
            return 0;
        }
        char name[256];
        size_t n = strcspn(found, "=");
        assert_true(n < sizeof(name));
        memcpy(name, found, n);
        name[n] = '\0';
        unsetenv(name);
    }
}

/* Parses the flags (after "serve"), keeping what was written to fd meanwhile in out. */
static int parse_to(weir_settings_t *s, const char *const *flags, int fd, char *out, size_t outlen)
{
    char *argv[32] = {"serve"};
    int argc = 1;
    for (; flags != NULL && flags[argc - 1] != NULL; argc++) {
        assert_true(argc < 32);
        argv[argc] = (char *)flags[argc - 1];
    }
    argv[argc] = NULL;

    FILE *capture = tmpfile();
    assert_non_null(capture);
    fflush(NULL);
    int saved = dup(fd);
    assert_true(saved >= 0);
    assert_true(dup2(fileno(capture), fd) >= 0);
    int rc = weir_settings_parse(s, argc, argv);
    fflush(NULL);
    assert_true(dup2(saved, fd) >= 0);
    close(saved);

    rewind(capture);
    size_t n = fread(out, 1, outlen - 1, capture);
    out[n] = '\0';
    fclose(capture);
    return rc;
}

/* Parses the flags, keeping what was written to stderr. */
static int parse(weir_settings_t *s, const char *const *flags, char *err, size_t errlen)
{
    return parse_to(s, flags, STDERR_FILENO, err, errlen);
}

/* The flags are refused with one JSON log line at level error that says why. */
static void check_refused(const char *const *flags, const char *why)
{
    weir_settings_t s;
    char err[1024];
    assert_int_equal(parse(&s, flags, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "{\"time\":"));
    assert_non_null(strstr(err, "\"level\":\"error\""));
    if (strstr(err, why) == NULL) {
        fail_msg("%s: expected \"%s\", got %s", flags[0], why, err);
    }
    assert_ptr_equal(strchr(err, '\n'), err + strlen(err) - 1); /* one line */
}

static void test_defaults(void **state)
{
    weir_settings_t s;
    char err[1024];
    assert_int_equal(parse(&s, NULL, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(s.sink_addr, ":8080");
    assert_string_equal(s.api_addr, ":8081");
    assert_string_equal(s.data_dir, "./data");
    assert_int_equal(s.max_body, 1048576);
    assert_int_equal(s.max_inflight_bytes, 64 * 1024 * 1024);
    assert_false(s.no_sync);
    assert_int_equal(s.idle_timeout_s, 60);
    assert_int_equal(s.header_timeout_s, 30);
    assert_int_equal(s.body_timeout_s, 60);
    assert_int_equal(s.shutdown_timeout_s, 30);
    assert_string_equal(s.log_level, "info");
    assert_true(s.system_events);
    assert_string_equal(s.source_sink, "");
    assert_int_equal(s.retention_max_age_us, 0);
    assert_int_equal(s.delivery_stalled_inflight, 512 / 4); /* derived from --delivery-inflight */
}

static void test_env_and_flags(void **state)
{
    weir_settings_t s;
    char err[1024];
    setenv("WEIR_SINK_ADDR", "127.0.0.1:9000", 1);
    setenv("WEIR_API_ADDR", "[::1]:9001", 1);
    setenv("WEIR_NO_SYNC", "yes", 1);
    setenv("K_SINK", "http://broker.example", 1);
    setenv("WEIR_RETENTION_MAX_AGE", "P1D", 1);
    const char *flags[] = {
        "--api-addr", ":7001", "--body-timeout=5", "--system-events=false", "--delivery-inflight",
        "8",          NULL};
    assert_int_equal(parse(&s, flags, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(s.sink_addr, "127.0.0.1:9000"); /* from the environment */
    assert_string_equal(s.api_addr, ":7001");           /* the flag wins */
    assert_true(s.no_sync);
    assert_string_equal(s.source_sink, "http://broker.example");
    assert_int_equal(s.retention_max_age_us, INT64_C(86400000000));
    assert_int_equal(s.body_timeout_s, 5);
    assert_false(s.system_events);
    assert_int_equal(s.delivery_stalled_inflight, 2);

    const char *bare[] = {"--no-sync", NULL}; /* a boolean flag alone is true */
    setenv("WEIR_NO_SYNC", "false", 1);
    assert_int_equal(parse(&s, bare, err, sizeof(err)), 0);
    assert_true(s.no_sync);
}

static void test_help(void **state)
{
    weir_settings_t s;
    static char help[32768];
    /* Asked for, help is shown on stdout whatever else is wrong, and lists every setting. */
    const char *flags[] = {"--no-such-flag", "--help", NULL};
    assert_int_equal(parse_to(&s, flags, STDOUT_FILENO, help, sizeof(help)), 1);
    assert_true(strncmp(help, "usage: weir serve [flags]\n", 26) == 0);
    assert_non_null(strstr(help, "  --body-timeout "));
    assert_non_null(strstr(help, "WEIR_BODY_TIMEOUT (default 60)\n"));
    assert_non_null(strstr(help, "K_SINK (default )\n"));
    assert_non_null(strstr(help, "  --no-sync "));

    static char short_help[32768];
    const char *h[] = {"-h", NULL};
    assert_int_equal(parse_to(&s, h, STDOUT_FILENO, short_help, sizeof(short_help)), 1);
    assert_string_equal(short_help, help);
}

static void test_bad_values(void **state)
{
    check_refused((const char *[]){"--no-such-flag", NULL}, "unknown flag --no-such-flag");
    check_refused((const char *[]){"serve", NULL}, "unexpected argument serve");
    check_refused((const char *[]){"--max-body", NULL}, "--max-body: bad or missing value");
    check_refused((const char *[]){"--max-body=", NULL}, "--max-body: bad or missing value");
    check_refused((const char *[]){"--max-body", "-1", NULL}, "--max-body: bad or missing value");
    check_refused((const char *[]){"--max-body", "1k", NULL}, "--max-body: bad or missing value");
    check_refused((const char *[]){"--idle-timeout", "1000001", NULL},
                  "--idle-timeout: bad or missing value");
    check_refused((const char *[]){"--no-sync=maybe", NULL}, "--no-sync: bad or missing value");

    setenv("WEIR_QUEUE_MAX", "many", 1);
    check_refused((const char *[]){NULL}, "WEIR_QUEUE_MAX: bad value");
    unsetenv("WEIR_QUEUE_MAX");
}

static void test_checks(void **state)
{
    check_refused((const char *[]){"--max-body", "65535", NULL},
                  "--max-body must be at least 65536");
    check_refused(
        (const char *[]){"--max-body", "2000000", "--max-inflight-bytes", "1000000", NULL},
        "--max-inflight-bytes must be at least --max-body");
    check_refused((const char *[]){"--queue-max", "0", NULL},
                  "connections, queue and batch sizes must be > 0");
    check_refused((const char *[]){"--header-timeout", "0", NULL},
                  "--header-timeout and --body-timeout must be > 0");
    check_refused((const char *[]){"--body-timeout", "0", NULL},
                  "--header-timeout and --body-timeout must be > 0");
    check_refused((const char *[]){"--filter-memory", "1000", NULL}, "--filter-memory at least");
    check_refused((const char *[]){"--log-level", "loud", NULL},
                  "--log-level must be debug, info, warn or error");
    check_refused((const char *[]){"--source-sink", "http://x", "--outbox-max", "0", NULL},
                  "--outbox-max must be > 0");
    check_refused((const char *[]){"--retention-max-age", "a week", NULL},
                  "--retention-max-age must be an ISO 8601 duration");
    check_refused((const char *[]){"--retention-interval", "0", NULL}, "--retention-interval is 0");
    check_refused((const char *[]){"--stream-heartbeat", "30", NULL},
                  "the heartbeat shorter than --stream-write-timeout");
    check_refused((const char *[]){"--delivery-inflight", "1", NULL},
                  "--delivery-inflight must be at least 2");
    check_refused((const char *[]){"--delivery-stalled-inflight", "512", NULL},
                  "--delivery-stalled-inflight below --delivery-inflight");
    check_refused((const char *[]){"--reply-max-hops", "1001", NULL},
                  "--reply-max-hops is at most 1000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_env_and_flags, clear_env),
        cmocka_unit_test_setup(test_help, clear_env),
        cmocka_unit_test_setup(test_bad_values, clear_env),
        cmocka_unit_test_setup(test_checks, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
