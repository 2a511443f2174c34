/*
 * script: the filter engine. A filter is the body of a JavaScript function. It sees the event in
 * its structured JSON form as the global `event` (the attributes at the top level, extensions
 * included, and the data as `data`, or as `data_base64` when it is not text), may change it, and
 * returns an event object to keep or null, undefined or nothing to drop the event. `nslog(...)`
 * hands a line to the caller. The data property cannot be deleted; assigning undefined or null to
 * it removes the data. Attributes of type Integer and Boolean are JavaScript numbers and booleans.
 *
 * Scripts run in Duktape with bounds on time and memory, and in a sandbox: no module loader, no
 * Duktape-specific built-ins, built-ins that cannot be changed, and a global object that is
 * emptied of whatever a run added before the next run. Nothing a run leaves behind is visible to
 * a later one, whichever namespace it serves.
 *
 * Threads: compiled scripts are immutable and may be shared; a pool may be used from any number
 * of threads at once. Each run takes a Duktape heap from the pool for its duration.
 */
#ifndef WEIR_SCRIPT_H
#define WEIR_SCRIPT_H

#include <stddef.h>
#include <stdint.h>

#include "ce/ce.h"
#include "common/common.h"

#define WEIR_SCRIPT_SRC_MAX         (256u * 1024u) /* longest filter body accepted (bytes) */
#define WEIR_SCRIPT_COMPILE_MEM     (64u << 20)    /* bytes compiling one filter may use */
#define WEIR_SCRIPT_TIMEOUT_DEFAULT 100u           /* milliseconds a run may take */
#define WEIR_SCRIPT_MEM_DEFAULT     (16u << 20)    /* bytes a heap may hold */
#define WEIR_SCRIPT_MEM_MIN         (1u << 20)     /* the least a limit may be set to */
#define WEIR_SCRIPT_IDLE_DEFAULT    4u             /* idle heaps a pool keeps */
#define WEIR_SCRIPT_HEAPS_DEFAULT   16u            /* heaps alive at once, busy or idle */
#define WEIR_SCRIPT_LOG_LINE_MAX    1024u          /* longest nslog line passed on (bytes) */

/* A compiled filter: immutable and reference-counted. */
typedef struct weir_script weir_script_t;

/* A set of reusable Duktape heaps that runs filters. */
typedef struct weir_script_pool weir_script_pool_t;

/* Bounds on runs. A field left 0 takes the default named beside it. */
typedef struct weir_script_limits {
    uint32_t timeout_ms; /* wall time of one run: WEIR_SCRIPT_TIMEOUT_DEFAULT */
    size_t mem_bytes;    /* all that one heap holds: WEIR_SCRIPT_MEM_DEFAULT, at least _MIN */
    unsigned max_idle;   /* heaps kept for reuse between runs: WEIR_SCRIPT_IDLE_DEFAULT */
    unsigned max_heaps;  /* heaps alive at once, so that memory stays within max_heaps times
                            mem_bytes however many runs are asked for: _HEAPS_DEFAULT; a pool's
                            own only (ignored in a run's limits) */
} weir_script_limits_t;

/*
 * Receives one nslog line: its arguments turned into strings and joined by spaces, cut to at
 * most WEIR_SCRIPT_LOG_LINE_MAX bytes, always valid UTF-8 (bad sequences become U+FFFD) and
 * NUL-terminated. It is called on the thread that runs the filter, during the run; the line is
 * only valid during the call. A script may call it as often as it likes within its time: the
 * callback rate-limits.
 */
typedef void (*weir_script_log_cb)(void *ctx, const char *line, size_t len);

/*
 * Compiles a filter body of len bytes (it need not be NUL-terminated). On success *out holds a
 * script with one reference, which the caller drops with weir_script_unref.
 * Errors (err->msg is safe to show a client):
 *   WEIR_EINVAL: the body is not valid UTF-8, does not compile (err->msg "line N: <reason>", the
 *   line counted in the body), nests too deeply, or takes more than a second to compile;
 *   WEIR_ETOOBIG: the body is longer than WEIR_SCRIPT_SRC_MAX, or compiling it needs more than
 *   WEIR_SCRIPT_COMPILE_MEM (a short body can: each regexp literal is compiled, and a quantified
 *   group becomes as many copies of itself);
 *   WEIR_ENOMEM: the process has no memory for a compiler.
 * Any thread; it creates a short-lived heap of its own.
 */
int weir_script_compile(const char *src, size_t len, weir_script_t **out, weir_err_t *err);

/* Takes a reference; any thread. Returns script. */
weir_script_t *weir_script_ref(weir_script_t *script);
/* Drops a reference (NULL is ignored); the last one frees the script. Any thread. */
void weir_script_unref(weir_script_t *script);

/*
 * A pool whose runs are bounded by limits (NULL: all defaults); no heap is created until a run
 * needs one. The caller frees it with weir_script_pool_free once no run is in progress.
 */
weir_script_pool_t *weir_script_pool_new(const weir_script_limits_t *limits);
void weir_script_pool_free(weir_script_pool_t *pool);

/*
 * Runs script on the event in (which is not changed). On success *out is the event the filter
 * kept, owned by the caller (weir_ce_free), or NULL when the filter dropped it. Data that the
 * script did not read or write is kept byte for byte as it was in `in`.
 * log_cb (which may be NULL) receives nslog lines, with log_ctx. limits (NULL: the pool's)
 * overrides the pool's time and memory bounds for this run; its max_idle and max_heaps are
 * ignored.
 * Errors (err->msg is safe to show a client):
 *   WEIR_ESCRIPT: the script threw ("filter threw at line N: Error: <message>"), ran past its
 *   time ("filter timed out after 100 ms"), past its memory ("filter exceeded its memory limit
 *   of 16 MiB": a request the heap could not grant even after collecting garbage, which the
 *   script cannot catch) or past its C stack budget, or returned something that is not a
 *   valid event ("filter returned a number, not an event"; "filter returned an invalid event:
 *   <why>").
 *   WEIR_EBUSY: the pool's max_heaps heaps stayed busy for the run's timeout; it did not start.
 * Whatever happens the pool stays usable: a heap that may be left in a bad state is destroyed.
 * Any thread. The calling thread needs at least 1 MiB of stack free.
 */
int weir_script_run(weir_script_pool_t *pool, weir_script_t *script, const weir_event_t *in,
                    weir_event_t **out, weir_script_log_cb log_cb, void *log_ctx, weir_err_t *err);
int weir_script_run_limited(weir_script_pool_t *pool, weir_script_t *script, const weir_event_t *in,
                            weir_event_t **out, weir_script_log_cb log_cb, void *log_ctx,
                            const weir_script_limits_t *limits, weir_err_t *err);

/*
 * How many times, since the process started, a run turned event data into a JavaScript value.
 * For tests and metrics: a filter that reads only attributes leaves it unchanged.
 */
uint64_t weir_script_data_decodes(void);

#endif
