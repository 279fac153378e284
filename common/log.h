/*
 * common/log — structured one-line logs to stderr.
 *
 * Format (logfmt): `ts=2026-11-25T13:40:01.123Z level=info mod=http msg="listening" addr=127.0.0.1:8443`
 * am_log() takes the message and then key/value pairs as one printf-style tail that the caller
 * writes already in `k=v` form; values that may hold spaces must be quoted by the caller with
 * am_log_quote(). Never pass a secret. Thread-safe: each line is one write(2).
 */
#ifndef AM_COMMON_LOG_H
#define AM_COMMON_LOG_H

#include <stddef.h>

typedef enum { AM_LOG_DEBUG = 0, AM_LOG_INFO, AM_LOG_WARN, AM_LOG_ERROR } am_log_level;

/* Lines below this level are dropped (default AM_LOG_INFO). Call before starting threads. */
void am_log_set_level(am_log_level level);
/* Parse "debug|info|warn|error"; returns 0 or -AM_EINVAL. */
int am_log_parse_level(const char *s, am_log_level *out);

/* mod: short module name; msg: fixed text (quoted automatically); fields: "k=v k2=v2" or NULL. */
void am_log(am_log_level level, const char *mod, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write s into buf as a logfmt value: bare when safe, else double-quoted with \" \\ \n escaped.
 * Always NUL-terminates; returns buf. */
const char *am_log_quote(char *buf, size_t cap, const char *s);

#define am_log_info(mod, msg, ...) am_log(AM_LOG_INFO, mod, msg, __VA_ARGS__)
#define am_log_warn(mod, msg, ...) am_log(AM_LOG_WARN, mod, msg, __VA_ARGS__)
#define am_log_error(mod, msg, ...) am_log(AM_LOG_ERROR, mod, msg, __VA_ARGS__)
#define am_log_debug(mod, msg, ...) am_log(AM_LOG_DEBUG, mod, msg, __VA_ARGS__)

#endif
