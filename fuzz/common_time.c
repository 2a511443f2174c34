/*
 * Fuzzes the parsers of RFC 3339 timestamps and ISO 8601 durations (the input, up to a NUL, is
 * given to both). Aborts when a timestamp does not survive formatting and parsing again, or a
 * duration is negative, too long, or reads differently with ',' for '.'.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define YEAR_10000_US   INT64_C(253402300800000000) /* what four-digit years reach */
#define DURATION_MAX_US INT64_C(9200000000000000000)

static void check_time(const char *s)
{
    int64_t us, again;
    if (weir_time_parse(s, &us) != 0 || us < 0 || us >= YEAR_10000_US) {
        return; /* an offset may move a valid text outside what the format writes */
    }
    char text[WEIR_TIME_STR_MAX];
    weir_time_format(us, text);
    if (weir_time_parse(text, &again) != 0 || again != us) {
        abort();
    }
}

static void check_duration(char *s)
{
    int64_t us, again;
    if (weir_duration_parse(s, &us) != 0) {
        return;
    }
    if (us < 0 || us > DURATION_MAX_US) {
        abort();
    }
    char *comma = strchr(s, ',');
    if (comma != NULL) {
        *comma = '.';
        if (weir_duration_parse(s, &again) != 0 || again != us) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = weir_strndup((const char *)data, size); /* up to the first NUL, as C callers see it */
    check_time(s);
    check_duration(s);
    weir_free(s);
    return 0;
}
