/*
 * ce: the CloudEvent model, the HTTP protocol binding (binary, structured and batched modes) and
 * the JSON event format, for spec versions 1.0 (1.0.2) and 0.3.
 *
 * An event is a set of context attributes (each a name, a type and a canonical string value) and
 * optional data. Decoders validate what they build; an event that a decoder returns is valid.
 * Nothing here keeps global state: every function may be called from any thread, on distinct
 * events.
 */
#ifndef WEIR_CE_H
#define WEIR_CE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/common.h"

/* The type of an attribute's value, as CESQL and the JSON format see it. */
typedef enum weir_ce_type {
    WEIR_CE_STRING = 0, /* String, URI, URI-reference, Timestamp, Binary (base64) */
    WEIR_CE_INTEGER,    /* a signed 32-bit integer; value holds its decimal form */
    WEIR_CE_BOOLEAN,    /* value is "true" or "false" */
} weir_ce_type_t;

typedef struct weir_ce_attr {
    char *name;  /* lower-case letters and digits */
    char *value; /* canonical string form: valid UTF-8, NUL-terminated */
    weir_ce_type_t type;
} weir_ce_attr_t;

/* How an event's data is held. */
typedef enum weir_ce_data_kind {
    WEIR_CE_DATA_NONE = 0, /* no data */
    WEIR_CE_DATA_BYTES,    /* opaque bytes, kept exactly as received */
    WEIR_CE_DATA_JSON,     /* a JSON text (a structured-mode "data" value), kept as received */
    WEIR_CE_DATA_TEXT,     /* a string's UTF-8 (a structured-mode "data" string under a type that
                              is not JSON): the JSON format writes it back as a string */
} weir_ce_data_kind_t;

typedef struct weir_event {
    weir_ce_attr_t *attrs; /* sorted by name, unique names */
    size_t nattrs;
    size_t cap;
    weir_ce_data_kind_t data_kind;
    unsigned char *data; /* NUL-terminated for convenience; data_len excludes the NUL */
    size_t data_len;
} weir_event_t;

/* Limits the decoders enforce. */
#define WEIR_CE_NAME_MAX       64   /* longest attribute name accepted */
#define WEIR_CE_VALUE_MAX      65536 /* longest attribute value accepted (bytes): the size of
                                      * event the spec says consumers should accept */
#define WEIR_CE_ATTRS_MAX      64   /* most attributes on one event */
#define WEIR_CE_JSON_DEPTH_MAX 64   /* deepest nesting of JSON arrays and objects */
#define WEIR_CE_BATCH_MAX      1000 /* most events in one batch */

/* ---- the model ------------------------------------------------------------------------- */

weir_event_t *weir_ce_new(void);
void weir_ce_free(weir_event_t *ev);
/* A deep copy. */
weir_event_t *weir_ce_clone(const weir_event_t *ev);

/* True when name is a valid attribute name: 1 to WEIR_CE_NAME_MAX lower-case letters and
 * digits. */
bool weir_ce_name_valid(const char *name);

/* The attribute named name, or NULL. */
const weir_ce_attr_t *weir_ce_attr(const weir_event_t *ev, const char *name);
/* The value of the attribute named name, or NULL. */
const char *weir_ce_get(const weir_event_t *ev, const char *name);

/*
 * Sets (adds or replaces) an attribute, copying name and value. The value must be in the
 * canonical form of its type; WEIR_EINVAL when the name is not lower-case letters and digits,
 * the value is not valid UTF-8 or not a valid value of its type.
 */
int weir_ce_set(weir_event_t *ev, const char *name, const char *value, weir_ce_type_t type,
                weir_err_t *err);
/* Removes an attribute; no error when it is absent. */
void weir_ce_remove(weir_event_t *ev, const char *name);
/* Replaces the data with a copy of data[0..len). kind NONE clears it. */
void weir_ce_set_data(weir_event_t *ev, weir_ce_data_kind_t kind, const void *data, size_t len);

/*
 * Checks an event against the spec version it names: specversion is "1.0" or "0.3"; id, source
 * and type are present and non-empty; source (and 0.3's schemaurl, 1.0's dataschema) is a URI
 * reference; time is RFC 3339; datacontenttype is a media type; attribute names and values are
 * within the limits above. On failure err names the attribute and says why.
 */
int weir_ce_validate(const weir_event_t *ev, weir_err_t *err);

/* True when the media type is JSON by the JSON format's rule: its subtype, parameters aside, is
 * "json" or ends in "+json" (application/json, text/json, application/ld+json...). */
bool weir_ce_is_json_type(const char *media_type);

/* ---- strict JSON ----------------------------------------------------------------------- */

/*
 * Parses a JSON text strictly: valid UTF-8 throughout, nesting at most WEIR_CE_JSON_DEPTH_MAX,
 * exactly one value with nothing but white space around it. The caller frees *out with
 * cJSON_Delete.
 */
int weir_ce_json_parse(const char *text, size_t len, cJSON **out, weir_err_t *err);

/* ---- the HTTP binding ------------------------------------------------------------------ */

typedef enum weir_ce_mode {
    WEIR_CE_MODE_BINARY = 0,
    WEIR_CE_MODE_STRUCTURED,
    WEIR_CE_MODE_BATCH,
} weir_ce_mode_t;

/*
 * Detects the mode from a Content-Type (which may be NULL): application/cloudevents-batch... is
 * batched, application/cloudevents... structured, anything else binary. A structured or batched
 * type whose format is not JSON (application/cloudevents+avro) is WEIR_EUNSUPPORTED.
 */
int weir_ce_detect_mode(const char *content_type, weir_ce_mode_t *mode, weir_err_t *err);

/* One HTTP header as the server received it: the name in any case, the raw value. */
typedef struct weir_ce_header {
    const char *name;
    const char *value;
} weir_ce_header_t;

/*
 * Decodes a binary-mode message: ce-* headers (case-insensitive names) become attributes, their
 * values percent-decoded once (a '%' not followed by two hex digits is kept as it is); a value
 * that is not valid UTF-8 once decoded is WEIR_EINVAL. Content-Type becomes datacontenttype.
 * The body becomes the data, byte for byte (none when empty). The event is validated.
 */
int weir_ce_decode_binary(const weir_ce_header_t *headers, size_t nheaders, const void *body,
                          size_t len, weir_event_t **out, weir_err_t *err);

/*
 * Decodes one event in the JSON format (structured mode). "data" becomes JSON data (its text
 * kept exactly as it stands in the body), except that a string under a datacontenttype that is
 * not JSON becomes bytes (the string's content); "data_base64" (or 0.3's "datacontentencoding":
 * "base64") becomes bytes. Extension values that are JSON numbers must be integers in the
 * 32-bit range and become INTEGER; booleans become BOOLEAN. The event is validated.
 */
int weir_ce_decode_structured(const char *body, size_t len, weir_event_t **out, weir_err_t *err);

/*
 * Decodes an event that weir stored (in the JSON format, as weir_ce_encode_structured wrote it).
 * It checks the JSON and the required attributes but not the rest of what weir_ce_validate
 * checks, which has grown stricter across versions: an event valid when it came in is read back
 * whatever this version would say of it.
 */
int weir_ce_decode_stored(const char *json, size_t len, weir_event_t **out, weir_err_t *err);

/* The same from a parsed JSON object; raw JSON data is re-serialized by cJSON. */
int weir_ce_from_cjson(const cJSON *obj, weir_event_t **out, weir_err_t *err);

/*
 * Decodes a batch: a JSON array of events in the JSON format, at most WEIR_CE_BATCH_MAX. The
 * caller frees each event and the array with weir_ce_free_all. An empty array is valid.
 * On error err->msg names the failing element's index.
 */
int weir_ce_decode_batch(const char *body, size_t len, weir_event_t ***out, size_t *n,
                         weir_err_t *err);

/*
 * Decodes whatever an HTTP request carries, in the mode its Content-Type says. A binary or
 * structured message yields one event.
 */
int weir_ce_decode_http(const weir_ce_header_t *headers, size_t nheaders, const void *body,
                        size_t len, weir_event_t ***out, size_t *n, weir_err_t *err);

void weir_ce_free_all(weir_event_t **evs, size_t n);

/*
 * Encodes an event in the JSON format, appending to out. JSON data is written as "data" with its
 * text unchanged; bytes are written as "data" when datacontenttype is JSON and the bytes are
 * exactly one JSON value (no surrounding white space), as a "data" string when the type is text
 * and the bytes are valid UTF-8, and otherwise as "data_base64". Decoding the result gives back
 * an equal event, data byte for byte.
 */
void weir_ce_encode_structured(const weir_event_t *ev, weir_buf_t *out);

/* The event as a cJSON object (the same shape as weir_ce_encode_structured). */
cJSON *weir_ce_to_cjson(const weir_event_t *ev);

/*
 * The data as a JSON value's text, for a consumer that wants a JSON view of it: JSON data as it
 * is; bytes as they are when they form one JSON value and the type is JSON; otherwise a JSON
 * string of the text, or of the base64 form when the bytes are not valid UTF-8 text (then
 * *is_base64 is set). "null" when there is no data. The caller frees the result.
 */
char *weir_ce_data_json(const weir_event_t *ev, bool *is_base64);

/*
 * Calls cb once per header of the binary-mode encoding: "ce-<name>" for each attribute but
 * datacontenttype, with the value percent-encoded as the binding says (space, '"', '%' and
 * every byte outside printable ASCII), and "Content-Type" for datacontenttype (or
 * application/json for JSON data without one). The body is ev->data.
 */
typedef void (*weir_ce_header_cb)(void *ctx, const char *name, const char *value);
void weir_ce_encode_binary(const weir_event_t *ev, weir_ce_header_cb cb, void *ctx);

/* Percent-decodes once as described for binary mode; the caller frees *out. */
int weir_ce_percent_decode(const char *in, char **out, weir_err_t *err);
/* Percent-encodes a header value as described for weir_ce_encode_binary. */
void weir_ce_percent_encode(const char *in, weir_buf_t *out);

#endif
