/*
 * Filters in the store: their names, and saving and deleting them through the writer so that a
 * change commits in order with the writes around it (and with its follow-up, when it has one).
 */
#include <string.h>

#include "store/backend.h"

#define FILTER_NAME_MAX 63

typedef struct filter_job {
    const char *ns;
    const char *name;
    const char *src;
    size_t len;
    bool created;
} filter_job_t;

static bool name_char_ok(char c, bool first)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        return true;
    }
    return !first && (c == '-' || c == '_' || c == '.');
}

int weir_store_filter_name_valid(const char *name, weir_err_t *err)
{
    size_t n = strlen(name);
    if (n == 0 || n > FILTER_NAME_MAX) {
        return weir_err_set(err, WEIR_EINVAL, "name", "a filter name is 1 to %d characters",
                            FILTER_NAME_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_char_ok(name[i], i == 0)) {
            return weir_err_set(err, WEIR_EINVAL, "name",
                                "a filter name is letters, digits, '-', '_' and '.', starting "
                                "with a letter or digit");
        }
    }
    return 0;
}

static int put_on_writer(const weir_store_backend_t *be, void *db, void *arg)
{
    filter_job_t *job = arg;
    return be->filter_put(db, job->ns, job->name, job->src, job->len, weir_wall_us(),
                          &job->created);
}

static int delete_on_writer(const weir_store_backend_t *be, void *db, void *arg)
{
    filter_job_t *job = arg;
    return be->filter_delete(db, job->ns, job->name);
}

static int job_error(int rc, const char *what, weir_err_t *err)
{
    if (rc == WEIR_ENOTFOUND) {
        return weir_err_set(err, rc, NULL, "%s does not exist", what);
    }
    return weir_store_job_err(rc, err);
}

int weir_store_filter_put_then(weir_store_t *store, const char *ns, const char *name,
                               const char *src, size_t len, weir_store_write_t *then, bool *created,
                               weir_err_t *err)
{
    if (created != NULL) {
        *created = false;
    }
    int rc = weir_store_filter_name_valid(name, err);
    if (rc != 0) {
        return rc;
    }
    filter_job_t job = {.ns = ns, .name = name, .src = src, .len = len};
    rc = weir_store_change(store, put_on_writer, &job, then);
    if (created != NULL) {
        *created = rc == 0 && job.created;
    }
    return job_error(rc, "the namespace", err);
}

int weir_store_filter_put(weir_store_t *store, const char *ns, const char *name, const char *src,
                          size_t len, bool *created, weir_err_t *err)
{
    return weir_store_filter_put_then(store, ns, name, src, len, NULL, created, err);
}

int weir_store_filter_delete_then(weir_store_t *store, const char *ns, const char *name,
                                  weir_store_write_t *then, weir_err_t *err)
{
    filter_job_t job = {.ns = ns, .name = name};
    return job_error(weir_store_change(store, delete_on_writer, &job, then), "the filter", err);
}

int weir_store_filter_delete(weir_store_t *store, const char *ns, const char *name, weir_err_t *err)
{
    return weir_store_filter_delete_then(store, ns, name, NULL, err);
}

int weir_store_filter_exists(weir_store_t *store, const char *ns, const char *name, bool *exists,
                             weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;

    *exists = false;
    if (ns == NULL || name == NULL) {
        return weir_err_set(err, WEIR_EINVAL, ns == NULL ? "namespace" : "name", "not given");
    }
    weir_store_backend_of(store, &be, &db);
    return be->filter_exists(db, ns, name, exists, err);
}

int weir_store_filter_list(weir_store_t *store, const char *ns, weir_store_filter_t **out,
                           size_t *n, weir_err_t *err)
{
    const weir_store_backend_t *be;
    void *db;
    weir_store_backend_of(store, &be, &db);
    *out = NULL;
    *n = 0;
    return be->filter_list(db, ns, out, n, err);
}

void weir_store_filters_free(weir_store_filter_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        weir_free(list[i].ns);
        weir_free(list[i].name);
        weir_free(list[i].source);
    }
    weir_free(list);
}
