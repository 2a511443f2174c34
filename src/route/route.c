/*
 * route.c: the listeners of every namespace, in memory for matching and in the store for
 * keeps. Changes go to the store first; the in-memory set follows once the store committed.
 */
#include <pthread.h>
#include <string.h>

#include "route/route.h"

#define MODULE    "route"
#define LOAD_PAGE 500

struct weir_route {
    weir_store_t *store;
    pthread_rwlock_t lock; /* guards the set */
    weir_listener_t **set;
    size_t n;
    size_t cap;
};

/* Adds l to the set; called with the write lock held. */
static void set_add(weir_route_t *r, weir_listener_t *l)
{
    if (r->n == r->cap) {
        r->cap = r->cap == 0 ? 16 : r->cap * 2;
        r->set = weir_realloc(r->set, r->cap * sizeof(*r->set));
    }
    r->set[r->n++] = l;
}

/* Removes and frees the listeners for which drop says so; called with the write lock held. */
static void set_drop(weir_route_t *r, const char *ns, const char *id)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        weir_listener_t *l = r->set[i];
        bool gone = strcmp(l->ns, ns) == 0 && (id == NULL || strcmp(l->id, id) == 0);
        if (gone) {
            weir_route_listener_free(l);
        } else {
            r->set[k++] = l;
        }
    }
    r->n = k;
}

/* Parses a stored listener; one that no longer parses is skipped, with a log line. */
static void load_one(weir_route_t *r, const weir_store_listener_t *s)
{
    weir_listener_t *l = NULL;
    weir_err_t err = {0};

    if (weir_route_listener_parse(s->spec, strlen(s->spec), &l, &err) != 0) {
        weir_error(MODULE, "listener %s of %s no longer parses (%s: %s); it is ignored", s->id,
                   s->ns, err.attr, err.msg);
        return;
    }
    l->id = weir_strdup(s->id);
    l->ns = weir_strdup(s->ns);
    l->created_us = s->created_us;
    set_add(r, l);
}

static int load(weir_route_t *r, weir_err_t *err)
{
    char *after = NULL;
    for (;;) {
        weir_store_listener_t *page = NULL;
        size_t n = 0;
        int rc = weir_store_listeners(r->store, NULL, after, LOAD_PAGE, &page, &n, err);
        weir_free(after);
        after = NULL;
        if (rc != 0) {
            return rc;
        }
        for (size_t i = 0; i < n; i++) {
            load_one(r, &page[i]);
        }
        after = n == LOAD_PAGE ? weir_strdup(page[n - 1].id) : NULL;
        weir_store_listeners_free(page, n);
        if (after == NULL) {
            return 0;
        }
    }
}

int weir_route_open(weir_store_t *store, weir_route_t **out, weir_err_t *err)
{
    weir_route_t *r = weir_calloc(1, sizeof(*r));
    r->store = store;
    pthread_rwlock_init(&r->lock, NULL);

    *out = NULL;
    int rc = load(r, err);
    if (rc != 0) {
        weir_route_close(r);
        return rc;
    }
    weir_info(MODULE, "loaded %zu listeners", r->n);
    *out = r;
    return 0;
}

void weir_route_close(weir_route_t *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        weir_route_listener_free(r->set[i]);
    }
    weir_free(r->set);
    pthread_rwlock_destroy(&r->lock);
    weir_free(r);
}

int weir_route_add(weir_route_t *r, const char *ns, weir_listener_t *l, weir_store_write_t *then,
                   char **id, weir_err_t *err)
{
    if (l->id == NULL) {
        char uuid[WEIR_UUID_STR];
        weir_uuid(uuid);
        l->id = weir_strdup(uuid);
    }
    l->ns = weir_strdup(ns);
    l->created_us = weir_wall_us();
    char *spec = cJSON_PrintUnformatted(l->doc);
    weir_store_listener_t s = {.id = l->id, .ns = l->ns, .spec = spec, .created_us = l->created_us};
    int rc = weir_store_listener_put_then(r->store, &s, then, err);
    cJSON_free(spec);
    if (rc != 0) {
        weir_route_listener_free(l);
        return rc;
    }

    *id = weir_strdup(l->id); /* before l joins the set, where a removal may free it */
    pthread_rwlock_wrlock(&r->lock);
    set_add(r, l);
    pthread_rwlock_unlock(&r->lock);
    return 0;
}

int weir_route_remove(weir_route_t *r, const char *ns, const char *id, weir_store_write_t *then,
                      weir_err_t *err)
{
    int rc = weir_store_listener_delete_then(r->store, ns, id, then, err);
    if (rc != 0) {
        return rc;
    }
    pthread_rwlock_wrlock(&r->lock);
    set_drop(r, ns, id);
    pthread_rwlock_unlock(&r->lock);
    return 0;
}

void weir_route_ns_deleted(weir_route_t *r, const char *ns)
{
    pthread_rwlock_wrlock(&r->lock);
    set_drop(r, ns, NULL);
    pthread_rwlock_unlock(&r->lock);
}

void weir_route_each(weir_route_t *r, void (*cb)(void *arg, const weir_listener_t *l), void *arg)
{
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        cb(arg, r->set[i]);
    }
    pthread_rwlock_unlock(&r->lock);
}

int64_t weir_route_lifespan(weir_route_t *r, const char *id)
{
    int64_t lifespan = 0;

    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->set[i]->id, id) == 0) {
            lifespan = r->set[i]->lifespan_us;
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return lifespan;
}

/* ---- matching -------------------------------------------------------------------------- */

static weir_store_match_t *match_add(weir_route_matches_t *m, const weir_listener_t *l,
                                     weir_store_match_kind_t kind)
{
    m->items = weir_realloc(m->items, (m->n + 1) * sizeof(*m->items));
    weir_store_match_t *it = &m->items[m->n++];
    memset(it, 0, sizeof(*it));
    it->listener = weir_strdup(l->id);
    it->kind = kind;
    return it;
}

/* The type entry of l that ev matches, or NULL. */
static const weir_route_type_t *matching_type(const weir_listener_t *l, const weir_event_t *ev)
{
    for (size_t i = 0; i < l->ntypes; i++) {
        if (weir_route_type_match(&l->types[i], ev)) {
            return &l->types[i];
        }
    }
    return NULL;
}

static void match_one(const weir_listener_t *l, const weir_event_t *ev, weir_route_matches_t *m)
{
    const weir_route_type_t *t = matching_type(l, ev);
    if (t == NULL) {
        return;
    }
    if (l->mode != WEIR_ROUTE_AND) {
        match_add(m, l, WEIR_STORE_MATCH_DELIVER);
        return;
    }
    char *key = weir_route_correlation_key(l, ev);
    if (key == NULL) {
        return; /* it lacks a correlated attribute, so it can join no set */
    }
    weir_store_match_t *it = match_add(m, l, WEIR_STORE_MATCH_COLLECT);
    it->type = weir_strdup(t->type);
    it->key = key;
    it->ntypes = (unsigned)l->ntypes;
    it->lifespan_us = l->lifespan_us;
}

void weir_route_match(weir_route_t *r, const char *ns, const weir_event_t *ev,
                      weir_route_matches_t *m)
{
    pthread_rwlock_rdlock(&r->lock);
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->set[i]->ns, ns) == 0) {
            match_one(r->set[i], ev, m);
        }
    }
    pthread_rwlock_unlock(&r->lock);
}

void weir_route_matches_free(weir_route_matches_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        weir_free((char *)m->items[i].listener);
        weir_free((char *)m->items[i].type);
        weir_free((char *)m->items[i].key);
    }
    weir_free(m->items);
    m->items = NULL;
    m->n = 0;
}
