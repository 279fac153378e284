/*
 * common/util — small helpers every module needs: files, randomness, hex, constant-time compare.
 * All functions are thread-safe and report failures through am_err_set().
 */
#ifndef AM_COMMON_UTIL_H
#define AM_COMMON_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* mkdir -p with the given mode for directories it creates. */
int am_mkdir_p(const char *path, mode_t mode);

/* Read a whole file (at most max bytes) into a malloc'd buffer with a trailing NUL (not counted in
 * *len). The caller frees *out. */
int am_read_file(const char *path, size_t max, uint8_t **out, size_t *len);

/* Write a file atomically: temp file in the same directory, fsync, rename, fsync the directory. */
int am_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Fill buf with len bytes from the kernel CSPRNG (getrandom). */
int am_random(void *buf, size_t len);

/* Lower-case hex of len bytes into out (needs 2*len+1 bytes). Returns out. */
char *am_hex(const uint8_t *in, size_t len, char *out);

/* Parse exactly 2*len hex characters into out. */
int am_unhex(const char *hex, uint8_t *out, size_t len);

/* 1 if equal, 0 otherwise, in time independent of where they differ. */
int am_ct_equal(const void *a, const void *b, size_t len);

/* Overwrite memory with zeros in a way the compiler may not remove. */
void am_wipe(void *p, size_t len);

/* A duration: "90s", "15m", "12h", "7d" or plain seconds (positive) → milliseconds.
 * -AM_EINVAL naming the input otherwise. The one duration parser (config, REST, runner flags). */
int am_duration_parse(const char *s, uint64_t *ms);

/* Monotonic and wall clocks. */
uint64_t am_now_ms(void);      /* CLOCK_REALTIME, ms since the epoch */
uint64_t am_mono_ns(void);     /* CLOCK_MONOTONIC, ns */

#endif
