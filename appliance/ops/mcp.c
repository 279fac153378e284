/*
 * appliance/ops/mcp.c — who a pod is when it calls airmesh's MCP tools (issue 13), and the one
 * audit record per call.
 *
 * am_ops_pod_principal turns "a line arrived on pod P's socket, relayed by runner R" into the
 * principal every tool runs as: P must be one of R's pods (the runner is the one whose client
 * certificate the stream carries; a pod of another runner or another org looks like none), be
 * starting or running, and its starter must still be an enabled user of the org; the principal
 * acts for that starter with the starter's current role, never above member (a pod never
 * administers), and pod_id set, so ops audits the actor as "pod:<id>". A refusal is one
 * "mcp.call" record with result denied and the reason.
 * Threads: any (appliance/mcp's workers).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "appliance/pods/pods.h"
#include "common/err.h"
#include "common/pod_state.h"

static int refuse(am_ops *o, const am_ops_peer *peer, const char *actor, const char *pod_id,
                  const char *source, int rc) {
    char target[160];
    snprintf(target, sizeof target, "pod:%.64s", pod_id);
    ops_act a;
    ops_act_init(&a, o, actor, peer->org ? peer->org : "", "mcp.call", target, source);
    ops_act_error_details(&a, am_err_last());
    return ops_deny(&a, rc);
}

int am_ops_pod_principal(am_ops *o, const am_ops_peer *peer, const char *pod_id, am_principal *who,
                         Airmesh__V1__Pod **pod) {
    memset(who, 0, sizeof *who);
    *pod = NULL;
    char runner[160], actor[160];
    snprintf(runner, sizeof runner, "runner:%.64s", peer->runner_id ? peer->runner_id : "");
    const char *org = peer->org ? peer->org : "";
    Airmesh__V1__Pod *p = NULL;
    if (!pod_id || !*pod_id || strlen(pod_id) >= sizeof who->pod_id ||
        am_pods_get(o->c.store, org, pod_id, &p) != 0 || !p->runner_id ||
        strcmp(p->runner_id, peer->runner_id ? peer->runner_id : "") != 0) {
        if (p)
            protobuf_c_message_free_unpacked(&p->base, NULL);
        am_err_set(AM_EAUTH, "MCP call refused: pod %.64s is not one of runner %.64s's pods",
                   pod_id ? pod_id : "", peer->runner_id ? peer->runner_id : "");
        return refuse(o, peer, runner, pod_id ? pod_id : "", runner, AM_EAUTH);
    }
    snprintf(actor, sizeof actor, "pod:%s", p->id);
    int rc = 0;
    if (!p->state || (strcmp(p->state, am_pod_state_name(AM_POD_STARTING)) != 0 &&
                      strcmp(p->state, am_pod_state_name(AM_POD_RUNNING)) != 0)) {
        am_err_set(AM_EAUTH, "MCP call refused: pod %s is %s", p->id,
                   p->state ? p->state : "unknown");
        rc = refuse(o, peer, actor, p->id, runner, AM_EAUTH);
        goto out;
    }
    const char *by = p->created_by ? p->created_by : "";
    const char *uid = strncmp(by, "user:", 5) == 0 ? by + 5 : "";
    ProtobufCMessage *um = NULL;
    if (!*uid || strlen(uid) >= sizeof who->user_id ||
        am_store_get(o->c.store, AM_DB_USERS, org, uid, &airmesh__v1__user__descriptor, &um) != 0) {
        am_err_set(AM_EAUTH, "MCP call refused: the user who started pod %s is gone", p->id);
        rc = refuse(o, peer, actor, p->id, runner, AM_EAUTH);
        goto out;
    }
    const Airmesh__V1__User *u = (const Airmesh__V1__User *)um;
    int disabled = u->disabled, role = (int)u->role;
    protobuf_c_message_free_unpacked(um, NULL);
    if (disabled) {
        am_err_set(AM_EAUTH, "MCP call refused: %s, who started pod %s, is disabled", uid, p->id);
        rc = refuse(o, peer, actor, p->id, runner, AM_EAUTH);
        goto out;
    }
    snprintf(who->user_id, sizeof who->user_id, "%s", uid);
    snprintf(who->org_id, sizeof who->org_id, "%s", org);
    snprintf(who->pod_id, sizeof who->pod_id, "%s", p->id);
    who->role = role < AIRMESH__V1__ROLE__ROLE_MEMBER ? role : AIRMESH__V1__ROLE__ROLE_MEMBER;
    who->superuser = 0;
out:
    if (rc) {
        memset(who, 0, sizeof *who);
        protobuf_c_message_free_unpacked(&p->base, NULL);
        return rc;
    }
    *pod = p;
    return 0;
}

int am_ops_mcp_audit(am_ops *o, const am_principal *who, const char *source, const char *tool,
                     const char *target, const char *result, const char *error) {
    char tgt[200];
    if (!target || !*target)
        snprintf(tgt, sizeof tgt, "pod:%s", who->pod_id);
    ops_act a;
    ops_act_user(&a, o, who, "mcp.call", target && *target ? target : tgt, source);
    json_t *d = json_pack("{s:s}", "tool", tool ? tool : "");
    if (d && error)
        json_object_set_new(d, "error", json_string(error));
    char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (s && strlen(s) < sizeof a.details)
        snprintf(a.details, sizeof a.details, "%s", s);
    else
        snprintf(a.details, sizeof a.details, "{\"tool\":\"%.60s\",\"truncated\":true}",
                 tool ? tool : "");
    free(s);
    return ops_record(&a, result ? result : "ok");
}
