/*
 * runner/pod — the runner's pods: worktree (runner/worktree) + sandbox on a PTY (runner/sandbox)
 * + asciicast v2 recording (zstd), one thread per pod. The scrollback ring is the appliance's
 * (appliance/hub); the runner streams output to it with byte offsets.
 * Files: manager.c (the table, am_podmgr_*), lifecycle.c (one pod's thread), asciicast.c (the
 * recording writer), agentstate.c (the agent-state scanner) + agentstate_pod.c (its wiring and
 * airmesh-notify's bind), internal.h (what they share).
 *
 * Lifecycle of one pod thread: report "starting" → create the worktree (fetching the mirror) →
 * spawn the sandbox with the worktree at /workspace → report "running" → pump PTY output to the
 * recording and the appliance (TerminalOutput with byte offsets) until the command exits →
 * finish the recording → bring the branch back into the mirror and remove the worktree unless
 * keep_worktree → upload the recording in chunks → report "exited" (code) or "stopped" (after a
 * stop request) or "failed" (reason): once a pod is reported ended, its branch and recording
 * are on the appliance's side.
 * Messages go out through the emit callback, which must be thread-safe (the session queues
 * them on the live stream or drops them while disconnected; am_podmgr_resync re-sends every
 * pod's current state and any recording not yet uploaded after a reconnect).
 * Threads: every am_podmgr_* call may come from any thread (one mutex guards the pod table).
 * A pod that is over (thread done, final state taken by the appliance, recording uploaded) is
 * joined and freed by the next create/list/resync; am_podmgr_free stops and joins the rest.
 */
#ifndef AM_RUNNER_POD_H
#define AM_RUNNER_POD_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"

typedef struct am_podmgr am_podmgr;
/* Deliver one message to the appliance; returns 0 if queued, -1 if it was dropped. */
typedef int (*am_pod_emit_fn)(void *ud, Airmesh__V1__RunnerMessage *m);

/* Process-wide, at startup (before am_podmgr_new): a dir of agent CLIs bound read-only into
 * every pod at the same path, with DIR/bin first on the PATH of pods whose env sets none.
 * -AM_EINVAL (with the reason) unless it is an absolute path of a directory. */
int am_pod_set_agents_dir(const char *dir);
/* The agents dir set above, "" if none. */
const char *am_pod_agents_dir(void);

/* An agent CLI the pods can run (runner/pod/agents.c). */
typedef struct {
    char name[32];    /* "claude", "codex", "gemini", "aider", "opencode", "goose" */
    char version[64]; /* first version-like token of `<path> --version`, "" if none */
    char path[1024];  /* where it was found: the agents dir's bin/ first, then the host's */
} am_pod_agent;
/* The agent CLIs found (detected once, on the first call; the array is process-owned). */
size_t am_pod_agents(const am_pod_agent **out);
/* Once at startup, before pods: the largest recording kept on the runner's disk (compressed
 * bytes; default and most 256 MiB, what the appliance accepts). Output beyond it is not
 * recorded; the recording ends with a line saying so. */
void am_pod_set_recording_max(uint64_t bytes);
#define AM_POD_RECORDING_MAX (256ull << 20) /* = AM_CAST_MAX_DEFAULT */

/* Agent states (runner/pod/agentstate.h, agentstate_pod.c). Once at startup, before pods:
 * how long a working pod may be quiet before it is "idle" (0 = 30 s). */
void am_pod_set_quiet_after(uint64_t ms);
/* airmesh-notify, bound read-only into every pod at AM_POD_NOTIFY_PATH (AM_POD_NOTIFY_DIR last
 * on the PATH of pods whose env sets none). set: -AM_EINVAL unless an absolute path of an
 * executable file. find: next to the runner's own executable unless set (a warning if none).
 * am_pod_notify_bin: the host path, "" if none. */
#define AM_POD_NOTIFY_DIR "/opt/airmesh/bin"
#define AM_POD_NOTIFY_PATH AM_POD_NOTIFY_DIR "/airmesh-notify"
int am_pod_set_notify_bin(const char *path);
const char *am_pod_notify_bin(void);
/* airmesh-mcp (the stdio MCP server, runner/mcp), bound read-only into every pod at AM_MCP_BIN
 * (common/mcp.h) beside airmesh-notify; same rules as the notify binary. */
int am_pod_set_mcp_bin(const char *path);
const char *am_pod_mcp_bin(void);
/* Both tools next to the runner's own executable, unless set (a warning for each missing). */
void am_pod_find_bins(void);

int am_podmgr_new(const char *data_dir, am_pod_emit_fn emit, void *ud, am_podmgr **out);
/* The egress registry (runner/egress) that serves the listeners of pods with network
 * "models" / "allow". Call right after am_podmgr_new; without it such pods fail to start. */
struct am_egress;
void am_podmgr_set_egress(am_podmgr *m, struct am_egress *e);
/* The MCP relay (runner/mcp/relay.h) that serves every pod's MCP socket. Call right after
 * am_podmgr_new; without it pods get a socket nobody answers (airmesh-mcp then says so). */
struct am_mcprelay;
void am_podmgr_set_mcp(am_podmgr *m, struct am_mcprelay *r);
/* The runner's id, named in the reasons a user reads ("repository X: no such directory on runner
 * r-..."). Call right after am_podmgr_new, before any pod is created. */
void am_podmgr_set_runner_id(am_podmgr *m, const char *runner_id);
/* Start a pod (returns at once; progress is reported through emit). */
int am_podmgr_create(am_podmgr *m, const Airmesh__V1__CreatePod *cp);
int am_podmgr_stop(am_podmgr *m, const char *pod_id, uint32_t grace_ms);
int am_podmgr_input(am_podmgr *m, const char *pod_id, const uint8_t *data, size_t len);
int am_podmgr_resize(am_podmgr *m, const char *pod_id, uint16_t cols, uint16_t rows);
/* Ids of the pods this runner manages right now (for Hello). ids[i] are malloc'd: free each. */
size_t am_podmgr_list(am_podmgr *m, char **ids, size_t cap);
/* After a reconnect: re-send every pod's state and pending recordings. */
void am_podmgr_resync(am_podmgr *m);
/* Stop every pod (SIGTERM, grace), join the threads, free. */
void am_podmgr_free(am_podmgr *m);

#endif
