/* The error vocabulary: codes and the struct that carries detail to people. */
#include <stdio.h>
#include <string.h>

#include "common/common.h"

const char *weir_strerror(int code)
{
    switch (code) {
    case WEIR_OK:
        return "ok";
    case WEIR_EINVAL:
        return "invalid input";
    case WEIR_ENOMEM:
        return "out of memory";
    case WEIR_ENOTFOUND:
        return "not found";
    case WEIR_EEXIST:
        return "already exists";
    case WEIR_ETOOBIG:
        return "too large";
    case WEIR_EUNSUPPORTED:
        return "unsupported";
    case WEIR_EBUSY:
        return "busy";
    case WEIR_EIO:
        return "storage failure";
    case WEIR_ESCRIPT:
        return "filter failed";
    case WEIR_ETIMEOUT:
        return "timed out";
    case WEIR_ECLOSED:
        return "shutting down";
    case WEIR_EINTERNAL:
        return "internal error";
    default:
        return "unknown error";
    }
}

int weir_err_set(weir_err_t *err, int code, const char *attr, const char *fmt, ...)
{
    if (err == NULL) {
        return code;
    }
    /* Formatted apart first: attr and the arguments may be err's own, as when a message wraps
     * the one it replaces, and snprintf's output must not overlap its input. */
    char a[sizeof(err->attr)];
    char msg[sizeof(err->msg)];
    snprintf(a, sizeof(a), "%s", attr ? attr : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    err->code = code;
    memcpy(err->attr, a, sizeof(a));
    memcpy(err->msg, msg, sizeof(msg));
    return code;
}

void weir_err_clear(weir_err_t *err)
{
    if (err != NULL) {
        memset(err, 0, sizeof(*err));
    }
}
