/*
 * appliance/ops — the domain layer: every state change of airmeshd, written once
 * (ARCHITECTURE.md §3). Each operation does, in this order:
 *   1. the role check: am_auth_can(who, action, target), the one table in appliance/auth;
 *      a refusal is an audit event ("denied") written here, and the operation returns -AM_EPERM;
 *   2. the LMDB write transaction (through appliance/auth, runners or pods);
 *   3. the audit append, INSIDE that transaction (an am_txn_hook): if the append fails (full
 *      disk: the audit writer's failure is sticky) the transaction aborts, the store is
 *      unchanged and the operation fails with the append's error;
 *   4. the publish: the record goes to the hub's live events (the console's Activity page), and
 *      what runners must hear goes out through the runner link.
 * Transports (appliance/http, appliance/rpc) parse, call one am_ops_* function, and render the
 * result; they never open store transactions or write audit records themselves (a test greps
 * for it). Reads that need no decision (lists, show) go through am_ops_get/am_ops_list.
 *
 * Runners are reached through the narrow am_ops_runner_link that appliance/rpc implements and
 * main.c injects (am_ops_set_runner_link): ops never includes rpc, so http → ops → (link) → rpc
 * has no cycle.
 *
 * Errors: 0 or -AM_E* with am_err_last() saying what, ready for the client (am_api_send_rc maps
 * codes to HTTP): -AM_EINVAL bad input, -AM_EAUTH not authenticated, -AM_EPERM role refused,
 * -AM_ENOTFOUND no such thing in the caller's org (never "forbidden": existence must not leak),
 * -AM_EEXISTS / -AM_ESTATE conflict, -AM_ELIMIT locked out, -AM_EUNAVAIL runner unreachable,
 * anything else internal.
 * Threads: every function may be called from any thread (the store serialises writers, the
 * audit log and hub are thread-safe). Ownership: am_ops_new/am_ops_free; ops borrows everything
 * in its config. Records returned through out-parameters belong to the caller
 * (protobuf_c_message_free_unpacked).
 */
#ifndef AM_APPLIANCE_OPS_H
#define AM_APPLIANCE_OPS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "airmesh/v1/runner.pb-c.h"
#include "airmesh/v1/store.pb-c.h"
#include "appliance/audit/audit.h"
#include "appliance/auth/auth.h"
#include "appliance/gateway/core.h"
#include "appliance/hub/hub.h"
#include "appliance/pods/pods.h"
#include "appliance/runners/runners.h"
#include "appliance/store/store.h"
#include "pki/pki.h"

typedef struct am_ops am_ops;

/* The runner link: queue one message on a connected runner's stream. 0, or -AM_E* (not
 * connected, queue full). Implemented by appliance/rpc (am_rpc_send). */
typedef int (*am_ops_send_fn)(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m);
/* Where audit records go. NULL = am_audit_append on config.audit; tests pass a writer that can
 * fail like a full disk. */
typedef int (*am_ops_audit_fn)(void *ctx, const Airmesh__V1__AuditRecord *r, uint64_t *seq);

typedef struct {
    am_store *store;
    am_audit *audit;
    am_hub *hub;
    am_ca *ca;                /* enrollment and renewal (may be NULL in tests without runners) */
    const char *data_dir;     /* recordings live under it */
    uint64_t session_ttl_ms;  /* login session lifetime */
    uint64_t session_idle_ms; /* idle timeout */
    uint32_t cert_days;       /* runner certificate lifetime (default 7) */
    am_pod_defaults pod_defaults; /* limits a create request leaves out (config pod_* keys) */
    am_ops_audit_fn audit_fn;     /* NULL = the audit log */
    void *audit_ctx;
} am_ops_config;

int am_ops_new(const am_ops_config *c, am_ops **out);
void am_ops_free(am_ops *o);
/* Inject the runner link (main.c, once rpc runs; NULL fn = no runners reachable). */
void am_ops_set_runner_link(am_ops *o, am_ops_send_fn fn, void *ctx);

/* A connected runner as its client certificate names it (never a message field). */
typedef struct {
    const char *runner_id;
    const char *org;
    const char *source; /* peer address */
} am_ops_peer;

/* ---- reads (no decision, no audit) ---- */

/* Resolve a bearer secret (am_auth_check with the configured idle timeout). */
int am_ops_authenticate(am_ops *o, const char *token, am_principal *who);
/* One record of org ("" = global) from db, or -AM_ENOTFOUND. */
int am_ops_get(am_ops *o, am_db db, const char *org, const char *id,
               const ProtobufCMessageDescriptor *d, ProtobufCMessage **out);
/* Every record of org in db, in key order (am_txn_list's contract). */
int am_ops_list(am_ops *o, am_db db, const char *org, const ProtobufCMessageDescriptor *d,
                am_store_list_fn fn, void *ud);
/* Path of a pod's stored recording. */
void am_ops_recording_path(am_ops *o, const char *org, const char *pod_id, char *out, size_t cap);
am_hub *am_ops_hub(am_ops *o);
am_ca *am_ops_ca(am_ops *o);
uint64_t am_ops_session_ttl_ms(am_ops *o);

/* ---- sessions ---- */

/* Log in (audits auth.login ok/denied). -AM_EAUTH wrong user/password/disabled (one message),
 * -AM_ELIMIT locked out ("try again in N s"). */
int am_ops_login(am_ops *o, const char *org, const char *user, const char *password,
                 const char *source, char token_out[AM_AUTH_TOKEN_LEN + 1], uint64_t *expires_ms,
                 am_principal *who);
/* am_ops_login in two halves, for a caller that runs the slow one (one argon2id verify and
 * the session write) on a worker pool: begin returns the login's result; done, called with it
 * (on any thread, e.g. back on the http thread), audits the outcome (note: details
 * {"note": note}, e.g. that the client left before the answer) and, when a success cannot be
 * audited, ends the new session again and fails. done returns the operation's result. */
int am_ops_login_begin(am_ops *o, const char *org, const char *user, const char *password,
                       const char *source, char token_out[AM_AUTH_TOKEN_LEN + 1],
                       uint64_t *expires_ms, am_principal *who);
int am_ops_login_done(am_ops *o, const char *org, const char *user, const char *source, int rc,
                      char token_out[AM_AUTH_TOKEN_LEN + 1], const am_principal *who,
                      const char *note);
int am_ops_logout(am_ops *o, const am_principal *who, const char *source, const char *token);
/* A login refused before any password was checked (throttled, the worker pool busy): audited
 * auth.login denied with {"reason": reason}. Returns -AM_ELIMIT. */
int am_ops_login_refused(am_ops *o, const char *org, const char *user, const char *source,
                         const char *reason);
/* Any other request refused before its operation ran (e.g. reason "busy": no worker free):
 * audited `action` denied with {"reason": reason}. Returns -AM_EUNAVAIL. */
int am_ops_refused(am_ops *o, const am_principal *who, const char *source, const char *action,
                   const char *target, const char *reason);

/* ---- organizations, users, teams, API tokens ---- */

/* display_name (here and in the user, team and pod creates): NULL = none, else checked with
 * am_display_name_check (common/display_name.h; -AM_EINVAL naming the rule, nothing created). */
int am_ops_org_create(am_ops *o, const am_principal *who, const char *source, const char *id,
                      const char *name, const char *display_name, const char *owner,
                      const char *password, char *pw_out, size_t pw_cap);
/* An org's pod limit policy (appliance/pods/limits.c). org NULL = the caller's; another org is
 * -AM_ENOTFOUND. get: any role of the org. set: admin or owner (AM_CAN_ORG_LIMITS); replaces the
 * policy whole, audited "org.limits" with the new policy; bad values -AM_EINVAL, nothing changed.
 */
int am_ops_org_limits_get(am_ops *o, const am_principal *who, const char *org, am_org_limits *out);
int am_ops_org_limits_set(am_ops *o, const am_principal *who, const char *source, const char *org,
                          const am_org_limits *l);
/* An org's egress allow list (appliance/pods/egress.c): "host:port"s pods with network
 * "allow" may reach. org NULL = the caller's; another org is -AM_ENOTFOUND. get: any role of the
 * org (*out: free with am_pods_egress_allow_free). set: admin or owner (AM_CAN_EGRESS_ALLOW);
 * replaces the list whole (n = 0 clears it), audited "org.egress_allow" with the new list; bad
 * entries -AM_EINVAL, nothing changed. */
int am_ops_org_egress_allow_get(am_ops *o, const am_principal *who, const char *org, char ***out,
                                size_t *n);
int am_ops_org_egress_allow_set(am_ops *o, const am_principal *who, const char *source,
                                const char *org, const char *const *allow, size_t n);
/* role_name NULL = member. pw_out (>= 32 bytes) gets a random password when password is NULL. */
int am_ops_user_create(am_ops *o, const am_principal *who, const char *source, const char *name,
                       const char *role_name, const char *display_name, const char *password,
                       char *pw_out, size_t pw_cap);
int am_ops_user_set_disabled(am_ops *o, const am_principal *who, const char *source,
                             const char *name, int disabled);
int am_ops_user_delete(am_ops *o, const am_principal *who, const char *source, const char *name);
int am_ops_user_set_role(am_ops *o, const am_principal *who, const char *source, const char *name,
                         const char *role_name);
/* Own password: current is required below the admin role. Others': admin, up to own role. */
int am_ops_user_set_password(am_ops *o, const am_principal *who, const char *source,
                             const char *name, const char *password, const char *current);
int am_ops_user_revoke_sessions(am_ops *o, const am_principal *who, const char *source,
                                const char *name, size_t *n);
int am_ops_team_change(am_ops *o, const am_principal *who, const char *source, const char *team,
                       const char *user, am_team_op op);
/* AM_TEAM_CREATE with a display name. */
int am_ops_team_create(am_ops *o, const am_principal *who, const char *source, const char *team,
                       const char *display_name);

/* Display names (issue 14; names.c): set (display_name non-NULL, checked with
 * am_display_name_check) or clear (NULL: the id is shown again) the display name of a user,
 * team or pod of the caller's org, or of the caller's org itself (id NULL or the org's id;
 * another org: -AM_ENOTFOUND). Who may: users and teams AM_CAN_MANAGE_USERS (a user's role no
 * higher than the caller's), the org AM_CAN_ORG_RENAME, a pod its starter or AM_CAN_POD_OTHERS
 * (and AM_CAN_POD_WRITE). Audited "user.display_name" / "team.display_name" /
 * "org.display_name" / "pod.display_name" with {"display_name": the new name or null}, also
 * when it is unchanged; bad input -AM_EINVAL and nothing changes. */
typedef enum { AM_NAMED_USER, AM_NAMED_TEAM, AM_NAMED_ORG, AM_NAMED_POD } am_named_kind;
int am_ops_display_name_set(am_ops *o, const am_principal *who, const char *source,
                            am_named_kind kind, const char *id, const char *display_name);
/* role_name NULL = the caller's role; ttl NULL = 30d (at most 366d). */
int am_ops_api_token_create(am_ops *o, const am_principal *who, const char *source,
                            const char *name, const char *role_name, const char *ttl,
                            char token_out[AM_AUTH_TOKEN_LEN + 1], char id_out[13],
                            uint64_t *expires_ms, int *role_out);
/* Admins revoke any token of their org, others only their own (else -AM_ENOTFOUND). */
int am_ops_api_token_revoke(am_ops *o, const am_principal *who, const char *source, const char *id);

/* ---- the runner fleet ---- */

/* org NULL = the caller's (another org: -AM_ENOTFOUND); ttl_ms at most 30 days. */
int am_ops_runner_token_create(am_ops *o, const am_principal *who, const char *source,
                               const char *org, uint64_t ttl_ms, const am_labels *labels,
                               char secret_out[AM_TOKEN_SECRET_LEN + 1], char id_out[13],
                               uint64_t *expires_ms);
int am_ops_runner_token_revoke(am_ops *o, const am_principal *who, const char *source,
                               const char *id);
/* Revoke in the store, audit, then close its live stream at once. */
int am_ops_runner_revoke(am_ops *o, const am_principal *who, const char *source,
                         const char *runner_id);

/* The runner protocol (appliance/rpc hands each message here). */
int am_ops_runner_enroll(am_ops *o, const char *source, const char *token, const uint8_t *csr_der,
                         size_t csr_len, const char *hostname, const char *version,
                         const am_labels *labels, am_enrolled *out);
/* A Connect call: peer->runner_id NULL when there was no verified client certificate. 0 when the
 * runner may stay connected (audited runner.connect ok), else -AM_EAUTH (audited denied). */
int am_ops_runner_connect(am_ops *o, const am_ops_peer *peer, uint64_t serial);
/* Hello: record what the runner says, mark its pods that did not survive as failed. */
int am_ops_runner_hello(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__Hello *h);
int am_ops_runner_disconnect(am_ops *o, const am_ops_peer *peer);
int am_ops_runner_renew(am_ops *o, const am_ops_peer *peer, const uint8_t *csr_der, size_t csr_len,
                        am_enrolled *out);
/* A message the runner should not have sent (malformed): audited denied. */
int am_ops_runner_refused(am_ops *o, const am_ops_peer *peer, const char *why);

/* ---- pods ---- */

/* Record the pod, hand CreatePod to its runner; an unreachable runner marks it failed
 * (-AM_EUNAVAIL). *out: the record as created (caller frees), also on -AM_EUNAVAIL (NULL
 * otherwise). */
int am_ops_pod_create(am_ops *o, const am_principal *who, const char *source,
                      const am_pod_spec *spec, Airmesh__V1__Pod **out);
/* StopPod to its runner (a pending pod of an offline runner is marked stopped). -AM_EUNAVAIL
 * when the runner is offline and the pod already started. */
int am_ops_pod_stop(am_ops *o, const am_principal *who, const char *source, const char *pod_id);
int am_ops_pod_delete(am_ops *o, const am_principal *who, const char *source, const char *pod_id);
/* Share a pod (or stop sharing): its starter or an admin/owner; audited pod.share with
 * {"shared": bool}. A member may take control of, type into and stop a pod another user
 * started only when it is shared (AM_CAN_POD_OTHERS otherwise): am_ops_pod_stop and the
 * terminal's take refuse with -AM_EPERM and a denied record. */
int am_ops_pod_share(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                     int shared);
/* Type a prompt into a running pod's terminal (appliance/ops/prompt.c): control characters
 * other than tab and newline removed, then a bracketed paste and Enter (am_agents_prompt_bytes).
 * holder: the user id holding the web terminal's input control now, or NULL. Allowed: the
 * holder, or an admin/owner (AM_CAN_POD_OTHERS); when nobody holds control, also the pod's
 * starter. Audited pod.prompt with {"length": N} (never the text); a refusal is a denied record.
 * -AM_EINVAL bad text (empty, > 64 KiB), -AM_ESTATE the pod is not running, -AM_EPERM,
 * -AM_ENOTFOUND, -AM_EUNAVAIL its runner is unreachable. *sent: the text's bytes after
 * stripping. */
int am_ops_pod_prompt(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                      const char *holder, const char *text, size_t len, size_t *sent);
/* The web terminal's input control (take = 1 / release = 0): audited. */
int am_ops_terminal_control(am_ops *o, const am_principal *who, const char *source,
                            const char *pod_id, int take);
/* Input control taken from another holder (user from_user; why: "taken over" or "idle"):
 * audited as pod.terminal.take with {"from": "user:<from_user>", "why"}. The caller decided the
 * take-over is allowed (ws_terminal.c's rules); the input role is checked here. */
int am_ops_terminal_take_over(am_ops *o, const am_principal *who, const char *source,
                              const char *pod_id, const char *from_user, const char *why);
/* Keystrokes or a resize for the pod's runner (needs the input role, and on a pod another user
 * started and did not share AM_CAN_POD_OTHERS; not audited one by one). */
int am_ops_terminal_send(am_ops *o, const am_principal *who, const char *runner_id,
                         Airmesh__V1__ApplianceMessage *m);
/* From runners: a PodStatus, terminal output (into the hub's ring), a recording chunk. */
int am_ops_pod_status(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__PodStatus *st);
int am_ops_pod_output(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__TerminalOutput *out);
int am_ops_pod_recording(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__RecordingChunk *c);
/* From runners: what a pod's agent is doing (appliance/ops/agentstate.c). -AM_EINVAL bad
 * state/source/message, -AM_EAUTH a pod of another runner, -AM_ENOTFOUND no such pod; an ended
 * pod or a repeated state: 0, no change. Audited and published as pod.agent_state. */
int am_ops_pod_agent_state(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__AgentState *as);

/* ---- model endpoints (ops/models.c) ---- */

/* What an admin gives to add an endpoint; am_ops_model_add validates every field (-AM_EINVAL
 * with the field's rule, nothing stored). */
typedef struct {
    const char *name;   /* 1-64 of [a-z0-9._-], starting with a letter or digit */
    const char *api;    /* "openai" | "anthropic" */
    const char *url;    /* http(s)://host[:port][/path]; no userinfo, query or fragment; at most
                         * 512 bytes; trailing '/' dropped. An openai base includes /v1
                         * (as OPENAI_BASE_URL takes it), an anthropic one does not
                         * (as ANTHROPIC_BASE_URL): README "Model endpoints" */
    const char *key;    /* the real API key; NULL or "" = none; at most 4 KiB, printable ASCII */
    const char *ca_pem; /* PEM certificate(s) to trust for an https url; NULL or "" = system's */
    const char *const *models; /* served models (at most 64, each 1-128 printable ASCII bytes
                                * without spaces, no duplicates); none = whatever is listed */
    size_t n_models;
} am_model_spec;

/* The self-test (appliance/gateway/selftest, injected by main.c): run the checks against e,
 * with its real key and CA, and return the result in *out: a message built with one malloc per
 * field (as protobuf-c's unpack with the default allocator builds them), so
 * protobuf_c_message_free_unpacked(*out, NULL) frees it. A failed check is a result, not an
 * error: the return value is 0 unless no result could be made (out of memory). Slow (network):
 * ops calls it on the caller's thread, outside any transaction. */
typedef int (*am_ops_model_test_fn)(void *ctx, const Airmesh__V1__ModelEndpoint *e,
                                    Airmesh__V1__ModelSelfTest **out);
/* Inject the self-test (NULL fn: results say "self-test not available"). */
void am_ops_set_model_tester(am_ops *o, am_ops_model_test_fn fn, void *ctx);

/* Records handed out by these calls are redacted: key is always empty (the real key never
 * leaves ops except to the self-test and the gateway, which read the store); *has_key (may be
 * NULL) says whether one is set. */

/* Add (admin or owner: AM_CAN_MODELS): validate, refuse an existing name (-AM_EEXISTS), run the
 * self-test, then store the endpoint with it as last_test, even when the test failed (the
 * result says why). Audited "model.add" (target "model:<name>", details: api, url, models,
 * has_key, has_ca and the test's summary; never the key). *out: the stored record. */
int am_ops_model_add(am_ops *o, const am_principal *who, const char *source, const am_model_spec *s,
                     Airmesh__V1__ModelEndpoint **out, int *has_key);
/* Remove (AM_CAN_MODELS); audited "model.rm". -AM_ENOTFOUND when there is none. */
int am_ops_model_rm(am_ops *o, const am_principal *who, const char *source, const char *name);
/* Re-run the self-test (AM_CAN_MODELS) and store it as last_test; audited "model.test" with
 * the summary. -AM_ENOTFOUND when there is none (or it was removed meanwhile). */
int am_ops_model_test(am_ops *o, const am_principal *who, const char *source, const char *name,
                      Airmesh__V1__ModelEndpoint **out, int *has_key);
/* Any role of the org (AM_CAN_READ). */
int am_ops_model_get(am_ops *o, const am_principal *who, const char *name,
                     Airmesh__V1__ModelEndpoint **out, int *has_key);
/* Called per endpoint of who's org in name order with a redacted record (valid during the
 * call); return 0 to go on (am_txn_list's contract otherwise). */
typedef int (*am_ops_model_fn)(void *ud, const Airmesh__V1__ModelEndpoint *e, int has_key);
int am_ops_model_list(am_ops *o, const am_principal *who, am_ops_model_fn fn, void *ud);
/* The field rules alone (no store, no audit): 0 or -AM_EINVAL naming the field. */
int am_ops_model_validate(const am_model_spec *s);
/* From runners: an egress decision of a pod's proxy (EgressEvent). Only the pod's own runner
 * may report (-AM_EAUTH otherwise, logged, nothing recorded). Audited "pod.egress", actor
 * "pod:<id>", result ok (connect, close) or denied (refused), details kind/host/port/reason/
 * bytes/duration; published to the org's event stream. */
int am_ops_pod_egress(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__EgressEvent *ev);

/* ---- the audit log ---- */

/* Owners: audit "audit.export" first (so the file records who took it), then write the export
 * of [since, until) to fd (the caller's). */
int am_ops_audit_export(am_ops *o, const am_principal *who, const char *source,
                        const char *root_pem, uint64_t since_ms, uint64_t until_ms, int fd,
                        am_audit_export_info *info);

/* ---- the model gateway (issue 12; appliance/gateway's thread and the io pool call these) ---- */

/* What a pod's request asks for. model NULL = a listing (GET /v1/models: no endpoint chosen). */
typedef struct {
    const char *pod_id;
    const char *key; /* the virtual key it sent (Authorization: Bearer or x-api-key), "" = none */
    const char *api; /* "openai" | "anthropic": what its path speaks */
    const char *model;
} am_ops_gw_ask;

typedef struct {
    char org[AM_STORE_ID_MAX + 1];
    char pod[AM_STORE_ID_MAX + 1];
    char user[AM_STORE_ID_MAX + 1];       /* who started the pod (user id) */
    Airmesh__V1__ModelEndpoint *endpoint; /* with its real key; am_ops_gateway_grant_free */
} am_ops_gw_grant;

/* May the pod's request go upstream? The pod must be in the sending runner's org and be that
 * runner's (else -AM_EPERM), the key must hash to its gateway_key_sha256 (-AM_EAUTH), it must be
 * starting or running with network models or allow (-AM_EPERM), the org under its token quota
 * today (-AM_ELIMIT), and an org endpoint of ask->api must serve ask->model (-AM_ENOTFOUND; an
 * endpoint listing the model wins over one with no list). out->org/pod/user are filled as soon
 * as the pod is known (also on the later refusals). Reads only: the caller records the outcome
 * with am_ops_gateway_record. */
int am_ops_gateway_admit(am_ops *o, const am_ops_peer *peer, const am_ops_gw_ask *ask,
                         am_ops_gw_grant *out);
void am_ops_gateway_grant_free(am_ops_gw_grant *g);

/* A finished (or refused) gateway request. */
typedef struct {
    const char *org, *pod_id, *user_id, *source;
    int pod_known; /* the pod is the org's: count it on the pod and user counters too */
    const char *endpoint, *model, *path;
    uint64_t tokens_in, tokens_out, duration_ms, start_ms;
    uint32_t status;
    int stream;
    const char *result; /* "ok" | "denied" (policy, quota: counted refused) | "error" */
    const char *reason; /* why it was refused or failed, or NULL */
} am_ops_gw_done;

/* The usage counters (core.h's scopes) and one audit record model.request (actor pod:<id>,
 * details endpoint, model, path, tokens_in, tokens_out, status, duration_ms, stream, reason),
 * in one transaction. Slow (fsync): the gateway runs it on the io worker pool. */
int am_ops_gateway_record(am_ops *o, const am_ops_gw_done *d);
/* n of them in one transaction (one fsync): the gateway batches what finished meanwhile. */
int am_ops_gateway_record_many(am_ops *o, const am_ops_gw_done *d, size_t n);

/* The org's model token quota (Org.model_tokens_per_day; 0 = none) and today's usage. org NULL
 * = the caller's; another org -AM_ENOTFOUND. get: any role; set: admin or owner
 * (AM_CAN_MODEL_QUOTA), audited org.model_quota {"tokens_per_day"}. */
int am_ops_model_quota_get(am_ops *o, const am_principal *who, const char *org,
                           uint64_t *tokens_per_day, am_gw_counts *today);
int am_ops_model_quota_set(am_ops *o, const am_principal *who, const char *source, const char *org,
                           uint64_t tokens_per_day);
/* ---- tickets (ops/tickets.c; issue 13) ----
 * A ticket of the caller's org, keyed by its KEY ("DEFAULT-12"; lower case accepted). Reads: any
 * role; writes: AM_CAN_TICKETS_WRITE (member+); reopening done → todo: AM_CAN_TICKETS_REOPEN or
 * the ticket's assignee. Another org's ticket is -AM_ENOTFOUND. Audited ticket.create,
 * ticket.update (details: the changed fields, status {from, to}), ticket.comment. */
typedef struct {
    const char *title, *description, *status, *priority, *assignee, *parent; /* NULL = unchanged */
    int set_labels;
    const char *const *labels;
    size_t n_labels;
    int set_blocks; /* replace the keys this ticket blocks (blocked_by of the others follows) */
    const char *const *blocks;
    size_t n_blocks;
} am_ticket_spec;

typedef struct {
    const char *status, *assignee, *label, *text; /* NULL/"" = any; text: key, title, description */
} am_ticket_filter;

typedef int (*am_ops_ticket_fn)(void *ud, const Airmesh__V1__Ticket *t);

/* Titles are required at create; status defaults to backlog, priority to none. */
int am_ops_ticket_create(am_ops *o, const am_principal *who, const char *source,
                         const am_ticket_spec *s, Airmesh__V1__Ticket **out);
int am_ops_ticket_update(am_ops *o, const am_principal *who, const char *source, const char *key,
                         const am_ticket_spec *s, Airmesh__V1__Ticket **out);
int am_ops_ticket_comment(am_ops *o, const am_principal *who, const char *source, const char *key,
                          const char *body, Airmesh__V1__Ticket **out);
int am_ops_ticket_get(am_ops *o, const am_principal *who, const char *key,
                      Airmesh__V1__Ticket **out);
/* Every matching ticket of the caller's org, in key order. */
int am_ops_ticket_list(am_ops *o, const am_principal *who, const am_ticket_filter *f,
                       am_ops_ticket_fn fn, void *ud);
/* "Start a pod": am_ops_pod_create with spec (its branch and prompt are set here: the key lower
 * cased, the ticket's text), then the pod is recorded on the ticket and it moves to in_progress
 * (in_review at once when the pod already ended). A done ticket is -AM_ESTATE. */
int am_ops_ticket_start(am_ops *o, const am_principal *who, const char *source, const char *key,
                        const am_pod_spec *spec, Airmesh__V1__Ticket **ticket_out,
                        Airmesh__V1__Pod **pod_out);
/* 1 when from → to is an allowed status move (reopen done → todo included), 0 otherwise. */
int am_ticket_transition_ok(const char *from, const char *to);
/* ---- channels (issue 13; appliance/ops/channels.c) ----
 * Per org, named [a-z0-9][a-z0-9_-]{0,63}; members "user:<id>" and "pod:<id>". Readable by
 * everyone of the org (AM_CAN_READ); creating, joining and posting need AM_CAN_CHANNELS, posting
 * membership too. Audited channel.create / channel.member / channel.message / channel.mention
 * (never the text). An @mention of a pod (@p-<id> or @<its display name>) whose poster may
 * prompt it (ops_prompt_may) is queued and typed into the pod as a prompt
 * "[#<channel>, from <user>]: <text>" once its agent is waiting or idle, exactly once.
 * A pod caller (who.pod_id) is the member "pod:<id>": it reads and posts only where it is a
 * member (-AM_EPERM otherwise), adds only pods it has an active write binding to (and its
 * starter), never joins by itself; its mentions need a write binding to the mentioned pod. */
#define AM_CHANNEL_TEXT_MAX (16u << 10)
#define AM_CHANNEL_MENTIONS_MAX 8
#define AM_CHANNEL_MEMBERS_MAX 256
int am_ops_channel_create(am_ops *o, const am_principal *who, const char *source, const char *name,
                          const char *const *members, size_t n_members);
/* member NULL = the caller (join / leave); add != 0 adds, else removes. */
int am_ops_channel_member(am_ops *o, const am_principal *who, const char *source, const char *name,
                          const char *member, int add);
/* *out (caller frees) is the stored message with each mention's state and reason. */
int am_ops_channel_post(am_ops *o, const am_principal *who, const char *source, const char *name,
                        const char *text, size_t len, Airmesh__V1__ChannelMessage **out);
/* The channel (AM_CAN_READ; -AM_ENOTFOUND when none in the caller's org). Caller frees. */
int am_ops_channel_get(am_ops *o, const am_principal *who, const char *name,
                       Airmesh__V1__Channel **out);
/* Messages in seq order: after > 0: the first `limit` with seq > after; else the last `limit`
 * with seq < before (before 0 = the newest). *more = 1 when more lie beyond the page. */
typedef int (*am_ops_channel_msg_fn)(void *ud, const Airmesh__V1__ChannelMessage *m);
int am_ops_channel_messages(am_ops *o, const am_principal *who, const char *name, uint64_t before,
                            uint64_t after, size_t limit, am_ops_channel_msg_fn fn, void *ud,
                            int *more);

/* ---- pods acting through airmesh-mcp (issue 13; ops/mcp.c) ---- */

/* The principal of pod_id for a call relayed by runner peer: the pod must be that runner's and
 * its org's, starting or running, its starter an enabled user of the org; who gets user_id = the
 * starter, org_id, role = min(the starter's current role, member), pod_id. Otherwise -AM_EAUTH
 * (audited "mcp.call" denied with the reason; another runner's pod looks like none). *pod: the
 * pod's record (caller frees; NULL on error). */
int am_ops_pod_principal(am_ops *o, const am_ops_peer *peer, const char *pod_id, am_principal *who,
                         Airmesh__V1__Pod **pod);
/* The one record per MCP tool call: "mcp.call", actor "pod:<id>", target (e.g. "ticket:X"
 * or "pod:Y"; NULL = the pod), result "ok" | "denied" | "error", details {"tool": tool, "error":
 * error (when non-NULL)}. */
int am_ops_mcp_audit(am_ops *o, const am_principal *who, const char *source, const char *tool,
                     const char *target, const char *result, const char *error);

/* ---- bindings (issue 13; ops/bindings.c) ----
 * Directed pod → pod, scopes "read" and/or "write" (Binding in store.proto). Requested by a pod
 * (who.pod_id = from) or by a user who may control both pods (their starter or
 * AM_CAN_POD_OTHERS); active at once under the org's policy "same_creator" when both pods have
 * the same starter, else pending until accepted by to_pod (the pod itself through MCP, or a user
 * who may control it). Audited binding.request / binding.accept / binding.reject /
 * binding.unbind; published on the org's events. */
int am_ops_binding_request(am_ops *o, const am_principal *who, const char *source,
                           const char *from_pod, const char *to_pod, const char *const *scopes,
                           size_t n_scopes, uint64_t ttl_ms, Airmesh__V1__Binding **out);
/* accept = 1 accepts, 0 rejects (reason may be NULL). Only a pending binding (-AM_ESTATE). */
int am_ops_binding_decide(am_ops *o, const am_principal *who, const char *source, const char *id,
                          int accept, const char *reason, Airmesh__V1__Binding **out);
/* Either side (its pod, or a user who may control one of them) ends it. */
int am_ops_binding_end(am_ops *o, const am_principal *who, const char *source, const char *id);
typedef int (*am_ops_binding_fn)(void *ud, const Airmesh__V1__Binding *b);
/* The org's bindings (pod NULL = all, else those from or to it), in key order. A pod caller
 * sees only its own. */
int am_ops_binding_list(am_ops *o, const am_principal *who, const char *pod, am_ops_binding_fn fn,
                        void *ud);
/* 0 when an active, unexpired binding from → to with scope exists in org, else -AM_EPERM
 * naming what is missing ("pod p-a has no active read binding to p-b"). Reads only. */
int am_ops_binding_allows(am_ops *o, const char *org, const char *from_pod, const char *to_pod,
                          const char *scope);
/* The org's policy ("same_creator" | "explicit"): set by AM_CAN_BINDING_POLICY (admin+),
 * audited org.binding_policy. */
int am_ops_binding_policy_set(am_ops *o, const am_principal *who, const char *source,
                              const char *org, const char *policy);
/* The org's policy as set ("same_creator" when none). Reads only. */
const char *am_ops_binding_policy(am_ops *o, const char *org);
/* What a binding is now: its state, or "expired" for a pending/active one past expires_ms. */
const char *am_ops_binding_state(const Airmesh__V1__Binding *b, uint64_t now_ms);
/* The binding as the REST API and the MCP tools show it (a new object): id, org_id, from_pod,
 * to_pod, scopes, state (am_ops_binding_state), created_by, created_ms, expires_ms, decided_by,
 * decided_ms, reason. */
json_t *am_ops_binding_json(const Airmesh__V1__Binding *b);

/* ---- one pod's screen and keyboard for another (issue 13; ops/podio.c) ----
 * A pod principal (who.pod_id) needs an active binding to pod_id: "read" for the snapshot,
 * "write" for input (-AM_EPERM naming it, audited denied). A user: AM_CAN_READ for the
 * snapshot; the terminal's input rules for input (AM_CAN_TERMINAL_INPUT, and their own or a
 * shared pod, or AM_CAN_POD_OTHERS). Another org's pod is -AM_ENOTFOUND. */
/* The last `lines` (1..1000; 0 = 50) lines of the pod's terminal output as plain text: from
 * the hub's ring, escape sequences and control characters removed, invalid UTF-8 dropped.
 * *text: malloc'd (caller frees); "" when the pod printed nothing yet. A pod's snapshot is
 * audited pod.snapshot {"lines"}; a user's is a read (not audited). */
int am_ops_pod_snapshot(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                        size_t lines, char **text);
/* The renderer behind it, on any bytes (a pod's output is untrusted; tests/fuzz): the last
 * `lines` lines (0 = all) of raw as text with no escape or control character but \t and \n,
 * valid UTF-8. *out: malloc'd. 0 or -AM_ENOMEM. */
int am_ops_screen_text(const uint8_t *raw, size_t n, size_t lines, char **out);
/* Type text into a running pod (control characters other than \t and \n removed; enter
 * appends a carriage return). At most 64 KiB; empty text needs enter. Audited pod.input
 * {"length": bytes sent, "by": "starter" | "shared" | "admin" | "binding:<id>"}. -AM_ESTATE
 * not running, -AM_EUNAVAIL its runner is unreachable. *sent: bytes sent. */
int am_ops_pod_input(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                     const char *text, size_t len, int enter, size_t *sent);

#endif
