/*
 * POST .../events/history/replay/{id}: a stored event goes through its namespace again. It is
 * written as a replay item, which the store commits like any write but without a second history
 * row, so that what hooks into the store's write path (deliveries, the outbox) sees it again.
 */
#include <inttypes.h>
#include <string.h>

#include "http/internal.h"

#define OUTBOX_FULL "the outbox is full: the source's sink is not taking events; retry later"

/* The stored event, decoded again from its JSON form. */
static int load(weir_req_t *req, const char *ns, const char *id, weir_store_record_t *rec,
                weir_event_t **ev, weir_err_t *err)
{
    int rc = weir_store_get(req->srv->store, ns, id, weir_req_arg(req, "source"), rec, err);
    if (rc != 0) {
        return rc;
    }
    rc = weir_ce_decode_stored(rec->json, rec->json_len, ev, err);
    if (rc != 0) {
        WEIR_LOG(WEIR_LOG_ERROR, "api", ns, "stored event %" PRId64 " does not decode: %s",
                 rec->seq, err->msg);
        return weir_err_set(err, WEIR_EINTERNAL, NULL, "the stored event cannot be read back");
    }
    return 0;
}

static enum MHD_Result answer(weir_req_t *req, const weir_store_item_t *it)
{
    const char *id = weir_ce_get(it->ev, "id");
    const char *source = weir_ce_get(it->ev, "source");
    weir_buf_t b = WEIR_BUF_INIT;

    weir_buf_puts(&b, "{\"namespace\":");
    weir_buf_json_str(&b, it->ns, strlen(it->ns));
    weir_buf_puts(&b, ",\"id\":");
    weir_buf_json_str(&b, id, strlen(id));
    weir_buf_puts(&b, ",\"source\":");
    weir_buf_json_str(&b, source, strlen(source));
    weir_buf_printf(&b, ",\"seq\":%" PRId64 ",\"replayed\":true}", it->seq);
    return weir_respond_json(req, MHD_HTTP_ACCEPTED, &b);
}

enum MHD_Result weir_history_replay(weir_req_t *req, const char *ns, const char *id)
{
    weir_store_record_t rec;
    weir_event_t *ev = NULL;
    weir_err_t err = {0};

    /* A quick answer while the outbox is full; the writer keeps the bound (see below). */
    if (weir_store_outbox_full(req->srv->store)) {
        return weir_problem(req, MHD_HTTP_SERVICE_UNAVAILABLE, OUTBOX_FULL, NULL, NULL);
    }
    int rc = load(req, ns, id, &rec, &ev, &err);
    if (rc != 0) {
        weir_store_record_clear(&rec);
        return weir_problem_err(req, &err);
    }
    weir_store_item_t item = {
        .ns = ns, .ev = ev, .born_inside = rec.born_inside, .replay = true, .must_go_out = true};
    weir_listeners_match_item(req->srv, &item); /* a replay wakes listeners again */
    rc = weir_store_write_sync(req->srv->store, &item, 1);
    weir_listeners_release_item(&item);
    weir_store_record_clear(&rec);

    enum MHD_Result res;
    if (rc == 0) {
        WEIR_LOG(WEIR_LOG_INFO, "api", ns, "event %" PRId64 " replayed", item.seq);
        res = answer(req, &item);
    } else {
        weir_err_set(&err, rc, rc == WEIR_ENOTFOUND ? "id" : NULL, "%s",
                     rc == WEIR_ENOTFOUND ? "the event is gone (deleted meanwhile)"
                     : rc == WEIR_EBUSY && weir_store_outbox_full(req->srv->store)
                         ? OUTBOX_FULL
                         : "the store cannot take the replay now; retry later");
        res = weir_problem_err(req, &err);
    }
    weir_ce_free(ev);
    return res;
}
