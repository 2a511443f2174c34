/*
 * Fuzz target of the script module: compiles the input as a filter body and runs it on events
 * with JSON data, with binary data and with none, in one pool shared by all inputs (so that what
 * one input leaves in a heap meets the next). An input may also carry its own event: after a NUL
 * byte, an event in the JSON format; when it decodes, the script runs on it too, so that the
 * fuzzer varies the events as well as the scripts. Aborts when a run breaks the interface's
 * promises: an error other than WEIR_ESCRIPT, without a message or with one that is not valid
 * UTF-8, or a kept event that is not valid.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "script/script.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static weir_script_pool_t *pool;
static weir_event_t *events[3];

static weir_event_t *decode(const char *json)
{
    weir_event_t *ev = NULL;
    if (weir_ce_decode_structured(json, strlen(json), &ev, NULL) != 0) {
        abort();
    }
    return ev;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* Tight bounds keep each input fast; the engine's behaviour at a bound is the same. */
    weir_script_limits_t limits = {.timeout_ms = 20, .mem_bytes = 4u << 20, .max_idle = 2};
    pool = weir_script_pool_new(&limits);
    events[0] = decode("{\"specversion\":\"1.0\",\"id\":\"f-1\",\"source\":\"/fuzz\",\"type\":"
                       "\"com.example.x\",\"subject\":\"caf\\u00e9\",\"count\":42,\"flag\":true,"
                       "\"datacontenttype\":\"application/json\",\"data\":{\"a\":[1,2.5,\"s\"]}}");
    events[1] = decode("{\"specversion\":\"1.0\",\"id\":\"f-2\",\"source\":\"/fuzz\",\"type\":"
                       "\"bin\",\"data_base64\":\"AP/+gAE=\"}");
    events[2] = decode("{\"specversion\":\"0.3\",\"id\":\"f-3\",\"source\":\"/fuzz\",\"type\":"
                       "\"none\"}");
    return 0;
}

static void check(int rc, const weir_err_t *err, weir_event_t *out)
{
    if (rc != 0) {
        if (rc != WEIR_ESCRIPT || out != NULL || err->code != rc || err->msg[0] == '\0' ||
            !weir_utf8_valid(err->msg, strlen(err->msg))) {
            abort();
        }
        return;
    }
    if (out != NULL && weir_ce_validate(out, NULL) != 0) {
        abort();
    }
    weir_ce_free(out);
}

static void run(weir_script_t *script, const weir_event_t *ev)
{
    weir_event_t *out = NULL;
    weir_err_t err;
    weir_err_clear(&err);
    int rc = weir_script_run(pool, script, ev, &out, NULL, NULL, &err);
    check(rc, &err, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    weir_script_t *script;
    weir_err_t err;
    const uint8_t *nul = memchr(data, 0, size);
    size_t script_len = nul ? (size_t)(nul - data) : size;
    weir_event_t *own = NULL;
    if (nul != NULL &&
        weir_ce_decode_structured((const char *)nul + 1, size - script_len - 1, &own, NULL) != 0) {
        own = NULL;
    }
    if (weir_script_compile((const char *)data, script_len, &script, &err) != 0) {
        weir_ce_free(own);
        if (err.msg[0] == '\0' || !weir_utf8_valid(err.msg, strlen(err.msg))) {
            abort();
        }
        return 0;
    }
    for (size_t i = 0; i < 3; i++) {
        run(script, events[i]);
    }
    if (own != NULL) {
        run(script, own);
        weir_ce_free(own);
    }
    weir_script_unref(script);
    return 0;
}
