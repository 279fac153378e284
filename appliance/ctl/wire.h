/*
 * appliance/ctl/wire.h — the parsing airmeshctl does on bytes from the network, kept apart from
 * I/O so tests/fuzz/ctl_wire_fuzz.c can feed it anything: WebSocket frame headers from the
 * appliance (ws.c) and names printed in lists (table.c). Pure functions; any thread.
 */
#ifndef AM_APPLIANCE_CTL_WIRE_H
#define AM_APPLIANCE_CTL_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* The server frame at the start of buf[0..len): 1 with *op, the payload at buf + *off of *n
 * bytes (the frame is *off + *n bytes); 0 when more bytes are needed; -1 when it is not a frame
 * this client accepts (masked — servers never mask —, fragmented, reserved bits, a control
 * frame over 125 bytes, or a payload over max). */
int am_ctl_ws_frame(const uint8_t *buf, size_t len, size_t max, int *op, size_t *off, size_t *n);

/* A copy of s (malloc'd; NULL when out of memory) with control characters — C0, DEL, C1 and
 * bytes that are not UTF-8 in the current locale — replaced by '?', so a name cannot move the
 * cursor or recolour the terminal. */
char *am_ctl_clean_text(const char *s);
/* Columns s takes on a terminal (wcwidth per character; 1 for undecodable bytes). */
size_t am_ctl_text_width(const char *s);

#endif
