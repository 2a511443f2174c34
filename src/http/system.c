/*
 * weir's own events about the changes made through the API: each enters the namespace it
 * concerns right after the change committed, as an event born inside (see weir_system_event).
 *
 * The change and its event are two transactions. The event reports something that already
 * happened, so it is not dropped when the store is busy (a full queue) or failing: it is tried
 * again, with a growing wait, until it is stored. Its id is fixed before the first try, so a
 * try that failed after its commit (a failed fsync) makes the next one a duplicate, stored
 * once. What remains is a crash between the two commits, and a stop while storage keeps
 * failing: both are logged.
 */
#include <string.h>
#include <time.h>

#include "http/internal.h"

#define RETRY_FIRST_MS 10
#define RETRY_MAX_MS   1000
#define RETRY_STOP_MS  2000 /* once weir stops, the time left to store it */

static void pause_ms(unsigned ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* Stores the event, trying again while the store is busy or failing; returns the last status. */
static int store_event(weir_server_t *srv, weir_store_item_t *item, const char *type)
{
    unsigned wait_ms = RETRY_FIRST_MS;
    uint64_t give_up_ns = UINT64_MAX;
    for (;;) {
        int rc = weir_store_write_sync(srv->store, item, 1);
        if ((rc != WEIR_EBUSY && rc != WEIR_EIO) || weir_mono_ns() >= give_up_ns) {
            return rc;
        }
        if (give_up_ns == UINT64_MAX && atomic_load(&srv->stopping)) {
            give_up_ns = weir_mono_ns() + RETRY_STOP_MS * 1000000ULL;
        }
        if (wait_ms == RETRY_FIRST_MS) {
            WEIR_LOG(WEIR_LOG_WARN, "api", item->ns, "the system event %s waits (%s): trying again",
                     type, weir_strerror(rc));
        }
        pause_ms(wait_ms);
        wait_ms = wait_ms * 2 < RETRY_MAX_MS ? wait_ms * 2 : RETRY_MAX_MS;
    }
}

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
    int rc = store_event(srv, &item, type);
    if (!gone) {
        weir_listeners_release_item(&item);
    }
    if (rc != 0) {
        WEIR_LOG(rc == WEIR_ENOTFOUND ? WEIR_LOG_INFO : WEIR_LOG_ERROR, "api", ns,
                 "the system event %s was not stored: %s", type,
                 rc == WEIR_ENOTFOUND ? "its namespace is gone" : weir_strerror(rc));
    }
    weir_ce_free(ev);
}
