/*
 * runner/pod/agentstate — what a pod's agent is doing (working / waiting for input / idle),
 * read from the pod's own PTY output: structured signals first, quiet output as a fallback.
 *
 * Signals, strongest first (AgentState in proto/airmesh/v1/runner.proto):
 *   OSC 777;notify;airmesh;STATE;MSG  (airmesh-notify in the pod) -> STATE, source "notify"
 *   OSC 777;notify;TITLE;BODY         (any other notification)    -> waiting, source "osc777"
 *   OSC 9;TEXT                        (iTerm2-style notification) -> waiting, source "osc9";
 *                                      not 9;4 progress nor ConEmu's 9;N;... commands
 *   OSC 0/2 titles: Claude Code's spinner prefix (a braille U+2800..U+28FF or a quarter circle
 *     U+25D0..U+25D3, then a space) -> working; its idle marker "✳ " -> idle; source "title".
 *     Other titles change no state; the last one is kept as the message of the next change.
 *   Output after waiting/idle: >= AM_AGENTSTATE_OUTPUT_BYTES printable bytes (outside escape
 *     sequences: a cursor blink is not work), or user input followed by any printable output
 *     -> working, source "output". Once a pod gave a structured working signal (a spinner
 *     title, airmesh-notify working), only structured signals or input move it to working:
 *     its own redraws after "waiting" are not work.
 *   No output for quiet_ms while working (or not known yet) -> idle, source "quiet".
 *     "waiting" stays waiting however quiet.
 * Changes only: on_change runs when the state changes, or when a notification brings a new
 * message. Messages: control characters and invalid UTF-8 removed, at most 200 bytes.
 *
 * Parsing keeps its place across chunks (a sequence may be split anywhere) in a fixed buffer:
 * an OSC longer than AM_AGENTSTATE_OSC_MAX is dropped (bounded memory) and its bytes count as
 * ordinary output. Sequences end with BEL or ST (ESC \); CAN/SUB abort them.
 *
 * Threads: an am_agentstate belongs to one pod's thread (no locking). No allocation.
 */
#ifndef AM_RUNNER_POD_AGENTSTATE_H
#define AM_RUNNER_POD_AGENTSTATE_H

#include <stddef.h>
#include <stdint.h>

#define AM_AGENTSTATE_OSC_MAX 1024
#define AM_AGENTSTATE_MSG_MAX 200
#define AM_AGENTSTATE_OUTPUT_BYTES 64
#define AM_AGENTSTATE_QUIET_DEFAULT_MS 30000u

typedef void (*am_agentstate_fn)(void *ud, const char *state, const char *source,
                                 const char *message);

typedef struct {
    /* parser */
    int ps;
    size_t osc_len;
    int osc_dropped;
    char osc[AM_AGENTSTATE_OSC_MAX + 1];
    /* state */
    char state[16];  /* "", working, waiting, idle */
    char source[16]; /* of the last change */
    char message[AM_AGENTSTATE_MSG_MAX + 1];
    char title[AM_AGENTSTATE_MSG_MAX + 1]; /* the last OSC 0/2 title, sanitized */
    uint64_t quiet_ms, last_output_ms;
    uint64_t printable; /* printable bytes since the last change */
    int input_seen;     /* user input since the last change */
    int structured;     /* a structured working signal was seen */
    am_agentstate_fn on_change;
    void *ud;
} am_agentstate;

/* quiet_ms 0 = AM_AGENTSTATE_QUIET_DEFAULT_MS. now_ms: any monotonic clock in ms. */
void am_agentstate_init(am_agentstate *a, uint64_t quiet_ms, uint64_t now_ms,
                        am_agentstate_fn on_change, void *ud);
/* One chunk of PTY output (any size, any split). */
void am_agentstate_output(am_agentstate *a, const uint8_t *data, size_t len, uint64_t now_ms);
/* The user typed into the pod. */
void am_agentstate_input(am_agentstate *a);
/* Call now and then (the pod's poll loop): the quiet fallback. */
void am_agentstate_tick(am_agentstate *a, uint64_t now_ms);

/* Copy src (len bytes) to out as a message: control characters (C0, DEL, C1) dropped, invalid
 * UTF-8 bytes dropped, cut at a character boundary to at most cap-1 bytes. */
void am_agentstate_sanitize(const char *src, size_t len, char *out, size_t cap);
/* 1 for "working", "waiting", "idle". */
int am_agentstate_valid(const char *state);

#endif
