/*
 * appliance/ops/gateway.c — the model gateway's decisions and records (issue 12): whether a
 * pod's request may go to a model (am_ops_gateway_admit: the pod is the sending runner's,
 * starting or running, with network models or allow, the virtual key hashes to the pod's
 * gateway_key_sha256, the org is under its token quota, an endpoint of the org serves the
 * model), what a finished request leaves behind (am_ops_gateway_record: the usage counters and
 * one `model.request` audit record in one transaction; never prompt or completion text, never
 * a key), and the org's token quota (get/set, audited `org.model_quota`).
 * The gateway thread (appliance/gateway) calls admit; record runs on the io worker pool.
 * Threads: any.
 */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/gateway/core.h"
#include "appliance/ops/internal.h"
#include "common/egress.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* The org's token quota (0 = none) and today's tokens (in + out). */
static int quota_state(am_ops *o, const char *org, uint64_t now_ms, uint64_t *quota,
                       am_gw_counts *today) {
    *quota = 0;
    memset(today, 0, sizeof *today);
    ProtobufCMessage *m = NULL;
    int rc = am_store_get(o->c.store, AM_DB_ORGS, "", org, &airmesh__v1__org__descriptor, &m);
    if (rc)
        return rc;
    *quota = ((Airmesh__V1__Org *)m)->model_tokens_per_day;
    protobuf_c_message_free_unpacked(m, NULL);
    char day[11], scope[32];
    am_gw_day(now_ms, day);
    snprintf(scope, sizeof scope, "day:%s", day);
    return am_gw_meter_get(o->c.store, org, scope, today);
}

typedef struct {
    const char *api, *model;
    Airmesh__V1__ModelEndpoint *best;
    int best_score;
} pick_ctx;

static int pick_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    pick_ctx *c = ud;
    const Airmesh__V1__ModelEndpoint *ep = (const Airmesh__V1__ModelEndpoint *)m;
    int s = am_gw_endpoint_serves(ep, c->api, c->model);
    if (s <= c->best_score)
        return 0;
    /* Keep a copy: the list frees its message after the call. */
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return -AM_ENOMEM;
    protobuf_c_message_pack(m, buf);
    Airmesh__V1__ModelEndpoint *copy = airmesh__v1__model_endpoint__unpack(NULL, n, buf);
    am_wipe(buf, n);
    free(buf);
    if (!copy)
        return -AM_ENOMEM;
    if (c->best)
        airmesh__v1__model_endpoint__free_unpacked(c->best, NULL);
    c->best = copy;
    c->best_score = s;
    return s == 2; /* an endpoint that lists the model: stop */
}

int am_ops_gateway_admit(am_ops *o, const am_ops_peer *peer, const am_ops_gw_ask *ask,
                         am_ops_gw_grant *out) {
    memset(out, 0, sizeof *out);
    Airmesh__V1__Pod *p = NULL;
    const char *org = peer && peer->org ? peer->org : "";
    if (!ask->pod_id || !*ask->pod_id || am_pods_get(o->c.store, org, ask->pod_id, &p) != 0 ||
        !p->runner_id || strcmp(p->runner_id, peer->runner_id ? peer->runner_id : "") != 0) {
        if (p)
            protobuf_c_message_free_unpacked(&p->base, NULL);
        return am_err_set(AM_EPERM, "the model gateway refuses this request: the pod is not "
                                    "one of this runner's");
    }
    snprintf(out->org, sizeof out->org, "%s", org);
    snprintf(out->pod, sizeof out->pod, "%s", p->id);
    const char *by = p->created_by ? p->created_by : "";
    snprintf(out->user, sizeof out->user, "%s", strncmp(by, "user:", 5) == 0 ? by + 5 : by);
    int rc = 0;
    /* The virtual key: its SHA-256 must be the pod's. */
    const char *key = ask->key ? ask->key : "";
    if (!*key) {
        rc = am_err_set(AM_EAUTH, "no API key: send the pod's key (OPENAI_API_KEY / "
                                  "ANTHROPIC_API_KEY) as Authorization: Bearer or x-api-key");
        goto out;
    }
    uint8_t d[32];
    unsigned dn = 0;
    EVP_Digest(key, strlen(key), d, &dn, EVP_sha256(), NULL);
    if (p->gateway_key_sha256.len != 32 || dn != 32 ||
        CRYPTO_memcmp(d, p->gateway_key_sha256.data, 32) != 0) {
        rc = am_err_set(AM_EAUTH, "invalid API key for this pod (a pod's key works only for "
                                  "that pod, while it runs)");
        goto out;
    }
    if (!p->state || (strcmp(p->state, am_pod_state_name(AM_POD_STARTING)) != 0 &&
                      strcmp(p->state, am_pod_state_name(AM_POD_RUNNING)) != 0)) {
        rc = am_err_set(AM_EPERM, "the pod is %s: its key no longer works",
                        p->state ? p->state : "unknown");
        goto out;
    }
    if (!p->network || (strcmp(p->network, "models") != 0 && strcmp(p->network, "allow") != 0)) {
        rc = am_err_set(AM_EPERM,
                        "the pod's network is \"%s\": only pods with network models "
                        "or allow may use the model gateway",
                        p->network ? p->network : "");
        goto out;
    }
    uint64_t quota;
    am_gw_counts today;
    if ((rc = quota_state(o, org, am_now_ms(), &quota, &today)) != 0)
        goto out;
    if (quota && today.tokens_in + today.tokens_out >= quota) {
        rc = am_err_set(AM_ELIMIT,
                        "this organization's model quota of %" PRIu64
                        " tokens per day is used up (%" PRIu64 " today); it resets at 00:00 UTC",
                        quota, today.tokens_in + today.tokens_out);
        goto out;
    }
    if (!ask->model) /* a listing: no endpoint to choose */
        goto out;
    if (!*ask->model) {
        rc = am_err_set(AM_EINVAL, "the request body names no \"model\"");
        goto out;
    }
    pick_ctx c = {ask->api, ask->model, NULL, 0};
    rc = am_ops_list(o, AM_DB_MODELS, org, &airmesh__v1__model_endpoint__descriptor, pick_cb, &c);
    if (rc) {
        if (c.best)
            airmesh__v1__model_endpoint__free_unpacked(c.best, NULL);
        goto out;
    }
    if (!c.best) {
        rc = am_err_set(AM_ENOTFOUND,
                        "model \"%.100s\" is not served by any %s endpoint of this organization "
                        "(an admin adds one: airmeshctl model add)",
                        ask->model, ask->api);
        goto out;
    }
    out->endpoint = c.best;
out:
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

void am_ops_gateway_grant_free(am_ops_gw_grant *g) {
    if (g->endpoint) {
        if (g->endpoint->key.data)
            am_wipe(g->endpoint->key.data, g->endpoint->key.len);
        airmesh__v1__model_endpoint__free_unpacked(g->endpoint, NULL);
    }
    g->endpoint = NULL;
}

typedef struct {
    const am_ops_gw_done *d;
    ops_act *a;
    size_t n;
} record_ctx;

static int record_txn(am_txn *t, void *ud) {
    record_ctx *c = ud;
    for (size_t i = 0; i < c->n; i++) {
        const am_ops_gw_done *d = &c->d[i];
        char day[11];
        am_gw_day(d->start_ms ? d->start_ms : am_now_ms(), day);
        int denied = d->result && strcmp(d->result, "denied") == 0;
        int error = d->result && strcmp(d->result, "error") == 0;
        am_gw_counts n = {.requests = denied ? 0 : 1,
                          .tokens_in = d->tokens_in,
                          .tokens_out = d->tokens_out,
                          .errors = error ? 1 : 0,
                          .refused = denied ? 1 : 0};
        int rc = am_gw_meter_add(t, d->org, day, d->pod_known ? d->pod_id : NULL,
                                 d->pod_known ? d->user_id : NULL, &n, am_now_ms());
        if (rc == 0)
            rc = c->a[i].hook.fn(t, &c->a[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void record_act(am_ops *o, const am_ops_gw_done *d, ops_act *a) {
    char actor[160], target[200];
    snprintf(actor, sizeof actor, "pod:%.64s", d->pod_id ? d->pod_id : "");
    if (d->endpoint && *d->endpoint)
        snprintf(target, sizeof target, "endpoint:%.120s", d->endpoint);
    else
        snprintf(target, sizeof target, "gateway");
    ops_act_init(a, o, actor, d->org, "model.request", target, d->source);
    snprintf(a->result, sizeof a->result, "%s", d->result ? d->result : "ok");
    json_t *j =
        json_pack("{s:s,s:s,s:s,s:I,s:I,s:i,s:I,s:b}", "endpoint", d->endpoint ? d->endpoint : "",
                  "model", d->model ? d->model : "", "path", d->path ? d->path : "", "tokens_in",
                  (json_int_t)d->tokens_in, "tokens_out", (json_int_t)d->tokens_out, "status",
                  (int)d->status, "duration_ms", (json_int_t)d->duration_ms, "stream", d->stream);
    if (j && d->reason && *d->reason)
        json_object_set_new(j, "reason", json_string(d->reason));
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    snprintf(a->details, sizeof a->details, "%s",
             s && strlen(s) < sizeof a->details ? s : "{\"truncated\":true}");
    free(s);
}

int am_ops_gateway_record_many(am_ops *o, const am_ops_gw_done *d, size_t n) {
    if (n == 0)
        return 0;
    ops_act *a = calloc(n, sizeof *a);
    if (!a)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    for (size_t i = 0; i < n; i++)
        record_act(o, &d[i], &a[i]);
    record_ctx c = {d, a, n};
    int rc = am_store_update(o->c.store, record_txn, &c);
    int first = 0;
    for (size_t i = 0; i < n; i++) {
        int r = ops_act_done(&a[i], rc);
        if (r && !first)
            first = r;
    }
    free(a);
    return first;
}

int am_ops_gateway_record(am_ops *o, const am_ops_gw_done *d) {
    return am_ops_gateway_record_many(o, d, 1);
}

/* ---- the org's token quota ---- */

int am_ops_model_quota_get(am_ops *o, const am_principal *who, const char *org,
                           uint64_t *tokens_per_day, am_gw_counts *today) {
    if (!org)
        org = who ? who->org_id : "";
    am_can_target t = {org, 0};
    int rc = am_auth_can(who, AM_CAN_READ, &t);
    if (rc)
        return rc;
    rc = quota_state(o, org, am_now_ms(), tokens_per_day, today);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    return rc;
}

typedef struct {
    const char *org;
    uint64_t v;
    const am_txn_hook *hook;
} quota_ctx;

static int quota_txn(am_txn *t, void *ud) {
    quota_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    if (am_txn_get(t, AM_DB_ORGS, "", c->org, &airmesh__v1__org__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    Airmesh__V1__Org *org = (Airmesh__V1__Org *)m;
    org->model_tokens_per_day = c->v;
    int rc = am_txn_put(t, AM_DB_ORGS, "", c->org, &org->base);
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc)
        return rc;
    return am_txn_hook_run(c->hook, t);
}

int am_ops_model_quota_set(am_ops *o, const am_principal *who, const char *source, const char *org,
                           uint64_t tokens_per_day) {
    if (!org)
        org = who ? who->org_id : "";
    char target[160];
    snprintf(target, sizeof target, "org:%.64s", org);
    ops_act a;
    ops_act_user(&a, o, who, "org.model_quota", target, source);
    am_can_target t = {org, 0};
    int rc = ops_check(&a, who, AM_CAN_MODEL_QUOTA, &t);
    if (rc)
        return rc;
    if (tokens_per_day > (1ull << 53))
        return am_err_set(AM_EINVAL, "tokens_per_day: 0 (no quota) to 2^53");
    ops_act_details(&a, "{\"tokens_per_day\":%" PRIu64 "}", tokens_per_day);
    quota_ctx c = {org, tokens_per_day, &a.hook};
    return ops_act_done(&a, am_store_update(o->c.store, quota_txn, &c));
}
