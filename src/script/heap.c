/*
 * One Duktape heap: a counting allocator that enforces the memory limit, the hooks that the
 * generated configuration calls to enforce the time limit and the C stack budget, and the
 * sandbox that every filter runs in.
 *
 * The sandbox keeps runs apart without paying for a new global environment per run (creating
 * one copies every built-in, far more than a filter's budget of microseconds). The built-ins move
 * from the global object to a frozen object that becomes its prototype, and every object reachable
 * from there is frozen. Scripts still find them by name, and sloppy scripts may still create
 * globals, which land on the global object itself; that object is then empty between runs but
 * for three read-only values (NaN, Infinity, undefined), so checking that a run left nothing
 * behind costs about a microsecond, and whatever it left is deleted.
 */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "script/engine.h"

/* C stack that Duktape may use below the frame that entered it; see weir_script_run. */
#define STACK_BUDGET (512u * 1024u)

/* How often the native check reads the clock: it runs at every call, so not each time. */
#define TICKS_PER_CLOCK 64u

/* However loaded the machine, a run ends within this many times its time limit of wall time. */
#define WALL_FACTOR 10u

/* Refusals of one request after which Duktape gives up on it (see refuse). */
#define FINAL_REFUSALS 10u

/* Bounds the clean-up after a run, which should take microseconds. */
#define RESET_TIMEOUT_MS 100u

/* The allocator keeps what each block was charged in front of it, aligned for any type. */
typedef union block_head {
    size_t cost;
    max_align_t align;
} block_head_t;

/* What malloc adds to each block (glibc: one word of header, rounding to 16 bytes) and above what
 * size it may map whole pages instead. */
#define MALLOC_WORD  sizeof(size_t)
#define MALLOC_ALIGN 16u
#define MALLOC_PAGE  4096u
#define MALLOC_MMAP  (128u * 1024u)

/*
 * Globals that a filter does not get: Duktape's own and module loading; and binary data (filters
 * work on the event's JSON form), as Duktape's loops over a typed array's elements never reach the
 * time check, and a typed array of many elements takes a byte each.
 */
static const char *const removed[] = {
    "Duktape",
    "print",
    "alert",
    "require",
    "module",
    "exports",
    "ArrayBuffer",
    "DataView",
    "Int8Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "Float32Array",
    "Float64Array",
    "Buffer",
    "TextEncoder",
    "TextDecoder",
    "CBOR",
};

/* Moves the built-ins to a new object and freezes them; returns their home. */
static const char sandbox_js[] =
    "(function (g) {\n"
    "    var O = Object, R = Reflect; /* the names stop resolving while the built-ins move */\n"
    "    var b = O.create(O.getPrototypeOf(g));\n"
    "    R.ownKeys(g).forEach(function (k) {\n"
    "        var d = O.getOwnPropertyDescriptor(g, k);\n"
    "        if (d.configurable) {\n"
    "            O.defineProperty(b, k, d);\n"
    "            delete g[k];\n"
    "        }\n"
    "    });\n"
    "    O.setPrototypeOf(g, b);\n"
    "    function freeze(o) {\n"
    "        if ((typeof o !== 'object' && typeof o !== 'function') || o === null || o === g ||\n"
    "            O.isFrozen(o)) {\n"
    "            return;\n"
    "        }\n"
    "        O.freeze(o);\n"
    "        R.ownKeys(o).forEach(function (k) {\n"
    "            var d = O.getOwnPropertyDescriptor(o, k);\n"
    "            freeze(d.value);\n"
    "            freeze(d.get);\n"
    "            freeze(d.set);\n"
    "        });\n"
    "        freeze(O.getPrototypeOf(o));\n"
    "    }\n"
    "    freeze(b);\n"
    "    return b;\n"
    "})";

/*
 * Deletes every configurable own property of the global object (only runs create those) and puts
 * the built-ins back as its prototype. It holds the built-ins it uses from before any script ran:
 * looked up by name, they could be globals that the run being cleaned up defined.
 */
static const char reset_js[] = "(function (R, O) {\n"
                               "    return function (g, b) {\n"
                               "        R.ownKeys(g).forEach(function (k) {\n"
                               "            if (O.getOwnPropertyDescriptor(g, k).configurable) {\n"
                               "                delete g[k];\n"
                               "            }\n"
                               "        });\n"
                               "        if (O.getPrototypeOf(g) !== b) {\n"
                               "            O.setPrototypeOf(g, b);\n"
                               "        }\n"
                               "    };\n"
                               "})(Reflect, Object)";

/* ---- bounds ----------------------------------------------------------------------------- */

/*
 * The limit is on what the heap really takes from the process: each block with the allocator's
 * header and malloc's own overhead, not only the bytes Duktape asked for (a heap of small objects
 * takes half as much again). Before a block exists its cost is estimated from above; once it
 * exists it is charged what malloc says it holds, so the count never passes the limit.
 */
static size_t cost_estimate(size_t size)
{
    if (size > SIZE_MAX / 2) {
        return SIZE_MAX;
    }
    size_t raw = sizeof(block_head_t) + size + MALLOC_WORD;
    if (size >= MALLOC_MMAP) { /* a mapped block has a second word and takes whole pages */
        return (raw + MALLOC_WORD + MALLOC_ALIGN + MALLOC_PAGE - 1) / MALLOC_PAGE * MALLOC_PAGE;
    }
    return (raw + MALLOC_ALIGN - 1) / MALLOC_ALIGN * MALLOC_ALIGN;
}

static size_t cost_of(block_head_t *h)
{
    return malloc_usable_size(h) + MALLOC_WORD;
}

static bool fits(engine_t *e, size_t cost)
{
    return cost <= e->limit && e->used <= e->limit - cost;
}

/*
 * Duktape meets a refused request by collecting garbage and asking again, up to ten times, and
 * only then fails: a refusal that a collection cures is no error. Once a request has gone
 * unsatisfied that often (no request as large was granted in between), the heap is exhausted for
 * the rest of the run: it refuses every request, no script code runs any more (see the checks
 * below), and the run fails however the script handled the error.
 */
static void *refuse(engine_t *e, size_t size)
{
    if (e->refusals == 0 || size < e->short_of) {
        e->short_of = size;
    }
    if (++e->refusals >= FINAL_REFUSALS) {
        e->exhausted = true;
    }
    return NULL;
}

static void granted(engine_t *e, size_t size)
{
    if (e->refusals != 0 && size >= e->short_of) {
        e->refusals = 0;
    }
}

static void *mem_alloc(void *udata, duk_size_t size)
{
    engine_t *e = udata;
    if (e->exhausted || !fits(e, cost_estimate(size))) {
        return refuse(e, size);
    }

    /* Not weir_malloc: running out here is the script's failure, which Duktape reports. */
    block_head_t *h = malloc(sizeof(*h) + size);
    if (h == NULL) {
        return refuse(e, size);
    }
    h->cost = cost_of(h);
    e->used += h->cost;
    granted(e, size);
    return h + 1;
}

static void mem_free(void *udata, void *ptr)
{
    engine_t *e = udata;
    if (ptr == NULL) {
        return;
    }
    block_head_t *h = (block_head_t *)ptr - 1;
    e->used -= h->cost;
    free(h);
}

static void *mem_realloc(void *udata, void *ptr, duk_size_t size)
{
    engine_t *e = udata;
    if (ptr == NULL) {
        return mem_alloc(udata, size);
    }
    if (size == 0) {
        mem_free(udata, ptr);
        return NULL;
    }

    /* Only growth needs room; a block that shrinks is charged less from then on. */
    block_head_t *h = (block_head_t *)ptr - 1;
    size_t old = h->cost;
    size_t want = cost_estimate(size);
    if (want > old && (e->exhausted || !fits(e, want - old))) {
        return refuse(e, size);
    }
    block_head_t *n = realloc(h, sizeof(*n) + size);
    if (n == NULL) {
        return refuse(e, size);
    }
    n->cost = cost_of(n);
    e->used = e->used - old + n->cost;
    granted(e, size);
    return n + 1;
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * The time a run is charged. A filter cannot wait for anything, so on an idle machine its wall
 * time is its CPU time; on a loaded one wall time would also charge it for the time other threads
 * had the CPU, and time good filters out when weir is busiest. So the first half of the limit is
 * wall time, and from there on the thread's CPU time counts. Reading that clock is a system call:
 * runs that end within half their limit (nearly all) never make it.
 */
static bool over_time(engine_t *e, uint64_t now)
{
    uint64_t elapsed = now - e->start_ns;
    uint64_t half = e->budget_ns / 2;
    if (elapsed < half) {
        return false;
    }
    if (elapsed >= WALL_FACTOR * e->budget_ns) {
        return true;
    }
    if (!e->cpu_started) {
        e->cpu_started = true;
        e->cpu_base_ns = thread_cpu_ns();
        return false;
    }
    return half + (thread_cpu_ns() - e->cpu_base_ns) >= e->budget_ns;
}

/* Called by the interrupt counter every few hundred thousand bytecode instructions. */
int weir_script_timeout_check(void *udata)
{
    engine_t *e = udata;
    if (!e->timed_out && e->budget_ns != 0 && over_time(e, weir_mono_ns())) {
        e->timed_out = true;
    }

    /* Once true it must stay true until the run is over, so that no catch can swallow it. An
     * exhausted heap stops the script the same way. */
    return e->timed_out || e->exhausted;
}

/* Called at every call, compiler and regexp recursion, JSON nesting: where no bytecode runs. */
int weir_script_native_check(void *udata)
{
    engine_t *e = udata;
    uintptr_t here = (uintptr_t)__builtin_frame_address(0);
    if (e->stack_base != 0 && here < e->stack_base && e->stack_base - here > STACK_BUDGET) {
        e->stack_exceeded = true;
        return 1;
    }
    if (e->budget_ns != 0 && ++e->ticks % TICKS_PER_CLOCK == 0) {
        return weir_script_timeout_check(e);
    }
    return e->timed_out || e->exhausted;
}

/*
 * Math.random and the sort's pivots. Duktape's own generator lives as long as the heap, so one run
 * could read the state that earlier runs left, or steer what later runs draw; this one is seeded
 * afresh for each run that asks for a number.
 */
double weir_script_random(void *udata)
{
    engine_t *e = udata;
    if (!e->rnd_seeded) {
        if (getrandom(&e->rnd, sizeof(e->rnd), GRND_NONBLOCK) != (ssize_t)sizeof(e->rnd)) {
            e->rnd ^= weir_mono_ns() ^ thread_cpu_ns(); /* not a secret, but not a run's choice */
        }
        e->rnd_seeded = true;
    }

    /* splitmix64: fast, and plenty for numbers that are not meant to be secret */
    uint64_t z = (e->rnd += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* Every protected entry point is a safe call, so this is a bug in weir or in Duktape. */
static void on_fatal(void *udata, const char *msg)
{
    weir_error("script", "duktape fatal error: %s", msg != NULL ? msg : "(none)");
    abort();
}

void weir_script__engine_arm(engine_t *e, uint32_t timeout_ms, size_t limit, uintptr_t base)
{
    e->limit = limit;
    e->refusals = 0;
    e->exhausted = false;
    e->rnd_seeded = false;
    e->timed_out = false;
    e->stack_exceeded = false;
    e->ticks = 0;
    e->stack_base = base;
    e->cpu_started = false;
    e->start_ns = weir_mono_ns();
    e->budget_ns = (uint64_t)timeout_ms * 1000000u;
}

void weir_script__engine_disarm(engine_t *e)
{
    e->budget_ns = 0;
    e->stack_base = 0;
    e->run = NULL;
}

engine_t *weir_script__engine_of(duk_context *ctx)
{
    duk_memory_functions funcs;
    duk_get_memory_functions(ctx, &funcs);
    return funcs.udata;
}

/* ---- the sandbox ------------------------------------------------------------------------ */

static duk_size_t count_globals(duk_context *ctx)
{
    duk_size_t n = 0;
    duk_push_global_object(ctx);
    duk_enum(ctx, -1,
             DUK_ENUM_OWN_PROPERTIES_ONLY | DUK_ENUM_INCLUDE_NONENUMERABLE |
                 DUK_ENUM_INCLUDE_SYMBOLS);
    while (duk_next(ctx, -1, 0)) {
        duk_pop(ctx);
        n++;
    }
    duk_pop_2(ctx);
    return n;
}

/*
 * A pointer from duk_get_heapptr does not hold what it points to: everything the engine keeps by
 * pointer between calls is also held by the stash, or a script could free it (by making it
 * unreachable) and the next use would touch freed memory.
 */
void *weir_script__engine_keep(duk_context *ctx, const char *name)
{
    duk_push_heap_stash(ctx);
    duk_dup(ctx, -2);
    duk_put_prop_string(ctx, -2, name);
    duk_pop(ctx);
    return duk_get_heapptr(ctx, -1);
}

/* A native function, frozen (it outlives runs), kept in the stash under name. */
static void *stash_native(duk_context *ctx, const char *name, duk_c_function fn, duk_idx_t nargs)
{
    duk_push_c_function(ctx, fn, nargs);
    duk_freeze(ctx, -1);
    void *ptr = weir_script__engine_keep(ctx, name);
    duk_pop(ctx);
    return ptr;
}

/*
 * [ ... obj ] -> [ ... obj ]: keeps obj[key][member] (obj[key] when member is NULL) in the stash,
 * under the name of what it keeps.
 */
static void *keep_member(duk_context *ctx, const char *key, const char *member)
{
    duk_get_prop_string(ctx, -1, key);
    if (member != NULL) {
        duk_get_prop_string(ctx, -1, member);
        duk_remove(ctx, -2);
    }
    void *ptr = weir_script__engine_keep(ctx, member != NULL ? member : key);
    duk_pop(ctx);
    return ptr;
}

static void stash_js(duk_context *ctx, const char *name, const char *src)
{
    duk_push_heap_stash(ctx);
    duk_eval_string(ctx, src);
    duk_put_prop_string(ctx, -2, name);
    duk_pop(ctx);
}

static duk_ret_t setup(duk_context *ctx, void *udata)
{
    engine_t *e = udata;
    duk_push_c_function(ctx, weir_script__nslog, DUK_VARARGS);
    duk_put_global_string(ctx, "nslog");
    weir_script__builtins_install(ctx, e);
    duk_push_global_object(ctx);
    for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++) {
        duk_del_prop_string(ctx, -1, removed[i]);
    }
    duk_pop(ctx);

    duk_eval_string(ctx, sandbox_js);
    duk_push_global_object(ctx);
    duk_call(ctx, 1);
    /* Only the global object's prototype holds the built-ins, and a script may replace it. */
    e->builtins = weir_script__engine_keep(ctx, "builtins");
    e->is_extensible = keep_member(ctx, "Object", "isExtensible");
    e->date_proto = keep_member(ctx, "Date", "prototype");
    duk_push_heapptr(ctx, e->date_proto);
    e->date_get = keep_member(ctx, "getTime", NULL);
    e->date_set = keep_member(ctx, "setTime", NULL);
    duk_pop_2(ctx);

    for (size_t i = 0; i < sizeof(removed) / sizeof(removed[0]); i++) {
        if (duk_get_global_string(ctx, removed[i]) || !duk_is_undefined(ctx, -1)) {
            return duk_error(ctx, DUK_ERR_ERROR, "global %s survived the sandbox", removed[i]);
        }
        duk_pop(ctx);
    }

    e->getter = stash_native(ctx, "get", weir_script__data_get, 0);
    e->setter = stash_native(ctx, "set", weir_script__data_set, 1);
    stash_js(ctx, "reset", reset_js);
    duk_push_heap_stash(ctx);
    duk_push_array(ctx);
    duk_put_prop_string(ctx, -2, "fns");
    duk_pop(ctx);
    e->nglobals = count_globals(ctx);
    return 0;
}

engine_t *weir_script__engine_new(size_t limit, bool sandbox)
{
    engine_t *e = weir_calloc(1, sizeof(*e));
    e->limit = limit;
    e->ctx = duk_create_heap(mem_alloc, mem_realloc, mem_free, e, on_fatal);
    if (e->ctx == NULL) {
        weir_free(e);
        return NULL;
    }
    if (sandbox && duk_safe_call(e->ctx, setup, e, 0, 1) != DUK_EXEC_SUCCESS) {
        weir_error("script", "cannot set up a filter heap: %s", duk_safe_to_string(e->ctx, -1));
        weir_script__engine_free(e);
        return NULL;
    }
    if (sandbox) {
        duk_pop(e->ctx);
    }
    return e;
}

void weir_script__engine_free(engine_t *e)
{
    if (e == NULL) {
        return;
    }
    duk_destroy_heap(e->ctx);
    weir_free(e);
}

/* [ ... global ] -> [ ... global ]: whether the global object is as the sandbox left it. */
static bool globals_clean(duk_context *ctx, engine_t *e)
{
    duk_get_prototype(ctx, -1);
    bool same_proto = duk_get_heapptr(ctx, -1) == e->builtins;
    duk_pop(ctx);
    if (!same_proto || count_globals(ctx) != e->nglobals) {
        return false;
    }

    /* A global object made non-extensible would refuse the next run's globals. */
    duk_push_heapptr(ctx, e->is_extensible);
    duk_dup(ctx, -2);
    duk_call(ctx, 1);
    bool extensible = duk_get_boolean(ctx, -1);
    duk_pop(ctx);
    return extensible;
}

/*
 * Date.prototype is itself a Date, and its setters change its time although it is frozen: a run
 * could leave a value there for the next one to read. It goes back to NaN, as the sandbox found it.
 */
static void reset_date(duk_context *ctx, engine_t *e)
{
    duk_push_heapptr(ctx, e->date_get);
    duk_push_heapptr(ctx, e->date_proto);
    duk_call_method(ctx, 0);
    bool changed = !duk_is_nan(ctx, -1);
    duk_pop(ctx);
    if (!changed) {
        return;
    }
    duk_push_heapptr(ctx, e->date_set);
    duk_push_heapptr(ctx, e->date_proto);
    duk_push_nan(ctx);
    duk_call_method(ctx, 1);
    duk_pop(ctx);
}

static duk_ret_t reset_body(duk_context *ctx, void *udata)
{
    engine_t *e = udata;
    duk_push_heap_stash(ctx);
    duk_del_prop_string(ctx, -1, "event");
    duk_del_prop_string(ctx, -1, "scan"); /* it may be large: not kept past the run */
    duk_pop(ctx);
    e->scan_str = NULL;
    reset_date(ctx, e);
    duk_push_global_object(ctx);
    duk_del_prop_string(ctx, -1, "event");
    if (globals_clean(ctx, e)) {
        return 0;
    }

    duk_push_heap_stash(ctx);
    duk_get_prop_string(ctx, -1, "reset");
    duk_dup(ctx, -3);
    duk_push_heapptr(ctx, e->builtins);
    duk_call(ctx, 2);
    duk_pop_2(ctx);
    duk_push_boolean(ctx, globals_clean(ctx, e));
    return 1;
}

bool weir_script__engine_reset(engine_t *e)
{
    weir_script__engine_arm(e, RESET_TIMEOUT_MS, e->limit, (uintptr_t)__builtin_frame_address(0));
    duk_int_t rc = duk_safe_call(e->ctx, reset_body, e, 0, 1);
    bool ok =
        rc == DUK_EXEC_SUCCESS && (duk_is_undefined(e->ctx, -1) || duk_get_boolean(e->ctx, -1));
    duk_pop(e->ctx);
    ok = ok && !e->timed_out && !e->exhausted;
    weir_script__engine_disarm(e);
    return ok;
}

/* ---- compiled functions ----------------------------------------------------------------- */

static void load_function(engine_t *e, const weir_script_t *script, unsigned slot)
{
    duk_context *ctx = e->ctx;
    void *buf = duk_push_fixed_buffer(ctx, script->len);
    memcpy(buf, script->bytecode, script->len);
    duk_load_function(ctx);

    /* The function object and its prototype outlive the run: nothing may be written to them. */
    duk_freeze(ctx, -1);
    if (duk_get_prop_string(ctx, -1, "prototype")) {
        duk_freeze(ctx, -1);
    }
    duk_pop(ctx);

    duk_push_heap_stash(ctx);
    duk_get_prop_string(ctx, -1, "fns");
    duk_dup(ctx, -3);
    duk_put_prop_index(ctx, -2, slot);
    duk_pop_2(ctx);
    e->slot_fn[slot] = duk_get_heapptr(ctx, -1);
    e->slot_id[slot] = script->id;
}

void weir_script__engine_push_function(engine_t *e, const weir_script_t *script)
{
    for (unsigned i = 0; i < ENGINE_CACHE_SLOTS; i++) {
        if (e->slot_id[i] == script->id) {
            duk_push_heapptr(e->ctx, e->slot_fn[i]);
            return;
        }
    }

    /* Round robin: a pool serves few filters at a time, and reloading one is cheap. */
    unsigned slot = e->next_slot++ % ENGINE_CACHE_SLOTS;
    e->slot_id[slot] = 0;
    load_function(e, script, slot);
}
