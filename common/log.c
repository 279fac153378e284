/*
 * common/log — logfmt lines to stderr, one write(2) per line so threads never interleave.
 */
#include "common/log.h"
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static am_log_level min_level = AM_LOG_INFO;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void am_log_set_level(am_log_level level) {
    min_level = level;
}

int am_log_parse_level(const char *s, am_log_level *out) {
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (am_log_level)i;
            return 0;
        }
    }
    return am_err_set(AM_EINVAL, "log level %s: expected debug, info, warn or error", s);
}

const char *am_log_quote(char *buf, size_t cap, const char *s) {
    if (cap == 0)
        return buf;
    int bare = *s != '\0';
    for (const char *p = s; *p; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || (unsigned char)*p >= 0x7f)
            bare = 0;
    size_t o = 0;
    if (!bare && o + 1 < cap)
        buf[o++] = '"';
    for (const char *p = s; *p && o + 3 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)c;
        } else if (c == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (c < ' ' || c == 0x7f) {
            buf[o++] = '?';
        } else {
            buf[o++] = (char)c;
        }
    }
    if (!bare && o + 1 < cap)
        buf[o++] = '"';
    buf[o < cap ? o : cap - 1] = '\0';
    return buf;
}

void am_log(am_log_level level, const char *mod, const char *msg, const char *fields_fmt, ...) {
    if (level < min_level)
        return;
    char line[2048], qmsg[600];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s mod=%s msg=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], mod,
                     am_log_quote(qmsg, sizeof qmsg, msg));
    if (n < 0 || n >= (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    if (fields_fmt && *fields_fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fields_fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fields_fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m < (int)(sizeof line - (size_t)n - 1) ? m : (int)(sizeof line - (size_t)n - 2);
    }
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}
