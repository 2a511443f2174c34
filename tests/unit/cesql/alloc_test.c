/*
 * Evaluation allocates nothing for a typical filter. The test is linked with
 * -Wl,--wrap for weir's allocation wrappers, so every allocation the libraries make through
 * them is counted here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cesql/cesql.h"

static int allocations;

/* The linker sends weir_malloc and weir_realloc here (see CMakeLists.txt). */
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

static weir_event_t *event(void)
{
    weir_event_t *ev = weir_ce_new();
    assert_int_equal(weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "id", "1", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "source", "/src", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "type", "x", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "subject", "abc", WEIR_CE_STRING, NULL), 0);
    assert_int_equal(weir_ce_set(ev, "exint", "42", WEIR_CE_INTEGER, NULL), 0);
    return ev;
}

/* Evaluates expr 1000 times and returns how many allocations that made. */
static int count(const char *expr, const weir_event_t *ev, weir_cesql_result_t *res)
{
    weir_cesql_t *prog;
    assert_int_equal(weir_cesql_compile(expr, strlen(expr), &prog, NULL), 0);
    int before = allocations;
    for (int i = 0; i < 1000; i++) {
        weir_cesql_eval(prog, ev, res);
    }
    int made = allocations - before;
    weir_cesql_free(prog);
    return made;
}

static void test_typical_filter(void **state)
{
    weir_event_t *ev = event();
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    assert_int_equal(count("type = 'x' AND subject LIKE 'a%'", ev, &res), 0);
    assert_true(res.value.b);
    assert_int_equal(res.errors, 0);
    /* casts and small computed strings stay in the result's inline scratch */
    assert_int_equal(count("exint = '42' AND UPPER(subject) IN ('ABC') AND NOT EXISTS x", ev, &res),
                     0);
    assert_true(res.value.b);
    /* so do the errors */
    assert_int_equal(count("missing = 1 OR 1 / 0 = 0", ev, &res), 0);
    weir_cesql_result_free(&res);
    weir_ce_free(ev);
}

/* A long computed string allocates the scratch block once, then reuses it. */
static void test_block_reused(void **state)
{
    weir_event_t *ev = event();
    weir_cesql_result_t res = WEIR_CESQL_RESULT_INIT;
    char expr[1024] = "LENGTH(CONCAT(type";
    for (int i = 0; i < 60; i++) {
        strcat(expr, ", '0123456789'");
    }
    strcat(expr, ")) = 601");
    assert_int_equal(count(expr, ev, &res), 1);
    assert_true(res.value.b);
    weir_cesql_result_free(&res);
    weir_ce_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_typical_filter),
        cmocka_unit_test(test_block_reused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
