/*
 * appliance/ops/ops.c — the am_ops object, the reads transports may do, and the one commit path
 * (ops_act: audit record appended inside the operation's write transaction, published to the hub
 * after the commit). See ops.h for the order every operation follows.
 * Threads: any. An ops_act lives on the caller's stack for one operation.
 */
#include "appliance/ops/internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

int am_ops_new(const am_ops_config *c, am_ops **out) {
    if (!c || !c->store || (!c->audit && !c->audit_fn))
        return am_err_set(AM_EINVAL, "ops: a store and an audit log are required");
    am_ops *o = calloc(1, sizeof *o);
    if (!o)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    o->c = *c;
    if (!o->c.cert_days)
        o->c.cert_days = 7;
    if (!o->c.data_dir)
        o->c.data_dir = ".";
    *out = o;
    return 0;
}

void am_ops_free(am_ops *o) {
    free(o);
}

void am_ops_set_runner_link(am_ops *o, am_ops_send_fn fn, void *ctx) {
    o->send = fn;
    o->send_ctx = ctx;
}

/* ---- reads ---- */

int am_ops_authenticate(am_ops *o, const char *token, am_principal *who) {
    return am_auth_check(o->c.store, token, o->c.session_idle_ms, who);
}

int am_ops_get(am_ops *o, am_db db, const char *org, const char *id,
               const ProtobufCMessageDescriptor *d, ProtobufCMessage **out) {
    return am_store_get(o->c.store, db, org, id, d, out);
}

int am_ops_list(am_ops *o, am_db db, const char *org, const ProtobufCMessageDescriptor *d,
                am_store_list_fn fn, void *ud) {
    am_txn *t = NULL;
    int rc = am_store_begin(o->c.store, 0, &t);
    if (rc)
        return rc;
    rc = am_txn_list(t, db, org, d, fn, ud);
    am_txn_abort(t);
    return rc;
}

void am_ops_recording_path(am_ops *o, const char *org, const char *pod_id, char *out, size_t cap) {
    am_pods_recording_path(o->c.data_dir, org, pod_id, out, cap);
}

am_hub *am_ops_hub(am_ops *o) {
    return o->c.hub;
}

am_ca *am_ops_ca(am_ops *o) {
    return o->c.ca;
}

uint64_t am_ops_session_ttl_ms(am_ops *o) {
    return o->c.session_ttl_ms;
}

/* ---- the commit path ---- */

static int act_hook(am_txn *t, void *ud);

void ops_act_init(ops_act *a, am_ops *o, const char *actor, const char *org, const char *action,
                  const char *target, const char *source) {
    memset(a, 0, sizeof *a);
    a->o = o;
    snprintf(a->actor, sizeof a->actor, "%s", actor ? actor : "");
    snprintf(a->org, sizeof a->org, "%s", org ? org : "");
    snprintf(a->action, sizeof a->action, "%s", action ? action : "");
    snprintf(a->target, sizeof a->target, "%s", target ? target : a->actor);
    snprintf(a->result, sizeof a->result, "ok");
    snprintf(a->source, sizeof a->source, "%s", source ? source : "");
    a->hook.fn = act_hook;
    a->hook.ud = a;
}

void ops_actor_of(const am_principal *who, char *out, size_t cap) {
    if (who->pod_id[0])
        snprintf(out, cap, "pod:%s", who->pod_id);
    else
        snprintf(out, cap, "user:%s", who->user_id);
}

void ops_act_user(ops_act *a, am_ops *o, const am_principal *who, const char *action,
                  const char *target, const char *source) {
    char actor[160];
    ops_actor_of(who, actor, sizeof actor);
    ops_act_init(a, o, actor, who->org_id, action, target, source);
}

void ops_act_details(ops_act *a, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(a->details, sizeof a->details, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof a->details)
        snprintf(a->details, sizeof a->details, "{\"truncated\":true}");
}

void ops_act_error_details(ops_act *a, const char *msg) {
    json_t *d = json_pack("{s:s}", "error", msg ? msg : "");
    char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a->details, sizeof a->details, "%s", s && strlen(s) < sizeof a->details ? s : "{}");
    free(s);
}

static void fill_record(const ops_act *a, Airmesh__V1__AuditRecord *r) {
    airmesh__v1__audit_record__init(r);
    r->actor = (char *)a->actor;
    r->org_id = (char *)a->org;
    r->action = (char *)a->action;
    r->target = (char *)a->target;
    r->result = (char *)a->result;
    r->source = (char *)a->source;
    r->details = (char *)a->details;
    r->time_ms = a->time_ms;
    r->seq = a->seq;
}

int ops_act_append(ops_act *a) {
    if (a->skip || a->appended)
        return 0;
    a->time_ms = am_now_ms();
    Airmesh__V1__AuditRecord r;
    fill_record(a, &r);
    am_ops *o = a->o;
    int rc = o->c.audit_fn ? o->c.audit_fn(o->c.audit_ctx, &r, &a->seq)
                           : am_audit_append(o->c.audit, &r, &a->seq);
    if (rc) {
        char why[400];
        snprintf(why, sizeof why, "%s", am_err_last());
        am_log_error("ops", "audit append failed: operation refused", "action=%s error=\"%s\"",
                     a->action, why);
        return am_err_set(rc == -AM_EINVAL ? AM_EINVAL : AM_EIO,
                          "audit log: %s: nothing was changed", why);
    }
    a->appended = 1;
    return 0;
}

/* Inside the operation's transaction, last: a failed append aborts it. */
static int act_hook(am_txn *t, void *ud) {
    (void)t;
    return ops_act_append(ud);
}

static void publish(ops_act *a) {
    if (!a->appended || !a->o->c.hub)
        return;
    Airmesh__V1__AuditRecord r;
    fill_record(a, &r);
    json_t *j = am_audit_record_json(&r);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s)
        am_hub_event_publish(a->o->c.hub, a->org, s, strlen(s));
    free(s);
}

int ops_act_done(ops_act *a, int rc) {
    if (rc == 0) {
        publish(a);
        return 0;
    }
    if (a->appended) {
        /* The record went out but the commit did not: say so in the log as well. */
        char why[400];
        snprintf(why, sizeof why, "%s", am_err_last());
        publish(a);
        ops_act retry = *a;
        retry.appended = 0;
        retry.seq = 0;
        snprintf(retry.result, sizeof retry.result, "error");
        ops_act_error_details(&retry, why);
        if (ops_act_append(&retry) == 0)
            publish(&retry);
        am_err_set(rc, "%s", why);
    }
    return rc;
}

int ops_deny(ops_act *a, int refusal_rc) {
    char why[400];
    snprintf(why, sizeof why, "%s", am_err_last());
    snprintf(a->result, sizeof a->result, "denied");
    if (ops_act_append(a) == 0)
        publish(a);
    return am_err_set(refusal_rc, "%s", why);
}

int ops_record(ops_act *a, const char *result) {
    snprintf(a->result, sizeof a->result, "%s", result);
    int rc = ops_act_append(a);
    if (rc == 0)
        publish(a);
    return rc;
}

int ops_check(ops_act *a, const am_principal *who, am_action action, const am_can_target *t) {
    int rc = am_auth_can(who, action, t);
    if (rc == -AM_EPERM)
        return ops_deny(a, rc);
    return rc;
}

int ops_send(am_ops *o, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    if (!o->send)
        return am_err_set(AM_EUNAVAIL, "runner %s is not connected", runner_id);
    int rc = o->send(o->send_ctx, runner_id, m);
    if (rc)
        return am_err_set(AM_EUNAVAIL, "%s", am_err_last());
    return 0;
}

int ops_send_input(am_ops *o, const char *runner_id, const char *pod_id, const uint8_t *data,
                   size_t len) {
    Airmesh__V1__TerminalInput in = AIRMESH__V1__TERMINAL_INPUT__INIT;
    in.pod_id = (char *)pod_id;
    in.data.data = (uint8_t *)data;
    in.data.len = len;
    Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_INPUT;
    m.input = &in;
    return ops_send(o, runner_id, &m);
}
