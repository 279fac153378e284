/*
 * common/util — file, randomness and encoding helpers (see util.h).
 */
#include "common/util.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int am_mkdir_p(const char *path, mode_t mode) {
    char tmp[PATH_MAX];
    int n = snprintf(tmp, sizeof tmp, "%s", path);
    if (n <= 0 || n >= (int)sizeof tmp)
        return am_err_set(AM_EINVAL, "mkdir %s: path too long", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return am_err_set(AM_EIO, "mkdir %s: %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return am_err_set(AM_EIO, "mkdir %s: %s", tmp, strerror(errno));
    struct stat st;
    if (stat(tmp, &st) != 0 || !S_ISDIR(st.st_mode))
        return am_err_set(AM_EIO, "mkdir %s: exists and is not a directory", tmp);
    return 0;
}

int am_read_file(const char *path, size_t max, uint8_t **out, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return am_err_set(errno == ENOENT ? AM_ENOTFOUND : AM_EIO, "read %s: %s", path,
                          strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return am_err_set(AM_EIO, "read %s: %s", path, strerror(errno));
    }
    if ((size_t)st.st_size > max) {
        close(fd);
        return am_err_set(AM_EFULL, "read %s: larger than %zu bytes", path, max);
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return am_err_set(AM_ENOMEM, "read %s: out of memory", path);
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return 0;
}

int am_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode) {
    char tmp[PATH_MAX], dir[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp ||
        snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return am_err_set(AM_EINVAL, "write %s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return am_err_set(AM_EIO, "write %s: %s", tmp, strerror(errno));
    const uint8_t *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return am_err_set(AM_EIO, "write %s: %s", tmp, strerror(e));
        }
        off += (size_t)w;
    }
    if (fchmod(fd, mode) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return am_err_set(AM_EIO, "write %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return am_err_set(AM_EIO, "rename %s: %s", path, strerror(e));
    }
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int am_random(void *buf, size_t len) {
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t r = getrandom(p, len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return am_err_set(AM_EIO, "getrandom: %s", strerror(errno));
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

char *am_hex(const uint8_t *in, size_t len, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
    return out;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int am_unhex(const char *hex, uint8_t *out, size_t len) {
    if (strlen(hex) != 2 * len)
        return am_err_set(AM_EINVAL, "hex: expected %zu characters", 2 * len);
    for (size_t i = 0; i < len; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return am_err_set(AM_EINVAL, "hex: invalid character");
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int am_ct_equal(const void *a, const void *b, size_t len) {
    const volatile uint8_t *x = a, *y = b;
    uint8_t d = 0;
    for (size_t i = 0; i < len; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}

void am_wipe(void *p, size_t len) {
    volatile uint8_t *v = p;
    while (len--)
        *v++ = 0;
}

uint64_t am_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t am_mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int am_duration_parse(const char *s, uint64_t *ms) {
    if (!s)
        return am_err_set(AM_EINVAL, "duration: missing");
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return am_err_set(AM_EINVAL, "duration %s: expected a number with s, m, h or d", s);
    uint64_t mul = 1000;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60000, end++;
    else if (*end == 'h')
        mul = 3600000, end++;
    else if (*end == 'd')
        mul = 86400000, end++;
    if (*end || v == 0 || v > UINT64_MAX / mul)
        return am_err_set(AM_EINVAL, "duration %s: expected a positive number with s, m, h or d",
                          s);
    *ms = v * mul;
    return 0;
}
