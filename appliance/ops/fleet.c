/*
 * appliance/ops/fleet.c — the state changes of the runner fleet: enrollment tokens, runner
 * revocation (REST), and what the runner protocol brings (Enroll, Connect, Hello, Renew,
 * disconnection, refused messages). Tokens and revocation need the admin or owner role; runner
 * actions are authenticated by the client certificate (appliance/rpc passes its CN and O).
 * Every enrollment, connection, disconnection, renewal, revocation and refusal is audited.
 * Threads: any (REST ops on the http thread, protocol ops on the rpc thread).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* ---- enrollment tokens ---- */

typedef struct {
    ops_act *a;
    const char *id;
} named_hook_ctx;

/* The token's id is made by appliance/runners: name the target inside the transaction. */
static int token_hook(am_txn *t, void *ud) {
    named_hook_ctx *c = ud;
    snprintf(c->a->target, sizeof c->a->target, "token:%s", c->id);
    return c->a->hook.fn(t, c->a);
}

int am_ops_runner_token_create(am_ops *o, const am_principal *who, const char *source,
                               const char *org, uint64_t ttl_ms, const am_labels *labels,
                               char secret_out[AM_TOKEN_SECRET_LEN + 1], char id_out[13],
                               uint64_t *expires_ms) {
    if (org && strcmp(org, who->org_id) != 0)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    ops_act a;
    ops_act_user(&a, o, who, "runner_token.create", "token:", source);
    int rc = ops_check(&a, who, AM_CAN_FLEET, NULL);
    if (rc)
        return rc;
    if (ttl_ms == 0 || ttl_ms > 30ull * 86400000)
        return am_err_set(AM_EINVAL, "ttl: a duration like 15m, 1h or 7d (at most 30d)");
    ops_act_details(&a, "{\"ttl_ms\":%llu}", (unsigned long long)ttl_ms);
    named_hook_ctx hc = {&a, id_out};
    am_txn_hook h = {token_hook, &hc};
    rc = am_runners_token_create(o->c.store, who->org_id, ttl_ms, a.actor, labels, secret_out,
                                 id_out, expires_ms, &h);
    return ops_act_done(&a, rc);
}

int am_ops_runner_token_revoke(am_ops *o, const am_principal *who, const char *source,
                               const char *id) {
    if (!id || !am_runners_token_exists(o->c.store, who->org_id, id))
        return am_err_set(AM_ENOTFOUND, "no such token");
    char target[40];
    snprintf(target, sizeof target, "token:%.20s", id);
    ops_act a;
    ops_act_user(&a, o, who, "runner_token.revoke", target, source);
    int rc = ops_check(&a, who, AM_CAN_FLEET, NULL);
    if (rc)
        return rc;
    rc = am_runners_token_revoke(o->c.store, who->org_id, id, &a.hook);
    if (rc == -AM_ENOTFOUND)
        am_err_set(AM_ENOTFOUND, "no such token");
    return ops_act_done(&a, rc);
}

/* ---- revocation ---- */

int am_ops_runner_revoke(am_ops *o, const am_principal *who, const char *source,
                         const char *runner_id) {
    ProtobufCMessage *m = NULL;
    if (!runner_id || am_store_get(o->c.store, AM_DB_RUNNERS, who->org_id, runner_id,
                                   &airmesh__v1__runner__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such runner");
    protobuf_c_message_free_unpacked(m, NULL);
    char target[80];
    snprintf(target, sizeof target, "runner:%s", runner_id);
    ops_act a;
    ops_act_user(&a, o, who, "runner.revoke", target, source);
    int rc = ops_check(&a, who, AM_CAN_FLEET, NULL);
    if (rc)
        return rc;
    rc = am_runners_revoke(o->c.store, who->org_id, runner_id, "revoked by an administrator",
                           &a.hook);
    rc = ops_act_done(&a, rc);
    if (rc)
        return rc;
    /* Publish to the live state: its stream closes at once. */
    if (o->c.hub)
        am_hub_runner_close(o->c.hub, runner_id, "runner revoked");
    am_log_info("ops", "runner revoked", "runner=%s", runner_id);
    return 0;
}

/* ---- the runner protocol ---- */

static void runner_actor(char *buf, size_t cap, const char *runner_id) {
    snprintf(buf, cap, "runner:%s", runner_id);
}

typedef struct {
    ops_act *a;
    const am_enrolled *en;
    const char *hostname, *version;
} enroll_hook_ctx;

/* Runners filled en (id, org, serial) before this runs inside the enrolling transaction. */
static int enroll_hook(am_txn *t, void *ud) {
    enroll_hook_ctx *c = ud;
    ops_act *a = c->a;
    runner_actor(a->actor, sizeof a->actor, c->en->runner_id);
    snprintf(a->target, sizeof a->target, "%s", a->actor);
    snprintf(a->org, sizeof a->org, "%s", c->en->org_id);
    ops_act_details(a, "{\"hostname\":\"%.100s\",\"serial\":\"%016llx\",\"version\":\"%.40s\"}",
                    c->hostname, (unsigned long long)c->en->serial, c->version);
    return a->hook.fn(t, a);
}

/* A refused protocol step: audited "denied" with {"error": why}. Returns rc, message kept. */
static int refuse(am_ops *o, const char *actor, const char *org, const char *action,
                  const char *source, int rc) {
    char why[400];
    snprintf(why, sizeof why, "%s", am_err_last());
    ops_act d;
    ops_act_init(&d, o, actor, org, action, strcmp(actor, "anonymous") ? actor : "", source);
    ops_act_error_details(&d, why);
    am_err_set(rc, "%s", why);
    return ops_deny(&d, rc);
}

int am_ops_runner_enroll(am_ops *o, const char *source, const char *token, const uint8_t *csr_der,
                         size_t csr_len, const char *hostname, const char *version,
                         const am_labels *labels, am_enrolled *out) {
    ops_act a;
    ops_act_init(&a, o, "anonymous", "", "runner.enroll", "", source);
    enroll_hook_ctx hc = {&a, out, hostname ? hostname : "", version ? version : ""};
    am_txn_hook h = {enroll_hook, &hc};
    int rc = o->c.ca ? am_runners_enroll(o->c.store, o->c.ca, token, csr_der, csr_len, hostname,
                                         version, labels, o->c.cert_days, out, &h)
                     : am_err_set(AM_ESTATE, "enrollment: this appliance has no CA");
    if (rc && !a.appended) {
        am_log_warn("rpc", "enrollment refused", "peer=%s reason=\"%s\"", source, am_err_last());
        return refuse(o, "anonymous", "", "runner.enroll", source, rc);
    }
    rc = ops_act_done(&a, rc);
    if (rc == 0)
        am_log_info("rpc", "runner enrolled", "runner=%s org=%s peer=%s", out->runner_id,
                    out->org_id, source);
    else {
        free(out->chain_pem);
        out->chain_pem = NULL;
    }
    return rc;
}

int am_ops_runner_connect(am_ops *o, const am_ops_peer *peer, uint64_t serial) {
    if (!peer->runner_id) {
        am_err_set(AM_EAUTH, "no verified client certificate");
        return refuse(o, "anonymous", "", "runner.connect", peer->source, -AM_EAUTH);
    }
    char actor[80];
    runner_actor(actor, sizeof actor, peer->runner_id);
    int rc = am_runners_check_cert(o->c.store, peer->runner_id, peer->org, serial);
    if (rc) {
        am_log_warn("rpc", "connection refused", "runner=%s peer=%s reason=\"%s\"", peer->runner_id,
                    peer->source, am_err_last());
        return refuse(o, actor, peer->org, "runner.connect", peer->source, -AM_EAUTH);
    }
    ops_act a;
    ops_act_init(&a, o, actor, peer->org, "runner.connect", actor, peer->source);
    rc = ops_record(&a, "ok");
    if (rc == 0)
        am_log_info("rpc", "runner connected", "runner=%s peer=%s", peer->runner_id, peer->source);
    return rc;
}

int am_ops_runner_disconnect(am_ops *o, const am_ops_peer *peer) {
    char actor[80];
    runner_actor(actor, sizeof actor, peer->runner_id);
    ops_act a;
    ops_act_init(&a, o, actor, peer->org, "runner.disconnect", actor, peer->source);
    am_log_info("rpc", "runner disconnected", "runner=%s", peer->runner_id);
    int rc = am_runners_seen(o->c.store, peer->org, peer->runner_id, am_now_ms(), &a.hook);
    if (rc == -AM_ENOTFOUND) /* (removed meanwhile: still say it left) */
        return ops_record(&a, "ok");
    return ops_act_done(&a, rc);
}

static int renew_hook(am_txn *t, void *ud) {
    enroll_hook_ctx *c = ud;
    ops_act_details(c->a, "{\"serial\":\"%016llx\"}", (unsigned long long)c->en->serial);
    return c->a->hook.fn(t, c->a);
}

int am_ops_runner_renew(am_ops *o, const am_ops_peer *peer, const uint8_t *csr_der, size_t csr_len,
                        am_enrolled *out) {
    char actor[80];
    runner_actor(actor, sizeof actor, peer->runner_id);
    ops_act a;
    ops_act_init(&a, o, actor, peer->org, "runner.renew", actor, peer->source);
    enroll_hook_ctx hc = {&a, out, "", ""};
    am_txn_hook h = {renew_hook, &hc};
    /* am_runners_renew issues first (out->serial set), then records it with the hook. */
    int rc = o->c.ca ? am_runners_renew(o->c.store, o->c.ca, peer->org, peer->runner_id, csr_der,
                                        csr_len, o->c.cert_days, out, &h)
                     : am_err_set(AM_ESTATE, "renewal: this appliance has no CA");
    if (rc && !a.appended)
        return refuse(o, actor, peer->org, "runner.renew", peer->source, rc);
    rc = ops_act_done(&a, rc);
    if (rc) {
        free(out->chain_pem);
        out->chain_pem = NULL;
    }
    return rc;
}

int am_ops_runner_refused(am_ops *o, const am_ops_peer *peer, const char *why) {
    char actor[80];
    runner_actor(actor, sizeof actor, peer->runner_id);
    am_err_set(AM_EINVAL, "%s", why);
    am_log_warn("rpc", "message refused", "runner=%s peer=%s reason=\"%s\"", peer->runner_id,
                peer->source, why);
    return refuse(o, actor, peer->org, "runner.message", peer->source, -AM_EINVAL);
}

int am_ops_runner_hello(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__Hello *h) {
    const char *keys[32], *vals[32];
    size_t k = 0;
    for (size_t i = 0; i < h->n_labels && k < 32; i++) {
        const Airmesh__V1__Hello__LabelsEntry *e = h->labels[i];
        if (!e->key || !e->value || strlen(e->key) > 63 || strlen(e->value) > 255)
            continue;
        keys[k] = e->key;
        vals[k++] = e->value;
    }
    am_labels labels = {keys, vals, k};
    char actor[80];
    runner_actor(actor, sizeof actor, peer->runner_id);
    ops_act a;
    ops_act_init(&a, o, actor, peer->org, "runner.hello", actor, peer->source);
    json_t *d = json_pack("{s:s,s:s,s:i,s:i}", "hostname", h->hostname ? h->hostname : "",
                          "version", h->version ? h->version : "", "capacity", (int)h->capacity,
                          "running_pods", (int)h->n_running_pods);
    char *ds = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s", ds && strlen(ds) < sizeof a.details ? ds : "{}");
    free(ds);
    int rc = ops_act_done(&a, am_runners_hello(o->c.store, peer->org, peer->runner_id, h->hostname,
                                               h->version, &labels, h->capacity, &a.hook));
    if (rc)
        return rc;
    /* The pods it does not list did not survive a runner restart: mark them failed so no pod
     * stays "running" forever. */
    char lost[64][AM_POD_ID_LEN + 1];
    size_t n = 0;
    if (am_pods_lost(o->c.store, peer->org, peer->runner_id, (const char *const *)h->running_pods,
                     h->n_running_pods, lost, 64, &n) != 0)
        return am_err_set(AM_EIO, "hello: cannot read the pods of runner %s", peer->runner_id);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        am_pod_update u = {.org = peer->org,
                           .id = lost[i],
                           .state = am_pod_state_name(AM_POD_FAILED),
                           .reason = "the runner restarted and the pod did not survive"};
        int prc = ops_pod_state(o, "system", peer->org, &u);
        if (prc) {
            am_log_warn("ops", "lost pod not marked failed", "pod=%s error=\"%s\"", lost[i],
                        am_err_last());
            failed = prc;
        }
    }
    return failed;
}
