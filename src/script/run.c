/*
 * One run of a filter on one event, in a heap that the caller has armed.
 *
 * The attributes are handed over eagerly and the data lazily: `data` (or `data_base64`) is an
 * accessor that decodes the data into a JavaScript value the first time the script reads it. A
 * script that never reads nor writes the data and returns the event it was given gets back the
 * original data bytes: the accessor answers undefined while the result is being encoded, and the
 * bytes are attached to the decoded event.
 */
#include <stdlib.h>
#include <string.h>

#include "script/engine.h"

/* Where the data decoded into JavaScript is kept on the event object; scripts cannot see it. */
#define DATA_KEY DUK_HIDDEN_SYMBOL("data")

typedef struct run {
    const weir_script_t *script;
    const weir_event_t *in;
    void *event;           /* the event object handed to the script */
    bool touched;          /* the script read or wrote the data */
    bool finishing;        /* the result is being encoded */
    bool fast;             /* the result is the event object with its data untouched */
    bool kept;             /* the script returned an object, now encoded as JSON */
    const char *not_event; /* what the script returned instead of an object, or NULL */
    weir_script_log_cb log_cb;
    void *log_ctx;
    char *scratch; /* C memory that a throw must not leak; freed after the run */
} run_t;

static _Atomic uint64_t data_decodes;

uint64_t weir_script_data_decodes(void)
{
    return data_decodes;
}

/* ---- native functions ------------------------------------------------------------------- */

/* Objects and arrays are logged as JSON, which says more than "[object Object]". */
static void log_arg_to_string(duk_context *ctx, duk_idx_t i)
{
    if (duk_is_object(ctx, i) && !duk_is_function(ctx, i) && !duk_is_error(ctx, i)) {
        duk_json_encode(ctx, i);
    }
    if (!duk_is_string(ctx, i)) {
        duk_to_string(ctx, i);
    }
}

duk_ret_t weir_script__nslog(duk_context *ctx)
{
    run_t *r = weir_script__engine_of(ctx)->run;
    if (r == NULL || r->log_cb == NULL) {
        return 0;
    }

    duk_idx_t n = duk_get_top(ctx);
    for (duk_idx_t i = 0; i < n; i++) {
        log_arg_to_string(ctx, i);
    }
    duk_push_string(ctx, " ");
    duk_insert(ctx, 0);
    duk_join(ctx, n);

    duk_size_t len;
    const char *s = duk_get_lstring(ctx, -1, &len);
    char line[WEIR_SCRIPT_LOG_LINE_MAX + 1];
    size_t m = weir_script__utf8_copy(line, sizeof(line), s, len);
    r->log_cb(r->log_ctx, line, m);
    return 0;
}

/* The data's JSON view, decoded into a JavaScript value kept on the event object. */
static void decode_data(duk_context *ctx, run_t *r)
{
    r->scratch = weir_ce_data_json(r->in, NULL);
    duk_push_string(ctx, r->scratch);
    weir_free(r->scratch);
    r->scratch = NULL;
    duk_json_decode(ctx, -1);
    duk_put_prop_string(ctx, -2, DATA_KEY);
    r->touched = true;
    data_decodes++;
}

/* Both accessors serve the run's event object, whatever `this` a script calls them with. */
duk_ret_t weir_script__data_get(duk_context *ctx)
{
    run_t *r = weir_script__engine_of(ctx)->run;
    if (r == NULL || (r->finishing && r->fast)) {
        return 0;
    }
    duk_push_heapptr(ctx, r->event);
    if (!r->touched) {
        decode_data(ctx, r);
    }
    duk_get_prop_string(ctx, -1, DATA_KEY);
    return 1;
}

duk_ret_t weir_script__data_set(duk_context *ctx)
{
    run_t *r = weir_script__engine_of(ctx)->run;
    if (r == NULL) {
        return 0;
    }
    duk_push_heapptr(ctx, r->event);
    duk_dup(ctx, 0);
    duk_put_prop_string(ctx, -2, DATA_KEY);
    r->touched = true;
    return 0;
}

/* ---- the run ---------------------------------------------------------------------------- */

static void push_attr(duk_context *ctx, const weir_ce_attr_t *a)
{
    switch (a->type) {
    case WEIR_CE_INTEGER:
        duk_push_int(ctx, (duk_int_t)strtol(a->value, NULL, 10));
        break;
    case WEIR_CE_BOOLEAN:
        duk_push_boolean(ctx, strcmp(a->value, "true") == 0);
        break;
    default:
        duk_push_string(ctx, a->value);
        break;
    }
    duk_put_prop_string(ctx, -2, a->name);
}

/*
 * The data accessor, named as the JSON format names the data. Bytes that are not UTF-8 text are
 * base64: "data_base64" in 1.0; in 0.3, "data" with datacontentencoding saying so.
 */
static void define_data(duk_context *ctx, engine_t *e, const weir_event_t *in)
{
    bool base64 = in->data_kind == WEIR_CE_DATA_BYTES &&
                  !weir_utf8_valid((const char *)in->data, in->data_len);
    const char *version = weir_ce_get(in, "specversion");
    bool v03 = version != NULL && strcmp(version, "0.3") == 0;
    if (base64 && v03) {
        duk_push_string(ctx, "base64");
        duk_put_prop_string(ctx, -2, "datacontentencoding");
    }

    duk_push_string(ctx, base64 && !v03 ? "data_base64" : "data");
    duk_push_heapptr(ctx, e->getter);
    duk_push_heapptr(ctx, e->setter);
    /*
     * Permanent: were it deleted or redefined without the setter noticing, the original bytes
     * would come back in place of what the script meant. Assigning undefined removes the data.
     */
    duk_def_prop(ctx, -4,
                 DUK_DEFPROP_HAVE_GETTER | DUK_DEFPROP_HAVE_SETTER | DUK_DEFPROP_SET_ENUMERABLE |
                     DUK_DEFPROP_CLEAR_CONFIGURABLE);
}

static void push_event(duk_context *ctx, engine_t *e, run_t *r)
{
    duk_push_object(ctx);
    for (size_t i = 0; i < r->in->nattrs; i++) {
        push_attr(ctx, &r->in->attrs[i]);
    }
    if (r->in->data_kind != WEIR_CE_DATA_NONE) {
        define_data(ctx, e, r->in);
    }
    /* Held until the run is cleaned up: a script may drop every reference of its own to the
     * event and still reach the data accessors, from a toString run while its error is shown. */
    r->event = weir_script__engine_keep(ctx, "event");
}

static const char *type_name(duk_context *ctx, duk_idx_t i)
{
    if (duk_is_array(ctx, i)) {
        return "an array";
    }
    if (duk_is_function(ctx, i)) {
        return "a function";
    }
    switch (duk_get_type(ctx, i)) {
    case DUK_TYPE_OBJECT:
        return NULL;
    case DUK_TYPE_NUMBER:
        return "a number";
    case DUK_TYPE_STRING:
        return "a string";
    case DUK_TYPE_BOOLEAN:
        return "a boolean";
    default:
        return "a value of another type";
    }
}

/* [ ] -> [ json | undefined ]: what the script returned, encoded. */
static duk_ret_t finish(duk_context *ctx, run_t *r)
{
    if (duk_is_null_or_undefined(ctx, -1)) {
        return 0;
    }
    r->not_event = type_name(ctx, -1);
    if (r->not_event != NULL) {
        return 0;
    }

    r->fast = !r->touched && duk_get_heapptr(ctx, -1) == r->event;
    r->finishing = true;
    r->kept = true;
    duk_json_encode(ctx, -1);
    return 1;
}

static duk_ret_t run_body(duk_context *ctx, void *udata)
{
    engine_t *e = udata;
    run_t *r = e->run;

    push_event(ctx, e, r);
    duk_dup(ctx, -1);
    duk_put_global_string(ctx, "event");
    weir_script__engine_push_function(e, r->script);
    duk_call(ctx, 0);
    return finish(ctx, r);
}

/* [ error ] -> [ ]: the thrown value as a message. Script code may run (a toString). */
static duk_ret_t describe_body(duk_context *ctx, void *udata)
{
    weir_err_t *err = udata;
    int line = 0;
    if (duk_is_error(ctx, 0)) {
        duk_get_prop_string(ctx, 0, "lineNumber");
        line = duk_get_int(ctx, -1);
        duk_pop(ctx);
    }

    duk_size_t n;
    const char *s = duk_to_lstring(ctx, 0, &n);
    char text[WEIR_ERR_MSG_MAX - 64];
    weir_script__utf8_copy(text, sizeof(text), s, n);
    if (line > 0) {
        weir_err_set(err, WEIR_ESCRIPT, NULL, "filter threw at line %d: %s", line, text);
    } else {
        weir_err_set(err, WEIR_ESCRIPT, NULL, "filter threw: %s", text);
    }
    return 0;
}

static int over_memory(size_t limit, weir_err_t *err)
{
    return weir_err_set(err, WEIR_ESCRIPT, NULL, "filter exceeded its memory limit of %zu MiB",
                        limit >> 20);
}

/* [ error ] -> [ ] */
static int failure(engine_t *e, uint32_t timeout_ms, size_t limit, weir_err_t *err)
{
    weir_err_t thrown;
    bool described = duk_safe_call(e->ctx, describe_body, &thrown, 1, 0) == DUK_EXEC_SUCCESS;
    /* Near its limit a heap collects garbage before each refusal: the time often runs out then. */
    if (e->exhausted) {
        return over_memory(limit, err);
    }
    if (e->timed_out) {
        return weir_err_set(err, WEIR_ESCRIPT, NULL, "filter timed out after %u ms", timeout_ms);
    }
    if (e->stack_exceeded) {
        return weir_err_set(err, WEIR_ESCRIPT, NULL, "filter nested calls too deeply");
    }
    if (!described) {
        return weir_err_set(err, WEIR_ESCRIPT, NULL, "filter threw a value that cannot be shown");
    }
    if (err != NULL) {
        *err = thrown;
    }
    return WEIR_ESCRIPT;
}

/* [ json | undefined ] -> [ ] */
static int result(engine_t *e, run_t *r, weir_event_t **out, weir_err_t *err)
{
    duk_context *ctx = e->ctx;
    if (r->not_event != NULL) {
        duk_pop(ctx);
        return weir_err_set(err, WEIR_ESCRIPT, NULL, "filter returned %s, not an event",
                            r->not_event);
    }
    if (!r->kept || !duk_is_string(ctx, -1)) {
        duk_pop(ctx);
        return r->kept ? weir_err_set(err, WEIR_ESCRIPT, NULL,
                                      "filter returned an object that has no JSON form")
                       : 0;
    }

    duk_size_t n;
    const char *json = duk_get_lstring(ctx, -1, &n);
    weir_buf_t fixed = WEIR_BUF_INIT;
    if (memchr(json, 0xED, n) != NULL) { /* where every surrogate's encoding starts */
        weir_script__utf8_fix(&fixed, json, n);
        json = fixed.data;
        n = fixed.len;
    }
    weir_err_t why;
    int rc = weir_ce_decode_structured(json, n, out, &why);
    weir_buf_free(&fixed);
    duk_pop(ctx);
    if (rc != 0) {
        return weir_err_set(err, WEIR_ESCRIPT, why.attr, "filter returned an invalid event: %s%s%s",
                            why.attr, why.attr[0] != '\0' ? ": " : "", why.msg);
    }
    if (r->fast && (*out)->data_kind == WEIR_CE_DATA_NONE) {
        weir_ce_set_data(*out, r->in->data_kind, r->in->data, r->in->data_len);
    }
    return 0;
}

int weir_script__run(engine_t *e, const weir_script_t *script, const weir_event_t *in,
                     weir_event_t **out, const engine_log_t *log,
                     const weir_script_limits_t *limits, bool *spent, weir_err_t *err)
{
    run_t r = {.script = script, .in = in, .log_cb = log->cb, .log_ctx = log->ctx};
    *out = NULL;
    e->run = &r;
    weir_script__engine_arm(e, limits->timeout_ms, limits->mem_bytes,
                            (uintptr_t)__builtin_frame_address(0));

    int rc;
    if (duk_safe_call(e->ctx, run_body, e, 0, 1) != DUK_EXEC_SUCCESS) {
        rc = failure(e, limits->timeout_ms, limits->mem_bytes, err);
    } else if (e->exhausted) {
        /* The script caught the error and went on, but a run that overran its memory failed. */
        duk_pop(e->ctx);
        rc = over_memory(limits->mem_bytes, err);
    } else {
        rc = result(e, &r, out, err);
    }
    weir_free(r.scratch);

    /* Duktape recovers from both, but a heap that met either is not worth keeping. */
    *spent = e->timed_out || e->exhausted;
    weir_script__engine_disarm(e);
    if (!*spent && !weir_script__engine_reset(e)) {
        *spent = true;
    }
    return rc;
}
