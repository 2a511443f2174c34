/*
 * common: what every module of weir shares: the error vocabulary, memory wrappers, growable
 * buffers, JSON-line logging, time, ids, UTF-8, base64 and glob matching.
 *
 * Everything here is thread-safe unless a function says otherwise.
 */
#ifndef WEIR_COMMON_H
#define WEIR_COMMON_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- errors ---------------------------------------------------------------------------- */

/*
 * Functions return 0 on success or one of these negative codes. The detail for people travels
 * in a weir_err_t that the caller passes (it may pass NULL when it does not want the detail).
 */
enum {
    WEIR_OK = 0,
    WEIR_EINVAL = -1,       /* the input is not valid (a bad request) */
    WEIR_ENOMEM = -2,       /* a limit on memory was reached */
    WEIR_ENOTFOUND = -3,    /* the thing named does not exist */
    WEIR_EEXIST = -4,       /* the thing already exists */
    WEIR_ETOOBIG = -5,      /* the input is larger than a configured limit */
    WEIR_EUNSUPPORTED = -6, /* a format or feature that weir does not handle */
    WEIR_EBUSY = -7,        /* overloaded: try again later */
    WEIR_EIO = -8,          /* storage or system failure */
    WEIR_ESCRIPT = -9,      /* a filter threw, timed out or returned something invalid */
    WEIR_ETIMEOUT = -10,    /* an operation ran out of time */
    WEIR_ECLOSED = -11,     /* the component is shutting down */
    WEIR_EINTERNAL = -12,   /* a bug: something that should not happen */
};

#define WEIR_ERR_ATTR_MAX 64
#define WEIR_ERR_MSG_MAX  512

typedef struct weir_err {
    int code;                     /* one of the codes above */
    char attr[WEIR_ERR_ATTR_MAX]; /* the attribute or field concerned, or "" */
    char msg[WEIR_ERR_MSG_MAX];   /* a sentence for people, safe to show a client */
} weir_err_t;

/* Names a code ("invalid input", ...). Never returns NULL. */
const char *weir_strerror(int code);

/*
 * Fills err (when not NULL) and returns code, so that callers can write
 * `return weir_err_set(err, WEIR_EINVAL, "id", "must not be empty");`.
 * attr may be NULL. The message is truncated to fit. attr and the arguments may point into err
 * itself: `weir_err_set(err, code, "", "not JSON: %s", err->msg)` wraps the message it replaces.
 */
int weir_err_set(weir_err_t *err, int code, const char *attr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Clears err (when not NULL). */
void weir_err_clear(weir_err_t *err);

/* ---- memory ---------------------------------------------------------------------------- */

/*
 * All allocation goes through these. They never return NULL: running out of memory is not a
 * condition weir can answer usefully, so they log and abort. Sizes that a client influences are
 * capped by the caller before allocating.
 */
void *weir_malloc(size_t size);
void *weir_calloc(size_t n, size_t size);
void *weir_realloc(void *p, size_t size);
char *weir_strdup(const char *s);
char *weir_strndup(const char *s, size_t n);
void *weir_memdup(const void *p, size_t n);
void weir_free(void *p);

/* ---- buffers --------------------------------------------------------------------------- */

/* A growable byte buffer, always NUL-terminated when data is not NULL. */
typedef struct weir_buf {
    char *data;
    size_t len;
    size_t cap;
} weir_buf_t;

#define WEIR_BUF_INIT                                                                              \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void weir_buf_reserve(weir_buf_t *b, size_t extra);
void weir_buf_append(weir_buf_t *b, const void *p, size_t n);
void weir_buf_puts(weir_buf_t *b, const char *s);
void weir_buf_putc(weir_buf_t *b, char c);
void weir_buf_printf(weir_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void weir_buf_vprintf(weir_buf_t *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included. Invalid UTF-8 becomes U+FFFD. */
void weir_buf_json_str(weir_buf_t *b, const char *s, size_t n);
void weir_buf_reset(weir_buf_t *b);
void weir_buf_free(weir_buf_t *b);
/* Hands the data to the caller (who frees it with weir_free) and empties the buffer. */
char *weir_buf_take(weir_buf_t *b, size_t *len);

/* ---- logging --------------------------------------------------------------------------- */

typedef enum weir_log_level {
    WEIR_LOG_DEBUG = 0,
    WEIR_LOG_INFO = 1,
    WEIR_LOG_WARN = 2,
    WEIR_LOG_ERROR = 3,
} weir_log_level_t;

/* Sets the lowest level written (default INFO). Call before starting threads. */
void weir_log_set_level(weir_log_level_t level);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int weir_log_parse_level(const char *s);
bool weir_log_enabled(weir_log_level_t level);

/*
 * Writes one JSON line to stderr: {"time","level","module","msg"} plus "ns" when ns is not NULL.
 * The message is escaped, so client bytes cannot break the line. Check weir_log_enabled (the
 * macros below do) before formatting anything costly.
 */
void weir_log_write(weir_log_level_t level, const char *module, const char *ns, const char *fmt,
                    ...) __attribute__((format(printf, 4, 5)));

#define WEIR_LOG(level, module, ns, ...)                                                           \
    do {                                                                                           \
        if (weir_log_enabled(level)) {                                                             \
            weir_log_write(level, module, ns, __VA_ARGS__);                                        \
        }                                                                                          \
    } while (0)

#define weir_debug(module, ...) WEIR_LOG(WEIR_LOG_DEBUG, module, NULL, __VA_ARGS__)
#define weir_info(module, ...)  WEIR_LOG(WEIR_LOG_INFO, module, NULL, __VA_ARGS__)
#define weir_warn(module, ...)  WEIR_LOG(WEIR_LOG_WARN, module, NULL, __VA_ARGS__)
#define weir_error(module, ...) WEIR_LOG(WEIR_LOG_ERROR, module, NULL, __VA_ARGS__)

/*
 * A token bucket for logs that clients can provoke: weir_ratelimit_allow returns true at most
 * `burst` times at once and `per_sec` times a second on average. Thread-safe.
 */
typedef struct weir_ratelimit {
    double tokens;
    double per_sec;
    double burst;
    uint64_t last_ns;
    int lock; /* a spin flag; the bucket is touched for a few instructions */
} weir_ratelimit_t;

#define WEIR_RATELIMIT_INIT(per_sec, burst)                                                        \
    {                                                                                              \
        (burst), (per_sec), (burst), 0, 0                                                          \
    }

bool weir_ratelimit_allow(weir_ratelimit_t *rl);

/* ---- time ------------------------------------------------------------------------------ */

/* Monotonic clock, in nanoseconds. */
uint64_t weir_mono_ns(void);
/* Initialises a condition variable whose timed waits count on the monotonic clock, so that they
 * do not jump with the wall clock; their deadlines come from weir_mono_deadline. */
void weir_cond_init_mono(pthread_cond_t *cond);
/* The monotonic clock's time ns from now, for pthread_cond_timedwait on such a variable. */
struct timespec weir_mono_deadline(uint64_t ns);
/* Wall clock, microseconds since the Unix epoch. */
int64_t weir_wall_us(void);

#define WEIR_TIME_STR_MAX 96
/* Formats microseconds since the epoch as RFC 3339 in UTC ("2024-01-02T03:04:05.678901Z"). */
void weir_time_format(int64_t us, char out[WEIR_TIME_STR_MAX]);
/*
 * Parses an RFC 3339 timestamp (a date, 'T' or 't', a time with optional fraction, and 'Z' or a
 * numeric offset). Returns 0 and microseconds since the epoch, or WEIR_EINVAL.
 */
int weir_time_parse(const char *s, int64_t *us);

/*
 * Parses an ISO 8601 duration of the form PnWnDTnHnMnS: weeks, days, hours, minutes and seconds,
 * each at most once and in that order, the last with an optional decimal fraction ('.' or ',');
 * no years or months, whose length varies. Exact to the microsecond, a finer fraction truncated;
 * a duration that is not zero but shorter than a microsecond is refused, as is one over about
 * 290,000 years. Returns 0 and microseconds, or WEIR_EINVAL.
 */
int weir_duration_parse(const char *s, int64_t *us);

/* ---- latency histograms -------------------------------------------------------------- */

#define WEIR_HISTOGRAM_BUCKETS 14 /* bounds from 250 µs to 30 s; one more bucket past them */

/* Durations counted into fixed buckets, lock-free. Zero-initialised it is empty. */
typedef struct weir_histogram {
    _Atomic uint64_t counts[WEIR_HISTOGRAM_BUCKETS + 1];
    _Atomic uint64_t sum_ns;
} weir_histogram_t;

void weir_histogram_observe(weir_histogram_t *h, uint64_t ns);
/* Appends h as a Prometheus histogram named name (in seconds), with its HELP line. */
void weir_histogram_render(weir_histogram_t *h, const char *name, const char *help,
                           weir_buf_t *out);

/* ---- ids, text ------------------------------------------------------------------------- */

#define WEIR_UUID_STR 37
/* A random (version 4) UUID in lower-case text form. */
void weir_uuid(char out[WEIR_UUID_STR]);

/* True when s[0..n) is well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). */
bool weir_utf8_valid(const char *s, size_t n);

/* Base64 (RFC 4648, with padding). encode returns a NUL-terminated string to weir_free. */
char *weir_base64_encode(const void *p, size_t n, size_t *out_len);
/* Decodes strictly (padding required, no whitespace); WEIR_EINVAL on bad input. */
int weir_base64_decode(const char *s, size_t n, unsigned char **out, size_t *out_len);

/*
 * Matches s against a glob pattern in which '*' stands for any run of characters (empty
 * included) and every other character stands for itself. No allocation, no recursion.
 */
bool weir_glob_match(const char *pattern, const char *s);

/*
 * Binary search in a sorted array of n elements of size bytes: the index of the element that
 * cmp(key, element) finds equal (*found set), or of where key would be inserted (*found clear).
 */
size_t weir_bsearch_at(const void *key, const void *base, size_t n, size_t size,
                       int (*cmp)(const void *key, const void *element), bool *found);

/* The value of a hexadecimal digit, or -1. */
int weir_hex_value(char c);

/*
 * Reads s as a whole number of ASCII decimal digits and nothing else (no sign, no white space:
 * what a strtoull would skip or accept past them is refused), at most max. True and *out on
 * success; false, *out untouched, otherwise.
 */
bool weir_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* Case-insensitive ASCII comparisons. */
int weir_strcasecmp(const char *a, const char *b);
bool weir_has_prefix_ci(const char *s, const char *prefix);

#endif
