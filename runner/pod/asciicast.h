/*
 * runner/pod/asciicast — an asciicast v2 recording written through a zstd stream.
 *
 * What it owns: the open file and the zstd stream of one recording, and the bytes of a UTF-8
 * sequence cut by a read boundary (carried into the next event). Every line is built by
 * jansson: the header object, then one `[t, "o", "<text>"]` event per am_cast_output call, with
 * t in seconds since am_cast_open. Terminal output is bytes, JSON strings are UTF-8: invalid
 * sequences become U+FFFD, a sequence cut at the end of one call is completed by the next.
 *
 * Threads: one am_cast per thread at a time (the pod thread); the size limit is process-wide,
 * set once at startup.
 * Errors: am_cast_open returns -AM_E* (file or zstd); a write error later makes the recording
 * stop growing (am_cast_close then returns -AM_EIO), never the pod.
 * Size: a recording stops at am_cast_set_max (compressed bytes, process-wide) with a last
 * event saying so; later output is not recorded.
 */
#ifndef AM_RUNNER_POD_ASCIICAST_H
#define AM_RUNNER_POD_ASCIICAST_H

#include <stddef.h>
#include <stdint.h>

typedef struct am_cast am_cast;

#define AM_CAST_MAX_DEFAULT (256ull << 20)
/* Once at startup, before any recording: the largest file (compressed bytes). */
void am_cast_set_max(uint64_t bytes);

/* Create path (0600, truncating) and write the header {"version":2,"width","height",
 * "timestamp","env":{"TERM":"xterm-256color"}}. */
int am_cast_open(const char *path, unsigned cols, unsigned rows, uint64_t unix_time, am_cast **out);
/* One output event for data[0..len). */
void am_cast_output(am_cast *c, const uint8_t *data, size_t len);
/* Finish the zstd frame, fsync, close and free. 0, or -AM_EIO if anything was lost. */
int am_cast_close(am_cast *c);

#endif
