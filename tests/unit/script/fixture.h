/* Shared by the script tests: events, scripts and runs in one line each. */
#ifndef WEIR_TEST_SCRIPT_FIXTURE_H
#define WEIR_TEST_SCRIPT_FIXTURE_H

#include "script/script.h"

/* A structured-mode event; the test fails when json does not decode. */
weir_event_t *fx_event(const char *json);
/* The event with type set to type, the data 300 bytes of JSON. */
weir_event_t *fx_typed(const char *type);
/* A binary-mode event carrying bytes, with content type ctype (NULL for none). */
weir_event_t *fx_bytes(const void *data, size_t len, const char *ctype);

/* Compiles src; the test fails when it does not compile. */
weir_script_t *fx_compile(const char *src);

/* What fx_run saw: the log lines joined with '\n'. */
typedef struct fx_log {
    char text[8192];
    unsigned lines;
} fx_log_t;

/* Compiles src and runs it once on in in pool; err receives the detail. */
int fx_run(weir_script_pool_t *pool, const char *src, const weir_event_t *in, weir_event_t **out,
           fx_log_t *log, weir_err_t *err);

/*
 * Runs src, expects WEIR_ESCRIPT with a message starting with want, within bound_ms of wall time
 * (whatever the machine, sanitizers included), and then a working pool.
 */
void fx_expect_error(weir_script_pool_t *pool, const char *src, const char *want,
                     uint64_t bound_ms);

/* Asserts that the pool still runs a plain filter correctly. */
void fx_still_works(weir_script_pool_t *pool);

void fx_log_cb(void *ctx, const char *line, size_t len);

#endif
