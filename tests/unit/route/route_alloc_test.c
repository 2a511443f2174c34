/*
 * A CESQL filter whose computed strings outgrow the result's inline space allocates its
 * scratch once per thread, not once per event. The test is linked with -Wl,--wrap for weir's
 * allocation wrappers, so every allocation the libraries make through them is counted here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route/route.h"

static int allocations;

void *__real_weir_malloc(size_t size);
void *__real_weir_calloc(size_t n, size_t size);
void *__real_weir_realloc(void *p, size_t size);
void *__wrap_weir_malloc(size_t size);
void *__wrap_weir_calloc(size_t n, size_t size);
void *__wrap_weir_realloc(void *p, size_t size);

void *__wrap_weir_malloc(size_t size)
{
    allocations++;
    return __real_weir_malloc(size);
}

void *__wrap_weir_calloc(size_t n, size_t size)
{
    allocations++;
    return __real_weir_calloc(n, size);
}

void *__wrap_weir_realloc(void *p, size_t size)
{
    allocations++;
    return __real_weir_realloc(p, size);
}

static void test_long_strings_reuse_the_scratch(void **state)
{
    /* CONCAT of a 200-character subject with itself: 400 bytes, past the inline 256. */
    const char *json = "{\"mode\":\"simple\",\"events\":[{\"type\":\"t\",\"filters\":[{\"cesql\":"
                       "\"LENGTH(CONCAT(subject, subject)) = 400\"}]}]}";
    char subject[201];
    memset(subject, 'x', 200);
    subject[200] = '\0';

    weir_listener_t *l = NULL;
    assert_int_equal(weir_route_listener_parse(json, strlen(json), &l, NULL), 0);
    weir_event_t *ev = weir_ce_new();
    assert_int_equal(weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "id", "1", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "source", "/s", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "type", "t", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "subject", subject, WEIR_CE_STRING, NULL), 0);

    assert_true(weir_route_type_match(&l->types[0], ev)); /* the first allocates the scratch */
    int before = allocations;
    for (int i = 0; i < 100; i++) {
        assert_true(weir_route_type_match(&l->types[0], ev));
    }
    assert_int_equal(allocations - before, 0);

    weir_ce_free(ev);
    weir_route_listener_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_strings_reuse_the_scratch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
