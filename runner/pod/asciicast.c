/*
 * runner/pod/asciicast.c — asciicast v2 through zstd (see asciicast.h).
 *
 * Each event is made valid UTF-8 first (utf8_clean), then handed to jansson as a string of
 * known length, so escaping (quotes, backslashes, control characters) is jansson's, not ours.
 */
#include "runner/pod/asciicast.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "common/err.h"
#include "common/util.h"

struct am_cast {
    FILE *f;
    ZSTD_CStream *zs;
    uint64_t start_ns;
    uint8_t carry[4]; /* the start of a UTF-8 sequence the last call ended in */
    size_t carry_len;
    int failed;
    uint64_t written; /* compressed bytes in the file */
    int full;         /* reached g_max: nothing more is recorded */
};

/* Largest recording on the runner's disk (compressed). The output is the agent's: without a
 * bound, `cat /dev/urandom | base64` fills the runner's disk through DATA/recordings. The
 * default is what the appliance accepts (a larger upload is refused there). */
static uint64_t g_max = AM_CAST_MAX_DEFAULT;

void am_cast_set_max(uint64_t bytes) {
    g_max = bytes;
}

static void put(am_cast *c, const char *s, size_t len) {
    ZSTD_inBuffer in = {s, len, 0};
    uint8_t out[16384];
    while (!c->failed && in.pos < in.size) {
        ZSTD_outBuffer ob = {out, sizeof out, 0};
        size_t r = ZSTD_compressStream2(c->zs, &ob, &in, ZSTD_e_continue);
        if (ZSTD_isError(r) || fwrite(out, 1, ob.pos, c->f) != ob.pos)
            c->failed = 1;
        c->written += ob.pos;
    }
}

/* One JSON value as a line. An event that, with what zstd may still buffer (a block, 128 KiB),
 * could take the file past g_max is replaced by a last event saying the recording stops here
 * (the pod, its ring and the live terminal are not affected). */
static void put_json(am_cast *c, json_t *v) {
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(v);
    if (!s) {
        c->failed = 1;
        return;
    }
    size_t len = strlen(s);
    if (c->written + len + 1 + (256u << 10) > g_max) {
        free(s);
        char note[160];
        snprintf(note, sizeof note,
                 "\r\n[airmesh: recording stopped at the runner's limit of %llu bytes "
                 "(--recording-max)]\r\n",
                 (unsigned long long)g_max);
        c->full = 1;
        json_t *nv = json_pack("[f,s,s]", (double)(am_mono_ns() - c->start_ns) / 1e9, "o", note);
        s = nv ? json_dumps(nv, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
        json_decref(nv);
        if (!s) {
            c->failed = 1;
            return;
        }
        len = strlen(s);
    }
    put(c, s, len);
    put(c, "\n", 1);
    free(s);
}

int am_cast_open(const char *path, unsigned cols, unsigned rows, uint64_t unix_time,
                 am_cast **out) {
    am_cast *c = calloc(1, sizeof *c);
    if (!c)
        return am_err_set(AM_ENOMEM, "recording: out of memory");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 || !(c->f = fdopen(fd, "wb"))) {
        int rc = am_err_set(AM_EIO, "recording: open %s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        free(c);
        return rc;
    }
    if (!(c->zs = ZSTD_createCStream())) {
        fclose(c->f);
        free(c);
        return am_err_set(AM_ENOMEM, "recording: zstd: out of memory");
    }
    ZSTD_CCtx_setParameter(c->zs, ZSTD_c_compressionLevel, 3);
    c->start_ns = am_mono_ns();
    put_json(c, json_pack("{s:i,s:i,s:i,s:I,s:{s:s}}", "version", 2, "width", (int)cols, "height",
                          (int)rows, "timestamp", (json_int_t)unix_time, "env", "TERM",
                          "xterm-256color"));
    *out = c;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid, -1 if cut short by the end. */
static int utf8_len(const uint8_t *s, size_t avail) {
    int n = s[0] < 0x80             ? 1
            : (s[0] & 0xe0) == 0xc0 ? 2
            : (s[0] & 0xf0) == 0xe0 ? 3
            : (s[0] & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n == 0 || (n == 2 && s[0] < 0xc2))
        return 0;
    for (int i = 1; i < n; i++) {
        if ((size_t)i >= avail)
            return -1;
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    }
    /* Overlong 3/4-byte forms, UTF-16 surrogates and code points above U+10FFFF. */
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] > 0xf4) ||
        (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

void am_cast_output(am_cast *c, const uint8_t *data, size_t len) {
    if (c->failed || c->full)
        return;
    size_t total = c->carry_len + len;
    uint8_t *in = malloc(total ? total : 1);
    uint8_t *clean = malloc(total * 3 + 1); /* one invalid byte → 3 bytes of U+FFFD */
    if (!in || !clean) {
        free(in);
        free(clean);
        c->failed = 1;
        return;
    }
    memcpy(in, c->carry, c->carry_len);
    memcpy(in + c->carry_len, data, len);
    c->carry_len = 0;
    size_t o = 0;
    for (size_t i = 0; i < total;) {
        int n = utf8_len(in + i, total - i);
        if (n < 0) { /* cut by the read boundary: the next call completes it */
            c->carry_len = total - i;
            memcpy(c->carry, in + i, c->carry_len);
            break;
        }
        if (n == 0) {
            memcpy(clean + o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(clean + o, in + i, (size_t)n);
        o += (size_t)n;
        i += (size_t)n;
    }
    if (o > 0) {
        double t = (double)(am_mono_ns() - c->start_ns) / 1e9;
        put_json(c, json_pack("[f,s,s%]", t, "o", (const char *)clean, o));
    }
    free(in);
    free(clean);
}

int am_cast_close(am_cast *c) {
    if (!c)
        return 0;
    ZSTD_inBuffer in = {NULL, 0, 0};
    uint8_t out[16384];
    size_t r;
    do {
        ZSTD_outBuffer ob = {out, sizeof out, 0};
        r = ZSTD_compressStream2(c->zs, &ob, &in, ZSTD_e_end);
        if (ZSTD_isError(r) || fwrite(out, 1, ob.pos, c->f) != ob.pos)
            c->failed = 1;
    } while (!c->failed && r != 0);
    if (fflush(c->f) != 0 || fsync(fileno(c->f)) != 0)
        c->failed = 1;
    if (fclose(c->f) != 0)
        c->failed = 1;
    ZSTD_freeCStream(c->zs);
    int failed = c->failed;
    free(c);
    return failed ? am_err_set(AM_EIO, "recording: write failed; the recording is incomplete") : 0;
}
