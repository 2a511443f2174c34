/* The watch: what live streams wait on, and that a deleted namespace leaves nothing behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "store/watch.h"

/* A job of the list: a write of one event, or (seq 0) the deletion of a namespace. */
typedef struct job {
    weir_store_write_t w;
    weir_store_item_t item;
} job_t;

static const weir_store_write_t *stored(const weir_store_write_t *w)
{
    return w->nitems > 0 ? w : NULL;
}

static const char *deleted(const weir_store_write_t *w)
{
    const job_t *j = (const job_t *)w;
    return w->nitems == 0 ? j->item.ns : NULL;
}

/* Links jobs[0..n) into a list in order and notes it. */
static void note(weir_store_watch_t *w, job_t *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        jobs[i].w.items = &jobs[i].item;
        jobs[i].w.nitems = jobs[i].item.seq > 0 ? 1 : 0;
        jobs[i].w.next = i + 1 < n ? &jobs[i + 1].w : NULL;
    }
    weir_store_watch_note(w, &jobs[0].w, stored, deleted);
}

static void test_deletion_forgets_the_namespace(void **state)
{
    weir_store_watch_t *w = weir_store_watch_new();
    job_t first[] = {{.item = {.ns = "a", .seq = 5}}, {.item = {.ns = "b", .seq = 6}}};

    note(w, first, 2);
    assert_true(weir_store_watch_wait(w, "a", 4, 0));
    assert_int_equal(weir_store_watch_horizon(w), 6);

    job_t gone[] = {{.item = {.ns = "a"}}};
    note(w, gone, 1);
    assert_false(weir_store_watch_wait(w, "a", 0, 0));
    assert_true(weir_store_watch_wait(w, "b", 5, 0));
    assert_int_equal(weir_store_watch_horizon(w), 6);

    /* Deleted and created again in one group: what the new events noted stays. */
    job_t again[] = {
        {.item = {.ns = "b", .seq = 7}}, {.item = {.ns = "b"}}, {.item = {.ns = "b", .seq = 8}}};
    note(w, again, 3);
    assert_true(weir_store_watch_wait(w, "b", 7, 0));
    assert_int_equal(weir_store_watch_horizon(w), 8);

    /* A failed deletion forgets nothing. */
    job_t failed[] = {{.item = {.ns = "b"}, .w = {.status = WEIR_ENOTFOUND}}};
    note(w, failed, 1);
    assert_true(weir_store_watch_wait(w, "b", 7, 0));

    /* Forgetting every namespace, and one never written, leaves the watch usable. */
    job_t all[] = {{.item = {.ns = "b"}}, {.item = {.ns = "never"}}};
    note(w, all, 2);
    assert_false(weir_store_watch_wait(w, "b", 0, 0));
    job_t later[] = {{.item = {.ns = "c", .seq = 9}}};
    note(w, later, 1);
    assert_true(weir_store_watch_wait(w, "c", 8, 0));
    weir_store_watch_free(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deletion_forgets_the_namespace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
