/*
 * appliance/ctl/ws.h — a minimal WebSocket client (RFC 6455) over TLS for airmeshctl's
 * `pod logs` and `pod attach` (Debian's libcurl 7.88 is built without WebSocket support).
 *
 * One connection, one thread: open, then send/recv from the thread that opened it. The TLS is
 * OpenSSL, verifying the appliance against --ca (or the system store) and its host name or IP.
 * Client frames are masked; server frames are read whole (no fragmentation from airmeshd);
 * pings are answered inside recv. Errors are printed on stderr in words, once, by the call that
 * failed; callers only act on the return value.
 */
#ifndef AM_APPLIANCE_CTL_WS_H
#define AM_APPLIANCE_CTL_WS_H

#include <stddef.h>
#include <stdint.h>

typedef struct am_ctl_ws am_ctl_ws;

enum { AM_WS_TEXT = 1, AM_WS_BINARY = 2, AM_WS_CLOSE = 8, AM_WS_PING = 9, AM_WS_PONG = 10 };

/* Connect to base_url ("https://host[:port]") + path with "Authorization: Bearer token".
 * Returns 0 and *out, or 1 (message printed: refused with the API's error, TLS, connect). */
int am_ctl_ws_open(const char *base_url, const char *ca, const char *token, const char *path,
                   am_ctl_ws **out);
/* Send one message; 0 or -1 (connection gone). */
int am_ctl_ws_send(am_ctl_ws *w, int opcode, const void *data, size_t len);
/* Wait up to timeout_ms (-1: forever) for one message. Returns 1 with *opcode and *data and *len
 * (valid until the next recv), 0 on timeout, -1 when the connection ended (am_ctl_ws_close_code
 * says how: the close frame's code, 1006 without one). */
int am_ctl_ws_recv(am_ctl_ws *w, int timeout_ms, int *opcode, const uint8_t **data, size_t *len);
/* The socket, to poll() together with other fds; am_ctl_ws_buffered() says whether a message
 * may already be waiting without the socket being readable. */
int am_ctl_ws_fd(const am_ctl_ws *w);
int am_ctl_ws_buffered(const am_ctl_ws *w);
int am_ctl_ws_close_code(const am_ctl_ws *w);
void am_ctl_ws_free(am_ctl_ws *w);

#endif
