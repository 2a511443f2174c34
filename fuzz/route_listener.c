/*
 * Fuzzes the parser of listener specs (the JSON body of POST .../listeners: event types, context
 * globs, Knative filters with CESQL, correlation, lifespan and delivery), then matches what it
 * accepts against fixed events. Aborts when a correlation key is not a JSON array of valid
 * UTF-8.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "route/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static weir_event_t *event(const char *type, const char *subject)
{
    weir_event_t *ev = weir_ce_new();
    weir_ce_set(ev, "specversion", "1.0", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "id", "fuzz-1", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "source", "/shop/eu", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "type", type, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "subject", subject, WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "currency", "EUR", WEIR_CE_STRING, NULL);
    weir_ce_set(ev, "amount", "42", WEIR_CE_INTEGER, NULL);
    return ev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static weir_event_t *events[2];
    if (events[0] == NULL) {
        events[0] = event("order.created", "order \"7\" caf\xc3\xa9");
        events[1] = event("payment.received", "7");
    }
    weir_listener_t *l = NULL;
    weir_err_t err;
    if (weir_route_listener_parse((const char *)data, size, &l, &err) != 0) {
        return 0;
    }
    for (size_t e = 0; e < 2; e++) {
        for (size_t t = 0; t < l->ntypes; t++) {
            weir_route_type_match(&l->types[t], events[e]);
        }
        char *key = weir_route_correlation_key(l, events[e]);
        if (key != NULL && (key[0] != '[' || !weir_utf8_valid(key, strlen(key)))) {
            abort();
        }
        weir_free(key);
    }
    weir_route_listener_free(l);
    return 0;
}
