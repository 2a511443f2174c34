/*
 * Compiled scripts and the pool of heaps that runs them.
 *
 * A script is compiled once, in a heap of its own, into Duktape bytecode; each heap of a pool
 * loads that bytecode the first time it runs the script and keeps the function (heap.c), so a
 * filter is compiled once per process and loaded once per heap, never per event.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "script/engine.h"

#define COMPILE_TIMEOUT_MS 1000u

struct weir_script_pool {
    pthread_mutex_t lock;
    pthread_cond_t freed; /* a heap went back or away */
    engine_t *idle;       /* heaps waiting for a run, at most limits.max_idle */
    unsigned nidle;
    unsigned live; /* heaps alive, busy or idle, at most limits.max_heaps */
    weir_script_limits_t limits;
};

typedef struct compile_job {
    const char *src;
    size_t len;
    unsigned char *bytecode;
    size_t bytecode_len;
} compile_job_t;

static _Atomic uint64_t next_id = 1;

/* ---- compiling ---------------------------------------------------------------------------- */

/*
 * The body becomes a function expression whose first line is the body's first line, so that
 * Duktape's line numbers are the body's. The closing brace goes on a line of its own, out of
 * reach of a trailing // comment. Compiling a function expression stops at the brace that closes
 * it and ignores what follows, so the whole text is first parsed as a program, which must be
 * valid to its end. (A body that closes the function early and opens another, as in
 * "}, function () {", still passes: it is valid JavaScript; the first function is the filter.)
 */
static duk_ret_t compile_body(duk_context *ctx, void *udata)
{
    compile_job_t *job = udata;
    duk_push_string(ctx, "(function () {");
    duk_push_lstring(ctx, job->src, job->len);
    duk_push_string(ctx, "\n})");
    duk_concat(ctx, 3);
    duk_push_string(ctx, "filter");
    duk_compile(ctx, 0);
    duk_pop(ctx);

    duk_push_string(ctx, "function () {");
    duk_push_lstring(ctx, job->src, job->len);
    duk_push_string(ctx, "\n}");
    duk_concat(ctx, 3);
    duk_push_string(ctx, "filter");
    duk_compile(ctx, DUK_COMPILE_FUNCTION);
    duk_dump_function(ctx);

    duk_size_t n;
    void *p = duk_get_buffer(ctx, -1, &n);
    job->bytecode = weir_memdup(p, n);
    job->bytecode_len = n;
    return 0;
}

/* Duktape ends a syntax error's message with " (line N)" or " (line N, end of input)". */
static size_t strip_line_suffix(const char *s, size_t n)
{
    const char *tail = NULL;
    for (const char *p = strstr(s, " (line "); p != NULL; p = strstr(p + 1, " (line ")) {
        tail = p;
    }
    if (tail == NULL || s[n - 1] != ')') {
        return n;
    }
    return (size_t)(tail - s);
}

/* [ error ] -> [ ] */
static duk_ret_t describe_syntax(duk_context *ctx, void *udata)
{
    weir_err_t *err = udata;
    duk_get_prop_string(ctx, 0, "lineNumber");
    int line = duk_get_int(ctx, -1);
    duk_pop(ctx);

    duk_size_t n;
    const char *s = duk_safe_to_lstring(ctx, 0, &n);
    char text[WEIR_ERR_MSG_MAX - 32];
    weir_script__utf8_copy(text, sizeof(text), s, n == 0 ? 0 : strip_line_suffix(s, n));
    weir_err_set(err, WEIR_EINVAL, NULL, "line %d: %s", line, text);
    return 0;
}

static int compile_error(engine_t *e, weir_err_t *err)
{
    if (e->timed_out) {
        return weir_err_set(err, WEIR_EINVAL, NULL, "the filter takes too long to compile");
    }
    if (e->exhausted) {
        return weir_err_set(err, WEIR_ETOOBIG, NULL,
                            "the filter is too large to compile: it needs more than %u MiB",
                            WEIR_SCRIPT_COMPILE_MEM >> 20);
    }
    if (e->stack_exceeded) {
        return weir_err_set(err, WEIR_EINVAL, NULL, "the filter nests too deeply to compile");
    }

    weir_err_t why;
    if (duk_safe_call(e->ctx, describe_syntax, &why, 1, 0) != DUK_EXEC_SUCCESS) {
        return weir_err_set(err, WEIR_EINVAL, NULL, "the filter does not compile");
    }
    if (err != NULL) {
        *err = why;
    }
    return WEIR_EINVAL;
}

static int compile_in(engine_t *e, compile_job_t *job, weir_err_t *err)
{
    weir_script__engine_arm(e, COMPILE_TIMEOUT_MS, WEIR_SCRIPT_COMPILE_MEM,
                            (uintptr_t)__builtin_frame_address(0));
    int rc = 0;
    if (duk_safe_call(e->ctx, compile_body, job, 0, 1) != DUK_EXEC_SUCCESS) {
        rc = compile_error(e, err);
    } else {
        duk_pop(e->ctx);
    }
    weir_script__engine_disarm(e);
    return rc;
}

int weir_script_compile(const char *src, size_t len, weir_script_t **out, weir_err_t *err)
{
    *out = NULL;
    if (len > WEIR_SCRIPT_SRC_MAX) {
        return weir_err_set(err, WEIR_ETOOBIG, NULL, "a filter may be at most %u bytes",
                            WEIR_SCRIPT_SRC_MAX);
    }
    if (!weir_utf8_valid(src, len)) {
        return weir_err_set(err, WEIR_EINVAL, NULL, "the filter is not valid UTF-8");
    }

    engine_t *e = weir_script__engine_new(WEIR_SCRIPT_COMPILE_MEM, false);
    if (e == NULL) {
        return weir_err_set(err, WEIR_ENOMEM, NULL, "no memory to compile the filter");
    }
    compile_job_t job = {.src = src, .len = len};
    int rc = compile_in(e, &job, err);
    weir_script__engine_free(e);
    if (rc != 0) {
        return rc;
    }

    weir_script_t *script = weir_calloc(1, sizeof(*script));
    atomic_init(&script->refs, 1);
    script->id = next_id++;
    script->bytecode = job.bytecode;
    script->len = job.bytecode_len;
    *out = script;
    return 0;
}

weir_script_t *weir_script_ref(weir_script_t *script)
{
    atomic_fetch_add(&script->refs, 1);
    return script;
}

void weir_script_unref(weir_script_t *script)
{
    if (script == NULL || atomic_fetch_sub(&script->refs, 1) != 1) {
        return;
    }
    weir_free(script->bytecode);
    weir_free(script);
}

/* ---- the pool --------------------------------------------------------------------------- */

static weir_script_limits_t resolve(const weir_script_limits_t *given,
                                    const weir_script_limits_t *fallback)
{
    weir_script_limits_t l = given != NULL ? *given : (weir_script_limits_t){0};
    if (l.timeout_ms == 0) {
        l.timeout_ms = fallback->timeout_ms;
    }
    if (l.mem_bytes == 0) {
        l.mem_bytes = fallback->mem_bytes;
    }
    if (l.mem_bytes < WEIR_SCRIPT_MEM_MIN) {
        l.mem_bytes = WEIR_SCRIPT_MEM_MIN;
    }
    if (l.max_idle == 0) {
        l.max_idle = fallback->max_idle;
    }
    if (l.max_heaps == 0) {
        l.max_heaps = fallback->max_heaps;
    }
    return l;
}

weir_script_pool_t *weir_script_pool_new(const weir_script_limits_t *limits)
{
    static const weir_script_limits_t defaults = {WEIR_SCRIPT_TIMEOUT_DEFAULT,
                                                  WEIR_SCRIPT_MEM_DEFAULT, WEIR_SCRIPT_IDLE_DEFAULT,
                                                  WEIR_SCRIPT_HEAPS_DEFAULT};
    weir_script_pool_t *pool = weir_calloc(1, sizeof(*pool));
    pthread_mutex_init(&pool->lock, NULL);
    weir_cond_init_mono(&pool->freed);
    pool->limits = resolve(limits, &defaults);
    if (pool->limits.max_idle > pool->limits.max_heaps) {
        pool->limits.max_idle = pool->limits.max_heaps;
    }
    return pool;
}

void weir_script_pool_free(weir_script_pool_t *pool)
{
    if (pool == NULL) {
        return;
    }
    while (pool->idle != NULL) {
        engine_t *e = pool->idle;
        pool->idle = e->next;
        weir_script__engine_free(e);
    }
    pthread_cond_destroy(&pool->freed);
    pthread_mutex_destroy(&pool->lock);
    weir_free(pool);
}

/*
 * A heap for one run: an idle one, or a new one while fewer than max_heaps are alive; otherwise
 * it waits up to wait_ms for one to come free. WEIR_EBUSY when none did, WEIR_ENOMEM when a new
 * heap could not be made.
 */
static int take(weir_script_pool_t *pool, uint32_t wait_ms, engine_t **out)
{
    struct timespec deadline = weir_mono_deadline((uint64_t)wait_ms * 1000000u);

    pthread_mutex_lock(&pool->lock);
    while (pool->idle == NULL && pool->live >= pool->limits.max_heaps) {
        if (pthread_cond_timedwait(&pool->freed, &pool->lock, &deadline) != 0 &&
            pool->idle == NULL && pool->live >= pool->limits.max_heaps) {
            pthread_mutex_unlock(&pool->lock);
            return WEIR_EBUSY;
        }
    }
    engine_t *e = pool->idle;
    if (e != NULL) {
        pool->idle = e->next;
        pool->nidle--;
    } else {
        pool->live++; /* this run's place, held while the heap is made */
    }
    pthread_mutex_unlock(&pool->lock);
    if (e == NULL && (e = weir_script__engine_new(pool->limits.mem_bytes, true)) == NULL) {
        pthread_mutex_lock(&pool->lock);
        pool->live--;
        pthread_cond_signal(&pool->freed);
        pthread_mutex_unlock(&pool->lock);
        return WEIR_ENOMEM;
    }
    *out = e;
    return 0;
}

/* Ends a run's use of its heap: kept for the next run, or freed (spent, or enough are idle). */
static void give_back(weir_script_pool_t *pool, engine_t *e, bool spent)
{
    pthread_mutex_lock(&pool->lock);
    bool keep = !spent && pool->nidle < pool->limits.max_idle;
    if (keep) {
        e->next = pool->idle;
        pool->idle = e;
        pool->nidle++;
    } else {
        pool->live--;
    }
    pthread_cond_signal(&pool->freed);
    pthread_mutex_unlock(&pool->lock);
    if (!keep) {
        weir_script__engine_free(e);
    }
}

int weir_script_run_limited(weir_script_pool_t *pool, weir_script_t *script, const weir_event_t *in,
                            weir_event_t **out, weir_script_log_cb log_cb, void *log_ctx,
                            const weir_script_limits_t *limits, weir_err_t *err)
{
    *out = NULL;
    weir_script_limits_t l = resolve(limits, &pool->limits);
    engine_t *e = NULL;
    int rc = take(pool, l.timeout_ms, &e);
    if (rc == WEIR_EBUSY) {
        return weir_err_set(err, WEIR_EBUSY, NULL,
                            "all %u filter heaps stayed busy for %u ms; retry later",
                            pool->limits.max_heaps, l.timeout_ms);
    }
    if (rc != 0) {
        return weir_err_set(err, WEIR_ESCRIPT, NULL,
                            "filter exceeded its memory limit of %zu MiB before it started",
                            l.mem_bytes >> 20);
    }

    engine_log_t log = {log_cb, log_ctx};
    bool spent;
    rc = weir_script__run(e, script, in, out, &log, &l, &spent, err);
    give_back(pool, e, spent);
    return rc;
}

int weir_script_run(weir_script_pool_t *pool, weir_script_t *script, const weir_event_t *in,
                    weir_event_t **out, weir_script_log_cb log_cb, void *log_ctx, weir_err_t *err)
{
    return weir_script_run_limited(pool, script, in, out, log_cb, log_ctx, NULL, err);
}
