/*
 * common/err — the per-thread last-error buffer behind am_err_set()/am_err_last().
 * No allocation: a fixed thread-local buffer, truncated messages end in "...".
 */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_msg[512];

int am_err_set(int code, const char *fmt, ...) {
    /* Format into a copy first: callers often pass am_err_last() itself as an argument
     * ("...: %s", am_err_last()), and vsnprintf into its own source is undefined (it garbled
     * the message). */
    char buf[sizeof last_msg];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof buf)
        memcpy(buf + sizeof buf - 4, "...", 4);
    memcpy(last_msg, buf, sizeof buf);
    if (code < 0)
        code = -code;
    return -code;
}

const char *am_err_last(void) {
    return last_msg;
}

const char *am_err_name(int code) {
    if (code < 0)
        code = -code;
    switch (code) {
    case AM_OK:
        return "OK";
    case AM_EINVAL:
        return "EINVAL";
    case AM_ENOMEM:
        return "ENOMEM";
    case AM_EIO:
        return "EIO";
    case AM_ENOTFOUND:
        return "ENOTFOUND";
    case AM_EEXISTS:
        return "EEXISTS";
    case AM_ECORRUPT:
        return "ECORRUPT";
    case AM_EAUTH:
        return "EAUTH";
    case AM_EFULL:
        return "EFULL";
    case AM_ECRYPTO:
        return "ECRYPTO";
    case AM_ESTATE:
        return "ESTATE";
    case AM_EPERM:
        return "EPERM";
    case AM_ELIMIT:
        return "ELIMIT";
    case AM_EUNAVAIL:
        return "EUNAVAIL";
    default:
        return "EUNKNOWN";
    }
}
