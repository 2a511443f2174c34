/* Validation of a whole event against the spec version it names (1.0.2 or 0.3). */
#include <string.h>

#include "ce/ce.h"

/* True when s uses only the characters RFC 3986 allows in a URI reference, escapes well formed. */
static bool uri_ref_chars(const char *s)
{
    static const char allowed[] = "-._~:/?#[]@!$&'()*+,;=";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '%') {
            if (weir_hex_value(s[1]) < 0 || weir_hex_value(s[2]) < 0) {
                return false;
            }
            s += 2;
        } else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     (c != 0 && strchr(allowed, c)))) {
            return false;
        }
    }
    return true;
}

/* True when s starts with a URI scheme: a letter, then letters, digits, '+', '-', '.', and ':'. */
static bool has_scheme(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z'))) {
        return false;
    }
    for (s++; *s && *s != ':'; s++) {
        if (!strchr("+-.", *s) &&
            !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))) {
            return false;
        }
    }
    return *s == ':';
}

/* RFC 7230 token characters, which RFC 2046 types and subtypes are made of. */
static size_t token_len(const char *s)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    size_t n = 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || (s[n] != 0 && strchr(extra, s[n]))) {
        n++;
    }
    return n;
}

static bool media_type_valid(const char *s)
{
    size_t n = token_len(s);
    if (n == 0 || s[n] != '/') {
        return false;
    }
    s += n + 1;
    n = token_len(s);
    if (n == 0) {
        return false;
    }
    s += n;
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return *s == '\0' || *s == ';';
}

static int check_required(const weir_event_t *ev, const char *name, weir_err_t *err)
{
    const weir_ce_attr_t *a = weir_ce_attr(ev, name);
    if (a == NULL) {
        return weir_err_set(err, WEIR_EINVAL, name, "required attribute is missing");
    }
    if (a->type != WEIR_CE_STRING) {
        return weir_err_set(err, WEIR_EINVAL, name, "must be a string");
    }
    if (a->value[0] == '\0') {
        return weir_err_set(err, WEIR_EINVAL, name, "must not be empty");
    }
    return 0;
}

static int check_string(const weir_ce_attr_t *a, weir_err_t *err)
{
    if (a->type != WEIR_CE_STRING) {
        return weir_err_set(err, WEIR_EINVAL, a->name, "must be a string");
    }
    return 0;
}

/*
 * Whether v (valid UTF-8) holds a character the spec's String type excludes: the control
 * characters U+0000-U+001F and U+007F-U+009F, and Unicode's noncharacters (U+FDD0-U+FDEF, and
 * the last two code points of every plane). UTF-8 validation has already refused surrogates.
 */
static bool has_disallowed(const char *v)
{
    const unsigned char *p = (const unsigned char *)v;
    while (*p) {
        uint32_t cp;
        size_t n;
        if (p[0] < 0x80) {
            cp = p[0], n = 1;
        } else if (p[0] < 0xE0) {
            cp = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F), n = 2;
        } else if (p[0] < 0xF0) {
            cp = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F),
            n = 3;
        } else {
            cp = (uint32_t)(p[0] & 0x07) << 18 | (uint32_t)(p[1] & 0x3F) << 12 |
                 (uint32_t)(p[2] & 0x3F) << 6 | (p[3] & 0x3F),
            n = 4;
        }
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F) || (cp >= 0xFDD0 && cp <= 0xFDEF) ||
            (cp & 0xFFFE) == 0xFFFE) {
            return true;
        }
        p += n;
    }
    return false;
}

/* The checks for the optional attributes whose form the spec fixes. */
static int check_known(const weir_ce_attr_t *a, bool v03, weir_err_t *err)
{
    const char *n = a->name, *v = a->value;
    int64_t us;

    if (strcmp(n, "time") == 0 && (check_string(a, err) || weir_time_parse(v, &us) != 0)) {
        return weir_err_set(err, WEIR_EINVAL, n, "must be an RFC 3339 timestamp");
    }
    if (strcmp(n, "datacontenttype") == 0 && (check_string(a, err) || !media_type_valid(v))) {
        return weir_err_set(err, WEIR_EINVAL, n, "must be a media type (RFC 2046)");
    }
    if (strcmp(n, "subject") == 0 && (check_string(a, err) || v[0] == '\0')) {
        return weir_err_set(err, WEIR_EINVAL, n, "must be a non-empty string");
    }
    if (strcmp(n, v03 ? "schemaurl" : "dataschema") == 0 &&
        (check_string(a, err) || !uri_ref_chars(v) || (!v03 && !has_scheme(v)))) {
        return weir_err_set(err, WEIR_EINVAL, n,
                            v03 ? "must be a URI reference" : "must be an absolute URI");
    }
    if (v03 && strcmp(n, "datacontentencoding") == 0 && weir_strcasecmp(v, "base64") != 0) {
        return weir_err_set(err, WEIR_EINVAL, n, "must be \"base64\"");
    }
    if (strcmp(n, "data") == 0) {
        return weir_err_set(err, WEIR_EINVAL, n, "is reserved and cannot be an attribute");
    }
    return 0;
}

int weir_ce_validate(const weir_event_t *ev, weir_err_t *err)
{
    int rc = check_required(ev, "specversion", err);
    if (rc != 0) {
        return rc;
    }
    const char *version = weir_ce_get(ev, "specversion");
    bool v03 = strcmp(version, "0.3") == 0;
    if (!v03 && strcmp(version, "1.0") != 0) {
        return weir_err_set(err, WEIR_EINVAL, "specversion", "must be \"1.0\" or \"0.3\"");
    }
    static const char *required[] = {"id", "source", "type"};
    for (size_t i = 0; i < 3; i++) {
        if ((rc = check_required(ev, required[i], err)) != 0) {
            return rc;
        }
    }
    if (!uri_ref_chars(weir_ce_get(ev, "source"))) {
        return weir_err_set(err, WEIR_EINVAL, "source", "must be a URI reference (RFC 3986)");
    }
    if (ev->nattrs > WEIR_CE_ATTRS_MAX) {
        return weir_err_set(err, WEIR_EINVAL, "", "more than %d attributes", WEIR_CE_ATTRS_MAX);
    }
    for (size_t i = 0; i < ev->nattrs; i++) {
        if (has_disallowed(ev->attrs[i].value)) {
            return weir_err_set(err, WEIR_EINVAL, ev->attrs[i].name,
                                "must not contain control characters or Unicode noncharacters");
        }
        if ((rc = check_known(&ev->attrs[i], v03, err)) != 0) {
            return rc;
        }
    }
    return 0;
}
