/*
 * listeners.c: the listener API (.../events/listeners), the matching of ingested events
 * against listeners before their commit, and the wiring of the route module to the delivery
 * engine (each listener's target).
 */
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

#define MODULE        "api"
#define LIMIT_DEFAULT 100
#define LIMIT_MAX     1000

/* ---- matching -------------------------------------------------------------------------- */

void weir_listeners_match_item(weir_server_t *srv, weir_store_item_t *it)
{
    weir_route_matches_t m = {NULL, 0};
    if (srv->route != NULL) {
        weir_route_match(srv->route, it->ns, it->ev, &m);
    }
    it->matches = m.items;
    it->nmatches = m.n;
}

void weir_listeners_release_item(weir_store_item_t *it)
{
    weir_route_matches_t m = {(weir_store_match_t *)it->matches, it->nmatches};
    weir_route_matches_free(&m);
    it->matches = NULL;
    it->nmatches = 0;
}

void weir_listeners_match(weir_server_t *srv, weir_ingest_t *in)
{
    for (size_t i = 0; i < in->nitems; i++) {
        weir_listeners_match_item(srv, &in->items[i]);
    }
}

void weir_listeners_unmatch(weir_ingest_t *in)
{
    for (size_t i = 0; in->items != NULL && i < in->nitems; i++) {
        weir_listeners_release_item(&in->items[i]);
    }
}

/* The engine's hooks for replies entering a namespace. */
static void match_reply(void *arg, weir_store_item_t *it)
{
    weir_listeners_match_item(arg, it);
}

static void release_reply(void *arg, weir_store_item_t *it)
{
    weir_listeners_release_item(it);
}

/* ---- rendering ------------------------------------------------------------------------- */

static void render_collected(weir_server_t *srv, const char *id, weir_buf_t *b)
{
    weir_store_collected_t *list = NULL;
    size_t n = 0;
    char when[WEIR_TIME_STR_MAX];
    int64_t oldest = weir_wall_us() - weir_route_lifespan(srv->route, id);

    weir_buf_puts(b, ",\"collected\":[");
    weir_store_collected(srv->store, id, &list, &n, NULL);
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i].received_us < oldest) {
            continue; /* past its lifespan: the next event of the set drops it */
        }
        weir_time_format(list[i].received_us, when);
        weir_buf_printf(b, "%s{\"correlation\":%s,\"type\":", shown++ ? "," : "", list[i].key);
        weir_buf_json_str(b, list[i].type, strlen(list[i].type));
        weir_buf_puts(b, ",\"event_id\":");
        if (list[i].event_id != NULL) {
            weir_buf_json_str(b, list[i].event_id, strlen(list[i].event_id));
        } else {
            weir_buf_puts(b, "null");
        }
        weir_buf_printf(b, ",\"received\":\"%s\"}", when);
    }
    weir_buf_puts(b, "]");
    weir_store_collected_free(list, n);
}

/* {"id","namespace","created", the spec's members..., "state"} (state only when with_state). */
static void render(weir_server_t *srv, const weir_store_listener_t *l, bool with_state,
                   weir_buf_t *b)
{
    char when[WEIR_TIME_STR_MAX];
    size_t len = strlen(l->spec);

    weir_time_format(l->created_us, when);
    weir_buf_puts(b, "{\"id\":");
    weir_buf_json_str(b, l->id, strlen(l->id));
    weir_buf_puts(b, ",\"namespace\":");
    weir_buf_json_str(b, l->ns, strlen(l->ns));
    weir_buf_printf(b, ",\"created\":\"%s\"", when);
    if (len > 2) { /* the spec is a non-empty object: splice its members in */
        weir_buf_putc(b, ',');
        weir_buf_append(b, l->spec + 1, len - 2);
    }
    if (with_state) {
        weir_buf_printf(b,
                        ",\"state\":{\"pending\":%lld,\"delivered\":%lld,\"failed\":%lld,"
                        "\"dead_lettered\":%lld",
                        (long long)l->pending, (long long)l->delivered, (long long)l->failed,
                        (long long)l->dead_lettered);
        render_collected(srv, l->id, b);
        weir_buf_puts(b, "}");
    }
    weir_buf_puts(b, "}");
}

static enum MHD_Result show(weir_req_t *req, const char *ns, const char *id, unsigned status)
{
    weir_store_listener_t l;
    weir_err_t err = {0};

    if (weir_store_listener_get(req->srv->store, ns, id, &l, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    weir_buf_t b = WEIR_BUF_INIT;
    render(req->srv, &l, true, &b);
    weir_store_listener_clear(&l);
    return weir_respond_json(req, status, &b);
}

/* ---- the routes ------------------------------------------------------------------------ */

/* Validates a listener (the route module's part, then the delivery spec) without storing. */
static int validate(weir_req_t *req, weir_listener_t **l, weir_deliver_spec_t *spec,
                    weir_err_t *err)
{
    const char *body = req->body.data != NULL ? req->body.data : "";
    int rc = weir_route_listener_parse(body, req->body.len, l, err);
    if (rc == 0) {
        rc = weir_deliver_spec_parse((*l)->doc, spec, err);
    }
    return rc;
}

/* Stores l with its system event, in one transaction: the id is chosen here, for the event to
 * name it. Takes l. Under the change lock, so that a deletion of the namespace cannot commit
 * between the store's write and l's joining the listeners in memory, which would keep l there,
 * matching events of a namespace made again under the same name. */
static int add(weir_server_t *srv, const char *ns, weir_listener_t *l, char **id, weir_err_t *err)
{
    char uuid[WEIR_UUID_STR];
    weir_system_t sys;

    weir_uuid(uuid);
    l->id = weir_strdup(uuid);
    pthread_mutex_lock(&srv->change_lock);
    weir_store_write_t *then =
        weir_system_prepare(srv, &sys, ns, WEIR_SYSTEM_LISTENER_CREATED, "listener", uuid);
    int rc = weir_route_add(srv->route, ns, l, then, id, err);
    pthread_mutex_unlock(&srv->change_lock);
    weir_system_finish(srv, &sys, rc);
    return rc;
}

static enum MHD_Result create(weir_req_t *req, const char *ns)
{
    weir_listener_t *l = NULL;
    weir_deliver_spec_t spec = {0};
    weir_err_t err = {0};
    char *id = NULL;

    int rc = validate(req, &l, &spec, &err);
    if (rc != 0) {
        weir_route_listener_free(l);
    } else {
        rc = add(req->srv, ns, l, &id, &err);
    }
    if (rc != 0) {
        weir_deliver_spec_clear(&spec);
        return weir_problem_err(req, &err);
    }
    weir_deliver_target_set(req->srv->deliver, id, ns, &spec);
    weir_deliver_spec_clear(&spec);
    WEIR_LOG(WEIR_LOG_INFO, MODULE, ns, "listener %s created", id);
    enum MHD_Result ret = show(req, ns, id, MHD_HTTP_CREATED);
    weir_free(id);
    return ret;
}

static bool read_limit(weir_req_t *req, size_t *limit)
{
    const char *s = weir_req_arg(req, "limit");
    uint64_t v;
    *limit = LIMIT_DEFAULT;
    if (s == NULL) {
        return true;
    }
    if (!weir_parse_uint(s, LIMIT_MAX, &v) || v < 1) {
        return false;
    }
    *limit = (size_t)v;
    return true;
}

static enum MHD_Result list(weir_req_t *req, const char *ns)
{
    weir_store_listener_t *items = NULL;
    size_t n = 0, limit;
    weir_err_t err = {0};

    if (!read_limit(req, &limit)) {
        return weir_problem(req, MHD_HTTP_BAD_REQUEST, "limit must be a number from 1 to 1000",
                            "limit", NULL);
    }
    if (weir_store_listeners(req->srv->store, ns, weir_req_arg(req, "cursor"), limit + 1, &items,
                             &n, &err) != 0) {
        return weir_problem_err(req, &err);
    }
    weir_buf_t b = WEIR_BUF_INIT;
    weir_buf_puts(&b, "{\"items\":[");
    for (size_t i = 0; i < n && i < limit; i++) {
        weir_buf_puts(&b, i > 0 ? "," : "");
        render(req->srv, &items[i], false, &b);
    }
    weir_buf_puts(&b, "],\"next_cursor\":");
    if (n > limit) {
        weir_buf_json_str(&b, items[limit - 1].id, strlen(items[limit - 1].id));
    } else {
        weir_buf_puts(&b, "null");
    }
    weir_buf_puts(&b, "}");
    weir_store_listeners_free(items, n);
    return weir_respond_json(req, MHD_HTTP_OK, &b);
}

static enum MHD_Result remove_one(weir_req_t *req, const char *ns, const char *id)
{
    weir_err_t err = {0};
    weir_system_t sys;

    pthread_mutex_lock(&req->srv->change_lock);
    weir_store_write_t *then =
        weir_system_prepare(req->srv, &sys, ns, WEIR_SYSTEM_LISTENER_DELETED, "listener", id);
    int rc = weir_route_remove(req->srv->route, ns, id, then, &err);
    pthread_mutex_unlock(&req->srv->change_lock);
    weir_system_finish(req->srv, &sys, rc);
    if (rc != 0) {
        return weir_problem_err(req, &err);
    }
    weir_deliver_target_remove(req->srv->deliver, id);
    WEIR_LOG(WEIR_LOG_INFO, MODULE, ns, "listener %s deleted", id);
    return weir_respond(req, MHD_HTTP_NO_CONTENT, NULL, NULL, 0);
}

static bool is(const weir_req_t *req, const char *method)
{
    return strcmp(req->method, method) == 0;
}

enum MHD_Result weir_listeners_handle(weir_req_t *req, const char *ns, const char *id)
{
    if (!weir_store_ns_exists(req->srv->store, ns)) {
        return weir_problem(req, MHD_HTTP_NOT_FOUND, "namespace does not exist", NULL, NULL);
    }
    if (id == NULL && is(req, MHD_HTTP_METHOD_POST)) {
        return create(req, ns);
    }
    if (id == NULL) {
        return is(req, MHD_HTTP_METHOD_GET)
                   ? list(req, ns)
                   : weir_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", NULL,
                                  "GET, POST");
    }
    if (is(req, MHD_HTTP_METHOD_GET)) {
        return show(req, ns, id, MHD_HTTP_OK);
    }
    if (is(req, MHD_HTTP_METHOD_DELETE)) {
        return remove_one(req, ns, id);
    }
    return weir_problem(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed here", NULL,
                        "GET, DELETE");
}

/* ---- start and stop -------------------------------------------------------------------- */

static void register_target(void *arg, const weir_listener_t *l)
{
    weir_server_t *srv = arg;
    weir_deliver_spec_t spec;
    weir_err_t err = {0};

    if (weir_deliver_spec_parse(l->doc, &spec, &err) == 0) {
        weir_deliver_target_set(srv->deliver, l->id, l->ns, &spec);
    } else {
        WEIR_LOG(WEIR_LOG_ERROR, MODULE, l->ns, "listener %s has a bad delivery spec (%s: %s)",
                 l->id, err.attr, err.msg);
    }
    weir_deliver_spec_clear(&spec);
}

typedef struct ns_ids {
    const char *ns;
    char **ids;
    size_t n;
} ns_ids_t;

static void collect_id(void *arg, const weir_listener_t *l)
{
    ns_ids_t *c = arg;
    if (strcmp(l->ns, c->ns) == 0) {
        c->ids = weir_realloc(c->ids, (c->n + 1) * sizeof(char *));
        c->ids[c->n++] = weir_strdup(l->id);
    }
}

void weir_listeners_ns_deleted(weir_server_t *srv, const char *ns)
{
    ns_ids_t c = {ns, NULL, 0};

    weir_route_each(srv->route, collect_id, &c);
    weir_route_ns_deleted(srv->route, ns);
    for (size_t i = 0; i < c.n; i++) {
        weir_deliver_target_remove(srv->deliver, c.ids[i]);
        weir_free(c.ids[i]);
    }
    weir_free(c.ids);
}

int weir_listeners_start(weir_server_t *srv)
{
    weir_err_t err = {0};
    weir_deliver_config_t cfg;

    if (weir_route_open(srv->store, &srv->route, &err) != 0) {
        weir_error("serve", "cannot load the listeners: %s", err.msg);
        return -1;
    }
    weir_deliver_config_default(&cfg);
    cfg.match = match_reply;
    cfg.match_release = release_reply;
    cfg.match_arg = srv;
    cfg.system_events = srv->settings->system_events;
    cfg.max_inflight = srv->settings->delivery_inflight;
    cfg.max_per_target = srv->settings->delivery_per_target;
    cfg.max_per_host = srv->settings->delivery_per_host;
    cfg.max_stalled = srv->settings->delivery_stalled_inflight;
    cfg.stall_us = (int64_t)srv->settings->delivery_stall_s * 1000000;
    cfg.max_hops = srv->settings->reply_max_hops;
    cfg.max_reply = srv->settings->max_body; /* a reply enters its namespace like any event */
    if (weir_deliver_start(srv->store, &cfg, &srv->deliver, &err) != 0) {
        weir_error("serve", "cannot start the delivery engine: %s", err.msg);
        return -1;
    }
    weir_route_each(srv->route, register_target, srv);
    return 0;
}

void weir_listeners_stop(weir_server_t *srv, unsigned timeout_s)
{
    weir_deliver_stop(srv->deliver, timeout_s * 1000);
    srv->deliver = NULL;
    weir_route_close(srv->route);
    srv->route = NULL;
}
