/* Validation of a whole event against the spec version it names (1.0.2 or 0.3). */
#include <arpa/inet.h>
#include <string.h>

#include "ce/ce.h"
#include "ce/codec.h"

/* ---- RFC 3986 URIs ----------------------------------------------------------------------- */

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool in_set(char c, const char *set)
{
    return c != '\0' && strchr(set, c) != NULL;
}

/*
 * The length of a run of s[0..n) made of unreserved characters, percent-encodings and the
 * characters of extra: what RFC 3986 builds userinfo, reg-name, segments, queries and fragments
 * of. A '%' not followed by two hex digits ends the run.
 */
static size_t uri_run(const char *s, size_t n, const char *extra)
{
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        if (c == '%' && i + 2 < n && weir_hex_value(s[i + 1]) >= 0 &&
            weir_hex_value(s[i + 2]) >= 0) {
            i += 3;
        } else if (is_alpha(c) || is_digit(c) || in_set(c, "-._~") || in_set(c, extra)) {
            i++;
        } else {
            break;
        }
    }
    return i;
}

#define SUB_DELIMS "!$&'()*+,;="
#define PCHAR      SUB_DELIMS ":@"

/* IPvFuture: "v", hex digits, ".", then unreserved characters, sub-delims and ':'. */
static bool ipv_future(const char *s, size_t n)
{
    size_t i = 1;
    while (i < n && weir_hex_value(s[i]) >= 0) {
        i++;
    }
    if (i == 1 || i >= n || s[i] != '.') {
        return false;
    }
    size_t start = ++i;
    while (i < n && (is_alpha(s[i]) || is_digit(s[i]) || in_set(s[i], "-._~" SUB_DELIMS ":"))) {
        i++;
    }
    return i == n && i > start;
}

/* host [ ":" port ] of an authority: an IP-literal in brackets, or a reg-name (IPv4 included). */
static bool uri_host_port(const char *s, size_t n)
{
    size_t i;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL) {
            return false;
        }
        size_t len = (size_t)(close - s) - 1;
        char literal[64];
        if (len == 0 || len >= sizeof(literal)) {
            return false;
        }
        memcpy(literal, s + 1, len);
        literal[len] = '\0';
        struct in6_addr addr;
        bool future = literal[0] == 'v' || literal[0] == 'V';
        if (future ? !ipv_future(literal, len) : inet_pton(AF_INET6, literal, &addr) != 1) {
            return false;
        }
        i = len + 2;
    } else {
        i = uri_run(s, n, SUB_DELIMS);
    }
    if (i < n && s[i] == ':') {
        for (i++; i < n && is_digit(s[i]); i++) {
        }
    }
    return i == n;
}

/* "//" authority, without the "//": [ userinfo "@" ] host [ ":" port ]. */
static bool uri_authority(const char *s, size_t n)
{
    const char *at = memchr(s, '@', n);
    if (at != NULL) {
        size_t user = (size_t)(at - s);
        if (uri_run(s, user, SUB_DELIMS ":") != user) {
            return false;
        }
        s = at + 1;
        n -= user + 1;
    }
    return uri_host_port(s, n);
}

/*
 * Whether s is an RFC 3986 URI reference (section 4.1); with absolute, an absolute URI (section
 * 4.3: a scheme, and no fragment).
 */
static bool uri_valid(const char *s, bool absolute)
{
    size_t n = strlen(s);
    const char *hash = memchr(s, '#', n);
    if (hash != NULL) {
        size_t frag = n - (size_t)(hash - s) - 1;
        if (absolute || uri_run(hash + 1, frag, PCHAR "/?") != frag) {
            return false;
        }
        n = (size_t)(hash - s);
    }
    const char *question = memchr(s, '?', n);
    if (question != NULL) {
        size_t query = n - (size_t)(question - s) - 1;
        if (uri_run(question + 1, query, PCHAR "/?") != query) {
            return false;
        }
        n = (size_t)(question - s);
    }
    /* A scheme: a letter, then letters, digits, '+', '-' and '.', then ':'. */
    size_t i = 0;
    if (n > 0 && is_alpha(s[0])) {
        for (i = 1; i < n && (is_alpha(s[i]) || is_digit(s[i]) || in_set(s[i], "+-.")); i++) {
        }
    }
    bool scheme = i > 0 && i < n && s[i] == ':';
    if (absolute && !scheme) {
        return false;
    }
    const char *rest = scheme ? s + i + 1 : s;
    size_t len = scheme ? n - i - 1 : n;
    if (len >= 2 && rest[0] == '/' && rest[1] == '/') {
        const char *slash = memchr(rest + 2, '/', len - 2);
        size_t auth = slash != NULL ? (size_t)(slash - rest) - 2 : len - 2;
        if (!uri_authority(rest + 2, auth)) {
            return false;
        }
        rest += auth + 2;
        len -= auth + 2;
    } else if (!scheme) {
        /* A relative path's first segment has no ':', which would read as a scheme's end. */
        size_t first = uri_run(rest, len, SUB_DELIMS "@");
        if (first < len && rest[first] == ':') {
            return false;
        }
    }
    return uri_run(rest, len, PCHAR "/") == len;
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

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return s;
}

/* The length of the RFC 7230 quoted-string that starts s, or 0 when it does not start one. */
static size_t quoted_len(const char *s)
{
    if (*s != '"') {
        return 0;
    }
    for (size_t i = 1; s[i] != '\0'; i++) {
        if (s[i] == '"') {
            return i + 1;
        }
        if (s[i] == '\\' && s[++i] == '\0') {
            return 0;
        }
    }
    return 0;
}

/* RFC 7231's media-type: type "/" subtype *( OWS ";" OWS token "=" ( token / quoted-string ) ). */
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
    for (s += n; *s != '\0';) {
        s = skip_ows(s);
        if (*s != ';') {
            return false; /* white space only before a ';': a header's own is not part of it */
        }
        s = skip_ows(s + 1);
        n = token_len(s);
        if (n == 0 || s[n] != '=') {
            return false;
        }
        s += n + 1;
        n = *s == '"' ? quoted_len(s) : token_len(s);
        if (n == 0) {
            return false;
        }
        s += n;
    }
    return true;
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
        (check_string(a, err) || !uri_valid(v, !v03))) {
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

int weir_ce__check_required(const weir_event_t *ev, weir_err_t *err)
{
    int rc = check_required(ev, "specversion", err);
    if (rc != 0) {
        return rc;
    }
    const char *version = weir_ce_get(ev, "specversion");
    if (strcmp(version, "0.3") != 0 && strcmp(version, "1.0") != 0) {
        return weir_err_set(err, WEIR_EINVAL, "specversion", "must be \"1.0\" or \"0.3\"");
    }
    static const char *required[] = {"id", "source", "type"};
    for (size_t i = 0; i < 3; i++) {
        if ((rc = check_required(ev, required[i], err)) != 0) {
            return rc;
        }
    }
    return 0;
}

int weir_ce_validate(const weir_event_t *ev, weir_err_t *err)
{
    int rc = weir_ce__check_required(ev, err);
    if (rc != 0) {
        return rc;
    }
    bool v03 = strcmp(weir_ce_get(ev, "specversion"), "0.3") == 0;
    if (!uri_valid(weir_ce_get(ev, "source"), false)) {
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
