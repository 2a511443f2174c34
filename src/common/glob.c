/* Glob matching with '*' only, iterative with one backtrack point (linear in practice). */
#include "common/common.h"

bool weir_glob_match(const char *pattern, const char *s)
{
    const char *star = NULL;   /* the last '*' seen in the pattern */
    const char *resume = NULL; /* where in s that star's match would grow next */

    while (*s) {
        if (*pattern == '*') {
            star = pattern++;
            resume = s;
        } else if (*pattern == *s) {
            pattern++;
            s++;
        } else if (star != NULL) {
            pattern = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*pattern == '*') {
        pattern++;
    }
    return *pattern == '\0';
}
