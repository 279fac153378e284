/*
 * common/err — error codes and the thread-local "last error" message.
 *
 * Every fallible call in airmesh returns 0 or a negative AM_E* code and, on failure, records a
 * human-readable message with am_err_set(): what failed, on what, and why
 * ("store: open ./var/airmesh/state: Permission denied"). The caller that turns the error into a
 * response or a log line reads it once with am_err_last(). The buffer is per thread, so any thread
 * may call these; the returned pointer is valid until the next am_err_set() on the same thread.
 */
#ifndef AM_COMMON_ERR_H
#define AM_COMMON_ERR_H

enum {
    AM_OK = 0,
    AM_EINVAL = 1,    /* bad input from a caller or a peer */
    AM_ENOMEM = 2,    /* allocation failed */
    AM_EIO = 3,       /* an operating-system or library call failed */
    AM_ENOTFOUND = 4, /* no such entity */
    AM_EEXISTS = 5,   /* it already exists */
    AM_ECORRUPT = 6,  /* stored data failed a check (hash, magic, version) */
    AM_EAUTH = 7,     /* authentication or authorisation refused */
    AM_EFULL = 8,     /* a size limit was reached */
    AM_ECRYPTO = 9,   /* a cryptographic operation failed */
    AM_ESTATE = 10,   /* the operation is not allowed in the current state */
    AM_EPERM = 11,    /* authenticated, but the caller's role does not allow it */
    AM_ELIMIT = 12,   /* a rate limit or lockout: try again later */
    AM_EUNAVAIL = 13, /* a peer the operation needs (a runner) is not reachable */
};

/* Record the last error for this thread (printf-style) and return -code, so a failing path can
 * say `return am_err_set(AM_EIO, "store: open %s: %s", path, strerror(errno));`. */
int am_err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last error message on this thread ("" when none). */
const char *am_err_last(void);

/* A short stable name for a code ("EINVAL"); accepts positive or negative codes. */
const char *am_err_name(int code);

#endif
