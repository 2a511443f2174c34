/*
 * What the ce codec files share (not part of the module's interface): the strict JSON scanner,
 * and the checks that the encodings need beyond weir_ce_validate.
 *
 * The structured-mode decoders need what cJSON does not give: the exact text of a member's value,
 * string contents that may hold U+0000, and a parse that refuses what RFC 8259 refuses (cJSON
 * accepts leading zeros, control characters in strings, a byte-order mark and any byte below
 * 0x21 as white space). So the text is checked here first, then walked here.
 */
#ifndef WEIR_CE_CODEC_H
#define WEIR_CE_CODEC_H

#include <stdbool.h>
#include <stddef.h>

#include "ce/ce.h"
#include "common/common.h"

/*
 * Checks that text[0..len) is valid UTF-8 holding exactly one JSON value, white space around it
 * allowed, nested at most WEIR_CE_JSON_DEPTH_MAX. WEIR_EINVAL with attr "" otherwise.
 */
int weir_ce__json_check(const char *text, size_t len, weir_err_t *err);

/* True when p[0..len) is exactly one JSON value as above, with no white space around it. */
bool weir_ce__json_is_value(const char *p, size_t len);

/* The first byte at or after p that is not JSON white space. */
const char *weir_ce__json_ws(const char *p, const char *end);

/* The end of the value that starts at p, in text that weir_ce__json_check accepted. */
const char *weir_ce__json_skip(const char *p, const char *end);

/*
 * Appends the content of the checked string literal that starts at p (at its opening quote),
 * escapes resolved, to out.
 */
void weir_ce__json_unescape(const char *p, const char *end, weir_buf_t *out);

/*
 * A name the client gave, as a problem's attribute may show it: as it is when it is a short word
 * of ASCII letters, digits, '_', '-' and '.' (such as a misspelt attribute), "" otherwise, since
 * it is client text.
 */
const char *weir_ce__name_shown(const char *name);

/*
 * The part of weir_ce_validate that every event weir ever stored passes: a known specversion and
 * the required attributes, non-empty strings. Decoding a stored event checks only that, since the
 * rest has grown stricter across versions and the event was valid when it came in.
 */
int weir_ce__check_required(const weir_event_t *ev, weir_err_t *err);

/* True when the media type names text that a JSON string can carry (text/...). */
bool weir_ce__is_text_type(const char *media_type);

/*
 * Checks what weir_ce_validate leaves open but the binary encoding cannot carry: a
 * datacontenttype (sent as Content-Type, which cannot be percent-encoded) holding control
 * characters other than tab. Every decoder calls it with validation.
 */
int weir_ce__check_encodable(const weir_event_t *ev, weir_err_t *err);

#endif
