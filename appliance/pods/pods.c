/*
 * appliance/pods/pods.c — pod records: validation, runner choice, state changes, recordings.
 * Pure store + file logic: no hub, no audit (appliance/ops does both around these calls; its
 * am_txn_hook appends the audit record inside the write transaction).
 */
#include "appliance/pods/pods.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define MAX_RECORDING (256u << 20)

static int state_is_final(const char *s) {
    return am_pod_state_name_final(s);
}

static int valid_text(const char *s, size_t max) {
    if (!s || !*s || strlen(s) > max)
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20)
            return 0;
    return 1;
}

static int valid_env_key(const char *k) {
    if (!k || !*k || strlen(k) > 128 || (*k >= '0' && *k <= '9'))
        return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return 1;
}

/* ---- runner choice ---- */

typedef struct {
    const am_pod_spec *spec;
    am_pods_online_fn online;
    void *online_ud;
    char best[64];
    uint32_t best_load;
    int found_any;
    int lacks_agent; /* online matching runners skipped because they lack spec->agent */
    const char *org;
    am_txn *t;
} choose_ctx;

typedef struct {
    const char *runner;
    uint32_t n;
} load_ctx;

static int load_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    load_ctx *c = ud;
    const Airmesh__V1__Pod *p = (const Airmesh__V1__Pod *)m;
    if (strcmp(p->runner_id, c->runner) == 0 && !am_pods_ended(p))
        c->n++;
    return 0;
}

static int labels_match(const Airmesh__V1__Runner *r, const am_pod_spec *s) {
    for (size_t i = 0; i < s->n_sel; i++) {
        int ok = 0;
        for (size_t j = 0; j < r->n_labels && !ok; j++)
            ok = strcmp(r->labels[j]->key, s->sel_keys[i]) == 0 &&
                 strcmp(r->labels[j]->value, s->sel_values[i]) == 0;
        if (!ok)
            return 0;
    }
    return 1;
}

/* 1 when the runner reported the agent CLI in its last Hello (or no agent is asked for). */
static int has_agent(const Airmesh__V1__Runner *r, const char *agent) {
    if (!agent || !*agent)
        return 1;
    for (size_t i = 0; i < r->n_agents; i++)
        if (r->agents[i]->name && strcmp(r->agents[i]->name, agent) == 0)
            return 1;
    return 0;
}

static int choose_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    choose_ctx *c = ud;
    const Airmesh__V1__Runner *r = (const Airmesh__V1__Runner *)m;
    if (r->revoked || !labels_match(r, c->spec) || !c->online(c->online_ud, r->id))
        return 0;
    if (!has_agent(r, c->spec->agent)) {
        c->lacks_agent = 1;
        return 0;
    }
    c->found_any = 1;
    load_ctx l = {r->id, 0};
    am_txn_list(c->t, AM_DB_PODS, c->org, &airmesh__v1__pod__descriptor, load_cb, &l);
    uint32_t cap = r->capacity ? r->capacity : 1;
    if (l.n >= cap)
        return 0;
    if (!c->best[0] || l.n < c->best_load) {
        snprintf(c->best, sizeof c->best, "%s", r->id);
        c->best_load = l.n;
    }
    return 0;
}

static int choose_runner(am_txn *t, const char *org, const am_pod_spec *s, am_pods_online_fn online,
                         void *ud, char *out, size_t cap) {
    if (s->runner_id && *s->runner_id) {
        ProtobufCMessage *m = NULL;
        if (am_txn_get(t, AM_DB_RUNNERS, org, s->runner_id, &airmesh__v1__runner__descriptor, &m) !=
            0)
            return am_err_set(AM_ENOTFOUND, "no runner %s", s->runner_id);
        int revoked = ((Airmesh__V1__Runner *)m)->revoked;
        int agent_ok = has_agent((Airmesh__V1__Runner *)m, s->agent);
        protobuf_c_message_free_unpacked(m, NULL);
        if (revoked)
            return am_err_set(AM_ESTATE, "runner %s is revoked", s->runner_id);
        if (!online(ud, s->runner_id))
            return am_err_set(AM_ESTATE, "runner %s is offline", s->runner_id);
        if (!agent_ok)
            return am_err_set(AM_EINVAL,
                              "agent %s: runner %s does not have it (install the CLI in its "
                              "--agents-dir and restart it; GET /api/v1/agents lists who has "
                              "what)",
                              s->agent, s->runner_id);
        snprintf(out, cap, "%s", s->runner_id);
        return 0;
    }
    choose_ctx c = {.spec = s, .online = online, .online_ud = ud, .org = org, .t = t};
    int rc = am_txn_list(t, AM_DB_RUNNERS, org, &airmesh__v1__runner__descriptor, choose_cb, &c);
    if (rc)
        return rc;
    if (!c.best[0] && !c.found_any && c.lacks_agent)
        return am_err_set(AM_EINVAL,
                          "agent %s: no online runner that matches has it (GET /api/v1/agents "
                          "lists who has what)",
                          s->agent);
    if (!c.best[0])
        return am_err_set(AM_ESTATE, c.found_any ? "every matching runner is at capacity"
                                                 : "no online runner matches the labels");
    snprintf(out, cap, "%s", c.best);
    return 0;
}

/* ---- create ---- */

int am_pods_validate(const am_pod_spec *s) {
    if (!valid_text(s->repo, 1024))
        return am_err_set(AM_EINVAL, "repo: a non-empty URL or path is required");
    if (!valid_text(s->base_ref ? s->base_ref : "HEAD", 256))
        return am_err_set(AM_EINVAL, "base_ref: invalid");
    if (s->branch && !valid_text(s->branch, 200))
        return am_err_set(AM_EINVAL, "branch: invalid");
    if (s->argc == 0 || s->argc > 256)
        return am_err_set(AM_EINVAL, "command: a non-empty argv list is required");
    for (size_t i = 0; i < s->argc; i++)
        if (!s->argv[i] || strlen(s->argv[i]) > 65536)
            return am_err_set(AM_EINVAL, "command: argument %zu is invalid", i);
    if (s->n_env > 256)
        return am_err_set(AM_EINVAL, "env: at most 256 variables");
    for (size_t i = 0; i < s->n_env; i++)
        if (!valid_env_key(s->env_keys[i]) || strlen(s->env_values[i]) > 65536)
            return am_err_set(AM_EINVAL, "env: invalid variable name '%.64s'", s->env_keys[i]);
    const char *net = s->network && *s->network ? s->network : "none";
    if (strcmp(net, "none") != 0 && strcmp(net, "models") != 0 && strcmp(net, "allow") != 0 &&
        strcmp(net, "host") != 0)
        return am_err_set(AM_EINVAL, "network: \"none\", \"models\", \"allow\" or \"host\"");
    if (s->pids > 65536 || s->cpu_millis > 256000)
        return am_err_set(AM_EINVAL, "limits: out of range");
    /* Sizes a pod cannot start or work with (0 = the default). */
    if (s->memory_bytes && s->memory_bytes < (64ull << 20))
        return am_err_set(AM_EINVAL, "limits.memory: at least 64M");
    if ((s->tmp_bytes && s->tmp_bytes < (1ull << 20)) ||
        (s->shm_bytes && s->shm_bytes < (1ull << 20)))
        return am_err_set(AM_EINVAL, "limits.tmp, limits.shm: at least 1M");
    if (s->workspace_bytes && s->workspace_bytes < (16ull << 20))
        return am_err_set(AM_EINVAL, "limits.workspace: at least 16M");
    if (s->pids && s->pids < 16)
        return am_err_set(AM_EINVAL, "limits.pids: at least 16");

    return 0;
}

typedef struct {
    const char *org;
    const am_pod_spec *spec;
    const am_pod_defaults *defaults;
    am_pods_online_fn online;
    void *online_ud;
    Airmesh__V1__Pod *p; /* runner_id and limits filled in the transaction */
    am_pod_new *n;
    const am_txn_hook *hook;
    ProtobufCMessage *org_rec; /* the org record read in the transaction (its allow list) */
    uint8_t key_sha256[32];
} create_ctx;

static int any_record(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    (void)m;
    *(int *)ud = 1;
    return 1; /* stop at the first */
}

/* The egress policy: the request's, else "models" when the org has a model endpoint (the
 * gateway is useful), else "none". With models/allow the record keeps the key's hash; with
 * allow the org's allow list as it is now. */
static int decide_network(am_txn *t, create_ctx *c) {
    const char *net = c->spec->network && *c->spec->network ? c->spec->network : NULL;
    if (!net) {
        int any = 0;
        int rc = am_txn_list(t, AM_DB_MODELS, c->org, &airmesh__v1__model_endpoint__descriptor,
                             any_record, &any);
        if (rc)
            return rc;
        net = any ? "models" : "none";
    }
    snprintf(c->n->network, sizeof c->n->network, "%s", net);
    c->p->network = c->n->network;
    int gw = strcmp(net, "models") == 0 || strcmp(net, "allow") == 0;
    c->p->gateway_key_sha256.data = gw ? c->key_sha256 : NULL;
    c->p->gateway_key_sha256.len = gw ? sizeof c->key_sha256 : 0;
    c->p->egress_allow = NULL;
    c->p->n_egress_allow = 0;
    if (c->org_rec) {
        protobuf_c_message_free_unpacked(c->org_rec, NULL);
        c->org_rec = NULL;
    }
    if (strcmp(net, "allow") == 0 &&
        am_txn_get(t, AM_DB_ORGS, "", c->org, &airmesh__v1__org__descriptor, &c->org_rec) == 0) {
        const Airmesh__V1__Org *o = (const Airmesh__V1__Org *)c->org_rec;
        c->p->egress_allow = o->egress_allow;
        c->p->n_egress_allow = o->n_egress_allow;
    }
    return 0;
}

static int create_txn(am_txn *t, void *ud) {
    create_ctx *c = ud;
    /* The record says what the pod really gets: the request, else the org's default, else the
     * configured one, never above the org's maximum (appliance/pods/limits.c). */
    am_org_limits pol;
    am_pod_defaults eff;
    int rc = am_pods_limits_txn(t, c->org, &pol);
    if (rc == 0)
        rc = am_pods_limits_apply(c->spec, c->defaults, &pol, &eff);
    if (rc)
        return rc;
    c->p->memory_bytes = eff.memory_bytes;
    c->p->pids = eff.pids;
    c->p->cpu_millis = eff.cpu_millis;
    c->p->tmp_bytes = eff.tmp_bytes;
    c->p->shm_bytes = eff.shm_bytes;
    c->p->workspace_bytes = eff.workspace_bytes;
    if ((rc = decide_network(t, c)) != 0)
        return rc;
    rc = choose_runner(t, c->org, c->spec, c->online, c->online_ud, c->n->runner,
                       sizeof c->n->runner);
    if (rc)
        return rc;
    c->p->runner_id = c->n->runner;
    rc = am_txn_put(t, AM_DB_PODS, c->org, c->p->id, &c->p->base);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_pods_create(am_store *st, const char *org, const char *actor, const am_pod_spec *s,
                   const am_pod_defaults *d, am_pods_online_fn online, void *online_ud,
                   am_pod_new *n, const am_txn_hook *hook, Airmesh__V1__Pod **out) {
    memset(n, 0, sizeof *n);
    int rc = am_pods_validate(s);
    if (rc)
        return rc;
    uint8_t rnd[6];
    if ((rc = am_random(rnd, sizeof rnd)) != 0)
        return rc;
    memcpy(n->id, "p-", 2);
    am_hex(rnd, sizeof rnd, n->id + 2);
    snprintf(n->branch, sizeof n->branch, "%s", s->branch && *s->branch ? s->branch : "");
    if (!n->branch[0])
        snprintf(n->branch, sizeof n->branch, "airmesh/pod-%s", n->id);
    /* The virtual model key, made before the transaction decides whether the pod gets one
     * (decide_network); only its SHA-256 is stored. */
    uint8_t kr[32];
    if ((rc = am_random(kr, sizeof kr)) != 0)
        return rc;
    memcpy(n->gateway_key, AM_EGRESS_KEY_PREFIX, 4);
    am_hex(kr, sizeof kr, n->gateway_key + 4);
    am_wipe(kr, sizeof kr);

    Airmesh__V1__Pod p = AIRMESH__V1__POD__INIT;
    p.id = n->id;
    p.org_id = (char *)org;
    p.repo = (char *)s->repo;
    p.base_ref = (char *)(s->base_ref && *s->base_ref ? s->base_ref : "HEAD");
    p.branch = n->branch;
    p.continue_branch = s->continue_branch != 0; /* review: on an ended pod's branch */
    p.command = (char **)s->argv;
    p.n_command = s->argc;
    Airmesh__V1__Pod__EnvEntry *ents = s->n_env ? calloc(s->n_env, sizeof *ents) : NULL;
    Airmesh__V1__Pod__EnvEntry **arr = s->n_env ? calloc(s->n_env, sizeof *arr) : NULL;
    if (s->n_env && (!ents || !arr)) {
        free(ents);
        free(arr);
        return am_err_set(AM_ENOMEM, "pods: out of memory");
    }
    for (size_t i = 0; i < s->n_env; i++) {
        airmesh__v1__pod__env_entry__init(&ents[i]);
        ents[i].key = (char *)s->env_keys[i];
        ents[i].value = (char *)s->env_values[i];
        arr[i] = &ents[i];
    }
    p.env = arr;
    p.n_env = s->n_env;
    p.network = (char *)"none"; /* decided in the transaction */
    p.keep_worktree = s->keep_worktree;
    p.shared = s->shared;
    p.agent = (char *)(s->agent ? s->agent : "");
    p.display_name = (char *)(s->display_name ? s->display_name : "");
    p.state = (char *)am_pod_state_name(AM_POD_PENDING);
    p.created_by = (char *)actor;
    p.created_ms = am_now_ms();
    create_ctx c = {org, s, d, online, online_ud, &p, n, hook, NULL, {0}};
    unsigned int dl = 0;
    if (EVP_Digest(n->gateway_key, AM_EGRESS_KEY_LEN, c.key_sha256, &dl, EVP_sha256(), NULL) != 1 ||
        dl != sizeof c.key_sha256) {
        am_wipe(n->gateway_key, sizeof n->gateway_key);
        free(ents);
        free(arr);
        return am_err_set(AM_ECRYPTO, "pods: SHA-256 of the gateway key failed");
    }
    rc = am_store_update(st, create_txn, &c);
    if (rc == 0) {
        size_t len = protobuf_c_message_get_packed_size(&p.base);
        uint8_t *buf = malloc(len ? len : 1);
        if (buf) {
            protobuf_c_message_pack(&p.base, buf);
            *out = (Airmesh__V1__Pod *)protobuf_c_message_unpack(&airmesh__v1__pod__descriptor,
                                                                 NULL, len, buf);
            free(buf);
        }
        if (!buf || !*out)
            rc = am_err_set(AM_ENOMEM, "pods: out of memory");
    }
    if (c.org_rec)
        protobuf_c_message_free_unpacked(c.org_rec, NULL);
    if (rc || !p.gateway_key_sha256.len)
        am_wipe(n->gateway_key, sizeof n->gateway_key); /* no key for this pod */
    free(ents);
    free(arr);
    return rc;
}

/* The env a pod with network models/allow gets (common/egress.h), key and URLs filled in. */
static const char *const k_gw_env[][2] = {{"OPENAI_BASE_URL", AM_EGRESS_GATEWAY_URL "/v1"},
                                          {"OPENAI_API_BASE", AM_EGRESS_GATEWAY_URL "/v1"},
                                          {"OPENAI_API_KEY", NULL},
                                          {"ANTHROPIC_BASE_URL", AM_EGRESS_GATEWAY_URL},
                                          {"ANTHROPIC_API_KEY", NULL},
                                          {"AIRMESH_GATEWAY_URL", AM_EGRESS_GATEWAY_URL},
                                          {"AIRMESH_MODEL_KEY", NULL}};
static const char *const k_proxy_env[][2] = {
    {"HTTPS_PROXY", AM_EGRESS_PROXY_URL}, {"HTTP_PROXY", AM_EGRESS_PROXY_URL},
    {"https_proxy", AM_EGRESS_PROXY_URL}, {"http_proxy", AM_EGRESS_PROXY_URL},
    {"NO_PROXY", "127.0.0.1,localhost"},  {"no_proxy", "127.0.0.1,localhost"}};
#define N_GW_ENV (sizeof k_gw_env / sizeof k_gw_env[0])
#define N_PROXY_ENV (sizeof k_proxy_env / sizeof k_proxy_env[0])

static int egress_env_key(const char *k, int proxy) {
    for (size_t i = 0; i < N_GW_ENV; i++)
        if (strcmp(k, k_gw_env[i][0]) == 0)
            return 1;
    for (size_t i = 0; proxy && i < N_PROXY_ENV; i++)
        if (strcmp(k, k_proxy_env[i][0]) == 0)
            return 1;
    return 0;
}

int am_pods_create_msg(const Airmesh__V1__Pod *p, const char *key, Airmesh__V1__CreatePod *m) {
    airmesh__v1__create_pod__init(m);
    m->pod_id = p->id;
    m->repo = p->repo;
    m->base_ref = p->base_ref;
    m->branch = p->branch;
    m->command = p->command;
    m->n_command = p->n_command;
    m->network = p->network;
    m->keep_worktree = p->keep_worktree;
    m->continue_branch = p->continue_branch;
    m->agent = p->agent;
    m->cols = 80;
    m->rows = 24;
    int gw = key && *key;
    int proxy = gw && strcmp(p->network, "allow") == 0;
    if (proxy) {
        m->egress_allow = p->egress_allow;
        m->n_egress_allow = p->n_egress_allow;
    }
    m->limits = calloc(1, sizeof *m->limits);
    if (!m->limits)
        return am_err_set(AM_ENOMEM, "pods: out of memory");
    airmesh__v1__pod_limits__init(m->limits);
    m->limits->memory_bytes = p->memory_bytes;
    m->limits->pids = p->pids;
    m->limits->cpu_millis = p->cpu_millis;
    m->limits->tmp_bytes = p->tmp_bytes;
    m->limits->shm_bytes = p->shm_bytes;
    m->limits->workspace_bytes = p->workspace_bytes;
    size_t cap = p->n_env + (gw ? N_GW_ENV : 0) + (proxy ? N_PROXY_ENV : 0);
    if (cap) {
        Airmesh__V1__CreatePod__EnvEntry *ents = calloc(cap, sizeof *ents);
        Airmesh__V1__CreatePod__EnvEntry **arr = calloc(cap, sizeof *arr);
        if (!ents || !arr) {
            free(ents);
            free(arr);
            free(m->limits);
            return am_err_set(AM_ENOMEM, "pods: out of memory");
        }
        size_t k = 0;
        for (size_t i = 0; gw && i < N_GW_ENV; i++, k++) {
            airmesh__v1__create_pod__env_entry__init(&ents[k]);
            ents[k].key = (char *)k_gw_env[i][0];
            ents[k].value = (char *)(k_gw_env[i][1] ? k_gw_env[i][1] : key);
        }
        for (size_t i = 0; proxy && i < N_PROXY_ENV; i++, k++) {
            airmesh__v1__create_pod__env_entry__init(&ents[k]);
            ents[k].key = (char *)k_proxy_env[i][0];
            ents[k].value = (char *)k_proxy_env[i][1];
        }
        for (size_t i = 0; i < p->n_env; i++) {
            if (gw && egress_env_key(p->env[i]->key, proxy))
                continue; /* the gateway's key and URLs win over the user's */
            airmesh__v1__create_pod__env_entry__init(&ents[k]);
            ents[k].key = p->env[i]->key;
            ents[k].value = p->env[i]->value;
            k++;
        }
        for (size_t i = 0; i < k; i++)
            arr[i] = &ents[i];
        m->env = arr;
        m->n_env = k;
        if (!k) {
            free(ents);
            free(arr);
            m->env = NULL;
        }
    }
    return 0;
}

void am_pods_create_msg_free(Airmesh__V1__CreatePod *m) {
    if (m->n_env) {
        free(m->env[0]);
        free(m->env);
    }
    free(m->limits);
}

int am_pods_ended(const Airmesh__V1__Pod *p) {
    return state_is_final(p->state);
}

/* ---- state updates ---- */

static int update_txn(am_txn *t, void *ud) {
    am_pod_update *c = ud;
    const am_txn_hook *hook = c->hook_;
    ProtobufCMessage *m = NULL;
    c->changed = 0;
    int rc = am_txn_get(t, AM_DB_PODS, c->org, c->id, &airmesh__v1__pod__descriptor, &m);
    if (rc)
        return rc == -AM_ENOTFOUND ? am_err_set(AM_ENOTFOUND, "no pod %s", c->id) : rc;
    Airmesh__V1__Pod *p = (Airmesh__V1__Pod *)m;
    Airmesh__V1__Pod np = *p;
    snprintf(c->old_state, sizeof c->old_state, "%s", p->state);
    snprintf(c->pod_runner, sizeof c->pod_runner, "%s", p->runner_id);
    if (c->runner && strcmp(p->runner_id, c->runner) != 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return am_err_set(AM_EAUTH, "pod %s does not belong to runner %s", c->id, c->runner);
    }
    if (c->state) {
        if (am_pods_ended(p) || strcmp(p->state, c->state) == 0) {
            /* final states are final, a repeated state is no change: no write, no event */
            protobuf_c_message_free_unpacked(m, NULL);
            return 0;
        }
        c->changed = 1;
        np.state = (char *)c->state;
        if (strcmp(c->state, am_pod_state_name(AM_POD_RUNNING)) == 0)
            np.started_ms = am_now_ms();
        if (state_is_final(c->state))
            np.ended_ms = am_now_ms();
        np.exit_code = c->exit_code;
        if (c->reason && *c->reason)
            np.reason = (char *)c->reason;
        if (c->limits_note && *c->limits_note)
            np.limits_note = (char *)c->limits_note;
        if (c->commit && *c->commit)
            np.commit = (char *)c->commit;
    }
    if (c->set_shared) {
        if (!np.shared != !c->shared)
            c->changed = 1;
        np.shared = c->shared ? 1 : 0;
    }
    if (c->display_name) {
        if (strcmp(np.display_name ? np.display_name : "", c->display_name) != 0)
            c->changed = 1;
        np.display_name = (char *)c->display_name;
    }
    if (c->agent_state && !am_pods_ended(p) &&
        (c->agent_renotify || strcmp(p->agent_state, c->agent_state) != 0)) {
        c->changed = 1;
        np.agent_state = (char *)c->agent_state;
        np.agent_state_ms = am_now_ms();
    }
    if (c->set_recording)
        np.recording = 1;
    if (c->set_first_output && !np.first_output_ms)
        np.first_output_ms = am_now_ms();
    rc = am_txn_put(t, AM_DB_PODS, c->org, c->id, &np.base);
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc == 0 && c->changed)
        rc = am_txn_hook_run(hook, t);
    return rc;
}

int am_pods_update(am_store *s, am_pod_update *u, const am_txn_hook *hook) {
    if (u->state) {
        am_pod_state st;
        int rc = am_pod_state_parse(u->state, &st);
        if (rc)
            return rc;
        u->state = am_pod_state_name(st); /* a constant: valid for the whole call */
    }
    u->hook_ = hook;
    return am_store_update(s, update_txn, u);
}

void am_pods_recording_path(const char *data_dir, const char *org, const char *pod_id, char *out,
                            size_t cap) {
    snprintf(out, cap, "%s/recordings/%s/%s.cast.zst", data_dir, org, pod_id);
}

int am_pods_on_recording(am_store *s, const char *data_dir, const char *org, const char *runner_id,
                         const Airmesh__V1__RecordingChunk *ch) {
    Airmesh__V1__Pod *p = NULL;
    int rc = am_pods_get(s, org, ch->pod_id, &p);
    if (rc)
        return rc;
    int mine = strcmp(p->runner_id, runner_id) == 0;
    protobuf_c_message_free_unpacked(&p->base, NULL);
    if (!mine)
        return am_err_set(AM_EAUTH, "pod %s does not belong to runner %s", ch->pod_id, runner_id);
    char dir[PATH_MAX], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/recordings/%s", data_dir, org);
    if ((rc = am_mkdir_p(dir, 0700)) != 0)
        return rc;
    am_pods_recording_path(data_dir, org, ch->pod_id, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (ch->offset == 0 ? O_TRUNC : 0), 0600);
    if (fd < 0)
        return am_err_set(AM_EIO, "recording %s: %s", path, strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0) {
        close(fd);
        return am_err_set(AM_EIO, "recording %s: fstat: %s", path, strerror(errno));
    }
    if ((uint64_t)stt.st_size != ch->offset || ch->offset + ch->data.len > MAX_RECORDING) {
        close(fd);
        return am_err_set(AM_EINVAL, "recording %s: chunk at %llu does not follow %lld bytes",
                          ch->pod_id, (unsigned long long)ch->offset, (long long)stt.st_size);
    }
    ssize_t w = pwrite(fd, ch->data.data, ch->data.len, (off_t)ch->offset);
    if (ch->last)
        fsync(fd);
    close(fd);
    if (w != (ssize_t)ch->data.len)
        return am_err_set(AM_EIO, "recording %s: short write", path);
    if (ch->last) {
        am_pod_update u = {.id = ch->pod_id, .org = org, .set_recording = 1};
        rc = am_pods_update(s, &u, NULL);
    }
    return rc;
}

int am_pods_get(am_store *s, const char *org, const char *pod_id, Airmesh__V1__Pod **out) {
    return am_store_get(s, AM_DB_PODS, org, pod_id, &airmesh__v1__pod__descriptor,
                        (ProtobufCMessage **)out);
}

typedef struct {
    const char *org, *id;
    const am_txn_hook *hook;
} del_ctx;

static int del_txn(am_txn *t, void *ud) {
    del_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_PODS, c->org, c->id, &airmesh__v1__pod__descriptor, &m);
    if (rc)
        return rc == -AM_ENOTFOUND ? am_err_set(AM_ENOTFOUND, "no pod %s", c->id) : rc;
    int ended = am_pods_ended((Airmesh__V1__Pod *)m);
    protobuf_c_message_free_unpacked(m, NULL);
    if (!ended)
        return am_err_set(AM_ESTATE, "pod %s is still active: stop it first", c->id);
    rc = am_txn_del(t, AM_DB_PODS, c->org, c->id);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_pods_delete(am_store *s, const char *data_dir, const char *org, const char *pod_id,
                   const am_txn_hook *hook) {
    del_ctx c = {org, pod_id, hook};
    int rc = am_store_update(s, del_txn, &c);
    if (rc == 0) {
        char path[PATH_MAX];
        am_pods_recording_path(data_dir, org, pod_id, path, sizeof path);
        unlink(path);
    }
    return rc;
}

/* ---- reconciliation ---- */

typedef struct {
    const char *runner;
    const char *const *running;
    size_t n_running;
    char (*lost)[AM_POD_ID_LEN + 1];
    size_t cap, n;
} lost_ctx;

static int lost_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    lost_ctx *c = ud;
    const Airmesh__V1__Pod *p = (const Airmesh__V1__Pod *)m;
    /* A pending pod created moments ago may still be on its way; an older one never arrived. */
    if (strcmp(p->runner_id, c->runner) != 0 || am_pods_ended(p) || c->n == c->cap ||
        (strcmp(p->state, am_pod_state_name(AM_POD_PENDING)) == 0 &&
         p->created_ms + 10000 > am_now_ms()))
        return 0;
    for (size_t i = 0; i < c->n_running; i++)
        if (strcmp(c->running[i], p->id) == 0)
            return 0;
    snprintf(c->lost[c->n++], AM_POD_ID_LEN + 1, "%s", p->id);
    return 0;
}

int am_pods_lost(am_store *s, const char *org, const char *runner_id, const char *const *running,
                 size_t n_running, char (*lost)[AM_POD_ID_LEN + 1], size_t cap, size_t *n) {
    lost_ctx c = {runner_id, running, n_running, lost, cap, 0};
    am_txn *t = NULL;
    *n = 0;
    int rc = am_store_begin(s, 0, &t);
    if (rc)
        return rc;
    rc = am_txn_list(t, AM_DB_PODS, org, &airmesh__v1__pod__descriptor, lost_cb, &c);
    am_txn_abort(t);
    *n = c.n;
    return rc;
}
