/*
 * appliance/ops/bindings.c — pod bindings (issue 13): a directed grant "pod A may read (see
 * its screen, its channel traffic) and/or write (type into it, @mention it) pod B", enforced by
 * ops on every pod-to-pod call (podio.c, channels.c, the MCP tools). The reference platform
 * stores such bindings and never checks them; here every pod principal's reach into another pod
 * goes through am_ops_binding_allows.
 *
 * Store: Binding in AM_DB_BINDINGS "<org>/<id>" (id "b-" + 12 hex). At most one live (pending
 * or active, unexpired) binding per (from, to): a new request ends the old one ("replaced by
 * <id>") and carries its scopes over (so a request widens, never silently narrows). Expiry
 * (expires_ms) is evaluated on read: past it a binding counts as ended everywhere (allows,
 * decide, the JSON's state "expired"), without a writer having to run.
 *
 * Policy (Org.binding_policy): "same_creator" (the default, "") activates a binding at once
 * when both pods have the same starter; "explicit" leaves every binding pending until the
 * target's side accepts it. Who may:
 *   request: a pod for itself as from_pod; a user who may control both pods (their starter, or
 *            AM_CAN_POD_OTHERS); AM_CAN_POD_WRITE in either case;
 *   decide:  to_pod itself, or a user who may control to_pod;
 *   end:     either pod, or a user who may control either.
 * Another org's pod or binding is -AM_ENOTFOUND. A pod that ends ends its bindings
 * (ops_binding_pod_ended, from pods.c). Every change is one transaction with its audit
 * records inside (binding.request / accept / reject / unbind, org.binding_policy), published on
 * the org's events, followed by {"type": "binding", "binding": {...}} for the topology view.
 * Threads: any.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define SCOPE_READ 1
#define SCOPE_WRITE 2
#define TTL_MAX_MS (30ull * 24 * 3600 * 1000)
#define REASON_MAX 256

static const char *state_str(const char *s) {
    return s ? s : "";
}

static int is_live_state(const Airmesh__V1__Binding *b) {
    return !strcmp(state_str(b->state), "pending") || !strcmp(state_str(b->state), "active");
}

static int is_live(const Airmesh__V1__Binding *b, uint64_t now) {
    return is_live_state(b) && (!b->expires_ms || now < b->expires_ms);
}

const char *am_ops_binding_state(const Airmesh__V1__Binding *b, uint64_t now_ms) {
    if (is_live_state(b) && b->expires_ms && now_ms >= b->expires_ms)
        return "expired";
    return state_str(b->state);
}

static int scope_mask(const Airmesh__V1__Binding *b) {
    int m = 0;
    for (size_t i = 0; i < b->n_scopes; i++)
        m |= !strcmp(b->scopes[i], "read")    ? SCOPE_READ
             : !strcmp(b->scopes[i], "write") ? SCOPE_WRITE
                                              : 0;
    return m;
}

json_t *am_ops_binding_json(const Airmesh__V1__Binding *b) {
    json_t *sc = json_array();
    for (size_t i = 0; i < b->n_scopes; i++)
        json_array_append_new(sc, json_string(b->scopes[i]));
    return json_pack("{s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:I,s:I,s:s,s:I,s:s}", "id", state_str(b->id),
                     "org_id", state_str(b->org_id), "from_pod", state_str(b->from_pod), "to_pod",
                     state_str(b->to_pod), "scopes", sc, "state",
                     am_ops_binding_state(b, am_now_ms()), "created_by", state_str(b->created_by),
                     "created_ms", (json_int_t)b->created_ms, "expires_ms",
                     (json_int_t)b->expires_ms, "decided_by", state_str(b->decided_by),
                     "decided_ms", (json_int_t)b->decided_ms, "reason", state_str(b->reason));
}

static void publish_binding(am_ops *o, const char *org, const Airmesh__V1__Binding *b) {
    if (!o->c.hub || !b)
        return;
    json_t *j = json_pack("{s:s,s:o}", "type", "binding", "binding", am_ops_binding_json(b));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s)
        am_hub_event_publish(o->c.hub, org, s, strlen(s));
    free(s);
}

/* 1 when who started p (created_by "user:<id>"). */
static int pod_is_own(const am_principal *who, const Airmesh__V1__Pod *p) {
    const char *by = p->created_by ? p->created_by : "";
    return strcmp(strncmp(by, "user:", 5) == 0 ? by + 5 : by, who->user_id) == 0;
}

/* A user who may control p: its starter or AM_CAN_POD_OTHERS (never a pod principal: a pod
 * acts for itself only). */
static int user_controls(const am_principal *who, const Airmesh__V1__Pod *p) {
    if (who->pod_id[0] || !p)
        return 0;
    return pod_is_own(who, p) || am_auth_can(who, AM_CAN_POD_OTHERS, NULL) == 0;
}

static int load_pod(am_ops *o, const char *org, const char *id, Airmesh__V1__Pod **p) {
    *p = NULL;
    if (!id || !*id || strlen(id) > AM_STORE_ID_MAX || am_pods_get(o->c.store, org, id, p) != 0)
        return am_err_set(AM_ENOTFOUND, "no such pod '%.64s'", id ? id : "");
    return 0;
}

static int load_binding(am_ops *o, const char *org, const char *id, Airmesh__V1__Binding **b) {
    *b = NULL;
    if (!id || !*id || strlen(id) > 64 ||
        am_store_get(o->c.store, AM_DB_BINDINGS, org, id, &airmesh__v1__binding__descriptor,
                     (ProtobufCMessage **)b) != 0)
        return am_err_set(AM_ENOTFOUND, "no such binding '%.64s'", id ? id : "");
    return 0;
}

/* Several audit records inside one transaction (all or none). */
typedef struct {
    ops_act *acts[2];
    size_t n;
} two_hook;

static int two_run(am_txn *t, void *ud) {
    (void)t;
    two_hook *h = ud;
    for (size_t i = 0; i < h->n; i++) {
        int rc = ops_act_append(h->acts[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static int set_str(char **field, const char *v) {
    if (*field && *field != protobuf_c_empty_string)
        free(*field);
    *field = strdup(v ? v : "");
    return *field ? 0 : am_err_set(AM_ENOMEM, "ops: out of memory");
}

/* ---- request ---- */

typedef struct {
    const char *org, *from, *to, *id, *actor;
    int mask, active;
    uint64_t now, expires;
    two_hook *hook;
    ops_act *req, *old_act;
    char old_id[AM_STORE_ID_MAX + 1];
    Airmesh__V1__Binding *old; /* the replaced one as stored (after the txn) */
} request_ctx;

typedef struct {
    const char *from, *to;
    uint64_t now;
    char id[AM_STORE_ID_MAX + 1];
} find_ctx;

static int find_live_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    find_ctx *f = ud;
    const Airmesh__V1__Binding *b = (const Airmesh__V1__Binding *)m;
    if (is_live(b, f->now) && !strcmp(state_str(b->from_pod), f->from) &&
        !strcmp(state_str(b->to_pod), f->to)) {
        snprintf(f->id, sizeof f->id, "%s", id);
        return 1;
    }
    return 0;
}

static int request_txn(am_txn *t, void *ud) {
    request_ctx *c = ud;
    if (c->old) {
        protobuf_c_message_free_unpacked(&c->old->base, NULL);
        c->old = NULL;
    }
    c->hook->n = 1;
    c->old_id[0] = 0;
    find_ctx f = {.from = c->from, .to = c->to, .now = c->now};
    int rc =
        am_txn_list(t, AM_DB_BINDINGS, c->org, &airmesh__v1__binding__descriptor, find_live_cb, &f);
    if (rc < 0)
        return rc;
    int mask = c->mask;
    if (f.id[0]) {
        Airmesh__V1__Binding *old = NULL;
        if ((rc = am_txn_get(t, AM_DB_BINDINGS, c->org, f.id, &airmesh__v1__binding__descriptor,
                             (ProtobufCMessage **)&old)) != 0)
            return rc;
        mask |= scope_mask(old);
        char why[200];
        snprintf(why, sizeof why, "replaced by %s", c->id);
        if ((rc = set_str(&old->state, "ended")) || (rc = set_str(&old->decided_by, c->actor)) ||
            (rc = set_str(&old->reason, why))) {
            protobuf_c_message_free_unpacked(&old->base, NULL);
            return rc;
        }
        old->decided_ms = c->now;
        rc = am_txn_put(t, AM_DB_BINDINGS, c->org, f.id, &old->base);
        c->old = old;
        if (rc)
            return rc;
        snprintf(c->old_id, sizeof c->old_id, "%s", f.id);
        snprintf(c->old_act->target, sizeof c->old_act->target, "binding:%s", f.id);
        ops_act_details(c->old_act, "{\"from\":\"%s\",\"to\":\"%s\",\"reason\":\"%s\"}", c->from,
                        c->to, why);
        c->hook->acts[c->hook->n++] = c->old_act;
    }
    char *scopes[2];
    size_t ns = 0;
    if (mask & SCOPE_READ)
        scopes[ns++] = "read";
    if (mask & SCOPE_WRITE)
        scopes[ns++] = "write";
    Airmesh__V1__Binding b = AIRMESH__V1__BINDING__INIT;
    b.id = (char *)c->id;
    b.org_id = (char *)c->org;
    b.from_pod = (char *)c->from;
    b.to_pod = (char *)c->to;
    b.scopes = scopes;
    b.n_scopes = ns;
    b.state = c->active ? "active" : "pending";
    b.created_by = (char *)c->actor;
    b.created_ms = c->now;
    b.expires_ms = c->expires;
    if (c->active) {
        b.decided_by = "policy:same_creator";
        b.decided_ms = c->now;
    }
    if ((rc = am_txn_put(t, AM_DB_BINDINGS, c->org, c->id, &b.base)) != 0)
        return rc;
    json_t *d = json_pack("{s:s,s:s,s:[],s:s,s:I}", "from", c->from, "to", c->to, "scopes", "state",
                          b.state, "expires_ms", (json_int_t)c->expires);
    for (size_t i = 0; i < ns; i++)
        json_array_append_new(json_object_get(d, "scopes"), json_string(scopes[i]));
    if (c->old_id[0])
        json_object_set_new(d, "replaces", json_string(c->old_id));
    char *js = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(d);
    snprintf(c->req->details, sizeof c->req->details, "%s",
             js && strlen(js) < sizeof c->req->details ? js : "{\"truncated\":true}");
    free(js);
    am_txn_hook h = {two_run, c->hook};
    return am_txn_hook_run(&h, t);
}

static int parse_scopes(const char *const *scopes, size_t n, int *mask) {
    *mask = 0;
    if (!scopes || n == 0)
        return am_err_set(AM_EINVAL, "scopes: at least one of \"read\", \"write\"");
    for (size_t i = 0; i < n; i++) {
        int bit = scopes[i] && !strcmp(scopes[i], "read")    ? SCOPE_READ
                  : scopes[i] && !strcmp(scopes[i], "write") ? SCOPE_WRITE
                                                             : 0;
        if (!bit)
            return am_err_set(AM_EINVAL, "scopes: '%.32s' is not a scope (\"read\" or \"write\")",
                              scopes[i] ? scopes[i] : "");
        if (*mask & bit)
            return am_err_set(AM_EINVAL, "scopes: '%s' is given twice", scopes[i]);
        *mask |= bit;
    }
    return 0;
}

static int org_policy_explicit(am_ops *o, const char *org) {
    Airmesh__V1__Org *r = NULL;
    if (am_store_get(o->c.store, AM_DB_ORGS, "", org, &airmesh__v1__org__descriptor,
                     (ProtobufCMessage **)&r) != 0)
        return 0;
    int explicit_ = r->binding_policy && !strcmp(r->binding_policy, "explicit");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    return explicit_;
}

int am_ops_binding_request(am_ops *o, const am_principal *who, const char *source,
                           const char *from_pod, const char *to_pod, const char *const *scopes,
                           size_t n_scopes, uint64_t ttl_ms, Airmesh__V1__Binding **out) {
    if (out)
        *out = NULL;
    uint8_t rnd[6];
    char id[AM_STORE_ID_MAX + 1], hex[13], actor[160];
    if (am_random(rnd, sizeof rnd) != 0)
        return am_err_set(AM_EIO, "binding: no randomness for an id");
    snprintf(id, sizeof id, "b-%s", am_hex(rnd, sizeof rnd, hex));
    ops_actor_of(who, actor, sizeof actor);
    char target[200];
    snprintf(target, sizeof target, "binding:%s", id);
    ops_act a, old_act;
    ops_act_user(&a, o, who, "binding.request", target, source);
    ops_act_user(&old_act, o, who, "binding.unbind", target, source);
    ops_act_details(&a, "{\"from\":\"%.64s\",\"to\":\"%.64s\"}", from_pod ? from_pod : "",
                    to_pod ? to_pod : "");
    int rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL), mask = 0;
    if (rc)
        return rc;
    if ((rc = parse_scopes(scopes, n_scopes, &mask)) != 0)
        return rc;
    if (!from_pod || !to_pod || !*from_pod || !*to_pod)
        return am_err_set(AM_EINVAL, "from_pod and to_pod are required");
    if (!strcmp(from_pod, to_pod))
        return am_err_set(AM_EINVAL, "a pod cannot bind to itself (from_pod = to_pod = %.64s)",
                          from_pod);
    if (ttl_ms > TTL_MAX_MS)
        return am_err_set(AM_EINVAL, "ttl: at most 30 days");
    Airmesh__V1__Pod *pf = NULL, *pt = NULL;
    if ((rc = load_pod(o, who->org_id, from_pod, &pf)) != 0 ||
        (rc = load_pod(o, who->org_id, to_pod, &pt)) != 0)
        goto out;
    if (who->pod_id[0] && strcmp(who->pod_id, from_pod) != 0) {
        am_err_set(AM_EPERM, "a pod requests bindings only from itself (it is %s, from_pod is %s)",
                   who->pod_id, from_pod);
        ops_act_error_details(&a, am_err_last());
        rc = ops_deny(&a, -AM_EPERM);
        goto out;
    }
    if (!who->pod_id[0] && (!user_controls(who, pf) || !user_controls(who, pt))) {
        am_err_set(AM_EPERM,
                   "binding %s → %s: only a user who may control both pods (their starter, or an "
                   "admin) may request it",
                   from_pod, to_pod);
        ops_act_error_details(&a, am_err_last());
        rc = ops_deny(&a, -AM_EPERM);
        goto out;
    }
    if (am_pods_ended(pf) || am_pods_ended(pt)) {
        const Airmesh__V1__Pod *e = am_pods_ended(pf) ? pf : pt;
        rc = am_err_set(AM_ESTATE, "pod %s is %s: an ended pod takes no bindings", e->id, e->state);
        goto out;
    }
    int same = !strcmp(state_str(pf->created_by), state_str(pt->created_by));
    uint64_t now = am_now_ms();
    two_hook th = {{&a, &old_act}, 1};
    request_ctx c = {.org = who->org_id,
                     .from = from_pod,
                     .to = to_pod,
                     .id = id,
                     .actor = actor,
                     .mask = mask,
                     .active = same && !org_policy_explicit(o, who->org_id),
                     .now = now,
                     .expires = ttl_ms ? now + ttl_ms : 0,
                     .hook = &th,
                     .req = &a,
                     .old_act = &old_act};
    rc = am_store_update(o->c.store, request_txn, &c);
    rc = ops_act_done(&a, rc);
    if (th.n > 1)
        ops_act_done(&old_act, rc);
    if (rc == 0) {
        if (c.old)
            publish_binding(o, who->org_id, c.old);
        Airmesh__V1__Binding *b = NULL;
        if (load_binding(o, who->org_id, id, &b) == 0) {
            publish_binding(o, who->org_id, b);
            if (out)
                *out = b;
            else
                protobuf_c_message_free_unpacked(&b->base, NULL);
        }
    }
    if (c.old)
        protobuf_c_message_free_unpacked(&c.old->base, NULL);
out:
    if (pf)
        protobuf_c_message_free_unpacked(&pf->base, NULL);
    if (pt)
        protobuf_c_message_free_unpacked(&pt->base, NULL);
    return rc;
}

/* ---- decide, end ---- */

typedef struct {
    const char *org, *id, *actor, *reason;
    const char *new_state; /* active | rejected | ended */
    int only_pending;
    ops_act *a;
} change_ctx;

static int change_txn(am_txn *t, void *ud) {
    change_ctx *c = ud;
    Airmesh__V1__Binding *b = NULL;
    int rc = am_txn_get(t, AM_DB_BINDINGS, c->org, c->id, &airmesh__v1__binding__descriptor,
                        (ProtobufCMessage **)&b);
    if (rc)
        return am_err_set(AM_ENOTFOUND, "no such binding '%s'", c->id);
    uint64_t now = am_now_ms();
    const char *st = am_ops_binding_state(b, now);
    if (c->only_pending && strcmp(st, "pending") != 0) {
        rc = am_err_set(AM_ESTATE, "binding %s is %s: only a pending binding can be %s", c->id, st,
                        !strcmp(c->new_state, "active") ? "accepted" : "rejected");
        goto out;
    }
    if (!c->only_pending && !is_live_state(b)) {
        rc = am_err_set(AM_ESTATE, "binding %s is %s already", c->id, st);
        goto out;
    }
    if ((rc = set_str(&b->state, c->new_state)) || (rc = set_str(&b->decided_by, c->actor)) ||
        (rc = set_str(&b->reason, c->reason)))
        goto out;
    b->decided_ms = now;
    if ((rc = am_txn_put(t, AM_DB_BINDINGS, c->org, c->id, &b->base)) != 0)
        goto out;
    rc = am_txn_hook_run(&c->a->hook, t);
out:
    protobuf_c_message_free_unpacked(&b->base, NULL);
    return rc;
}

static int reason_ok(const char *r) {
    if (!r)
        return 0;
    size_t n = strlen(r);
    if (n > REASON_MAX)
        return am_err_set(AM_EINVAL, "reason: at most %d bytes", REASON_MAX);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)r[i] < 0x20)
            return am_err_set(AM_EINVAL, "reason: no control characters");
    json_t *j = json_string(r); /* NULL unless valid UTF-8 */
    json_decref(j);
    return j ? 0 : am_err_set(AM_EINVAL, "reason: not valid UTF-8");
}

static int finish_change(am_ops *o, const char *org, ops_act *a, change_ctx *c,
                         Airmesh__V1__Binding **out) {
    int rc = ops_act_done(a, am_store_update(o->c.store, change_txn, c));
    if (rc)
        return rc;
    Airmesh__V1__Binding *b = NULL;
    if (load_binding(o, org, c->id, &b) == 0) {
        publish_binding(o, org, b);
        if (out)
            *out = b;
        else
            protobuf_c_message_free_unpacked(&b->base, NULL);
    }
    return 0;
}

int am_ops_binding_decide(am_ops *o, const am_principal *who, const char *source, const char *id,
                          int accept, const char *reason, Airmesh__V1__Binding **out) {
    if (out)
        *out = NULL;
    Airmesh__V1__Binding *b = NULL;
    int rc = load_binding(o, who->org_id, id, &b);
    if (rc)
        return rc;
    char target[200], actor[160];
    snprintf(target, sizeof target, "binding:%s", b->id);
    ops_actor_of(who, actor, sizeof actor);
    ops_act a;
    ops_act_user(&a, o, who, accept ? "binding.accept" : "binding.reject", target, source);
    json_t *d = json_pack("{s:s,s:s}", "from", state_str(b->from_pod), "to", state_str(b->to_pod));
    if (reason && *reason)
        json_object_set_new(d, "reason", json_string(reason));
    char *js = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s",
             js && strlen(js) < sizeof a.details ? js : "{\"truncated\":true}");
    free(js);
    Airmesh__V1__Pod *pt = NULL;
    if ((rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL)) != 0)
        goto out;
    if ((rc = reason_ok(reason)) != 0)
        goto out;
    load_pod(o, who->org_id, b->to_pod, &pt); /* NULL when deleted: only an admin decides */
    int may = who->pod_id[0]
                  ? !strcmp(who->pod_id, state_str(b->to_pod))
                  : (pt ? user_controls(who, pt) : am_auth_can(who, AM_CAN_POD_OTHERS, NULL) == 0);
    if (!may) {
        am_err_set(AM_EPERM,
                   "binding %s: only its target pod %s or a user who may control that pod (its "
                   "starter, or an admin) may %s it",
                   b->id, state_str(b->to_pod), accept ? "accept" : "reject");
        ops_act_error_details(&a, am_err_last());
        rc = ops_deny(&a, -AM_EPERM);
        goto out;
    }
    change_ctx c = {.org = who->org_id,
                    .id = b->id,
                    .actor = actor,
                    .reason = reason ? reason : "",
                    .new_state = accept ? "active" : "rejected",
                    .only_pending = 1,
                    .a = &a};
    rc = finish_change(o, who->org_id, &a, &c, out);
out:
    if (pt)
        protobuf_c_message_free_unpacked(&pt->base, NULL);
    protobuf_c_message_free_unpacked(&b->base, NULL);
    return rc;
}

int am_ops_binding_end(am_ops *o, const am_principal *who, const char *source, const char *id) {
    Airmesh__V1__Binding *b = NULL;
    int rc = load_binding(o, who->org_id, id, &b);
    if (rc)
        return rc;
    char target[200], actor[160];
    snprintf(target, sizeof target, "binding:%s", b->id);
    ops_actor_of(who, actor, sizeof actor);
    ops_act a;
    ops_act_user(&a, o, who, "binding.unbind", target, source);
    ops_act_details(&a, "{\"from\":\"%s\",\"to\":\"%s\",\"reason\":\"unbound\"}",
                    state_str(b->from_pod), state_str(b->to_pod));
    Airmesh__V1__Pod *pf = NULL, *pt = NULL;
    if ((rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL)) != 0)
        goto out;
    load_pod(o, who->org_id, b->from_pod, &pf);
    load_pod(o, who->org_id, b->to_pod, &pt);
    int may = who->pod_id[0] ? !strcmp(who->pod_id, state_str(b->to_pod)) ||
                                   !strcmp(who->pod_id, state_str(b->from_pod))
                             : user_controls(who, pf) || user_controls(who, pt) ||
                                   am_auth_can(who, AM_CAN_POD_OTHERS, NULL) == 0;
    if (!may) {
        am_err_set(AM_EPERM,
                   "binding %s: only one of its pods or a user who may control one of them may "
                   "end it",
                   b->id);
        ops_act_error_details(&a, am_err_last());
        rc = ops_deny(&a, -AM_EPERM);
        goto out;
    }
    change_ctx c = {.org = who->org_id,
                    .id = b->id,
                    .actor = actor,
                    .reason = "unbound",
                    .new_state = "ended",
                    .only_pending = 0,
                    .a = &a};
    rc = finish_change(o, who->org_id, &a, &c, NULL);
out:
    if (pf)
        protobuf_c_message_free_unpacked(&pf->base, NULL);
    if (pt)
        protobuf_c_message_free_unpacked(&pt->base, NULL);
    protobuf_c_message_free_unpacked(&b->base, NULL);
    return rc;
}

/* ---- reads ---- */

typedef struct {
    const char *pod, *self;
    am_ops_binding_fn fn;
    void *ud;
} list_ctx;

static int list_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    list_ctx *c = ud;
    const Airmesh__V1__Binding *b = (const Airmesh__V1__Binding *)m;
    const char *f = state_str(b->from_pod), *t = state_str(b->to_pod);
    if (c->self && strcmp(f, c->self) && strcmp(t, c->self))
        return 0;
    if (c->pod && strcmp(f, c->pod) && strcmp(t, c->pod))
        return 0;
    return c->fn(c->ud, b);
}

int am_ops_binding_list(am_ops *o, const am_principal *who, const char *pod, am_ops_binding_fn fn,
                        void *ud) {
    int rc = am_auth_can(who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    list_ctx c = {pod && *pod ? pod : NULL, who->pod_id[0] ? who->pod_id : NULL, fn, ud};
    return am_ops_list(o, AM_DB_BINDINGS, who->org_id, &airmesh__v1__binding__descriptor, list_cb,
                       &c);
}

typedef struct {
    const char *from, *to;
    int bit;
    uint64_t now;
    char *id;
    size_t cap;
    int found;
} allow_ctx;

static int allow_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    allow_ctx *c = ud;
    const Airmesh__V1__Binding *b = (const Airmesh__V1__Binding *)m;
    if (strcmp(state_str(b->state), "active") || (b->expires_ms && c->now >= b->expires_ms) ||
        strcmp(state_str(b->from_pod), c->from) || strcmp(state_str(b->to_pod), c->to) ||
        !(scope_mask(b) & c->bit))
        return 0;
    c->found = 1;
    if (c->id)
        snprintf(c->id, c->cap, "%s", state_str(b->id));
    return 1;
}

int ops_binding_find(am_ops *o, const char *org, const char *from_pod, const char *to_pod,
                     const char *scope, char *id, size_t cap) {
    int bit = scope && !strcmp(scope, "read")    ? SCOPE_READ
              : scope && !strcmp(scope, "write") ? SCOPE_WRITE
                                                 : 0;
    if (!bit)
        return am_err_set(AM_EINVAL, "scope: \"read\" or \"write\"");
    if (!org || !from_pod || !to_pod)
        return am_err_set(AM_EPERM, "no binding");
    allow_ctx c = {from_pod, to_pod, bit, am_now_ms(), id, cap, 0};
    int rc = am_ops_list(o, AM_DB_BINDINGS, org, &airmesh__v1__binding__descriptor, allow_cb, &c);
    if (rc < 0)
        return rc;
    if (!c.found)
        return am_err_set(AM_EPERM, "pod %s has no active %s binding to %s", from_pod, scope,
                          to_pod);
    return 0;
}

int am_ops_binding_allows(am_ops *o, const char *org, const char *from_pod, const char *to_pod,
                          const char *scope) {
    return ops_binding_find(o, org, from_pod, to_pod, scope, NULL, 0);
}

/* ---- policy ---- */

typedef struct {
    const char *org, *policy;
    const am_txn_hook *hook;
} policy_ctx;

static int policy_txn(am_txn *t, void *ud) {
    policy_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    if (am_txn_get(t, AM_DB_ORGS, "", c->org, &airmesh__v1__org__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    Airmesh__V1__Org *org = (Airmesh__V1__Org *)m;
    int rc = set_str(&org->binding_policy, c->policy);
    if (rc == 0)
        rc = am_txn_put(t, AM_DB_ORGS, "", c->org, &org->base);
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc)
        return rc;
    return am_txn_hook_run(c->hook, t);
}

int am_ops_binding_policy_set(am_ops *o, const am_principal *who, const char *source,
                              const char *org, const char *policy) {
    if (!org)
        org = who->org_id;
    char target[160];
    snprintf(target, sizeof target, "org:%.64s", org);
    ops_act a;
    ops_act_user(&a, o, who, "org.binding_policy", target, source);
    am_can_target t = {org, 0};
    int rc = ops_check(&a, who, AM_CAN_BINDING_POLICY, &t);
    if (rc)
        return rc;
    if (!policy || (strcmp(policy, "same_creator") && strcmp(policy, "explicit")))
        return am_err_set(AM_EINVAL, "policy: \"same_creator\" or \"explicit\"");
    ops_act_details(&a, "{\"policy\":\"%s\"}", policy);
    policy_ctx c = {org, policy, &a.hook};
    return ops_act_done(&a, am_store_update(o->c.store, policy_txn, &c));
}

const char *am_ops_binding_policy(am_ops *o, const char *org) {
    return org_policy_explicit(o, org) ? "explicit" : "same_creator";
}

/* ---- a pod ended: its bindings end ---- */

typedef struct {
    const char *pod;
    uint64_t now;
    char ids[64][AM_STORE_ID_MAX + 1];
    size_t n;
} ended_ctx;

static int ended_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    ended_ctx *c = ud;
    const Airmesh__V1__Binding *b = (const Airmesh__V1__Binding *)m;
    if (!is_live_state(b) ||
        (strcmp(state_str(b->from_pod), c->pod) && strcmp(state_str(b->to_pod), c->pod)))
        return 0;
    snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", id);
    return c->n == 64 ? 1 : 0;
}

void ops_binding_pod_ended(am_ops *o, const char *org, const char *pod_id) {
    for (int round = 0; round < 64; round++) { /* at most 64 x 64 per call */
        ended_ctx *c = calloc(1, sizeof *c);
        if (!c)
            return;
        c->pod = pod_id;
        c->now = am_now_ms();
        if (am_ops_list(o, AM_DB_BINDINGS, org, &airmesh__v1__binding__descriptor, ended_cb, c) <
                0 ||
            !c->n) {
            free(c);
            return;
        }
        char why[200];
        snprintf(why, sizeof why, "pod %s ended", pod_id);
        for (size_t i = 0; i < c->n; i++) {
            char target[200];
            snprintf(target, sizeof target, "binding:%s", c->ids[i]);
            ops_act a;
            ops_act_init(&a, o, "system", org, "binding.unbind", target, "");
            ops_act_details(&a, "{\"pod\":\"%s\",\"reason\":\"%s\"}", pod_id, why);
            change_ctx x = {.org = org,
                            .id = c->ids[i],
                            .actor = "system",
                            .reason = why,
                            .new_state = "ended",
                            .only_pending = 0,
                            .a = &a};
            if (finish_change(o, org, &a, &x, NULL) != 0)
                am_log_warn("ops", "binding not ended with its pod", "binding=%s error=\"%s\"",
                            c->ids[i], am_err_last());
        }
        int full = c->n == 64;
        free(c);
        if (!full)
            return;
    }
}
