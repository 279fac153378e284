/*
 * appliance/ops/models.c — the org's model endpoints (on-prem OpenAI- or Anthropic-compatible
 * servers): add, remove, self-test, and the redacted reads. The single write path of the
 * models table (AM_DB_MODELS, "org/<name>", ModelEndpoint); the gateway only reads it.
 *
 * Why here: an endpoint holds the org's real API key. Everything that leaves this file is
 * redacted (the key field emptied, has_key said instead), audit details are built from the
 * non-secret fields only, and the self-test's words are scrubbed of the key before they are
 * stored, audited or returned (a server may echo a bad key back in its error).
 *
 * Order of add: role check (AM_CAN_MODELS; a refusal is a denied record) → the field rules
 * (-AM_EINVAL, nothing stored) → the name must be free → the self-test (slow: network, outside
 * any transaction) → one write transaction that re-checks the name, stores the record and
 * appends "model.add" inside it. A test re-reads the record after its self-test and refuses to
 * write over an endpoint that was removed or replaced meanwhile.
 * Threads: any; the self-test blocks the calling thread (transports call these from a worker).
 * Memory: records out of these calls belong to the caller (protobuf_c_message_free_unpacked).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define NAME_MAX_LEN 64
#define URL_MAX 512
#define KEY_MAX 4096
#define CA_MAX (64 * 1024)
#define MODELS_MAX 64
#define MODEL_NAME_MAX 128

void am_ops_set_model_tester(am_ops *o, am_ops_model_test_fn fn, void *ctx) {
    o->model_test = fn;
    o->model_test_ctx = ctx;
}

/* ---- the field rules ---- */

static int valid_host(const char *h, size_t n) {
    if (n == 0 || n > 253)
        return 0;
    if (h[0] == '[') { /* an IPv6 literal */
        if (n < 3 || h[n - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (!strchr("0123456789abcdefABCDEF:.", h[i]))
                return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return 0;
    }
    return h[0] != '.' && h[0] != '-';
}

/* http(s)://host[:port][/path] (see am_model_spec). */
static int valid_url(const char *u) {
    static const char *rule = "url: expected http(s)://host[:port][/path]";
    size_t len = strlen(u);
    if (len == 0 || len > URL_MAX)
        return am_err_set(AM_EINVAL, "%s (at most %d characters)", rule, URL_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)u[i] <= 0x20 || (unsigned char)u[i] >= 0x7f)
            return am_err_set(AM_EINVAL, "%s: no spaces or control characters", rule);
    const char *p;
    if (strncmp(u, "http://", 7) == 0)
        p = u + 7;
    else if (strncmp(u, "https://", 8) == 0)
        p = u + 8;
    else
        return am_err_set(AM_EINVAL, "%s: the scheme must be http or https", rule);
    if (strchr(u, '?') || strchr(u, '#'))
        return am_err_set(AM_EINVAL, "%s: no query (?) or fragment (#)", rule);
    const char *slash = strchr(p, '/');
    size_t alen = slash ? (size_t)(slash - p) : strlen(p);
    if (memchr(p, '@', alen))
        return am_err_set(AM_EINVAL,
                          "%s: no user or password in the URL (give the key with key/--key-file)",
                          rule);
    /* host[:port], the port after the last ':' outside an IPv6 literal's brackets */
    const char *colon = NULL;
    for (size_t i = 0; i < alen; i++) {
        if (p[i] == ']')
            colon = NULL;
        else if (p[i] == ':' && (p[0] != '[' || memchr(p, ']', i)))
            colon = p + i;
    }
    size_t hlen = colon ? (size_t)(colon - p) : alen;
    if (!valid_host(p, hlen))
        return am_err_set(AM_EINVAL, "%s: \"%.*s\" is not a host name or address", rule,
                          (int)(hlen > 80 ? 80 : hlen), p);
    if (colon) {
        size_t plen = alen - hlen - 1;
        unsigned long port = 0;
        if (plen == 0 || plen > 5)
            return am_err_set(AM_EINVAL, "%s: the port must be 1-65535", rule);
        for (size_t i = 0; i < plen; i++) {
            if (colon[1 + i] < '0' || colon[1 + i] > '9')
                return am_err_set(AM_EINVAL, "%s: the port must be 1-65535", rule);
            port = port * 10 + (unsigned long)(colon[1 + i] - '0');
        }
        if (port == 0 || port > 65535)
            return am_err_set(AM_EINVAL, "%s: the port must be 1-65535", rule);
    }
    return 0;
}

static int valid_model_name(const char *m) {
    size_t n = strlen(m);
    if (n == 0 || n > MODEL_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)m[i] <= 0x20 || (unsigned char)m[i] >= 0x7f)
            return 0;
    return 1;
}

int am_ops_model_validate(const am_model_spec *s) {
    if (!s || !s->name || !am_auth_valid_name(s->name) || strlen(s->name) > NAME_MAX_LEN)
        return am_err_set(AM_EINVAL, "name: 1-64 of a-z, 0-9, '.', '_' and '-', starting with "
                                     "a letter or digit");
    if (!s->api || (strcmp(s->api, "openai") != 0 && strcmp(s->api, "anthropic") != 0))
        return am_err_set(AM_EINVAL, "api: openai or anthropic");
    if (!s->url)
        return am_err_set(AM_EINVAL, "url: required, e.g. http://vllm.lan:8000/v1");
    int rc = valid_url(s->url);
    if (rc)
        return rc;
    if (s->key) {
        size_t n = strnlen(s->key, KEY_MAX + 1);
        if (n > KEY_MAX)
            return am_err_set(AM_EINVAL, "key: at most 4096 bytes");
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s->key[i] <= 0x20 || (unsigned char)s->key[i] >= 0x7f)
                return am_err_set(AM_EINVAL, "key: printable ASCII without spaces (it goes into "
                                             "an HTTP header)");
    }
    if (s->ca_pem && s->ca_pem[0]) {
        if (strnlen(s->ca_pem, CA_MAX + 1) > CA_MAX)
            return am_err_set(AM_EINVAL, "ca_pem: at most 64 KiB");
        uint8_t *der = NULL;
        size_t dlen = 0;
        if (am_pki_pem_to_der(s->ca_pem, &der, &dlen) != 0)
            return am_err_set(AM_EINVAL, "ca_pem: not a PEM certificate (expected "
                                         "-----BEGIN CERTIFICATE----- ...)");
        free(der);
    }
    if (s->n_models > MODELS_MAX)
        return am_err_set(AM_EINVAL, "models: at most %d", MODELS_MAX);
    for (size_t i = 0; i < s->n_models; i++) {
        if (!s->models[i] || !valid_model_name(s->models[i]))
            return am_err_set(AM_EINVAL, "models: each name 1-128 printable characters without "
                                         "spaces");
        for (size_t j = 0; j < i; j++)
            if (strcmp(s->models[i], s->models[j]) == 0)
                return am_err_set(AM_EINVAL, "models: \"%s\" is listed twice", s->models[i]);
    }
    return 0;
}

/* ---- redaction ---- */

static int redact(Airmesh__V1__ModelEndpoint *e) {
    int has = e->key.len > 0;
    if (e->key.data) {
        am_wipe(e->key.data, e->key.len);
        free(e->key.data);
    }
    e->key.data = NULL;
    e->key.len = 0;
    return has;
}

/* Overwrite every occurrence of key in s with '*' (in place). */
static void scrub(char *s, const ProtobufCBinaryData *key) {
    if (!s || key->len == 0)
        return;
    size_t n = strlen(s);
    for (size_t i = 0; i + key->len <= n; i++)
        if (memcmp(s + i, key->data, key->len) == 0)
            memset(s + i, '*', key->len);
}

static void scrub_test(Airmesh__V1__ModelSelfTest *t, const ProtobufCBinaryData *key) {
    if (!t)
        return;
    scrub(t->error, key);
    for (size_t i = 0; i < t->n_models_listed; i++)
        scrub(t->models_listed[i], key);
    for (size_t i = 0; i < t->n_checks; i++) {
        scrub(t->checks[i]->model, key);
        scrub(t->checks[i]->error, key);
    }
}

/* A result for when there is no self-test to run. */
static Airmesh__V1__ModelSelfTest *test_unavailable(const char *why) {
    Airmesh__V1__ModelSelfTest t = AIRMESH__V1__MODEL_SELF_TEST__INIT;
    t.time_ms = am_now_ms();
    t.error = (char *)why;
    size_t n = protobuf_c_message_get_packed_size(&t.base);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return NULL;
    protobuf_c_message_pack(&t.base, b);
    Airmesh__V1__ModelSelfTest *out = airmesh__v1__model_self_test__unpack(NULL, n, b);
    free(b);
    return out;
}

static int run_test(am_ops *o, const Airmesh__V1__ModelEndpoint *e,
                    Airmesh__V1__ModelSelfTest **out) {
    *out = NULL;
    int rc = o->model_test ? o->model_test(o->model_test_ctx, e, out)
             : (*out = test_unavailable("self-test not available")) ? 0
                                                                    : -AM_ENOMEM;
    if (rc || !*out)
        return rc ? rc : am_err_set(AM_ENOMEM, "model self-test: out of memory");
    scrub_test(*out, &e->key);
    return 0;
}

/* The summary in audit details and logs: {"reachable", "models_listed", "completion": "n/m",
 * "tool_call": "n/m", "error"}. */
static json_t *test_summary(const Airmesh__V1__ModelSelfTest *t) {
    size_t comp = 0, tools = 0;
    for (size_t i = 0; i < t->n_checks; i++) {
        comp += t->checks[i]->completion;
        tools += t->checks[i]->tool_call;
    }
    char c[32], k[32];
    snprintf(c, sizeof c, "%zu/%zu", comp, t->n_checks);
    snprintf(k, sizeof k, "%zu/%zu", tools, t->n_checks);
    json_t *j = json_pack("{s:b,s:I,s:s,s:s}", "reachable", t->reachable, "models_listed",
                          (json_int_t)t->n_models_listed, "completion", c, "tool_call", k);
    if (j && t->error && t->error[0])
        json_object_set_new(j, "error", json_stringn(t->error, strnlen(t->error, 200)));
    return j;
}

/* details = doc (compact), dropping "models" then "url" when it does not fit. Consumes doc. */
static void set_details(ops_act *a, json_t *doc) {
    for (int pass = 0; doc && pass < 3; pass++) {
        char *s = json_dumps(doc, JSON_COMPACT);
        if (s && strlen(s) < sizeof a->details) {
            snprintf(a->details, sizeof a->details, "%s", s);
            free(s);
            json_decref(doc);
            return;
        }
        free(s);
        json_object_del(doc, pass == 0 ? "models" : pass == 1 ? "url" : "test");
    }
    json_decref(doc);
    snprintf(a->details, sizeof a->details, "{}");
}

static void model_target(char *buf, size_t cap, const char *name) {
    snprintf(buf, cap, "model:%.64s", name ? name : "");
}

/* ---- add ---- */

typedef struct {
    const Airmesh__V1__ModelEndpoint *rec;
    const am_txn_hook *hook;
} put_ctx;

static int add_txn(am_txn *t, void *ud) {
    put_ctx *c = ud;
    ProtobufCMessage *old = NULL;
    int rc = am_txn_get(t, AM_DB_MODELS, c->rec->org_id, c->rec->name,
                        &airmesh__v1__model_endpoint__descriptor, &old);
    if (rc == 0) {
        protobuf_c_message_free_unpacked(old, NULL);
        return am_err_set(AM_EEXISTS,
                          "a model endpoint named %s already exists (model rm it "
                          "first)",
                          c->rec->name);
    }
    if (rc != -AM_ENOTFOUND)
        return rc;
    if ((rc = am_txn_put(t, AM_DB_MODELS, c->rec->org_id, c->rec->name, &c->rec->base)) != 0)
        return rc;
    return am_txn_hook_run(c->hook, t);
}

/* A stored record's copy for the caller (unpacked, so it frees like any other). */
static int copy_out(const Airmesh__V1__ModelEndpoint *e, Airmesh__V1__ModelEndpoint **out,
                    int *has_key) {
    size_t n = protobuf_c_message_get_packed_size(&e->base);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return am_err_set(AM_ENOMEM, "model: out of memory");
    protobuf_c_message_pack(&e->base, b);
    *out = airmesh__v1__model_endpoint__unpack(NULL, n, b);
    am_wipe(b, n);
    free(b);
    if (!*out)
        return am_err_set(AM_ENOMEM, "model: out of memory");
    int has = redact(*out);
    if (has_key)
        *has_key = has;
    return 0;
}

int am_ops_model_add(am_ops *o, const am_principal *who, const char *source, const am_model_spec *s,
                     Airmesh__V1__ModelEndpoint **out, int *has_key) {
    if (out)
        *out = NULL;
    char target[80];
    model_target(target, sizeof target, s ? s->name : NULL);
    ops_act a;
    ops_act_user(&a, o, who, "model.add", target, source);
    int rc = ops_check(&a, who, AM_CAN_MODELS, NULL);
    if (rc)
        return rc;
    if ((rc = am_ops_model_validate(s)) != 0)
        return rc;
    ProtobufCMessage *old = NULL;
    rc = am_store_get(o->c.store, AM_DB_MODELS, who->org_id, s->name,
                      &airmesh__v1__model_endpoint__descriptor, &old);
    if (rc == 0) {
        protobuf_c_message_free_unpacked(old, NULL);
        return am_err_set(AM_EEXISTS,
                          "a model endpoint named %s already exists (model rm it "
                          "first)",
                          s->name);
    }
    if (rc != -AM_ENOTFOUND)
        return rc;

    char url[URL_MAX + 1], actor[160];
    snprintf(url, sizeof url, "%s", s->url);
    for (size_t n = strlen(url); n > 0 && url[n - 1] == '/'; n--)
        url[n - 1] = '\0';
    snprintf(actor, sizeof actor, "user:%s", who->user_id);
    Airmesh__V1__ModelEndpoint e = AIRMESH__V1__MODEL_ENDPOINT__INIT;
    e.name = (char *)s->name;
    e.org_id = (char *)who->org_id;
    e.api = (char *)s->api;
    e.url = url;
    e.key.data = (uint8_t *)(s->key ? s->key : "");
    e.key.len = s->key ? strlen(s->key) : 0;
    e.ca_pem = (char *)(s->ca_pem ? s->ca_pem : "");
    e.models = (char **)s->models;
    e.n_models = s->n_models;
    e.created_ms = am_now_ms();
    e.created_by = actor;

    Airmesh__V1__ModelSelfTest *test = NULL;
    if ((rc = run_test(o, &e, &test)) != 0)
        return rc;
    e.last_test = test;

    json_t *d = json_pack("{s:s,s:s,s:b,s:b}", "api", s->api, "url", url, "has_key", e.key.len > 0,
                          "has_ca", e.ca_pem[0] != '\0');
    json_t *ms = json_array();
    for (size_t i = 0; i < s->n_models; i++)
        json_array_append_new(ms, json_string(s->models[i]));
    json_object_set_new(d, "models", ms);
    json_object_set_new(d, "test", test_summary(test));
    set_details(&a, d);

    put_ctx c = {&e, &a.hook};
    rc = ops_act_done(&a, am_store_update(o->c.store, add_txn, &c));
    if (rc == 0) {
        am_log_info("models", "endpoint added", "org=%s name=%s api=%s reachable=%d", who->org_id,
                    s->name, s->api, (int)test->reachable);
        if (out)
            rc = copy_out(&e, out, has_key);
    }
    e.last_test = NULL;
    protobuf_c_message_free_unpacked(&test->base, NULL);
    return rc;
}

/* ---- remove ---- */

typedef struct {
    const char *org, *name;
    const am_txn_hook *hook;
} rm_ctx;

static int rm_txn(am_txn *t, void *ud) {
    rm_ctx *c = ud;
    int rc = am_txn_del(t, AM_DB_MODELS, c->org, c->name);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND, "no model endpoint named %s", c->name);
    if (rc)
        return rc;
    return am_txn_hook_run(c->hook, t);
}

int am_ops_model_rm(am_ops *o, const am_principal *who, const char *source, const char *name) {
    char target[80];
    model_target(target, sizeof target, name);
    ops_act a;
    ops_act_user(&a, o, who, "model.rm", target, source);
    int rc = ops_check(&a, who, AM_CAN_MODELS, NULL);
    if (rc)
        return rc;
    if (!name || !am_auth_valid_name(name))
        return am_err_set(AM_ENOTFOUND, "no model endpoint named %.64s", name ? name : "");
    rm_ctx c = {who->org_id, name, &a.hook};
    return ops_act_done(&a, am_store_update(o->c.store, rm_txn, &c));
}

/* ---- test ---- */

typedef struct {
    const char *org, *name;
    uint64_t created_ms;
    Airmesh__V1__ModelSelfTest *test;
    const am_txn_hook *hook;
    Airmesh__V1__ModelEndpoint *stored; /* a copy for the caller (set on success) */
    int has_key;
} test_ctx;

static int test_txn(am_txn *t, void *ud) {
    test_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc =
        am_txn_get(t, AM_DB_MODELS, c->org, c->name, &airmesh__v1__model_endpoint__descriptor, &m);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND, "no model endpoint named %s (removed during the test)",
                          c->name);
    if (rc)
        return rc;
    Airmesh__V1__ModelEndpoint *e = (Airmesh__V1__ModelEndpoint *)m;
    if (e->created_ms != c->created_ms) {
        protobuf_c_message_free_unpacked(m, NULL);
        return am_err_set(AM_ESTATE,
                          "model endpoint %s was replaced during the test: test it "
                          "again",
                          c->name);
    }
    Airmesh__V1__ModelSelfTest *old = e->last_test;
    e->last_test = c->test;
    rc = am_txn_put(t, AM_DB_MODELS, c->org, c->name, &e->base);
    if (rc == 0)
        rc = am_txn_hook_run(c->hook, t);
    if (rc == 0 && !c->stored)
        rc = copy_out(e, &c->stored, &c->has_key);
    e->last_test = old;
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int am_ops_model_test(am_ops *o, const am_principal *who, const char *source, const char *name,
                      Airmesh__V1__ModelEndpoint **out, int *has_key) {
    if (out)
        *out = NULL;
    char target[80];
    model_target(target, sizeof target, name);
    ops_act a;
    ops_act_user(&a, o, who, "model.test", target, source);
    int rc = ops_check(&a, who, AM_CAN_MODELS, NULL);
    if (rc)
        return rc;
    ProtobufCMessage *m = NULL;
    if (!name || !am_auth_valid_name(name) ||
        am_store_get(o->c.store, AM_DB_MODELS, who->org_id, name,
                     &airmesh__v1__model_endpoint__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no model endpoint named %.64s", name ? name : "");
    Airmesh__V1__ModelEndpoint *e = (Airmesh__V1__ModelEndpoint *)m;
    Airmesh__V1__ModelSelfTest *test = NULL;
    rc = run_test(o, e, &test);
    if (rc) {
        protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    json_t *d = json_pack("{s:b}", "has_key", e->key.len > 0);
    json_object_set_new(d, "test", test_summary(test));
    set_details(&a, d);
    test_ctx c = {who->org_id, name, e->created_ms, test, &a.hook, NULL, 0};
    rc = ops_act_done(&a, am_store_update(o->c.store, test_txn, &c));
    protobuf_c_message_free_unpacked(m, NULL);
    protobuf_c_message_free_unpacked(&test->base, NULL);
    if (rc) {
        if (c.stored)
            protobuf_c_message_free_unpacked(&c.stored->base, NULL);
        return rc;
    }
    if (out)
        *out = c.stored;
    else if (c.stored)
        protobuf_c_message_free_unpacked(&c.stored->base, NULL);
    if (has_key)
        *has_key = c.has_key;
    return 0;
}

/* ---- reads ---- */

int am_ops_model_get(am_ops *o, const am_principal *who, const char *name,
                     Airmesh__V1__ModelEndpoint **out, int *has_key) {
    *out = NULL;
    int rc = am_auth_can(who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    ProtobufCMessage *m = NULL;
    if (!name || !am_auth_valid_name(name) ||
        am_store_get(o->c.store, AM_DB_MODELS, who->org_id, name,
                     &airmesh__v1__model_endpoint__descriptor, &m) != 0)
        return am_err_set(AM_ENOTFOUND, "no model endpoint named %.64s", name ? name : "");
    *out = (Airmesh__V1__ModelEndpoint *)m;
    int has = redact(*out);
    if (has_key)
        *has_key = has;
    return 0;
}

typedef struct {
    am_ops_model_fn fn;
    void *ud;
} list_ctx;

static int list_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    list_ctx *c = ud;
    Airmesh__V1__ModelEndpoint copy = *(const Airmesh__V1__ModelEndpoint *)m;
    int has = copy.key.len > 0;
    copy.key.data = NULL;
    copy.key.len = 0;
    return c->fn(c->ud, &copy, has);
}

int am_ops_model_list(am_ops *o, const am_principal *who, am_ops_model_fn fn, void *ud) {
    int rc = am_auth_can(who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    list_ctx c = {fn, ud};
    return am_ops_list(o, AM_DB_MODELS, who->org_id, &airmesh__v1__model_endpoint__descriptor,
                       list_cb, &c);
}
