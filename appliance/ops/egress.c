/*
 * appliance/ops/egress.c — the state changes and records of per-pod egress (common/egress.h):
 * the org's egress allow list (admins and owners set it; any role of the org reads it) and the
 * egress decisions runners report for their pods' CONNECT proxies (EgressEvent → audit
 * "pod.egress", published live to the org's events). Threads: any.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/log.h"

int am_ops_org_egress_allow_get(am_ops *o, const am_principal *who, const char *org, char ***out,
                                size_t *n) {
    *out = NULL;
    *n = 0;
    if (!org)
        org = who ? who->org_id : "";
    am_can_target t = {org, 0};
    int rc = am_auth_can(who, AM_CAN_READ, &t);
    if (rc)
        return rc;
    return am_pods_egress_allow_get(o->c.store, org, out, n);
}

int am_ops_org_egress_allow_set(am_ops *o, const am_principal *who, const char *source,
                                const char *org, const char *const *allow, size_t n) {
    if (!org)
        org = who ? who->org_id : "";
    char target[160];
    snprintf(target, sizeof target, "org:%.64s", org);
    ops_act a;
    ops_act_user(&a, o, who, "org.egress_allow", target, source);
    am_can_target t = {org, 0};
    int rc = ops_check(&a, who, AM_CAN_EGRESS_ALLOW, &t);
    if (rc)
        return rc;
    if ((rc = am_pods_egress_allow_validate(allow, n)) != 0)
        return rc;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, json_string(allow[i]));
    json_t *d = json_pack("{s:o}", "allow", list);
    char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s",
             ds && strlen(ds) < sizeof a.details ? ds : "{\"truncated\":true}");
    free(ds);
    return ops_act_done(&a, am_pods_egress_allow_set(o->c.store, org, allow, n, &a.hook));
}

static int valid_kind(const char *k) {
    return k && (strcmp(k, "connect") == 0 || strcmp(k, "refused") == 0 || strcmp(k, "close") == 0);
}

int am_ops_pod_egress(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__EgressEvent *ev) {
    if (!ev->pod_id || !valid_kind(ev->kind))
        return am_err_set(AM_EINVAL, "egress event: unknown kind '%.16s'",
                          ev->kind ? ev->kind : "");
    Airmesh__V1__Pod *p = NULL;
    if (am_pods_get(o->c.store, peer->org, ev->pod_id, &p) != 0 ||
        strcmp(p->runner_id, peer->runner_id) != 0) {
        if (p)
            protobuf_c_message_free_unpacked(&p->base, NULL);
        am_log_warn("ops", "egress event for a pod of another runner dropped",
                    "runner=%s pod=%.20s", peer->runner_id, ev->pod_id);
        return am_err_set(AM_EAUTH, "pod %.20s is not a pod of runner %s", ev->pod_id,
                          peer->runner_id);
    }
    protobuf_c_message_free_unpacked(&p->base, NULL);
    char actor[48];
    snprintf(actor, sizeof actor, "pod:%.32s", ev->pod_id);
    ops_act a;
    ops_act_init(&a, o, actor, peer->org, "pod.egress", actor, peer->source);
    json_t *d = json_pack("{s:s,s:s,s:i,s:s,s:I,s:I,s:I,s:s}", "kind", ev->kind, "host",
                          ev->host ? ev->host : "", "port", (int)ev->port, "reason",
                          ev->reason ? ev->reason : "", "bytes_up", (json_int_t)ev->bytes_up,
                          "bytes_down", (json_int_t)ev->bytes_down, "duration_ms",
                          (json_int_t)ev->duration_ms, "runner", peer->runner_id);
    char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s",
             ds && strlen(ds) < sizeof a.details ? ds : "{\"truncated\":true}");
    free(ds);
    return ops_record(&a, strcmp(ev->kind, "refused") == 0 ? "denied" : "ok");
}
