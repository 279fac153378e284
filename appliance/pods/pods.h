/*
 * appliance/pods — pod records and their lifecycle on the appliance side.
 *
 * A pod is created here (state "pending", runner chosen, audited) and then handed to its runner
 * by the caller (appliance/http sends CreatePod through appliance/rpc). From then on the runner
 * reports states through PodStatus (starting → running → exited(code) | failed(reason) |
 * stopped), which land here via am_pods_on_status: only the pod's own runner may report for it.
 * After a pod ends the runner uploads its zstd-compressed asciicast recording in chunks, stored
 * as DATA/recordings/<org>/<pod>.cast.zst.
 * Threads: any (each call is one LMDB transaction + an audit append). Callers free returned
 * records with protobuf_c_message_free_unpacked.
 */
#ifndef AM_APPLIANCE_PODS_H
#define AM_APPLIANCE_PODS_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"
#include "airmesh/v1/store.pb-c.h"
#include "appliance/app.h"

#define AM_POD_ID_LEN 14 /* "p-" + 12 hex */

typedef struct {
    const char *runner_id;                 /* or NULL: choose by labels */
    const char *const *sel_keys, *const *sel_values;
    size_t n_sel;
    const char *repo, *base_ref, *branch;  /* branch NULL → "airmesh/pod-<id>" */
    const char *const *argv;
    size_t argc;
    const char *const *env_keys, *const *env_values;
    size_t n_env;
    uint64_t memory_bytes; /* 0 = app->pod_defaults, like every limit here */
    uint32_t pids, cpu_millis;
    uint64_t tmp_bytes, shm_bytes, workspace_bytes;
    const char *network;                   /* "none" (default) or "host" */
    int keep_worktree;
} am_pod_spec;

/* Validate the spec, pick an online runner of org, record the pod as pending, audit
 * "pod.create". -AM_EINVAL (bad spec), -AM_ENOTFOUND (no such runner), -AM_ESTATE (no online
 * runner matches). *out: the new record (caller frees). */
int am_pods_create(am_app *app, const char *org, const char *actor, const char *source,
                   const am_pod_spec *spec, Airmesh__V1__Pod **out);

/* Build the CreatePod message for a pod record (strings borrowed from pod; free with
 * am_pods_create_msg_free). */
int am_pods_create_msg(const Airmesh__V1__Pod *pod, Airmesh__V1__CreatePod *msg);
void am_pods_create_msg_free(Airmesh__V1__CreatePod *msg);

/* Set a pod's state from the appliance side (e.g. "failed" when its runner is unreachable). */
int am_pods_set_state(am_app *app, const char *org, const char *pod_id, const char *state,
                      const char *reason);

/* A PodStatus from runner_id (of org). Refuses reports for pods of other runners. */
int am_pods_on_status(am_app *app, const char *org, const char *runner_id,
                      const Airmesh__V1__PodStatus *st);
/* The pod's first output reached the appliance: record the time once (pod start latency). */
int am_pods_first_output(am_app *app, const char *org, const char *runner_id, const char *pod_id);
/* A recording chunk from runner_id. */
int am_pods_on_recording(am_app *app, const char *org, const char *runner_id,
                         const Airmesh__V1__RecordingChunk *c);

int am_pods_get(am_app *app, const char *org, const char *pod_id, Airmesh__V1__Pod **out);
/* 1 when the state is final (exited, failed, stopped). */
int am_pods_ended(const Airmesh__V1__Pod *p);
/* Remove an ended pod's record and recording. -AM_ESTATE when it is still active. */
int am_pods_delete(am_app *app, const char *org, const char *pod_id);
/* Path of the pod's recording file (it may not exist). */
void am_pods_recording_path(am_app *app, const char *org, const char *pod_id, char *out,
                            size_t cap);

#endif
