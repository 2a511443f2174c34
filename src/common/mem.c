/*
 * Allocation wrappers. Running out of memory aborts: a server that cannot allocate a few bytes
 * cannot answer usefully, and checking every allocation would hide the real error paths.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

static void out_of_memory(size_t size)
{
    fprintf(stderr,
            "{\"level\":\"error\",\"module\":\"common\",\"msg\":\"out of memory "
            "allocating %zu bytes\"}\n",
            size);
    abort();
}

void *weir_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (p == NULL) {
        out_of_memory(size);
    }
    return p;
}

void *weir_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) {
        out_of_memory(n * size);
    }
    return p;
}

void *weir_realloc(void *p, size_t size)
{
    void *q = realloc(p, size ? size : 1);
    if (q == NULL) {
        out_of_memory(size);
    }
    return q;
}

char *weir_strdup(const char *s)
{
    return weir_memdup(s, strlen(s) + 1);
}

char *weir_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = weir_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *weir_memdup(const void *p, size_t n)
{
    void *q = weir_malloc(n);
    if (n > 0) {
        memcpy(q, p, n);
    }
    return q;
}

void weir_free(void *p)
{
    free(p);
}
