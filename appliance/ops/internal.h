/*
 * appliance/ops internals shared by its files (not a public header): the am_ops object and the
 * one commit path (am_ops_act) every operation uses.
 */
#ifndef AM_APPLIANCE_OPS_INTERNAL_H
#define AM_APPLIANCE_OPS_INTERNAL_H

#include "appliance/ops/ops.h"

struct am_ops {
    am_ops_config c;
    am_ops_send_fn send;
    void *send_ctx;
    am_ops_model_test_fn model_test; /* the endpoint self-test (ops/models.c) */
    void *model_test_ctx;
};

/* One audit record on its way: filled by ops_act_init, appended by the hook inside the
 * operation's transaction (once, however often the transaction re-runs), published after the
 * commit by ops_act_done. */
typedef struct {
    am_ops *o;
    char actor[160], org[130], action[64], target[200], result[16], source[130];
    char details[1024];
    int skip;     /* no record for this change (e.g. a "starting" pod state) */
    int appended; /* the record is in the audit log */
    uint64_t seq, time_ms;
    am_txn_hook hook;
} ops_act;

/* actor: "user:<id>" / "runner:<id>" / "system"; details: JSON object text or NULL. */
void ops_act_init(ops_act *a, am_ops *o, const char *actor, const char *org, const char *action,
                  const char *target, const char *source);
void ops_act_user(ops_act *a, am_ops *o, const am_principal *who, const char *action,
                  const char *target, const char *source);
/* who as an actor: "pod:<id>" for a pod acting through MCP, else "user:<id>". */
void ops_actor_of(const am_principal *who, char *out, size_t cap);
/* printf into details (a JSON object text). */
void ops_act_details(ops_act *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* details = {"error": msg} (escaped). */
void ops_act_error_details(ops_act *a, const char *msg);
/* Append now (an operation with no store change, or a refusal). 0 or the append's error. */
int ops_act_append(ops_act *a);
/* After the store call returned rc: on success publish; when the commit failed after the record
 * was appended, append a second record (result "error") saying so. Returns rc. */
int ops_act_done(ops_act *a, int rc);
/* Record a refusal (result "denied") and return refusal_rc with its message kept. */
int ops_deny(ops_act *a, int refusal_rc);
/* Audit-only operation: append result "ok"/"error" and publish; the append's error fails it. */
int ops_record(ops_act *a, const char *result);

/* The role check of step 1: am_auth_can, and on refusal the denied record (ENOTFOUND is not
 * audited: another org's resource must look like none). */
int ops_check(ops_act *a, const am_principal *who, am_action action, const am_can_target *t);

/* A display name given to a create (names.c): NULL = none (0, nothing written). Otherwise
 * checked (am_display_name_check) into out, and the record's details become
 * {"role": role (when non-NULL), "display_name": out}. -AM_EINVAL with the rule's message. */
int ops_display_name(ops_act *a, const char *in, char *out, size_t cap, const char *role);

/* The runner link (-AM_EUNAVAIL when none is injected or the send fails). */
int ops_send(am_ops *o, const char *runner_id, Airmesh__V1__ApplianceMessage *m);
/* Bytes typed into pod_id's terminal on runner_id: one TerminalInput through ops_send (not
 * audited here; the caller audits before it sends). */
int ops_send_input(am_ops *o, const char *runner_id, const char *pod_id, const uint8_t *data,
                   size_t len);

/* A pod state change from ops (system or runner actor): update + audit + hub end. */
int ops_pod_state(am_ops *o, const char *actor, const char *org, am_pod_update *u);

/* A pod reached a final state (pods.c, after the commit): the ticket it was started for, if
 * any, moves to in_review with the pod's branch attached (tickets.c; audited as actor). */
void ops_ticket_pod_ended(am_ops *o, const char *actor, const char *org, const char *pod_id);
/* May who prompt pod p (prompt.c): AM_CAN_TERMINAL_INPUT, and the input-control holder (NULL
 * or "" = nobody: the pod's starter) or AM_CAN_POD_OTHERS. 0, or -AM_EPERM with the reason. */
int ops_prompt_may(const am_principal *who, const Airmesh__V1__Pod *p, const char *holder);

/* Channels (channels.c): deliver the oldest queued @mention prompt of a pod that is waiting or
 * idle now (agentstate.c, and a post that mentions it); drop an ended pod's queue (pods.c). */
void ops_channel_deliver(am_ops *o, const char *org, const char *pod_id);
void ops_channel_pod_ended(am_ops *o, const char *org, const char *pod_id);

/* Bindings (bindings.c): end every live binding from or to a pod that ended or was deleted
 * (pods.c; audited binding.unbind by "system"); find the active binding from → to with scope
 * (its id into id when non-NULL): 0 or -AM_EPERM naming what is missing. */
void ops_binding_pod_ended(am_ops *o, const char *org, const char *pod_id);
int ops_binding_find(am_ops *o, const char *org, const char *from_pod, const char *to_pod,
                     const char *scope, char *id, size_t cap);

#endif
