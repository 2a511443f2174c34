/*
 * The bounds and the sandbox: each hostile script gets its error, and the next run works and
 * sees nothing that an earlier run left behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fixture.h"

/* How long a hostile script may take to be stopped: the pool's timeout and a second to spare. */
static uint64_t bound_ms;

static int setup(void **state)
{
    weir_script_limits_t limits = {.timeout_ms = 50, .mem_bytes = 8u << 20, .max_idle = 2};
    *state = weir_script_pool_new(&limits);
    bound_ms = limits.timeout_ms + 1000;
    return 0;
}

/* For the memory bounds: a timeout so long that the heap cap is what stops each script, even on a
 * slow sanitizer build on a loaded machine. */
static int setup_patient(void **state)
{
    weir_script_limits_t limits = {.timeout_ms = 10000, .mem_bytes = 8u << 20, .max_idle = 2};
    *state = weir_script_pool_new(&limits);
    bound_ms = limits.timeout_ms + 1000;
    return 0;
}

static int teardown(void **state)
{
    weir_script_pool_free(*state);
    return 0;
}

/* Runs src, expects WEIR_ESCRIPT with a message starting with want, then a working pool. */
static void expect_error(weir_script_pool_t *pool, const char *src, const char *want)
{
    fx_expect_error(pool, src, want, bound_ms);
}

static void endless_loop_times_out(void **state)
{
    expect_error(*state, "while (true) {}", "filter timed out after 50 ms");
    expect_error(*state, "for (;;) { try { for (;;) {} } catch (e) {} finally { continue; } }",
                 "filter timed out after 50 ms");
    expect_error(*state, "function f() { try { f(); } catch (e) { f(); } } f();",
                 "filter timed out after 50 ms");
}

static void slow_natives_time_out(void **state)
{
    /* Catastrophic backtracking runs in the regexp matcher, where no bytecode runs. */
    expect_error(*state, "return /^(a+)+$/.test('a'.repeat(40) + 'b') ? null : null;",
                 "filter timed out after 50 ms");
    expect_error(*state,
                 "var a = []; for (var i = 0; i < 1e6; i++) a.push(i);\n"
                 "while (true) a.sort(function (x, y) { return y - x; });",
                 "filter");
}

static void per_run_limits_apply(void **state)
{
    weir_script_t *script = fx_compile("var t = Date.now(); while (Date.now() - t < 30) {}\n"
                                       "return event;");
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    weir_script_limits_t tight = {.timeout_ms = 10};
    assert_int_equal(weir_script_run_limited(*state, script, in, &out, NULL, NULL, &tight, &err),
                     WEIR_ESCRIPT);
    assert_string_equal(err.msg, "filter timed out after 10 ms");
    assert_int_equal(weir_script_run(*state, script, in, &out, NULL, NULL, &err), 0);
    weir_ce_free(out);
    weir_script_unref(script);

    script = fx_compile("var s = 'x'.repeat(3 << 20); return event;");
    weir_script_limits_t small = {.mem_bytes = 2u << 20};
    assert_int_equal(weir_script_run_limited(*state, script, in, &out, NULL, NULL, &small, &err),
                     WEIR_ESCRIPT);
    assert_string_equal(err.msg, "filter exceeded its memory limit of 2 MiB");
    assert_int_equal(weir_script_run(*state, script, in, &out, NULL, NULL, &err), 0);
    weir_ce_free(out);
    weir_script_unref(script);
    weir_ce_free(in);
}

static void endless_allocation_is_bounded(void **state)
{
    const char *want = "filter exceeded its memory limit of 8 MiB";
    expect_error(*state, "var a = []; while (true) a.push('x'.repeat(100000) + a.length);", want);
    expect_error(*state, "var s = 'x'; while (true) s = s + s;", want);
    expect_error(*state, "var o = {}; for (var i = 0; ; i++) o['k' + i] = 'y'.repeat(1e5) + i;",
                 want);
}

/* Running out of memory ends the run: a script that catches the error can neither keep the event,
 * nor drop it, nor go on running. */
static void memory_overrun_is_final(void **state)
{
    const char *want = "filter exceeded its memory limit of 8 MiB";
    expect_error(*state,
                 "try { var s = 'x'; for (;;) s += s; } catch (e) { s = null; }\n"
                 "return event;",
                 want);
    expect_error(*state,
                 "try { var s = 'x'; for (;;) s += s; } catch (e) { s = null; }\n"
                 "return null;",
                 want);
    expect_error(*state,
                 "var a = [];\n"
                 "try { for (;;) a.push('y'.repeat(1e5) + a.length); }\n"
                 "catch (e) { a = null; for (;;) {} }",
                 want);
}

/* A refusal that a garbage collection cures is no error: each 1 MiB string below is garbage held
 * by a cycle, which only a collection frees, and the heap has room for eight. */
static void collected_garbage_is_no_overrun(void **state)
{
    const char *garbage =
        "for (var i = 0; i < 20; i++) { var o = {pad: 'x'.repeat(1 << 20) + i}; o.o = o; }\n";
    char src[512];
    snprintf(src, sizeof(src), "%sthrow new Error('mine');", garbage);
    expect_error(*state, src, "filter threw at line 2: Error: mine");

    snprintf(src, sizeof(src), "%sevent.kept = true; return event;", garbage);
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    if (fx_run(*state, src, in, &out, NULL, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    assert_string_equal(weir_ce_get(out, "kept"), "true");
    weir_ce_free(out);
    weir_ce_free(in);
}

/* The limit is on what each block really takes, header and malloc's overhead included: 85,000
 * empty objects ask for about 7 MiB, which would fit, but take about 11. */
static void block_overhead_counts(void **state)
{
    expect_error(*state, "var a = []; for (var i = 0; i < 85000; i++) a.push({}); return null;",
                 "filter exceeded its memory limit of 8 MiB");
}

/* Small allocations make garbage collection slow down as the heap fills: either bound. */
static void slow_allocation_is_bounded(void **state)
{
    expect_error(*state, "var o = {}; for (var i = 0; ; i++) o['k' + i] = [i];", "filter ");
    expect_error(*state, "return new Array(1e9).join('x') ? null : null;", "filter ");
}

static void throws_keep_their_message(void **state)
{
    expect_error(*state, "throw new RangeError('out of range: ' + event.type);",
                 "filter threw at line 1: RangeError: out of range: t");
    expect_error(*state, "throw {toString: function () { return 'custom'; }};",
                 "filter threw: custom");
    expect_error(*state, "throw {toString: function () { while (true) {} }};",
                 "filter timed out after 50 ms");
    expect_error(*state, "throw {toString: function () { throw 1; }};",
                 "filter threw a value that cannot be shown");
}

static void returning_42_is_an_error(void **state)
{
    expect_error(*state, "return 42;", "filter returned a number, not an event");
}

static void no_way_out(void **state)
{
    expect_error(*state, "require('fs');", "filter threw at line 1: ReferenceError");
    expect_error(*state, "Duktape.act(-1);", "filter threw at line 1: ReferenceError");
    expect_error(*state, "print('x');", "filter threw at line 1: ReferenceError");
    expect_error(*state, "alert('x');", "filter threw at line 1: ReferenceError");
    expect_error(*state, "module.exports = 1;", "filter threw at line 1: ReferenceError");
    expect_error(*state, "if (typeof process === 'undefined') throw new Error('sealed');",
                 "filter threw at line 1: Error: sealed");
    expect_error(*state,
                 "var g = Function('return this')();\n"
                 "if (!g.Duktape && typeof g.nslog === 'function') throw new Error('clean');",
                 "filter threw at line 2: Error: clean");
}

static void huge_eval_is_bounded(void **state)
{
    expect_error(*state, "eval('var x = \"' + 'a'.repeat(1 << 24) + '\";');",
                 "filter exceeded its memory limit of 8 MiB");
    expect_error(*state, "eval('('.repeat(100000) + '1' + ')'.repeat(100000));", "filter");
    expect_error(*state, "eval('[' .repeat(1e5));", "filter");
    expect_error(*state, "eval('x = 1 +' + ' 1 +'.repeat(1e6) + ' 1'); return null;", "filter");
    expect_error(*state, "JSON.parse('['.repeat(1e5));", "filter threw");
}

static void deep_recursion_is_bounded(void **state)
{
    expect_error(*state, "function f(n) { return f(n + 1) + 1; } f(0);",
                 "filter threw at line 1: RangeError");
    /* Each of these recurses through native code, on the C stack. */
    expect_error(*state, "function f() { return [0].map(f); } f();", "filter");
    expect_error(*state, "var o = {get x() { return this.x; }}; o.x;", "filter");
    expect_error(*state, "var o = {toString: function () { return '' + o; }}; '' + o;", "filter");
    expect_error(*state,
                 "var a = []; for (var i = 0; i < 1e5; i++) a = [a]; return JSON.stringify(a);",
                 "filter");
    expect_error(*state,
                 "function f() { return new Proxy({}, {get: function () { return f().x; }}); }\n"
                 "f().x;",
                 "filter");
}

static void globals_do_not_survive_a_run(void **state)
{
    weir_script_pool_t *pool = *state;
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    const char *plant = "leaked = event.id; var g = Function('return this')(); g.other = 1;\n"
                        "g[Symbol.for('s')] = 1; eval('var fromEval = 1');\n"
                        "try { Object.prototype.polluted = 1; } catch (e) {}\n"
                        "try { Array.prototype.push = null; } catch (e) {}\n"
                        "try { JSON.parse = null; } catch (e) {}\n"
                        "try { Math = null; } catch (e) {}\n"
                        "try { arguments.callee.state = 1; } catch (e) {}\n"
                        "try { nslog.state = 1; } catch (e) {}\n"
                        "Date.prototype.setTime(event.data.count * 1000);\n"
                        "try { Object.getOwnPropertyDescriptor(event, 'data').get.state = 1; }\n"
                        "catch (e) {}\n"
                        "event.data.count = 99;\n"
                        "return event;";
    const char *check =
        "var g = Function('return this')();\n"
        "if (typeof leaked !== 'undefined' || g.other || g.fromEval ||\n"
        "    g[Symbol.for('s')] || ({}).polluted || typeof [].push !== 'function' ||\n"
        "    typeof JSON.parse !== 'function' || typeof Math !== 'object' ||\n"
        "    arguments.callee.state || nslog.state || !isNaN(Date.prototype.getTime()) ||\n"
        "    Object.getOwnPropertyDescriptor(event, 'data').get.state ||\n"
        "    event.data.count !== 1)\n"
        "    throw new Error('state survived');\n"
        "return event;";
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx_run(pool, plant, in, &out, NULL, &err), 0);
        weir_ce_free(out);
        if (fx_run(pool, check, in, &out, NULL, &err) != 0) {
            fail_msg("%s", err.msg);
        }
        weir_ce_free(out);
    }
    weir_ce_free(in);
}

static void permanent_globals_retire_the_heap(void **state)
{
    weir_script_pool_t *pool = *state;
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    const char *plant = "Object.defineProperty(Function('return this')(), 'stuck',\n"
                        "    {value: event.id, configurable: false}); return event;";
    const char *check = "if (typeof stuck !== 'undefined') throw new Error('stuck survived');\n"
                        "return event;";
    assert_int_equal(fx_run(pool, plant, in, &out, NULL, &err), 0);
    weir_ce_free(out);
    if (fx_run(pool, check, in, &out, NULL, &err) != 0) {
        fail_msg("%s", err.msg);
    }
    weir_ce_free(out);

    const char *redefine = "Object.defineProperty(Function('return this')(), 'event',\n"
                           "    {value: 1, configurable: false}); return null;";
    assert_int_equal(fx_run(pool, redefine, in, &out, NULL, &err), 0);
    fx_still_works(pool);
    weir_ce_free(in);
}

/* Each plants something on the global object itself; the check must find it gone. */
static void global_object_tricks_are_undone(void **state)
{
    weir_script_pool_t *pool = *state;
    const char *plants[] = {
        "Object.setPrototypeOf(Function('return this')(), {planted: 1});",
        "Function('return this')().__proto__ = {planted: 1};",
        "Object.preventExtensions(Function('return this')());",
        "Object.freeze(Function('return this')());",
        "var g = Function('return this')(); g.planted = 1;\n"
        "g.Reflect = {ownKeys: function () { while (true) {} }}; g.Object = null;",
        "Object.defineProperty(Function('return this')(), Symbol(), {value: 1});\n"
        "Object.defineProperty(Function('return this')(), 'planted', {get: function () {\n"
        "    while (true) {} }, configurable: true});",
    };
    const char *check = "if (typeof planted !== 'undefined') throw new Error('planted');\n"
                        "if (Object.getOwnPropertySymbols(Function('return this')()).length)\n"
                        "    throw new Error('symbol');\n"
                        "fresh = 1; if (fresh !== 1 || typeof Reflect.ownKeys !== 'function')\n"
                        "    throw new Error('not extensible');\n"
                        "return event;";
    weir_event_t *in = fx_typed("t");
    for (size_t i = 0; i < sizeof(plants) / sizeof(plants[0]); i++) {
        weir_event_t *out = NULL;
        weir_err_t err;
        if (fx_run(pool, plants[i], in, &out, NULL, &err) != 0) {
            fail_msg("%s: %s", plants[i], err.msg);
        }
        if (fx_run(pool, check, in, &out, NULL, &err) != 0) {
            fail_msg("after %s: %s", plants[i], err.msg);
        }
        weir_ce_free(out);
    }
    weir_ce_free(in);
}

/*
 * What the engine keeps by pointer must outlive whatever a script unlinks, even once a collection
 * has removed every other reference. Without that these runs read freed memory, which the
 * sanitizer build reports.
 */
static void unlinked_internals_stay_alive(void **state)
{
    weir_script_pool_t *pool = *state;
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    /* Enough cyclic garbage that the heap runs its mark-and-sweep collector. */
    const char *garbage = "for (var i = 0; i < 100000; i++) { var o = {}; o.o = o; }\n";
    const char *unlink = "var g = Function('return this')(), O = Object;\n"
                         "O.setPrototypeOf(g, null); return null;";
    char both[512];
    snprintf(both, sizeof(both), "%s%s", garbage, unlink);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fx_run(pool, both, in, &out, NULL, &err), 0);
        assert_null(out);
        fx_still_works(pool);
        /* The collection in one run, the unlinking in the next, on the same heap. */
        assert_int_equal(fx_run(pool, garbage, in, &out, NULL, &err), 0);
        assert_int_equal(fx_run(pool, unlink, in, &out, NULL, &err), 0);
        fx_still_works(pool);
    }

    /* The event object, when the script dropped it and reads the data while its error is shown. */
    expect_error(pool,
                 "var get = Object.getOwnPropertyDescriptor(event, 'data').get; event = null;\n"
                 "throw {toString: function () { return 'data ' + JSON.stringify(get()); }};",
                 "filter threw: data {\"pad\":\"0");
    weir_ce_free(in);
}

typedef struct worker {
    weir_script_pool_t *pool;
    weir_script_t *script;
    int failures;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    weir_event_t *in = fx_typed("t");
    for (int i = 0; i < 200; i++) {
        weir_event_t *out = NULL;
        weir_err_t err;
        if (weir_script_run(w->pool, w->script, in, &out, NULL, NULL, &err) != 0 ||
            strcmp(weir_ce_get(out, "n"), "1") != 0) {
            w->failures++;
        }
        weir_ce_free(out);
    }
    weir_ce_free(in);
    return NULL;
}

typedef struct hog {
    weir_script_pool_t *pool;
    int rc;
} hog_t;

/* Holds the pool's only heap for its whole timeout. */
static void *hog_run(void *arg)
{
    hog_t *h = arg;
    weir_script_t *loop = fx_compile("while (true) {}");
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    h->rc = weir_script_run(h->pool, loop, in, &out, NULL, NULL, &err);
    weir_ce_free(in);
    weir_script_unref(loop);
    return NULL;
}

static void heaps_are_bounded(void **state)
{
    weir_script_limits_t limits = {.timeout_ms = 400, .max_heaps = 1};
    hog_t h = {.pool = weir_script_pool_new(&limits)};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hog_run, &h), 0);
    nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL); /* the hog has the heap */

    weir_script_t *keep = fx_compile("return event;");
    weir_event_t *in = fx_typed("t");
    weir_event_t *out = NULL;
    weir_err_t err;
    weir_script_limits_t quick = {.timeout_ms = 50};
    assert_int_equal(weir_script_run_limited(h.pool, keep, in, &out, NULL, NULL, &quick, &err),
                     WEIR_EBUSY);
    assert_string_equal(err.msg, "all 1 filter heaps stayed busy for 50 ms; retry later");
    assert_null(out);
    /* A run that may wait longer than the hog has left gets the heap once it is free. */
    weir_script_limits_t patient = {.timeout_ms = 5000};
    assert_int_equal(weir_script_run_limited(h.pool, keep, in, &out, NULL, NULL, &patient, &err),
                     0);
    assert_non_null(out);
    pthread_join(t, NULL);
    assert_int_equal(h.rc, WEIR_ESCRIPT);
    weir_ce_free(out);
    weir_ce_free(in);
    weir_script_unref(keep);
    weir_script_pool_free(h.pool);
}

static void threads_share_a_pool(void **state)
{
    weir_script_t *script = fx_compile("if (typeof n !== 'undefined') throw new Error('shared');\n"
                                       "n = 1; event.n = n; return event;");
    worker_t w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){*state, script, 0};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
    weir_script_unref(script);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(endless_loop_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_natives_time_out, setup, teardown),
        cmocka_unit_test_setup_teardown(per_run_limits_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(endless_allocation_is_bounded, setup_patient, teardown),
        cmocka_unit_test_setup_teardown(memory_overrun_is_final, setup_patient, teardown),
        cmocka_unit_test_setup_teardown(collected_garbage_is_no_overrun, setup_patient, teardown),
        cmocka_unit_test_setup_teardown(block_overhead_counts, setup_patient, teardown),
        cmocka_unit_test_setup_teardown(slow_allocation_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(throws_keep_their_message, setup, teardown),
        cmocka_unit_test_setup_teardown(returning_42_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(no_way_out, setup, teardown),
        cmocka_unit_test_setup_teardown(huge_eval_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(deep_recursion_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(globals_do_not_survive_a_run, setup, teardown),
        cmocka_unit_test_setup_teardown(permanent_globals_retire_the_heap, setup, teardown),
        cmocka_unit_test_setup_teardown(global_object_tricks_are_undone, setup, teardown),
        cmocka_unit_test_setup_teardown(unlinked_internals_stay_alive, setup_patient, teardown),
        cmocka_unit_test_setup_teardown(threads_share_a_pool, setup, teardown),
        cmocka_unit_test(heaps_are_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
