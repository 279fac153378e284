/*
 * appliance/hub — airmeshd's in-memory live state: which runners are connected right now.
 *
 * The rpc thread registers a runner's live stream when it connects and removes it when the
 * stream ends; the http thread reads the table (runner list) and asks for a stream to be closed
 * (revocation). One mutex guards the table; critical sections are a few pointer moves.
 * The hub never owns a stream: `close_fn(stream, reason)` is the rpc module's callback, called
 * under the hub mutex so the stream cannot be freed concurrently (the rpc thread removes a stream
 * from the hub, under the same mutex, before freeing it).
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
/* 1 and info filled when runner_id has a live stream, else 0. */
int am_hub_runner_get(am_hub *h, const char *runner_id, am_hub_runner_info *info);
/* Close the runner's live stream (revocation). Returns 1 if there was one. */
int am_hub_runner_close(am_hub *h, const char *runner_id, const char *reason);
size_t am_hub_runner_count(am_hub *h);
/* Call fn(stream, arg) under the hub mutex if runner_id has a live stream; returns 1 if so. */
int am_hub_runner_with(am_hub *h, const char *runner_id, void (*fn)(void *stream, void *arg),
                       void *arg);

#endif
