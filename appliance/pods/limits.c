/*
 * appliance/pods/limits.c — an org's pod limit policy (issue 9, "Limits by default"): per-org
 * defaults and maxima kept in the org's store record (Org.pod_defaults, Org.pod_max), and the
 * one rule that turns a create request into the limits a pod really gets: the request, else the
 * org default, else the global default (config pod_*), never above the org max. A request above
 * the max is refused naming the limit, never silently lowered.
 * Pure store logic (appliance/ops does the role check and the audit record around it).
 * Ownership: nothing kept. Threads: any (the store serialises writers).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "appliance/pods/pods.h"
#include "common/err.h"

/* Human size for messages: "2G", "512M", "1536K" or bytes. */
static void fmt_size(char *buf, size_t cap, uint64_t v) {
    if (v && v % (1ull << 30) == 0)
        snprintf(buf, cap, "%" PRIu64 "G", v >> 30);
    else if (v && v % (1ull << 20) == 0)
        snprintf(buf, cap, "%" PRIu64 "M", v >> 20);
    else if (v && v % (1ull << 10) == 0)
        snprintf(buf, cap, "%" PRIu64 "K", v >> 10);
    else
        snprintf(buf, cap, "%" PRIu64, v);
}

static void fmt_cpu(char *buf, size_t cap, uint64_t millis) {
    snprintf(buf, cap, "%" PRIu64 ".%03" PRIu64, millis / 1000, millis % 1000);
}

/* The limits one at a time, so every rule is written once. */
enum { L_MEMORY, L_CPU, L_PIDS, L_TMP, L_SHM, L_WORKSPACE, L__COUNT };
static const char *const k_names[L__COUNT] = {"memory", "cpu", "pids", "tmp", "shm", "workspace"};
/* Smallest and largest value a pod create accepts (am_pods_validate's ranges). */
static const uint64_t k_min[L__COUNT] = {64ull << 20, 1, 16, 1ull << 20, 1ull << 20, 16ull << 20};
static const uint64_t k_max[L__COUNT] = {1ull << 40, 256000,     65536,
                                         1ull << 40, 1ull << 40, 1ull << 40};

static uint64_t get(const am_pod_defaults *d, int i) {
    switch (i) {
    case L_MEMORY:
        return d->memory_bytes;
    case L_CPU:
        return d->cpu_millis;
    case L_PIDS:
        return d->pids;
    case L_TMP:
        return d->tmp_bytes;
    case L_SHM:
        return d->shm_bytes;
    default:
        return d->workspace_bytes;
    }
}

static void set(am_pod_defaults *d, int i, uint64_t v) {
    switch (i) {
    case L_MEMORY:
        d->memory_bytes = v;
        break;
    case L_CPU:
        d->cpu_millis = (uint32_t)v;
        break;
    case L_PIDS:
        d->pids = (uint32_t)v;
        break;
    case L_TMP:
        d->tmp_bytes = v;
        break;
    case L_SHM:
        d->shm_bytes = v;
        break;
    default:
        d->workspace_bytes = v;
        break;
    }
}

static void fmt(char *buf, size_t cap, int i, uint64_t v) {
    if (i == L_CPU)
        fmt_cpu(buf, cap, v);
    else if (i == L_PIDS)
        snprintf(buf, cap, "%" PRIu64, v);
    else
        fmt_size(buf, cap, v);
}

int am_pods_limits_validate(const am_org_limits *l) {
    for (int i = 0; i < L__COUNT; i++) {
        uint64_t d = get(&l->def, i), m = get(&l->max, i);
        char a[32], b[32];
        for (int k = 0; k < 2; k++) {
            uint64_t v = k ? m : d;
            if (v && (v < k_min[i] || v > k_max[i])) {
                fmt(a, sizeof a, i, k_min[i]);
                fmt(b, sizeof b, i, k_max[i]);
                return am_err_set(AM_EINVAL, "%s.%s: %s to %s", k ? "max" : "defaults", k_names[i],
                                  a, b);
            }
        }
        if (d && m && d > m) {
            fmt(a, sizeof a, i, d);
            fmt(b, sizeof b, i, m);
            return am_err_set(AM_EINVAL, "defaults.%s: %s is above max.%s %s", k_names[i], a,
                              k_names[i], b);
        }
    }
    return 0;
}

static void from_msg(const Airmesh__V1__OrgPodLimits *m, am_pod_defaults *d) {
    memset(d, 0, sizeof *d);
    if (!m)
        return;
    d->memory_bytes = m->memory_bytes;
    d->cpu_millis = m->cpu_millis;
    d->pids = m->pids;
    d->tmp_bytes = m->tmp_bytes;
    d->shm_bytes = m->shm_bytes;
    d->workspace_bytes = m->workspace_bytes;
}

static void to_msg(const am_pod_defaults *d, Airmesh__V1__OrgPodLimits *m) {
    airmesh__v1__org_pod_limits__init(m);
    m->memory_bytes = d->memory_bytes;
    m->cpu_millis = d->cpu_millis;
    m->pids = d->pids;
    m->tmp_bytes = d->tmp_bytes;
    m->shm_bytes = d->shm_bytes;
    m->workspace_bytes = d->workspace_bytes;
}

static void from_org(const ProtobufCMessage *m, am_org_limits *out) {
    const Airmesh__V1__Org *o = (const Airmesh__V1__Org *)m;
    from_msg(o->pod_defaults, &out->def);
    from_msg(o->pod_max, &out->max);
}

int am_pods_limits_get(am_store *s, const char *org, am_org_limits *out) {
    memset(out, 0, sizeof *out);
    ProtobufCMessage *m = NULL;
    if (!org || am_store_get(s, AM_DB_ORGS, "", org, &airmesh__v1__org__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    from_org(m, out);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

int am_pods_limits_txn(am_txn *t, const char *org, am_org_limits *out) {
    memset(out, 0, sizeof *out);
    ProtobufCMessage *m = NULL;
    if (am_txn_get(t, AM_DB_ORGS, "", org, &airmesh__v1__org__descriptor, &m) != 0)
        return 0; /* no org record (tests, old stores): no policy */
    from_org(m, out);
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

typedef struct {
    const char *org;
    const am_org_limits *l;
    const am_txn_hook *hook;
} set_ctx;

static int set_txn(am_txn *t, void *ud) {
    set_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    if (am_txn_get(t, AM_DB_ORGS, "", c->org, &airmesh__v1__org__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    Airmesh__V1__Org *o = (Airmesh__V1__Org *)m;
    Airmesh__V1__OrgPodLimits d, x;
    to_msg(&c->l->def, &d);
    to_msg(&c->l->max, &x);
    Airmesh__V1__OrgPodLimits *old_d = o->pod_defaults, *old_x = o->pod_max;
    o->pod_defaults = &d;
    o->pod_max = &x;
    int rc = am_txn_put(t, AM_DB_ORGS, "", c->org, &o->base);
    o->pod_defaults = old_d; /* the unpacked message frees its own */
    o->pod_max = old_x;
    protobuf_c_message_free_unpacked(m, NULL);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_pods_limits_set(am_store *s, const char *org, const am_org_limits *l,
                       const am_txn_hook *hook) {
    int rc = am_pods_limits_validate(l);
    if (rc)
        return rc;
    set_ctx c = {org, l, hook};
    return am_store_update(s, set_txn, &c);
}

int am_pods_limits_apply(const am_pod_spec *s, const am_pod_defaults *g, const am_org_limits *l,
                         am_pod_defaults *eff) {
    am_pod_defaults req = {.memory_bytes = s->memory_bytes,
                           .cpu_millis = s->cpu_millis,
                           .pids = s->pids,
                           .tmp_bytes = s->tmp_bytes,
                           .shm_bytes = s->shm_bytes,
                           .workspace_bytes = s->workspace_bytes};
    memset(eff, 0, sizeof *eff);
    for (int i = 0; i < L__COUNT; i++) {
        uint64_t r = get(&req, i), od = l ? get(&l->def, i) : 0, mx = l ? get(&l->max, i) : 0;
        char a[32], b[32];
        if (r && mx && r > mx) {
            fmt(a, sizeof a, i, r);
            fmt(b, sizeof b, i, mx);
            return am_err_set(AM_EINVAL, "limits.%s: %s is above this organization's maximum %s",
                              k_names[i], a, b);
        }
        if (!r && od && mx && od > mx) { /* a stored policy is validated; belt and braces */
            fmt(a, sizeof a, i, od);
            fmt(b, sizeof b, i, mx);
            return am_err_set(AM_EINVAL,
                              "limits.%s: this organization's default %s is above its maximum %s",
                              k_names[i], a, b);
        }
        uint64_t v = r ? r : od ? od : get(g, i);
        /* The global default (or none at all) never exceeds the org max: the max applies. */
        if (mx && (!v || v > mx))
            v = mx;
        set(eff, i, v);
    }
    return 0;
}
