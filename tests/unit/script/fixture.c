#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "fixture.h"

weir_event_t *fx_event(const char *json)
{
    weir_event_t *ev = NULL;
    weir_err_t err;
    int rc = weir_ce_decode_structured(json, strlen(json), &ev, &err);
    if (rc != 0) {
        fail_msg("event does not decode: %s: %s", err.attr, err.msg);
    }
    return ev;
}

weir_event_t *fx_typed(const char *type)
{
    char json[1024];
    snprintf(json, sizeof(json),
             "{\"specversion\":\"1.0\",\"id\":\"e-1\",\"source\":\"/src\",\"type\":\"%s\","
             "\"datacontenttype\":\"application/json\",\"data\":{\"pad\":\"%0250d\","
             "\"count\":1}}",
             type, 0);
    return fx_event(json);
}

weir_event_t *fx_bytes(const void *data, size_t len, const char *ctype)
{
    weir_event_t *ev =
        fx_event("{\"specversion\":\"1.0\",\"id\":\"b-1\",\"source\":\"/bin\",\"type\":\"bytes\"}");
    weir_err_t err;
    if (ctype != NULL) {
        assert_int_equal(weir_ce_set(ev, "datacontenttype", ctype, WEIR_CE_STRING, &err), 0);
    }
    weir_ce_set_data(ev, WEIR_CE_DATA_BYTES, data, len);
    return ev;
}

weir_script_t *fx_compile(const char *src)
{
    weir_script_t *script = NULL;
    weir_err_t err;
    if (weir_script_compile(src, strlen(src), &script, &err) != 0) {
        fail_msg("does not compile: %s", err.msg);
    }
    return script;
}

void fx_log_cb(void *ctx, const char *line, size_t len)
{
    fx_log_t *log = ctx;
    size_t used = strlen(log->text);
    snprintf(log->text + used, sizeof(log->text) - used, "%s%.*s", log->lines ? "\n" : "", (int)len,
             line);
    log->lines++;
}

int fx_run(weir_script_pool_t *pool, const char *src, const weir_event_t *in, weir_event_t **out,
           fx_log_t *log, weir_err_t *err)
{
    weir_script_t *script = fx_compile(src);
    weir_err_clear(err);
    int rc = weir_script_run(pool, script, in, out, log != NULL ? fx_log_cb : NULL, log, err);
    weir_script_unref(script);
    return rc;
}

void fx_still_works(weir_script_pool_t *pool)
{
    weir_event_t *in = fx_typed("still.works");
    weir_event_t *out = NULL;
    weir_err_t err;
    int rc = fx_run(pool, "event.checked = true; return event;", in, &out, NULL, &err);
    if (rc != 0) {
        fail_msg("the pool no longer works: %s", err.msg);
    }
    assert_non_null(out);
    assert_string_equal(weir_ce_get(out, "checked"), "true");
    assert_int_equal(out->data_len, in->data_len);
    assert_memory_equal(out->data, in->data, in->data_len);
    weir_ce_free(out);
    weir_ce_free(in);
}

void fx_expect_error(weir_script_pool_t *pool, const char *src, const char *want, uint64_t bound_ms)
{
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    uint64_t start = weir_mono_ns();
    int rc = fx_run(pool, src, in, &out, NULL, &err);
    uint64_t ms = (weir_mono_ns() - start) / 1000000u;
    if (rc != WEIR_ESCRIPT || strncmp(err.msg, want, strlen(want)) != 0) {
        fail_msg("%s: rc %d, \"%s\", wanted \"%s\"", src, rc, err.msg, want);
    }
    assert_null(out);
    if (ms >= bound_ms) {
        fail_msg("%s: stopped after %llu ms", src, (unsigned long long)ms);
    }
    assert_true(weir_utf8_valid(err.msg, strlen(err.msg)));
    weir_ce_free(in);
    fx_still_works(pool);
}
