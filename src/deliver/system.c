/*
 * system.c: weir's own events: what happened to a namespace, its filters, its listeners and
 * their deliveries, as CloudEvents that enter the namespace like any other event born inside.
 */
#include <string.h>

#include "deliver/deliver.h"

weir_event_t *weir_system_event(const char *ns, const char *type, const char *subject,
                                const char *data_json)
{
    char id[WEIR_UUID_STR];
    char now[WEIR_TIME_STR_MAX];
    weir_buf_t source = WEIR_BUF_INIT;
    weir_event_t *ev = weir_ce_new();

    weir_uuid(id);
    weir_time_format(weir_wall_us(), now);
    weir_buf_printf(&source, "/weir/namespaces/%s", ns);
    int rc = weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
    rc = rc != 0 ? rc : weir_ce_set(ev, "id", id, WEIR_CE_STRING, NULL);
    rc = rc != 0 ? rc : weir_ce_set(ev, "source", source.data, WEIR_CE_STRING, NULL);
    rc = rc != 0 ? rc : weir_ce_set(ev, "type", type, WEIR_CE_STRING, NULL);
    rc = rc != 0 ? rc : weir_ce_set(ev, "time", now, WEIR_CE_STRING, NULL);
    rc =
        rc != 0 ? rc : weir_ce_set(ev, "datacontenttype", "application/json", WEIR_CE_STRING, NULL);
    if (rc == 0 && subject != NULL) {
        rc = weir_ce_set(ev, "subject", subject, WEIR_CE_STRING, NULL);
    }
    weir_buf_free(&source);
    if (rc != 0) {
        weir_ce_free(ev); /* a name the caller checked cannot get here */
        return NULL;
    }
    weir_ce_set_data(ev, WEIR_CE_DATA_JSON, data_json, strlen(data_json));
    return ev;
}
