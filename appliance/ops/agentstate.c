/*
 * appliance/ops/agentstate.c — a runner reports what a pod's agent is doing (AgentState:
 * working / waiting for input / idle, from the pod's own PTY; runner/pod/agentstate.h). Checked
 * (the pod must be a pod of that runner, in its org; state, source and message well formed),
 * stored (Pod.agent_state, agent_state_ms), audited `pod.agent_state` (actor runner:<id>,
 * target pod:<id>, details {state, source, message}) and so published on the hub's events
 * (/api/v1/events; the console raises its "waiting for input" notification from it). An ended
 * pod's state is final ("exited" etc.): later reports change nothing.
 * Threads: any (the rpc thread in practice).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/err.h"

static const char *const k_states[] = {"working", "waiting", "idle", NULL};
static const char *const k_sources[] = {"notify", "osc9",   "osc777", "title",
                                        "quiet",  "output", NULL};

static const char *one_of(const char *s, const char *const *list) {
    for (size_t i = 0; s && list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return list[i];
    return NULL;
}

/* At most AM_OPS_AGENT_MSG_MAX bytes of UTF-8 without control characters (the runner's
 * scanner sends nothing else; anything else is a broken or hostile runner). */
#define AM_OPS_AGENT_MSG_MAX 200
static int message_ok(const char *m) {
    size_t n = strlen(m);
    if (n > AM_OPS_AGENT_MSG_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (c < 0x20 || c == 0x7f)
            return 0;
        if (c == 0xc2 && i + 1 < n && (unsigned char)m[i + 1] <= 0x9f)
            return 0; /* C1 controls */
    }
    json_t *j = json_string(m); /* NULL unless valid UTF-8 */
    json_decref(j);
    return j != NULL;
}

int am_ops_pod_agent_state(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__AgentState *as) {
    const char *state = one_of(as->state, k_states);
    const char *source = one_of(as->source, k_sources);
    const char *msg = as->message ? as->message : "";
    if (!as->pod_id || !*as->pod_id || strlen(as->pod_id) > AM_POD_ID_LEN)
        return am_err_set(AM_EINVAL, "agent state: bad pod id");
    if (!state)
        return am_err_set(AM_EINVAL, "agent state: unknown state '%.32s'",
                          as->state ? as->state : "");
    if (!source)
        return am_err_set(AM_EINVAL, "agent state: unknown source '%.32s'",
                          as->source ? as->source : "");
    if (!message_ok(msg))
        return am_err_set(AM_EINVAL,
                          "agent state: the message must be at most %d bytes of "
                          "UTF-8 without control characters",
                          AM_OPS_AGENT_MSG_MAX);
    char actor[160], target[48];
    snprintf(actor, sizeof actor, "runner:%s", peer->runner_id);
    snprintf(target, sizeof target, "pod:%.32s", as->pod_id);
    ops_act a;
    ops_act_init(&a, o, actor, peer->org, "pod.agent_state", target, peer->source);
    json_t *d = json_pack("{s:s,s:s,s:s}", "state", state, "source", source, "message", msg);
    char *js = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (!js)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    snprintf(a.details, sizeof a.details, "%s", js); /* < 1024: 200 bytes, quotes escaped */
    free(js);
    /* A notification in the same state (a new question) is news too; a repeated title or
     * quiet report is not. */
    int renotify =
        *msg && (!strcmp(source, "notify") || !strcmp(source, "osc9") || !strcmp(source, "osc777"));
    am_pod_update u = {.org = peer->org,
                       .id = as->pod_id,
                       .runner = peer->runner_id,
                       .agent_state = state,
                       .agent_renotify = renotify};
    int rc = ops_act_done(&a, am_pods_update(o->c.store, &u, &a.hook));
    /* A pod that waits for input now gets its oldest queued channel @mention (channels.c). */
    if (rc == 0 && strcmp(state, "working") != 0)
        ops_channel_deliver(o, peer->org, as->pod_id);
    return rc;
}
