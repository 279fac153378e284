/*
 * appliance/http/ws_frames — follows the frame boundaries of a WebSocket byte stream from a
 * client, so a frame header announcing more than the largest message we accept is refused
 * when its header arrives (wslay only counts payload bytes as they come, so a header announcing
 * 2^63-1 bytes followed by a trickle would hold the connection forever).
 * Threads: none; one tracker per connection, used on the http thread.
 */
#ifndef AM_APPLIANCE_HTTP_WS_FRAMES_H
#define AM_APPLIANCE_HTTP_WS_FRAMES_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t hdr[14];
    unsigned have; /* header bytes seen of the current frame */
    uint64_t left; /* payload bytes of the current frame still to come */
} am_ws_frames;

/* Feed the next n bytes the client sent. 0, or -1 when a frame announces a payload above max
 * (the caller closes with 1009). */
int am_ws_frames_feed(am_ws_frames *f, const uint8_t *p, size_t n, uint64_t max);

#endif
