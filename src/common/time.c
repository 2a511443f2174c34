/* Clocks, RFC 3339 timestamps and ISO 8601 durations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

uint64_t weir_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void weir_cond_init_mono(pthread_cond_t *cond)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &attr);
    pthread_condattr_destroy(&attr);
}

struct timespec weir_mono_deadline(uint64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t nsec = (uint64_t)ts.tv_nsec + ns % 1000000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u + nsec / 1000000000u);
    ts.tv_nsec = (long)(nsec % 1000000000u);
    return ts;
}

int64_t weir_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void weir_time_format(int64_t us, char out[WEIR_TIME_STR_MAX])
{
    time_t secs = (time_t)floor_div(us, 1000000);
    int64_t frac = us - (int64_t)secs * 1000000;
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(out, WEIR_TIME_STR_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

/* Reads exactly n decimal digits. */
static bool digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*s)[i];
        if (c < '0' || c > '9') {
            return false;
        }
        v = v * 10 + (c - '0');
    }
    *s += n;
    *out = v;
    return true;
}

static bool expect(const char **s, char c)
{
    if (**s != c) {
        return false;
    }
    (*s)++;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

static bool parse_fraction(const char **s, int64_t *us)
{
    *us = 0;
    if (**s != '.') {
        return true;
    }
    (*s)++;
    int n = 0;
    int64_t scale = 100000;
    while (**s >= '0' && **s <= '9') {
        *us += (**s - '0') * scale;
        scale /= 10;
        (*s)++;
        n++;
    }
    return n > 0;
}

static bool parse_offset(const char **s, int *offset_min)
{
    *offset_min = 0;
    if (**s == 'Z' || **s == 'z') {
        (*s)++;
        return true;
    }
    int sign = **s == '+' ? 1 : **s == '-' ? -1 : 0;
    int h, m;
    if (sign == 0) {
        return false;
    }
    (*s)++;
    if (!digits(s, 2, &h) || !expect(s, ':') || !digits(s, 2, &m) || h > 23 || m > 59) {
        return false;
    }
    *offset_min = sign * (h * 60 + m);
    return true;
}

int weir_time_parse(const char *s, int64_t *us)
{
    int y, mo, d, h, mi, sec, offset;
    int64_t frac;
    if (!digits(&s, 4, &y) || !expect(&s, '-') || !digits(&s, 2, &mo) || !expect(&s, '-') ||
        !digits(&s, 2, &d)) {
        return WEIR_EINVAL;
    }
    if (*s != 'T' && *s != 't') {
        return WEIR_EINVAL;
    }
    s++;
    if (!digits(&s, 2, &h) || !expect(&s, ':') || !digits(&s, 2, &mi) || !expect(&s, ':') ||
        !digits(&s, 2, &sec) || !parse_fraction(&s, &frac) || !parse_offset(&s, &offset)) {
        return WEIR_EINVAL;
    }
    if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60) {
        return WEIR_EINVAL;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset * 60;
    *us = secs * 1000000 + frac;
    return 0;
}

/* A duration's units in the order they must come (W and D before the T, the rest after it), and
 * their length in microseconds. */
static const char duration_units[] = "WDHMS";
static const int64_t duration_unit_us[] = {604800000000, 86400000000, 3600000000, 60000000,
                                           1000000};
#define DURATION_DATE_UNITS 2
#define DURATION_MAX_US     INT64_C(9200000000000000000) /* about 290,000 years */

/* Reads one or more decimal digits; false when there is none. */
static bool duration_digits(const char **s, const char **start, const char **end)
{
    *start = *s;
    while (**s >= '0' && **s <= '9') {
        (*s)++;
    }
    *end = *s;
    return *end > *start;
}

/*
 * One "<n>[.<fraction>]<unit>" of a duration, its unit one of units[*first, last), in
 * microseconds (a fraction truncated to the microsecond). *first moves past the unit read, for
 * units come in order and each at most once. Sets *fraction when it has one and *nonzero when
 * a digit is not 0. False when it is malformed or longer than DURATION_MAX_US.
 */
static bool duration_part(const char **s, size_t *first, size_t last, int64_t *part_us,
                          bool *fraction, bool *nonzero)
{
    const char *int_start, *int_end, *frac_start = NULL, *frac_end = NULL;
    if (!duration_digits(s, &int_start, &int_end)) {
        return false;
    }
    if (**s == '.' || **s == ',') {
        (*s)++;
        if (!duration_digits(s, &frac_start, &frac_end)) {
            return false;
        }
    }
    const char *at = **s != '\0' ? memchr(duration_units + *first, **s, last - *first) : NULL;
    if (at == NULL) {
        return false;
    }
    (*s)++;
    *first = (size_t)(at - duration_units) + 1;

    int64_t unit = duration_unit_us[at - duration_units];
    int64_t n = 0;
    for (const char *d = int_start; d < int_end; d++) {
        if (n > DURATION_MAX_US / unit) {
            return false;
        }
        n = n * 10 + (*d - '0');
        *nonzero = *nonzero || *d != '0';
    }
    if (n > DURATION_MAX_US / unit) {
        return false;
    }
    int64_t frac = 0;
    int64_t place = unit;
    for (const char *d = frac_start; d != NULL && d < frac_end; d++) {
        place /= 10;
        frac += (*d - '0') * place;
        *nonzero = *nonzero || *d != '0';
    }
    *fraction = frac_start != NULL;
    *part_us = n * unit + frac;
    return *part_us <= DURATION_MAX_US;
}

int weir_duration_parse(const char *s, int64_t *us)
{
    size_t first = 0, last = DURATION_DATE_UNITS;
    int64_t total = 0;
    bool in_time = false, any = false, fraction = false, nonzero = false;

    if (!expect(&s, 'P') || *s == '\0') {
        return WEIR_EINVAL;
    }
    while (*s != '\0') {
        if (fraction) {
            return WEIR_EINVAL; /* only the last, smallest part may have a fraction */
        }
        if (*s == 'T' && !in_time) {
            in_time = true;
            first = DURATION_DATE_UNITS;
            last = sizeof(duration_units) - 1;
            s++;
            if (*s == '\0') {
                return WEIR_EINVAL;
            }
            continue;
        }
        int64_t part;
        if (!duration_part(&s, &first, last, &part, &fraction, &nonzero) ||
            part > DURATION_MAX_US - total) {
            return WEIR_EINVAL;
        }
        total += part;
        any = true;
    }
    /* Shorter than a microsecond would read as none at all. */
    if (!any || (nonzero && total == 0)) {
        return WEIR_EINVAL;
    }
    *us = total;
    return 0;
}
