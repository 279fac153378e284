/*
 * appliance/hub — airmeshd's in-memory live state: which runners are connected right now.
 *
 * The rpc thread registers a runner's live stream when it connects and removes it when the
 * stream ends; the http thread reads the table (runner list) and appliance/ops asks for a
 * stream to be closed (revocation, after its commit). One mutex guards the table; critical sections
 * are a few pointer moves. The hub never owns a stream: `close_fn(stream, reason)` is the rpc
 * module's callback, called under the hub mutex so the stream cannot be freed concurrently (the rpc
 * thread removes a stream from the hub, under the same mutex, before freeing it).
 *
 * Pod terminals (the web terminal, ARCHITECTURE.md §9): the hub also keeps, per pod, a ring of
 * the most recent AM_HUB_RING_BYTES of terminal output, addressed by absolute byte offsets
 * (the runner's TerminalOutput.offset). The rpc thread appends (am_hub_pod_output, a copy under
 * the mutex) and reports the end of a pod (am_hub_pod_end); each such change marks the pod
 * "dirty" and, when the dirty set was empty, calls the notify callback (the http thread's
 * h2o_multithread wake-up) under the hub mutex, so one wake is pending at a time however many
 * pods change. The http thread takes the dirty set (am_hub_take_dirty) and copies ring slices out
 * for its viewers (am_hub_pod_read); it never holds the mutex while doing socket work.
 * A pod's ring starts empty (after an appliance restart the first output arrives at a non-zero
 * offset: the ring starts there). A gap in offsets (the runner dropped output) restarts the ring
 * at the new offset; overlapping bytes are ignored. Ended pods keep their ring while a viewer is
 * attached and for up to AM_HUB_KEEP_ENDED further ended pods (oldest evicted first).
 */
#ifndef AM_APPLIANCE_HUB_H
#define AM_APPLIANCE_HUB_H

#include <stddef.h>
#include <stdint.h>

typedef struct am_hub am_hub;
typedef void (*am_hub_close_fn)(void *stream, const char *reason);

typedef struct {
    uint64_t connected_ms;
    uint64_t last_heartbeat_ms;
    char peer[64];
    int introduced; /* its Hello (capacity, labels, running pods) has been applied */
} am_hub_runner_info;

int am_hub_new(am_hub **out);
void am_hub_free(am_hub *h);

/* Register a live stream for runner_id. A second stream for the same runner replaces the first
 * (the first is closed with reason "replaced by a newer connection"). */
int am_hub_runner_online(am_hub *h, const char *runner_id, void *stream, am_hub_close_fn close_fn,
                         const char *peer);
/* Remove the stream if it is still the registered one for runner_id. */
void am_hub_runner_offline(am_hub *h, const char *runner_id, void *stream);
void am_hub_runner_heartbeat(am_hub *h, const char *runner_id);
/* The runner's Hello has been applied to its record: from now on it is reported online. */
void am_hub_runner_introduced(am_hub *h, const char *runner_id);
/* 1 and info filled when runner_id has a live stream, else 0. */
int am_hub_runner_get(am_hub *h, const char *runner_id, am_hub_runner_info *info);
/* Close the runner's live stream (revocation). Returns 1 if there was one. */
int am_hub_runner_close(am_hub *h, const char *runner_id, const char *reason);
size_t am_hub_runner_count(am_hub *h);
/* Call fn(stream, arg) under the hub mutex if runner_id has a live stream; returns 1 if so. */
int am_hub_runner_with(am_hub *h, const char *runner_id, void (*fn)(void *stream, void *arg),
                       void *arg);

/* ---- pod terminal rings ---- */

#define AM_HUB_RING_BYTES (1u << 20)
#define AM_HUB_KEEP_ENDED 32
#define AM_HUB_POD_ID_MAX 32

typedef void (*am_hub_notify_fn)(void *arg);

typedef struct {
    uint64_t start, end; /* bytes [start, end) are in the ring */
    int ended;           /* exited / stopped / failed reported */
    char state[16];      /* "exited" | "stopped" | "failed" when ended */
    int exit_code;
    uint16_t cols, rows; /* last size set through the terminal (default 80x24) */
} am_hub_pod_view;

/* Set (or clear, fn NULL) the wake-up called when the dirty set becomes non-empty. The call
 * happens on the rpc thread with the hub mutex held: it must only post a message. */
void am_hub_set_notify(am_hub *h, am_hub_notify_fn fn, void *arg);
/* Create the pod's entry (empty ring) if absent, owned by org/runner. */
int am_hub_pod_open(am_hub *h, const char *org, const char *runner_id, const char *pod_id);
/* Append terminal bytes at absolute offset off. -AM_ENOTFOUND when the pod has no entry
 * (the caller checks ownership in the store, then am_hub_pod_open), -AM_EAUTH when the entry
 * belongs to another org/runner. */
int am_hub_pod_output(am_hub *h, const char *org, const char *runner_id, const char *pod_id,
                      uint64_t off, const uint8_t *data, size_t len);
/* The pod reached a final state (after all its output: the runner sends it last). Without an
 * entry (no output, no viewer yet) nothing is kept: a later viewer reads the state from the
 * store. */
void am_hub_pod_end(am_hub *h, const char *org, const char *runner_id, const char *pod_id,
                    const char *state, int exit_code);
/* The http thread, on a wake-up: first ack it (the next change wakes again; the wake-up
 * message must be free for reuse by then), then take dirty pod ids until none are left. */
void am_hub_notify_ack(am_hub *h);
/* Move up to cap dirty pod ids into ids[] (cleared from the set). */
size_t am_hub_take_dirty(am_hub *h, char (*ids)[AM_HUB_POD_ID_MAX + 1], size_t cap);
/* A viewer attaches / detaches (keeps the entry of an ended pod alive). attach creates the
 * entry when absent (runner_id from the pod record). */
int am_hub_pod_attach(am_hub *h, const char *org, const char *runner_id, const char *pod_id);
void am_hub_pod_detach(am_hub *h, const char *pod_id);
/* Copy up to cap bytes starting at from (clamped into the ring) into buf; *n bytes copied,
 * *at their offset. view (if not NULL) gets the pod's ring bounds and state. -AM_ENOTFOUND
 * when the pod has no entry. */
int am_hub_pod_read(am_hub *h, const char *pod_id, uint64_t from, uint8_t *buf, size_t cap,
                    size_t *n, uint64_t *at, am_hub_pod_view *view);
/* Record the terminal size (kept for the next viewer's hello). */
void am_hub_pod_set_size(am_hub *h, const char *pod_id, uint16_t cols, uint16_t rows);
/* ---- live events (audit records for the console's Activity page) ---- */

#define AM_HUB_EVENTS 512 /* kept for subscribers that fall behind */

/* Publish one event of org (any thread; data is copied). Marks events dirty and wakes the http
 * thread like terminal output does. */
void am_hub_event_publish(am_hub *h, const char *org, const char *data, size_t len);
/* The http thread: 1 if events were published since the last call. */
int am_hub_events_take_dirty(am_hub *h);
/* Call fn(arg, data, len) (under the hub mutex: copy, do not block) for each event of org with
 * sequence > *after, oldest first; *after advances to the last one seen. Returns 1 if events
 * after *after were already dropped from the buffer (the subscriber lagged), else 0.
 * *after == UINT64_MAX means "from now": it is set to the newest sequence and nothing is sent. */
int am_hub_events_read(am_hub *h, const char *org, uint64_t *after,
                       void (*fn)(void *arg, const char *data, size_t len), void *arg);

/* Number of pod entries (tests, bench). */
size_t am_hub_pod_count(am_hub *h);

#endif
