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

/* One "<number><unit>" of a duration; the number may carry a fraction only for seconds. */
static bool duration_part(const char **s, double *value, char *unit)
{
    char *end;
    if (**s < '0' || **s > '9') {
        return false;
    }
    *value = strtod(*s, &end);
    if (end == *s || *end == '\0') {
        return false;
    }
    *unit = *end;
    *s = end + 1;
    return true;
}

int weir_duration_parse(const char *s, int64_t *us)
{
    static const char date_units[] = "WD";
    static const char time_units[] = "HMS";
    static const double date_scale[] = {7 * 86400.0, 86400.0};
    static const double time_scale[] = {3600.0, 60.0, 1.0};
    double total = 0;
    bool in_time = false, any = false;
    const char *next_unit = date_units;

    if (!expect(&s, 'P') || *s == '\0') {
        return WEIR_EINVAL;
    }
    while (*s) {
        if (*s == 'T' && !in_time) {
            in_time = true;
            next_unit = time_units;
            s++;
            if (*s == '\0') {
                return WEIR_EINVAL;
            }
            continue;
        }
        double v;
        char unit;
        const char *at;
        if (!duration_part(&s, &v, &unit) || unit == '\0' || !(at = strchr(next_unit, unit))) {
            return WEIR_EINVAL;
        }
        const char *base = in_time ? time_units : date_units;
        total += v * (in_time ? time_scale : date_scale)[at - base];
        next_unit = at + 1; /* units come in order, each at most once */
        any = true;
    }
    if (!any || total > 9.2e12) {
        return WEIR_EINVAL;
    }
    *us = (int64_t)(total * 1e6);
    return 0;
}
