/*
 * appliance/pods — pod records on the appliance side (AM_DB_PODS, key "org/<pod id>"), their
 * states, runner choice and recordings. Called only by appliance/ops, which checks the caller's
 * role, passes an am_txn_hook that appends the audit record inside the write transaction, talks
 * to the runner and to the hub.
 *
 * A pod is created "pending" on a chosen online runner; from then on its runner reports states
 * (starting → running → exited(code) | failed(reason) | stopped) and only the pod's own runner
 * may report for it. After a pod ends the runner uploads its zstd-compressed asciicast recording
 * in chunks, stored as DATA/recordings/<org>/<pod>.cast.zst.
 * Threads: any (each call is one LMDB transaction). Callers free returned records with
 * protobuf_c_message_free_unpacked.
 */
#ifndef AM_APPLIANCE_PODS_H
#define AM_APPLIANCE_PODS_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"
#include "airmesh/v1/store.pb-c.h"
#include "appliance/store/store.h"
#include "common/egress.h"
#include "common/pod_state.h"

#define AM_POD_ID_LEN 14 /* "p-" + 12 hex */

/* Pod states: the one enum and its names are common/pod_state.h. */

typedef struct {
    const char *runner_id; /* or NULL: choose by labels */
    const char *const *sel_keys, *const *sel_values;
    size_t n_sel;
    const char *repo, *base_ref, *branch; /* branch NULL → "airmesh/pod-<id>" */
    const char *const *argv;
    size_t argc;
    const char *const *env_keys, *const *env_values;
    size_t n_env;
    uint64_t memory_bytes; /* 0 = the am_pod_defaults, like every limit here */
    uint32_t pids, cpu_millis;
    uint64_t tmp_bytes, shm_bytes, workspace_bytes;
    const char *network; /* "none" | "models" | "allow" | "host" (common/egress.h); NULL or ""
                            = "models" when the org has a model endpoint, else "none" */
    int keep_worktree;
    int shared; /* other members may take control of and stop it (issue 14) */
    /* Agent catalog (appliance/agents): a preset name or NULL; only runners that report the
     * CLI are chosen (-AM_EINVAL naming it when the runner asked for lacks it). */
    const char *agent;
    /* The initial prompt (appliance/ops): the preset's argument, or typed once the command is
     * ready (a preset that takes none, or an explicit command). Not stored by appliance/pods. */
    const char *prompt;
    const char *display_name; /* NULL/"" = none; checked by the caller (common/display_name.h) */
    int continue_branch;      /* review (ops/review.c): branch exists (an ended pod's); the
                                 runner continues it instead of creating it from base_ref */
} am_pod_spec;

/* Limits a pod gets when its create request leaves them out (config file pod_* keys). */
typedef struct {
    uint64_t memory_bytes, tmp_bytes, shm_bytes, workspace_bytes;
    uint32_t cpu_millis, pids;
} am_pod_defaults;

/* An org's limit policy (Org.pod_defaults / Org.pod_max in the store; appliance/pods/limits.c):
 * a field 0 = not set. At pod create, a limit the request leaves out gets the org default, else
 * the global default (config pod_*), capped at the org max; a request above the org max is
 * -AM_EINVAL naming the limit. */
typedef struct {
    am_pod_defaults def, max;
} am_org_limits;

/* 0 when the policy is acceptable (each size in the range a pod create accepts, no default above
 * its max), else -AM_EINVAL naming the field. */
int am_pods_limits_validate(const am_org_limits *l);
/* The policy of org (all 0 when none was set). -AM_ENOTFOUND: no such org. */
int am_pods_limits_get(am_store *s, const char *org, am_org_limits *out);
/* Validate and store the policy of org (replacing it whole); hook runs inside the transaction. */
int am_pods_limits_set(am_store *s, const char *org, const am_org_limits *l,
                       const am_txn_hook *hook);
/* The policy of org read inside t (all 0 when the org has no record). */
int am_pods_limits_txn(am_txn *t, const char *org, am_org_limits *out);
/* The limits a pod of this spec gets under global defaults g and org policy l (NULL = none):
 * into *eff. -AM_EINVAL naming the limit when the request is above the org max. */
int am_pods_limits_apply(const am_pod_spec *spec, const am_pod_defaults *g, const am_org_limits *l,
                         am_pod_defaults *eff);

/* 0 when the spec is acceptable, else -AM_EINVAL naming the field. */
int am_pods_validate(const am_pod_spec *spec);

/* 1 when runner_id has a live stream now (the hub knows; ops passes it in). */
typedef int (*am_pods_online_fn)(void *ud, const char *runner_id);

/* What am_pods_create decided, filled before its hook runs. */
typedef struct {
    char id[AM_POD_ID_LEN + 1];
    char runner[129];
    char branch[256];
    char network[16]; /* the policy the pod got (the default decided in the transaction) */
    /* network models/allow: the pod's virtual model key ("amk_" + 64 hex, CSPRNG); only its
     * SHA-256 is in the record. It goes into the CreatePod env only (am_pods_create_msg);
     * wipe it (am_wipe) once sent. "" otherwise. */
    char gateway_key[AM_EGRESS_KEY_LEN + 1];
} am_pod_new;

/* An org's egress allow list (Org.egress_allow; appliance/pods/egress.c): "host:port" entries
 * pods with network "allow" may reach through their CONNECT proxy. validate: each entry a
 * host name or IP (IPv6 in brackets) and a port 1-65535, at most AM_EGRESS_ALLOW_MAX, no
 * duplicates; -AM_EINVAL naming the entry. set replaces the list whole (hosts lower-cased);
 * get returns a malloc'd array of malloc'd strings (am_pods_egress_allow_free). */
#define AM_EGRESS_ALLOW_MAX 64
int am_pods_egress_allow_validate(const char *const *allow, size_t n);
int am_pods_egress_allow_get(am_store *s, const char *org, char ***out, size_t *n);
void am_pods_egress_allow_free(char **list, size_t n);
int am_pods_egress_allow_set(am_store *s, const char *org, const char *const *allow, size_t n,
                             const am_txn_hook *hook);

/* Validate the spec, pick an online runner of org (in the write transaction, so two creates
 * cannot both take a runner's last slot) and record the pod as pending. -AM_EINVAL (bad spec),
 * -AM_ENOTFOUND (no such runner), -AM_ESTATE (no online runner matches). *out: the new record
 * (caller frees). */
int am_pods_create(am_store *s, const char *org, const char *actor, const am_pod_spec *spec,
                   const am_pod_defaults *defaults, am_pods_online_fn online, void *online_ud,
                   am_pod_new *n, const am_txn_hook *hook, Airmesh__V1__Pod **out);

/* Build the CreatePod message for a pod record (strings borrowed from pod and gateway_key;
 * free with am_pods_create_msg_free). gateway_key (network models/allow, else NULL or ""): the
 * pod's virtual key and base URLs go into the env (common/egress.h), over any the user set;
 * with network allow also the proxy variables and pod->egress_allow. */
int am_pods_create_msg(const Airmesh__V1__Pod *pod, const char *gateway_key,
                       Airmesh__V1__CreatePod *msg);
void am_pods_create_msg_free(Airmesh__V1__CreatePod *msg);

/* One change to a pod record. In: org, id, and what to change; runner non-NULL refuses
 * (-AM_EAUTH) a pod of another runner. A final state never changes again and a repeated state
 * is no change: then nothing is written, `changed` stays 0 and the hook does not run. Out:
 * old_state, pod_runner, changed. */
typedef struct {
    const char *org, *id, *runner;
    const char *state; /* NULL: no state change */
    const char *reason, *limits_note, *commit;
    int exit_code, set_recording, set_first_output;
    int set_shared, shared;   /* set_shared: write `shared` (a change when it differs) */
    const char *display_name; /* non-NULL: write it ("" = none; a change when it differs) */
    /* agent_state: write Pod.agent_state (+ agent_state_ms = now) of a pod that has not ended
     * (an ended pod: no change); a change when it differs, or always with agent_renotify (a
     * new notification in the same state). The caller validates the value. */
    const char *agent_state;
    int agent_renotify;
    char old_state[32];
    char pod_runner[129];
    int changed;
    const am_txn_hook *hook_; /* private */
} am_pod_update;
int am_pods_update(am_store *s, am_pod_update *u, const am_txn_hook *hook);

/* A recording chunk from runner_id (appends DATA/recordings/<org>/<pod>.cast.zst; the last
 * one marks the record). */
int am_pods_on_recording(am_store *s, const char *data_dir, const char *org, const char *runner_id,
                         const Airmesh__V1__RecordingChunk *c);

int am_pods_get(am_store *s, const char *org, const char *pod_id, Airmesh__V1__Pod **out);
/* 1 when the state is final (exited, failed, stopped). */
int am_pods_ended(const Airmesh__V1__Pod *p);
/* Remove an ended pod's record and recording. -AM_ESTATE when it is still active. */
int am_pods_delete(am_store *s, const char *data_dir, const char *org, const char *pod_id,
                   const am_txn_hook *hook);
/* Path of the pod's recording file (it may not exist). */
void am_pods_recording_path(const char *data_dir, const char *org, const char *pod_id, char *out,
                            size_t cap);
/* Active pods of runner_id that are not in running[] (and not pending for under 10 s): the
 * pods a reconnecting runner lost. Up to cap ids into lost. */
int am_pods_lost(am_store *s, const char *org, const char *runner_id, const char *const *running,
                 size_t n_running, char (*lost)[AM_POD_ID_LEN + 1], size_t cap, size_t *n);

#endif
