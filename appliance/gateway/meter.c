/*
 * appliance/gateway/meter.c — the model usage counters in the store (AM_DB_USAGE, ModelUsage;
 * keys in core.h): added to inside the caller's write transaction (appliance/ops records a
 * request's usage and its audit record in one transaction), read one scope at a time.
 * Threads: any (the store serialises writers). Ownership: nothing kept.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "appliance/gateway/core.h"
#include "common/err.h"

void am_gw_day(uint64_t ms, char out[11]) {
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 11, "%04u-%02u-%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
             (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u);
}

static int add_one(am_txn *t, const char *org, const char *scope, const am_gw_counts *d,
                   uint64_t now_ms) {
    ProtobufCMessage *m = NULL;
    Airmesh__V1__ModelUsage u = AIRMESH__V1__MODEL_USAGE__INIT;
    int rc = am_txn_get(t, AM_DB_USAGE, org, scope, &airmesh__v1__model_usage__descriptor, &m);
    if (rc == 0) {
        const Airmesh__V1__ModelUsage *old = (const Airmesh__V1__ModelUsage *)m;
        u.requests = old->requests;
        u.tokens_in = old->tokens_in;
        u.tokens_out = old->tokens_out;
        u.errors = old->errors;
        u.refused = old->refused;
        protobuf_c_message_free_unpacked(m, NULL);
    } else if (rc != -AM_ENOTFOUND) {
        return rc;
    }
    u.requests += d->requests;
    u.tokens_in += d->tokens_in;
    u.tokens_out += d->tokens_out;
    u.errors += d->errors;
    u.refused += d->refused;
    u.updated_ms = now_ms;
    return am_txn_put(t, AM_DB_USAGE, org, scope, &u.base);
}

int am_gw_meter_add(am_txn *t, const char *org, const char *day, const char *pod, const char *user,
                    const am_gw_counts *d, uint64_t now_ms) {
    char scope[AM_STORE_ID_MAX + 1];
    snprintf(scope, sizeof scope, "day:%s", day);
    int rc = add_one(t, org, scope, d, now_ms);
    if (rc == 0 && pod && *pod) {
        snprintf(scope, sizeof scope, "pod:%.120s", pod);
        rc = add_one(t, org, scope, d, now_ms);
    }
    if (rc == 0 && user && *user) {
        int n = snprintf(scope, sizeof scope, "user:%s:%s", user, day);
        if (n > 0 && (size_t)n < sizeof scope)
            rc = add_one(t, org, scope, d, now_ms);
    }
    return rc;
}

int am_gw_meter_get(am_store *s, const char *org, const char *scope, am_gw_counts *out) {
    memset(out, 0, sizeof *out);
    ProtobufCMessage *m = NULL;
    int rc = am_store_get(s, AM_DB_USAGE, org, scope, &airmesh__v1__model_usage__descriptor, &m);
    if (rc == -AM_ENOTFOUND)
        return 0;
    if (rc)
        return rc;
    const Airmesh__V1__ModelUsage *u = (const Airmesh__V1__ModelUsage *)m;
    out->requests = u->requests;
    out->tokens_in = u->tokens_in;
    out->tokens_out = u->tokens_out;
    out->errors = u->errors;
    out->refused = u->refused;
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
