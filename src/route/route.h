/*
 * route: listeners: their model and validation, the matching of an event against them
 * (context globs and Knative's filter dialects), and the set of listeners of every namespace,
 * kept in memory and in the store.
 *
 * A listener waits in a namespace for events of one type (`simple`), of any of several types
 * (`xor`), or of each of several types (`and`: every type seen within a lifespan, optionally
 * correlated on context attributes, fired once all are present). Matching runs on the request's
 * thread before the event is committed; what it yields (weir_store_match_t) is written in the
 * same transaction as the event, where the store turns it into deliveries and `and` state.
 *
 * The `sink` and `delivery` members of a listener are the deliver module's to validate; this
 * module keeps them in the spec untouched.
 */
#ifndef WEIR_ROUTE_H
#define WEIR_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "ce/ce.h"
#include "common/common.h"
#include "store/store.h"

#define WEIR_ROUTE_TYPES_MAX     32 /* event types of one listener */
#define WEIR_ROUTE_CONTEXT_MAX   32 /* context globs of one event type */
#define WEIR_ROUTE_FILTERS_MAX   32 /* filters (at any one level) of one event type */
#define WEIR_ROUTE_FILTER_DEPTH  8  /* deepest nesting of all/any/not */
#define WEIR_ROUTE_CORRELATE_MAX 8  /* correlated attributes of an `and` listener */

typedef enum weir_route_mode {
    WEIR_ROUTE_SIMPLE = 0,
    WEIR_ROUTE_XOR,
    WEIR_ROUTE_AND,
} weir_route_mode_t;

/* One filter expression in one of Knative's dialects (opaque). */
typedef struct weir_route_filter weir_route_filter_t;

/* An attribute that must exist and match a glob ('*' is any run of characters). */
typedef struct weir_route_glob {
    char *attr;
    char *pattern;
} weir_route_glob_t;

/* One event type a listener waits for, with what else the event must satisfy. */
typedef struct weir_route_type {
    char *type;
    weir_route_glob_t *context;
    size_t ncontext;
    weir_route_filter_t **filters; /* all must match */
    size_t nfilters;
} weir_route_type_t;

typedef struct weir_listener {
    char *id;           /* set by weir_route_add, or when loaded */
    char *ns;           /* likewise */
    int64_t created_us; /* likewise */
    weir_route_mode_t mode;
    weir_route_type_t *types;
    size_t ntypes;
    char **correlate; /* `and`: attributes whose values events of one set share */
    size_t ncorrelate;
    int64_t lifespan_us; /* `and`: how long a collected event counts */
    cJSON *doc;          /* the spec as parsed (sink and delivery included) */
} weir_listener_t;

/* ---- listeners ------------------------------------------------------------------------- */

/*
 * Parses and validates a listener spec (a JSON object): mode, events (type, context, filters),
 * correlate and lifespan; sink and delivery are accepted unread; any other member is refused.
 * On success *out is the caller's (free with weir_route_listener_free). Errors: WEIR_EINVAL
 * with err->attr naming the field ("events[1].filters[0].cesql") and err->msg saying why.
 * Thread-safe.
 */
int weir_route_listener_parse(const char *json, size_t len, weir_listener_t **out, weir_err_t *err);
void weir_route_listener_free(weir_listener_t *l);

/* True when ev is of t's type, its context globs match and every filter matches. */
bool weir_route_type_match(const weir_route_type_t *t, const weir_event_t *ev);

/*
 * The correlation key of ev for an `and` listener: a JSON array of the values of the
 * correlated attributes ("[]" when none are named). NULL when ev lacks one of them (then it
 * cannot join a set). The caller frees the key.
 */
char *weir_route_correlation_key(const weir_listener_t *l, const weir_event_t *ev);

/* ---- filter dialects ------------------------------------------------------------------- */

/*
 * Parses one filter expression, accepting what Knative's webhook accepts: an object that sets
 * at most one of exact, prefix, suffix (an object of one attribute to a string: the attribute
 * must exist and its value be equal to, start with or end with the string), all, any (arrays of
 * at most WEIR_ROUTE_FILTERS_MAX filters), not (a filter) or cesql (an expression that must
 * yield true). A member that is empty ({}, [], "") or null sets nothing. A filter that sets
 * nothing, or whose value is "", has no say, as in Knative's broker: it is left out of the all
 * or any that holds it, and a not of it has no say either. path names the filter in errors.
 * Thread-safe.
 */
int weir_route_filter_parse(const cJSON *f, const char *path, int depth, weir_route_filter_t **out,
                            weir_err_t *err);
/* False only when the filter fails for ev (a filter with no say passes). */
bool weir_route_filter_match(const weir_route_filter_t *f, const weir_event_t *ev);
void weir_route_filter_free(weir_route_filter_t *f);

/* ---- the listeners of every namespace -------------------------------------------------- */

typedef struct weir_route weir_route_t;

/* Loads every listener from the store. The route keeps store (which must outlive it). */
int weir_route_open(weir_store_t *store, weir_route_t **out, weir_err_t *err);
void weir_route_close(weir_route_t *r);

/*
 * Gives l (parsed by weir_route_listener_parse) an id, unless the caller set l->id already, and a
 * creation time, stores it in ns with the follow-up then (NULL for none: see
 * weir_store_listener_put_then) and starts matching it. Takes l in every case. On success *id
 * is a copy of the id, for the caller to free. Errors: WEIR_ENOTFOUND (no such namespace),
 * WEIR_EEXIST (the caller's id is taken), WEIR_EBUSY, WEIR_EIO. Any thread.
 */
int weir_route_add(weir_route_t *r, const char *ns, weir_listener_t *l, weir_store_write_t *then,
                   char **id, weir_err_t *err);

/* Deletes a listener of ns with its state and pending deliveries, with the follow-up then (NULL
 * for none: see weir_store_listener_delete_then); WEIR_ENOTFOUND. */
int weir_route_remove(weir_route_t *r, const char *ns, const char *id, weir_store_write_t *then,
                      weir_err_t *err);

/* Forgets the listeners of a namespace that was deleted (the store removed their rows). */
void weir_route_ns_deleted(weir_route_t *r, const char *ns);

/* Calls cb for every listener (under the route's read lock: cb must not call the route). */
void weir_route_each(weir_route_t *r, void (*cb)(void *arg, const weir_listener_t *l), void *arg);

/* The lifespan of an `and` listener (0 for others, or when there is no such listener). */
int64_t weir_route_lifespan(weir_route_t *r, const char *id);

/* What the listeners of a namespace make of one event: weir_store_item_t.matches. */
typedef struct weir_route_matches {
    weir_store_match_t *items; /* the strings they point to are owned here */
    size_t n;
} weir_route_matches_t;

/*
 * Matches ev against the listeners of ns, filling m (which the caller zeroes first and releases
 * with weir_route_matches_free). A `simple` or `xor` listener yields one DELIVER; an `and`
 * listener a COLLECT for the type ev fills. Any thread; runs under a read lock.
 */
void weir_route_match(weir_route_t *r, const char *ns, const weir_event_t *ev,
                      weir_route_matches_t *m);
void weir_route_matches_free(weir_route_matches_t *m);

#endif
