/*
 * runner/pod/internal.h — what the pod thread (lifecycle.c) and the manager (manager.c) share.
 * Not for use outside runner/pod.
 *
 * Ownership: the manager owns every pod (its table, under am_podmgr.mu); a pod's thread owns
 * its sandbox and recording while it runs. A pod is freed by the manager only after its thread
 * has finished (done), the appliance has taken its final state (final_sent) and its recording
 * has been uploaded (or there is none): am_podmgr_reap.
 */
#ifndef AM_RUNNER_POD_INTERNAL_H
#define AM_RUNNER_POD_INTERNAL_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "runner/pod/agentstate.h"
#include "runner/pod/asciicast.h"
#include "runner/pod/pod.h"
#include "runner/sandbox/sandbox.h"

typedef struct pod {
    am_podmgr *mgr;
    Airmesh__V1__CreatePod *cp; /* our own unpacked copy */
    pthread_t thread;
    pthread_mutex_t mu; /* guards sbx, the state fields, stop_*, done, final_sent, uploaded */
    am_sbx *sbx;
    int wake_fd; /* eventfd: a stop request wakes the pod thread */
    char state[16], reason[512], limits_note[512], worktree[PATH_MAX], commit[41];
    int exit_code;
    int stop_requested;
    uint32_t stop_grace_ms;
    int done;               /* the pod thread has returned (join does not block) */
    int final_sent;         /* the appliance took the final state (emit returned 0) */
    int recording_uploaded; /* or there is no recording */
    uint64_t out_offset;    /* bytes of output so far */
    am_cast *rec;           /* open while the pod runs */
    int have_recording;
    char rec_path[PATH_MAX];
    /* agent state (agentstate_pod.c): the scanner is the pod thread's; under mu: input seen
     * since the thread last looked, and the last change (re-sent by resync) */
    am_agentstate as;
    int agent_input;
    char agent_state[16], agent_source[16], agent_msg[AM_AGENTSTATE_MSG_MAX + 1];
} pod;

struct am_podmgr {
    char data_dir[PATH_MAX - 256]; /* room for "/recordings/<pod>.cast.zst" */
    char runner_id[128];           /* for the user's messages ("... on runner r-..."), or "" */
    am_pod_emit_fn emit;
    void *ud;
    struct am_egress *egress; /* serves the listeners of pods with network models/allow */
    struct am_mcprelay *mcp;  /* serves every pod's MCP socket (runner/mcp) */
    pthread_mutex_t mu;
    pod **pods;
    size_t n, cap;
};

/* lifecycle.c */
void *am_pod_main(void *arg); /* the pod thread */
/* (Re-)send the pod's current state; a final state that the appliance took sets final_sent. */
void am_pod_emit_status(pod *p);
void am_pod_upload_recording(pod *p);
/* At start: remove what pods of an earlier life of this runner left behind. */
void am_pod_cleanup_leftovers(am_podmgr *m);
/* 1 for exited/stopped/failed. */
int am_pod_state_final(const char *state);

/* manager.c: "PATH=<agents dir>/bin:..." for pods whose env sets no PATH, or NULL. */
const char *pod_agents_path_env(void);

/* agentstate_pod.c: the PATH of pods whose env sets none (the agents dir's bin first,
 * AM_POD_NOTIFY_DIR last), or NULL for the sandbox's default. */
const char *pod_default_path_env(void);
/* The pod thread: start the scanner (before the first output), feed it, tick it (poll loop). */
void am_pod_agent_start(pod *p);
void am_pod_agent_output(pod *p, const uint8_t *data, size_t len);
void am_pod_agent_tick(pod *p);
/* After a reconnect: re-send the last change of a running pod. */
void am_pod_agent_resend(pod *p);

#endif
