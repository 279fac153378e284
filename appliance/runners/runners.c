/*
 * appliance/runners/runners.c — enrollment tokens, runner records and revocation on LMDB.
 * See runners.h for the key layout. Certificates are issued before the write transaction
 * (issuing is pure CPU and the transaction callback must be re-runnable); if the transaction
 * then refuses (token burned meanwhile), the certificate is simply discarded, never recorded.
 * Changes take an am_txn_hook (appliance/ops: the audit append) run last inside their transaction.
 */
#include "appliance/runners/runners.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

static void sha256_hex(const char *s, uint8_t digest[32], char hex[65]) {
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), digest, &n, EVP_sha256(), NULL);
    am_hex(digest, 32, hex);
}

static int labels_to_map(const am_labels *l, Airmesh__V1__EnrollToken__LabelsEntry ***out,
                         size_t *n_out) {
    *out = NULL;
    *n_out = 0;
    if (!l || l->n == 0)
        return 0;
    Airmesh__V1__EnrollToken__LabelsEntry **arr = calloc(l->n, sizeof *arr);
    Airmesh__V1__EnrollToken__LabelsEntry *ents = calloc(l->n, sizeof *ents);
    if (!arr || !ents) {
        free(arr);
        free(ents);
        return am_err_set(AM_ENOMEM, "runners: out of memory");
    }
    for (size_t i = 0; i < l->n; i++) {
        airmesh__v1__enroll_token__labels_entry__init(&ents[i]);
        ents[i].key = (char *)l->keys[i];
        ents[i].value = (char *)l->values[i];
        arr[i] = &ents[i];
    }
    *out = arr;
    *n_out = l->n;
    return 0;
}

static void labels_free(void *arr, size_t n) {
    if (!arr || n == 0)
        return;
    free(((void **)arr)[0]);
    free(arr);
}

typedef struct {
    const char *key;
    const Airmesh__V1__EnrollToken *tok;
    const am_txn_hook *hook;
} tok_put_ctx;

static int tok_put_txn(am_txn *t, void *ud) {
    tok_put_ctx *c = ud;
    int rc = am_txn_put(t, AM_DB_TOKENS, "", c->key, &c->tok->base);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_runners_token_create(am_store *s, const char *org, uint64_t ttl_ms, const char *created_by,
                            const am_labels *labels, char *secret_out, char *id_out,
                            uint64_t *expires_ms, const am_txn_hook *hook) {
    uint8_t raw[32], digest[32];
    char hex[65];
    int rc = am_random(raw, sizeof raw);
    if (rc)
        return rc;
    memcpy(secret_out, "amt_", 4);
    am_hex(raw, sizeof raw, secret_out + 4);
    am_wipe(raw, sizeof raw);
    sha256_hex(secret_out, digest, hex);

    Airmesh__V1__EnrollToken t = AIRMESH__V1__ENROLL_TOKEN__INIT;
    char id[13];
    snprintf(id, sizeof id, "%.12s", hex);
    t.id = id;
    t.org_id = (char *)org;
    t.secret_sha256.data = digest;
    t.secret_sha256.len = sizeof digest;
    t.created_ms = am_now_ms();
    t.expires_ms = t.created_ms + ttl_ms;
    t.created_by = (char *)(created_by ? created_by : "");
    memcpy(id_out, id, sizeof id); /* the hook names the token in its audit record */
    rc = labels_to_map(labels, &t.labels, &t.n_labels);
    if (rc == 0) {
        tok_put_ctx c = {hex, &t, hook};
        rc = am_store_update(s, tok_put_txn, &c);
    }
    labels_free(t.labels, t.n_labels);
    if (rc) {
        am_wipe(secret_out, AM_TOKEN_SECRET_LEN + 1);
        return rc;
    }
    *expires_ms = t.expires_ms;
    return 0;
}

typedef struct {
    const char *org, *token_id;
    int found;
    const am_txn_hook *hook;
} revoke_tok_ctx;

typedef struct {
    am_txn *t;
    revoke_tok_ctx *c;
    int rc;
} revoke_tok_iter;

static int revoke_tok_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    revoke_tok_iter *it = ud;
    const Airmesh__V1__EnrollToken *tok = (const Airmesh__V1__EnrollToken *)m;
    if (strcmp(tok->id, it->c->token_id) != 0 || strcmp(tok->org_id, it->c->org) != 0)
        return 0;
    Airmesh__V1__EnrollToken copy = *tok;
    copy.revoked = 1;
    it->rc = am_txn_put(it->t, AM_DB_TOKENS, "", id, &copy.base);
    it->c->found = 1;
    return 1;
}

static int revoke_tok_txn(am_txn *t, void *ud) {
    revoke_tok_ctx *c = ud;
    revoke_tok_iter it = {t, c, 0};
    c->found = 0;
    int rc = am_txn_list(t, AM_DB_TOKENS, "", &airmesh__v1__enroll_token__descriptor,
                         revoke_tok_cb, &it);
    if (rc)
        return rc;
    if (it.rc)
        return it.rc;
    if (!c->found)
        return am_err_set(AM_ENOTFOUND, "no token %s in org %s", c->token_id, c->org);
    return am_txn_hook_run(c->hook, t);
}

typedef struct {
    const char *org, *id;
    int found;
} exists_ctx;

static int exists_cb(void *ud, const char *key, const ProtobufCMessage *m) {
    (void)key;
    exists_ctx *c = ud;
    const Airmesh__V1__EnrollToken *t = (const Airmesh__V1__EnrollToken *)m;
    c->found |= strcmp(t->id, c->id) == 0 && strcmp(t->org_id, c->org) == 0;
    return c->found;
}

int am_runners_token_exists(am_store *s, const char *org, const char *token_id) {
    exists_ctx c = {org, token_id, 0};
    am_txn *t;
    if (am_store_begin(s, 0, &t) != 0)
        return 0;
    am_txn_list(t, AM_DB_TOKENS, "", &airmesh__v1__enroll_token__descriptor, exists_cb, &c);
    am_txn_abort(t);
    return c.found;
}

int am_runners_token_revoke(am_store *s, const char *org, const char *token_id,
                            const am_txn_hook *hook) {
    revoke_tok_ctx c = {org, token_id, 0, hook};
    return am_store_update(s, revoke_tok_txn, &c);
}

typedef struct {
    const char *hash_hex;
    const uint8_t *digest;
    const char *hostname, *version;
    const am_labels *labels;
    am_enrolled *out;
    char org[129];
    int phase; /* 0: check only (read), 1: burn + record */
    const am_txn_hook *hook;
} enroll_ctx;

static int enroll_txn(am_txn *t, void *ud) {
    enroll_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_TOKENS, "", c->hash_hex, &airmesh__v1__enroll_token__descriptor,
                        &m);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_EAUTH, "enrollment token is not known to this appliance");
    if (rc)
        return rc;
    Airmesh__V1__EnrollToken *tok = (Airmesh__V1__EnrollToken *)m;
    if (tok->secret_sha256.len != 32 || !am_ct_equal(tok->secret_sha256.data, c->digest, 32))
        rc = am_err_set(AM_EAUTH, "enrollment token is not known to this appliance");
    else if (tok->revoked)
        rc = am_err_set(AM_EAUTH, "enrollment token %s was revoked", tok->id);
    else if (tok->used)
        rc = am_err_set(AM_EAUTH, "enrollment token %s was already used (by runner %s)",
                        tok->id, tok->used_by_runner);
    else if (am_now_ms() >= tok->expires_ms)
        rc = am_err_set(AM_EAUTH, "enrollment token %s expired", tok->id);
    if (rc == 0) {
        snprintf(c->org, sizeof c->org, "%s", tok->org_id);
        if (c->phase == 1) {
            char *orig_used_by = tok->used_by_runner;
            tok->used = 1;
            tok->used_by_runner = c->out->runner_id;
            tok->used_ms = am_now_ms();
            rc = am_txn_put(t, AM_DB_TOKENS, "", c->hash_hex, &tok->base);
            tok->used_by_runner = orig_used_by; /* ours is not the message's to free */
            if (rc == 0) {
                Airmesh__V1__Runner r = AIRMESH__V1__RUNNER__INIT;
                r.id = c->out->runner_id;
                r.org_id = c->org;
                r.hostname = (char *)c->hostname;
                r.version = (char *)c->version;
                r.cert_serial = c->out->serial;
                r.cert_not_after_ms = c->out->not_after_ms;
                r.enrolled_ms = r.last_seen_ms = am_now_ms();
                /* The token's labels, then the runner's own (which win on a clash when read). */
                size_t nl = tok->n_labels + (c->labels ? c->labels->n : 0);
                Airmesh__V1__Runner__LabelsEntry *ents = nl ? calloc(nl, sizeof *ents) : NULL;
                Airmesh__V1__Runner__LabelsEntry **arr = nl ? calloc(nl, sizeof *arr) : NULL;
                if (nl && (!ents || !arr)) {
                    rc = am_err_set(AM_ENOMEM, "runners: out of memory");
                } else {
                    for (size_t i = 0; i < nl; i++) {
                        airmesh__v1__runner__labels_entry__init(&ents[i]);
                        if (i < tok->n_labels) {
                            ents[i].key = tok->labels[i]->key;
                            ents[i].value = tok->labels[i]->value;
                        } else {
                            ents[i].key = (char *)c->labels->keys[i - tok->n_labels];
                            ents[i].value = (char *)c->labels->values[i - tok->n_labels];
                        }
                        arr[i] = &ents[i];
                    }
                    r.labels = arr;
                    r.n_labels = nl;
                    rc = am_txn_put(t, AM_DB_RUNNERS, c->org, r.id, &r.base);
                }
                free(ents);
                free(arr);
            }
            if (rc == 0) {
                snprintf(c->out->org_id, sizeof c->out->org_id, "%s", c->org);
                rc = am_txn_hook_run(c->hook, t);
            }
        }
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

static int issue(am_ca *ca, const char *org, const char *runner_id, const uint8_t *csr_der,
                 size_t csr_len, uint32_t cert_days, am_enrolled *out) {
    am_pki_leaf_opts o = {0};
    o.cn = runner_id;
    o.org = org;
    o.days = cert_days;
    o.client = 1;
    int rc = am_ca_issue_from_csr(ca, csr_der, csr_len, &o, &out->chain_pem, &out->serial);
    if (rc)
        return rc;
    uint64_t not_after = 0, serial = 0;
    char cn[128];
    rc = am_pki_cert_info(out->chain_pem, &serial, &not_after, cn);
    if (rc) {
        free(out->chain_pem);
        out->chain_pem = NULL;
        return rc;
    }
    out->not_after_ms = not_after * 1000u;
    return 0;
}

int am_runners_enroll(am_store *s, am_ca *ca, const char *token, const uint8_t *csr_der,
                      size_t csr_len, const char *hostname, const char *version,
                      const am_labels *labels, uint32_t cert_days, am_enrolled *out,
                      const am_txn_hook *hook) {
    memset(out, 0, sizeof *out);
    if (!token || strncmp(token, "amt_", 4) != 0 || strlen(token) != AM_TOKEN_SECRET_LEN)
        return am_err_set(AM_EAUTH, "enrollment token is malformed (expected amt_ + 64 hex)");
    uint8_t digest[32];
    char hex[65];
    sha256_hex(token, digest, hex);
    enroll_ctx c = {.hash_hex = hex,
                    .digest = digest,
                    .hostname = hostname ? hostname : "",
                    .version = version ? version : "",
                    .labels = labels,
                    .out = out};
    /* 1. Check the token (read-only) so a bad token costs no certificate. */
    am_txn *t = NULL;
    int rc = am_store_begin(s, 0, &t);
    if (rc)
        return rc;
    rc = enroll_txn(t, &c);
    am_txn_abort(t);
    if (rc)
        return rc;
    /* 2. Issue the certificate from the CSR (verifies its signature and key type). */
    uint8_t rnd[8];
    if ((rc = am_random(rnd, sizeof rnd)) != 0)
        return rc;
    memcpy(out->runner_id, "r-", 2);
    am_hex(rnd, sizeof rnd, out->runner_id + 2);
    rc = issue(ca, c.org, out->runner_id, csr_der, csr_len, cert_days, out);
    if (rc)
        return rc;
    /* 3. Burn the token and record the runner in one transaction (re-checks the token). */
    c.phase = 1;
    c.hook = hook;
    rc = am_store_update(s, enroll_txn, &c);
    if (rc) {
        free(out->chain_pem);
        out->chain_pem = NULL;
        return rc;
    }
    snprintf(out->org_id, sizeof out->org_id, "%s", c.org);
    return 0;
}

static void serial_key(uint64_t serial, char key[17]) {
    snprintf(key, 17, "%016llx", (unsigned long long)serial);
}

int am_runners_check_cert(am_store *s, const char *runner_id, const char *org, uint64_t serial) {
    char key[17];
    serial_key(serial, key);
    ProtobufCMessage *m = NULL;
    int rc = am_store_get(s, AM_DB_REVOKED, "", key, &airmesh__v1__revoked_serial__descriptor, &m);
    if (rc == 0) {
        protobuf_c_message_free_unpacked(m, NULL);
        return am_err_set(AM_EAUTH, "certificate serial %s is revoked", key);
    }
    rc = am_store_get(s, AM_DB_RUNNERS, org, runner_id, &airmesh__v1__runner__descriptor, &m);
    if (rc)
        return am_err_set(AM_EAUTH, "unknown runner %s in org %s", runner_id, org);
    Airmesh__V1__Runner *r = (Airmesh__V1__Runner *)m;
    rc = 0;
    if (r->revoked) {
        rc = am_err_set(AM_EAUTH, "runner %s is revoked", runner_id);
    } else if (r->cert_serial != serial) {
        int known = 0;
        for (size_t i = 0; i < r->n_old_serials; i++)
            known |= r->old_serials[i] == serial;
        if (!known)
            rc = am_err_set(AM_EAUTH, "certificate serial %s was not issued to runner %s", key,
                            runner_id);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

typedef struct {
    const char *org, *id, *hostname, *version;
    const am_labels *labels;
    uint32_t capacity;
    uint64_t seen_ms;
    const am_enrolled *renewed;
    const char *reason;
    int mode; /* 0 hello, 1 seen, 2 renew, 3 revoke */
    const am_txn_hook *hook;
} update_ctx;

static int update_txn(am_txn *t, void *ud) {
    update_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_RUNNERS, c->org, c->id, &airmesh__v1__runner__descriptor, &m);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND, "no runner %s", c->id);
    if (rc)
        return rc;
    Airmesh__V1__Runner *r = (Airmesh__V1__Runner *)m;
    Airmesh__V1__Runner nr = *r;
    Airmesh__V1__Runner__LabelsEntry *ents = NULL, **arr = NULL;
    uint64_t *serials = NULL;
    if (c->mode == 0) {
        nr.hostname = (char *)c->hostname;
        nr.version = (char *)c->version;
        nr.capacity = c->capacity;
        nr.last_seen_ms = am_now_ms();
        if (c->labels && c->labels->n) {
            ents = calloc(c->labels->n, sizeof *ents);
            arr = calloc(c->labels->n, sizeof *arr);
            if (!ents || !arr) {
                rc = am_err_set(AM_ENOMEM, "runners: out of memory");
                goto out;
            }
            for (size_t i = 0; i < c->labels->n; i++) {
                airmesh__v1__runner__labels_entry__init(&ents[i]);
                ents[i].key = (char *)c->labels->keys[i];
                ents[i].value = (char *)c->labels->values[i];
                arr[i] = &ents[i];
            }
            nr.labels = arr;
            nr.n_labels = c->labels->n;
        }
    } else if (c->mode == 1) {
        nr.last_seen_ms = c->seen_ms;
    } else if (c->mode == 2) {
        serials = calloc(r->n_old_serials + 1, sizeof *serials);
        if (!serials) {
            rc = am_err_set(AM_ENOMEM, "runners: out of memory");
            goto out;
        }
        if (r->n_old_serials)
            memcpy(serials, r->old_serials, r->n_old_serials * sizeof *serials);
        serials[r->n_old_serials] = r->cert_serial;
        nr.old_serials = serials;
        nr.n_old_serials = r->n_old_serials + 1;
        nr.cert_serial = c->renewed->serial;
        nr.cert_not_after_ms = c->renewed->not_after_ms;
    } else {
        nr.revoked = 1;
        for (size_t i = 0; i <= r->n_old_serials && rc == 0; i++) {
            Airmesh__V1__RevokedSerial rs = AIRMESH__V1__REVOKED_SERIAL__INIT;
            rs.serial = i < r->n_old_serials ? r->old_serials[i] : r->cert_serial;
            rs.runner_id = r->id;
            rs.org_id = r->org_id;
            rs.revoked_ms = am_now_ms();
            rs.reason = (char *)(c->reason ? c->reason : "");
            char key[17];
            serial_key(rs.serial, key);
            rc = am_txn_put(t, AM_DB_REVOKED, "", key, &rs.base);
        }
    }
    if (rc == 0)
        rc = am_txn_put(t, AM_DB_RUNNERS, c->org, c->id, &nr.base);
    if (rc == 0)
        rc = am_txn_hook_run(c->hook, t);
out:
    free(ents);
    free(arr);
    free(serials);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int am_runners_hello(am_store *s, const char *org, const char *runner_id, const char *hostname,
                     const char *version, const am_labels *labels, uint32_t capacity,
                     const am_txn_hook *hook) {
    update_ctx c = {.org = org,
                    .id = runner_id,
                    .hostname = hostname,
                    .version = version,
                    .labels = labels,
                    .capacity = capacity,
                    .mode = 0,
                    .hook = hook};
    return am_store_update(s, update_txn, &c);
}

int am_runners_seen(am_store *s, const char *org, const char *runner_id, uint64_t when_ms,
                    const am_txn_hook *hook) {
    update_ctx c = {.org = org, .id = runner_id, .seen_ms = when_ms, .mode = 1, .hook = hook};
    return am_store_update(s, update_txn, &c);
}

int am_runners_renew(am_store *s, am_ca *ca, const char *org, const char *runner_id,
                     const uint8_t *csr_der, size_t csr_len, uint32_t cert_days, am_enrolled *out,
                     const am_txn_hook *hook) {
    memset(out, 0, sizeof *out);
    snprintf(out->runner_id, sizeof out->runner_id, "%s", runner_id);
    snprintf(out->org_id, sizeof out->org_id, "%s", org);
    int rc = issue(ca, org, runner_id, csr_der, csr_len, cert_days, out);
    if (rc)
        return rc;
    update_ctx c = {.org = org, .id = runner_id, .renewed = out, .mode = 2, .hook = hook};
    rc = am_store_update(s, update_txn, &c);
    if (rc) {
        free(out->chain_pem);
        out->chain_pem = NULL;
    }
    return rc;
}

int am_runners_revoke(am_store *s, const char *org, const char *runner_id, const char *reason,
                      const am_txn_hook *hook) {
    update_ctx c = {.org = org, .id = runner_id, .reason = reason, .mode = 3, .hook = hook};
    return am_store_update(s, update_txn, &c);
}
