/*
 * weir's own events about the changes made through the API. Each is the follow-up of the change
 * it reports (store.h): the store writer applies it right after the change, in the same
 * transaction, only when the change succeeded. So after any crash the change and its event
 * (with its outbox row and the deliveries of the listeners it wakes) are both stored, or neither
 * is; and a change the store cannot take (a full queue, failing storage) is refused whole, with
 * no event to keep trying.
 *
 * The event is built, encoded and matched against the namespace's listeners before the change,
 * on the request's thread, so its type must be known then: the callers decide between created
 * and updated under the server's change lock (see api.c and filters.c), which makes the look
 * exact. A listener is thus matched as the namespace's listeners stood before the change: a new
 * one is not woken by its own creation, and a deleted one's match of its own deletion is ignored
 * by the store, the listener being gone when the event is written.
 */
#include <string.h>

#include "http/internal.h"

weir_store_write_t *weir_system_prepare(weir_server_t *srv, weir_system_t *sys, const char *ns,
                                        const char *type, const char *key, const char *value)
{
    memset(sys, 0, sizeof(*sys));
    if (type == NULL || !srv->settings->system_events) {
        return NULL;
    }
    bool gone = strcmp(type, WEIR_SYSTEM_NS_DELETED) == 0;
    if (gone && srv->source == NULL) {
        return NULL; /* it could only have gone out, and nothing goes out */
    }

    weir_buf_t data = WEIR_BUF_INIT;
    weir_buf_puts(&data, "{\"namespace\":");
    weir_buf_json_str(&data, ns, strlen(ns));
    if (key != NULL) {
        weir_buf_printf(&data, ",\"%s\":", key);
        weir_buf_json_str(&data, value, strlen(value));
    }
    weir_buf_putc(&data, '}');
    sys->ev = weir_system_event(ns, type, value, data.data);
    weir_buf_free(&data);
    if (sys->ev == NULL) {
        return NULL;
    }

    sys->type = type;
    sys->item =
        (weir_store_item_t){.ns = ns, .ev = sys->ev, .born_inside = true, .outbox_only = gone};
    if (!gone) {
        weir_listeners_match_item(srv, &sys->item);
    }
    sys->write = (weir_store_write_t){.items = &sys->item, .nitems = 1};
    return &sys->write;
}

void weir_system_finish(weir_server_t *srv, weir_system_t *sys, int rc)
{
    if (sys->ev == NULL) {
        return;
    }
    int status = sys->write.status;
    if (rc == 0 && status != 0) {
        WEIR_LOG(status == WEIR_ENOTFOUND ? WEIR_LOG_INFO : WEIR_LOG_ERROR, "api", sys->item.ns,
                 "the system event %s was not stored: %s", sys->type,
                 status == WEIR_ENOTFOUND ? "its namespace is gone" : weir_strerror(status));
    }
    weir_listeners_release_item(&sys->item);
    weir_ce_free(sys->ev);
    sys->ev = NULL;
}
