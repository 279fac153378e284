/*
 * appliance/pods/egress.c — an org's egress allow list (Org.egress_allow): the on-prem
 * "host:port"s pods with network "allow" may reach through their runner's CONNECT proxy
 * (common/egress.h). A pod gets the list as it is at its create (Pod.egress_allow,
 * CreatePod.egress_allow); a later change applies to new pods.
 * Pure store logic (appliance/ops does the role check and the audit record around it).
 * Ownership: get returns malloc'd copies. Threads: any.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/pods/pods.h"
#include "common/err.h"

/* host:port with a DNS name / IPv4 (letters, digits, '.', '-', '_') or [IPv6], port 1-65535. */
static int valid_entry(const char *e) {
    size_t n = strlen(e);
    if (n == 0 || n > 260)
        return 0;
    const char *colon;
    if (e[0] == '[') {
        const char *rb = strchr(e, ']');
        if (!rb || rb == e + 1 || rb[1] != ':')
            return 0;
        for (const char *q = e + 1; q < rb; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
                return 0;
        colon = rb + 1;
    } else {
        colon = strrchr(e, ':');
        if (!colon || colon == e || (size_t)(colon - e) > 253)
            return 0;
        for (const char *q = e; q < colon; q++)
            if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
                return 0;
        if (e[0] == '.' || e[0] == '-' || colon[-1] == '.')
            return 0;
    }
    const char *p = colon + 1;
    size_t pl = strlen(p);
    if (pl == 0 || pl > 5 || strspn(p, "0123456789") != pl || p[0] == '0')
        return 0;
    long port = strtol(p, NULL, 10);
    return port >= 1 && port <= 65535;
}

int am_pods_egress_allow_validate(const char *const *allow, size_t n) {
    if (n > AM_EGRESS_ALLOW_MAX)
        return am_err_set(AM_EINVAL, "allow: at most %d entries (got %zu)", AM_EGRESS_ALLOW_MAX, n);
    for (size_t i = 0; i < n; i++) {
        if (!allow[i] || !valid_entry(allow[i]))
            return am_err_set(AM_EINVAL,
                              "allow: '%.80s' is not host:port (a host name or IP, [IPv6], and "
                              "a port 1-65535)",
                              allow[i] ? allow[i] : "");
        for (size_t j = 0; j < i; j++)
            if (strcasecmp(allow[i], allow[j]) == 0)
                return am_err_set(AM_EINVAL, "allow: '%.80s' is listed twice", allow[i]);
    }
    return 0;
}

void am_pods_egress_allow_free(char **list, size_t n) {
    for (size_t i = 0; list && i < n; i++)
        free(list[i]);
    free(list);
}

int am_pods_egress_allow_get(am_store *s, const char *org, char ***out, size_t *n) {
    *out = NULL;
    *n = 0;
    ProtobufCMessage *m = NULL;
    if (!org || am_store_get(s, AM_DB_ORGS, "", org, &airmesh__v1__org__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    const Airmesh__V1__Org *o = (const Airmesh__V1__Org *)m;
    int rc = 0;
    if (o->n_egress_allow) {
        *out = calloc(o->n_egress_allow, sizeof **out);
        for (size_t i = 0; *out && i < o->n_egress_allow; i++)
            if (((*out)[i] = strdup(o->egress_allow[i])))
                (*n)++;
        if (!*out || *n != o->n_egress_allow) {
            am_pods_egress_allow_free(*out, *n);
            *out = NULL;
            *n = 0;
            rc = am_err_set(AM_ENOMEM, "pods: out of memory");
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

typedef struct {
    const char *org;
    char **allow;
    size_t n;
    const am_txn_hook *hook;
} set_ctx;

static int set_txn(am_txn *t, void *ud) {
    set_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    if (am_txn_get(t, AM_DB_ORGS, "", c->org, &airmesh__v1__org__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no such organization");
    Airmesh__V1__Org *o = (Airmesh__V1__Org *)m;
    char **old = o->egress_allow;
    size_t old_n = o->n_egress_allow;
    o->egress_allow = c->allow;
    o->n_egress_allow = c->n;
    int rc = am_txn_put(t, AM_DB_ORGS, "", c->org, &o->base);
    o->egress_allow = old; /* the unpacked message frees its own */
    o->n_egress_allow = old_n;
    protobuf_c_message_free_unpacked(m, NULL);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_pods_egress_allow_set(am_store *s, const char *org, const char *const *allow, size_t n,
                             const am_txn_hook *hook) {
    int rc = am_pods_egress_allow_validate(allow, n);
    if (rc)
        return rc;
    char **low = n ? calloc(n, sizeof *low) : NULL;
    if (n && !low)
        return am_err_set(AM_ENOMEM, "pods: out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!(low[i] = strdup(allow[i]))) {
            am_pods_egress_allow_free(low, i);
            return am_err_set(AM_ENOMEM, "pods: out of memory");
        }
        char *colon = strrchr(low[i], ':');
        for (char *q = low[i]; q < colon; q++)
            *q = (char)tolower((unsigned char)*q);
    }
    set_ctx c = {org, low, n, hook};
    rc = am_store_update(s, set_txn, &c);
    am_pods_egress_allow_free(low, n);
    return rc;
}
