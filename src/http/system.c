/*
 * weir's own events about the changes made through the API: each enters the namespace it
 * concerns right after the change committed, as an event born inside (see weir_system_event).
 */
#include <string.h>

#include "http/internal.h"

void weir_system_emit(weir_server_t *srv, const char *ns, const char *type, const char *key,
                      const char *value)
{
    bool gone = strcmp(type, WEIR_SYSTEM_NS_DELETED) == 0;
    if (!srv->settings->system_events || (gone && srv->source == NULL)) {
        return; /* it could only have gone out, and nothing goes out */
    }

    weir_buf_t data = WEIR_BUF_INIT;
    weir_buf_puts(&data, "{\"namespace\":");
    weir_buf_json_str(&data, ns, strlen(ns));
    if (key != NULL) {
        weir_buf_printf(&data, ",\"%s\":", key);
        weir_buf_json_str(&data, value, strlen(value));
    }
    weir_buf_putc(&data, '}');
    weir_event_t *ev = weir_system_event(ns, type, value, data.data);
    weir_buf_free(&data);
    if (ev == NULL) {
        return;
    }

    weir_store_item_t item = {.ns = ns, .ev = ev, .born_inside = true, .outbox_only = gone};
    if (!gone) {
        weir_listeners_match_item(srv, &item);
    }
    int rc = weir_store_write_sync(srv->store, &item, 1);
    if (!gone) {
        weir_listeners_release_item(&item);
    }
    if (rc != 0) {
        WEIR_LOG(WEIR_LOG_WARN, "api", ns, "the system event %s was not stored: %s", type,
                 weir_strerror(rc));
    }
    weir_ce_free(ev);
}
