/*
 * Reads show only durable events. The syncer's fdatasync of the WAL is held still here, by an
 * fdatasync of this program's own that wraps the library's, so that a group stays committed
 * (visible to readers) but not yet durable for as long as the test looks at it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <sched.h>
#include <stdatomic.h>
#include <unistd.h>

#include "fixture.h"

static int (*real_fdatasync)(int);
static atomic_bool hold;    /* fdatasync waits while this is set */
static atomic_bool entered; /* a held fdatasync has begun */

int fdatasync(int fd)
{
    if (atomic_load(&hold)) {
        atomic_store(&entered, true);
        while (atomic_load(&hold)) {
            sched_yield();
        }
    }
    return real_fdatasync(fd);
}

static size_t history_ids(fx_t *fx)
{
    weir_store_query_t q = {.ns = "alpha",
                            .from_us = INT64_MIN,
                            .until_us = INT64_MAX,
                            .before_seq = INT64_MAX,
                            .limit = 100};
    weir_store_page_t page;

    assert_int_equal(weir_store_history(fx->store, &q, &page, NULL), 0);
    size_t n = page.n;
    weir_store_page_free(&page);
    return n;
}

static size_t since_count(fx_t *fx)
{
    weir_store_page_t page;

    assert_int_equal(weir_store_since(fx->store, "alpha", 0, 100, 0, &page, NULL), 0);
    size_t n = page.n;
    weir_store_page_free(&page);
    return n;
}

static void test_committed_but_not_durable_is_not_shown(void **state)
{
    fx_t *fx = fx_open(0, 0);
    weir_store_record_t rec;
    int64_t count = 0;

    assert_int_equal(weir_store_ns_create(fx->store, "alpha", NULL, NULL), 0);
    fx_write_range(fx->store, "alpha", "e", 0, 1, "{}");

    weir_event_t *ev = fx_event("late", "/src", "t", "{}");
    weir_store_item_t item = {.ns = "alpha", .ev = ev};
    fx_result_t result = {0};
    weir_store_write_t w = {.items = &item, .nitems = 1, .done = fx_result_done, .arg = &result};
    atomic_store(&hold, true);
    assert_int_equal(weir_store_submit(fx->store, &w), 0);
    while (!atomic_load(&entered)) {
        sched_yield(); /* until the group is committed and its sync has begun */
    }

    /* Committed: a plain count sees it. Not durable: no read shows it. */
    assert_int_equal(weir_store_count(fx->store, "alpha", &count, NULL), 0);
    assert_int_equal(count, 2);
    assert_int_equal(history_ids(fx), 1);
    assert_int_equal(since_count(fx), 1);
    assert_int_equal(weir_store_get(fx->store, "alpha", "late", NULL, &rec, NULL), WEIR_ENOTFOUND);
    assert_int_equal(atomic_load(&result.calls), 0);

    atomic_store(&hold, false);
    while (atomic_load(&result.calls) == 0) {
        sched_yield();
    }
    assert_int_equal(result.status, 0);
    assert_int_equal(history_ids(fx), 2);
    assert_int_equal(since_count(fx), 2);
    assert_int_equal(weir_store_get(fx->store, "alpha", "late", NULL, &rec, NULL), 0);
    assert_int_equal(rec.seq, item.seq);
    weir_store_record_clear(&rec);
    weir_ce_free(ev);
    fx_close(fx);
}

int main(void)
{
    real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (real_fdatasync == NULL) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_committed_but_not_durable_is_not_shown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
