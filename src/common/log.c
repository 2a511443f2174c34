/*
 * JSON-line logging on stderr. Each line is built in a local buffer and written with one
 * write(2), so lines from different threads never interleave.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

static atomic_int min_level = WEIR_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void weir_log_set_level(weir_log_level_t level)
{
    atomic_store(&min_level, (int)level);
}

int weir_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++) {
        if (weir_strcasecmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

bool weir_log_enabled(weir_log_level_t level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void weir_log_write(weir_log_level_t level, const char *module, const char *ns, const char *fmt,
                    ...)
{
    char when[WEIR_TIME_STR_MAX];
    weir_time_format(weir_wall_us(), when);

    weir_buf_t msg = WEIR_BUF_INIT;
    va_list ap;
    va_start(ap, fmt);
    weir_buf_vprintf(&msg, fmt, ap);
    va_end(ap);

    weir_buf_t line = WEIR_BUF_INIT;
    weir_buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",\"module\":", when,
                    level_names[level & 3]);
    weir_buf_json_str(&line, module, strlen(module));
    if (ns != NULL) {
        weir_buf_puts(&line, ",\"ns\":");
        weir_buf_json_str(&line, ns, strlen(ns));
    }
    weir_buf_puts(&line, ",\"msg\":");
    weir_buf_json_str(&line, msg.data ? msg.data : "", msg.len);
    weir_buf_puts(&line, "}\n");

    ssize_t unused = write(STDERR_FILENO, line.data, line.len);
    (void)unused;
    weir_buf_free(&msg);
    weir_buf_free(&line);
}

bool weir_ratelimit_allow(weir_ratelimit_t *rl)
{
    while (__atomic_exchange_n(&rl->lock, 1, __ATOMIC_ACQUIRE)) {
    }
    uint64_t now = weir_mono_ns();
    if (rl->last_ns != 0) {
        rl->tokens += (double)(now - rl->last_ns) / 1e9 * rl->per_sec;
        if (rl->tokens > rl->burst) {
            rl->tokens = rl->burst;
        }
    }
    rl->last_ns = now;
    bool ok = rl->tokens >= 1.0;
    if (ok) {
        rl->tokens -= 1.0;
    }
    __atomic_store_n(&rl->lock, 0, __ATOMIC_RELEASE);
    return ok;
}
