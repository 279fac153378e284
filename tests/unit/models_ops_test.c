/*
 * tests/unit/models_ops_test.c — appliance/ops/models.c with no sockets: a real store in a
 * temporary directory, a real hub, a fake self-test and an audit writer that records what it
 * is given (details included) and can fail like a full disk. It proves:
 *   - admins add, test and remove endpoints, each change one audit record (published), the
 *     record stored with the real key while every answer is redacted (has_key instead);
 *   - the role just below (member) is refused with a denied record and nothing changes, while
 *     any role lists and reads;
 *   - every bad field is -AM_EINVAL naming the field, with nothing stored and nothing audited;
 *   - the key appears in no audit record and in no stored self-test words, even when the
 *     server echoes it back in an error;
 *   - a failed audit append fails the add and stores nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/ops/ops.h"
#include "common/err.h"
#include "common/util.h"
#include "pki/pki.h"
#include "tests/unit/ops_fixture.h"

#define ORG "acme"
#define KEY "sk-real-0123456789abcdef"

typedef struct {
    opsfx fx; /* store, hub, ops, audit records */
    int tests_run;
    char seen_key[64]; /* the key the fake self-test was handed */
} env;

/* A self-test result built like the real one (pack + unpack = one malloc per field). The
 * server "echoes the key" in the error of the second model's check. */
static int fake_test(void *ctx, const Airmesh__V1__ModelEndpoint *ep,
                     Airmesh__V1__ModelSelfTest **out) {
    env *e = ctx;
    e->tests_run++;
    snprintf(e->seen_key, sizeof e->seen_key, "%.*s", (int)ep->key.len, (const char *)ep->key.data);
    Airmesh__V1__ModelSelfTest t = AIRMESH__V1__MODEL_SELF_TEST__INIT;
    Airmesh__V1__ModelCheck c1 = AIRMESH__V1__MODEL_CHECK__INIT,
                            c2 = AIRMESH__V1__MODEL_CHECK__INIT;
    Airmesh__V1__ModelCheck *cs[2] = {&c1, &c2};
    char *listed[2] = {"good", "texty"};
    char err[200];
    snprintf(err, sizeof err, "the model answered text: invalid key %s", KEY);
    t.time_ms = 1;
    t.reachable = 1;
    t.models_listed = listed;
    t.n_models_listed = 2;
    t.checks = cs;
    t.n_checks = 2;
    c1.model = "good";
    c1.completion = c1.tool_call = 1;
    c2.model = "texty";
    c2.completion = 1;
    c2.error = err;
    size_t n = protobuf_c_message_get_packed_size(&t.base);
    uint8_t *b = malloc(n);
    protobuf_c_message_pack(&t.base, b);
    *out = airmesh__v1__model_self_test__unpack(NULL, n, b);
    free(b);
    return *out ? 0 : -AM_ENOMEM;
}

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    opsfx_open(&e->fx, "models_ops_test", NULL);
    am_ops_set_model_tester(e->fx.ops, fake_test, e);
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    opsfx_close(&e->fx);
    free(e);
    return 0;
}

static void count_cb(void *arg, const char *data, size_t len) {
    (void)data;
    (void)len;
    (*(size_t *)arg)++;
}

static size_t published(env *e) {
    uint64_t after = 0;
    size_t n = 0;
    am_hub_events_read(e->fx.hub, ORG, &after, count_cb, &n);
    return n;
}

/* The stored record, key included (what the gateway reads). NULL when absent. */
static Airmesh__V1__ModelEndpoint *stored(env *e, const char *name) {
    ProtobufCMessage *m = NULL;
    if (am_store_get(e->fx.store, AM_DB_MODELS, ORG, name, &airmesh__v1__model_endpoint__descriptor,
                     &m) != 0)
        return NULL;
    return (Airmesh__V1__ModelEndpoint *)m;
}

static const char *const k_models[] = {"good", "texty"};

static am_model_spec spec(const char *name) {
    am_model_spec s = {.name = name,
                       .api = "openai",
                       .url = "http://127.0.0.1:8000/v1/",
                       .key = KEY,
                       .models = k_models,
                       .n_models = 2};
    return s;
}

static void assert_no_key_in_records(env *e) {
    for (size_t i = 0; i < e->fx.nrec; i++)
        if (strstr(e->fx.recs[i].details, KEY) || strstr(e->fx.recs[i].target, KEY))
            fail_msg("the key is in audit record %zu (%s): %s", i, e->fx.recs[i].action,
                     e->fx.recs[i].details);
}

static void test_admin_adds_and_the_key_stays_inside(void **state) {
    env *e = *state;
    am_principal admin = opsfx_user(ORG, "admin", AIRMESH__V1__ROLE__ROLE_ADMIN);
    am_model_spec s = spec("vllm");
    Airmesh__V1__ModelEndpoint *out = NULL;
    int has_key = 0;
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &s, &out, &has_key), 0);
    /* the self-test ran with the real key; the answer is redacted */
    assert_int_equal(e->tests_run, 1);
    assert_string_equal(e->seen_key, KEY);
    assert_non_null(out);
    assert_int_equal(has_key, 1);
    assert_int_equal(out->key.len, 0);
    assert_string_equal(out->url, "http://127.0.0.1:8000/v1"); /* trailing '/' dropped */
    assert_non_null(out->last_test);
    assert_int_equal(out->last_test->n_checks, 2);
    assert_null(strstr(out->last_test->checks[1]->error, KEY));
    protobuf_c_message_free_unpacked(&out->base, NULL);
    /* stored with the key, the self-test's words scrubbed */
    Airmesh__V1__ModelEndpoint *st = stored(e, "vllm");
    assert_non_null(st);
    assert_int_equal(st->key.len, strlen(KEY));
    assert_memory_equal(st->key.data, KEY, strlen(KEY));
    assert_string_equal(st->created_by, "user:admin");
    assert_true(st->last_test->checks[0]->tool_call);
    assert_false(st->last_test->checks[1]->tool_call);
    assert_non_null(strstr(st->last_test->checks[1]->error, "invalid key ****"));
    protobuf_c_message_free_unpacked(&st->base, NULL);
    /* one audit record, published, with has_key and without the key */
    assert_int_equal(e->fx.nrec, 1);
    assert_string_equal(e->fx.recs[0].action, "model.add");
    assert_string_equal(e->fx.recs[0].result, "ok");
    assert_string_equal(e->fx.recs[0].target, "model:vllm");
    assert_non_null(strstr(e->fx.recs[0].details, "\"has_key\":true"));
    assert_non_null(strstr(e->fx.recs[0].details, "\"tool_call\":\"1/2\""));
    assert_no_key_in_records(e);
    assert_int_equal(published(e), 1);

    /* the same name again: a conflict, nothing run, nothing changed */
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &s, NULL, NULL), -AM_EEXISTS);
    assert_int_equal(e->tests_run, 1);
    assert_int_equal(e->fx.nrec, 1);
}

static void test_member_is_refused_but_lists(void **state) {
    env *e = *state;
    am_principal admin = opsfx_user(ORG, "admin", AIRMESH__V1__ROLE__ROLE_ADMIN);
    am_principal member = opsfx_user(ORG, "member", AIRMESH__V1__ROLE__ROLE_MEMBER);
    am_principal viewer = opsfx_user(ORG, "viewer", AIRMESH__V1__ROLE__ROLE_VIEWER);
    am_model_spec s = spec("m1");
    /* positive control: the admin's add works */
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &s, NULL, NULL), 0);
    size_t before = e->fx.nrec;
    am_model_spec s2 = spec("m2");
    assert_int_equal(am_ops_model_add(e->fx.ops, &member, "src", &s2, NULL, NULL), -AM_EPERM);
    assert_non_null(strstr(am_err_last(), "admin"));
    assert_null(stored(e, "m2"));
    assert_int_equal(am_ops_model_test(e->fx.ops, &member, "src", "m1", NULL, NULL), -AM_EPERM);
    assert_int_equal(am_ops_model_rm(e->fx.ops, &member, "src", "m1"), -AM_EPERM);
    Airmesh__V1__ModelEndpoint *st = stored(e, "m1");
    assert_non_null(st);
    protobuf_c_message_free_unpacked(&st->base, NULL);
    assert_int_equal(e->tests_run, 1); /* refused tests never reach the server */
    assert_int_equal(e->fx.nrec, before + 3);
    for (size_t i = before; i < e->fx.nrec; i++)
        assert_string_equal(e->fx.recs[i].result, "denied");
    assert_string_equal(e->fx.recs[before].action, "model.add");
    assert_string_equal(e->fx.recs[before + 1].action, "model.test");
    assert_string_equal(e->fx.recs[before + 2].action, "model.rm");
    /* any role reads, redacted */
    Airmesh__V1__ModelEndpoint *g = NULL;
    int has_key = 0;
    assert_int_equal(am_ops_model_get(e->fx.ops, &viewer, "m1", &g, &has_key), 0);
    assert_int_equal(has_key, 1);
    assert_int_equal(g->key.len, 0);
    assert_null(g->key.data);
    protobuf_c_message_free_unpacked(&g->base, NULL);
    assert_int_equal(am_ops_model_get(e->fx.ops, &viewer, "nope", &g, NULL), -AM_ENOTFOUND);
}

static int list_cb(void *ud, const Airmesh__V1__ModelEndpoint *ep, int has_key) {
    int *n = ud;
    assert_int_equal(ep->key.len, 0);
    assert_int_equal(has_key, 1);
    (*n)++;
    return 0;
}

static void test_list_is_redacted(void **state) {
    env *e = *state;
    am_principal admin = opsfx_user(ORG, "admin", AIRMESH__V1__ROLE__ROLE_ADMIN);
    am_principal viewer = opsfx_user(ORG, "viewer", AIRMESH__V1__ROLE__ROLE_VIEWER);
    am_model_spec a = spec("a"), b = spec("b");
    b.api = "anthropic";
    b.url = "https://claude.lan:8443";
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &a, NULL, NULL), 0);
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &b, NULL, NULL), 0);
    int n = 0;
    assert_int_equal(am_ops_model_list(e->fx.ops, &viewer, list_cb, &n), 0);
    assert_int_equal(n, 2);
}

static void test_test_and_rm(void **state) {
    env *e = *state;
    am_principal admin = opsfx_user(ORG, "admin", AIRMESH__V1__ROLE__ROLE_ADMIN);
    am_model_spec s = spec("x");
    s.key = NULL;
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &s, NULL, NULL), 0);
    Airmesh__V1__ModelEndpoint *out = NULL;
    int has_key = 1;
    assert_int_equal(am_ops_model_test(e->fx.ops, &admin, "src", "x", &out, &has_key), 0);
    assert_int_equal(e->tests_run, 2);
    assert_int_equal(has_key, 0);
    assert_int_equal(out->last_test->n_checks, 2);
    protobuf_c_message_free_unpacked(&out->base, NULL);
    assert_string_equal(e->fx.recs[e->fx.nrec - 1].action, "model.test");
    assert_non_null(strstr(e->fx.recs[e->fx.nrec - 1].details, "\"has_key\":false"));
    assert_int_equal(am_ops_model_test(e->fx.ops, &admin, "src", "nope", NULL, NULL),
                     -AM_ENOTFOUND);
    assert_int_equal(am_ops_model_rm(e->fx.ops, &admin, "src", "x"), 0);
    assert_string_equal(e->fx.recs[e->fx.nrec - 1].action, "model.rm");
    assert_non_null(strstr(e->fx.recs[e->fx.nrec - 1].details, "\"has_key\":false"));
    assert_non_null(strstr(e->fx.recs[e->fx.nrec - 1].details, "\"api\":\"openai\""));
    assert_null(stored(e, "x"));
    size_t before = e->fx.nrec;
    assert_int_equal(am_ops_model_rm(e->fx.ops, &admin, "src", "x"), -AM_ENOTFOUND);
    assert_int_equal(e->fx.nrec, before);
}

static void test_bad_fields_are_refused_and_nothing_is_stored(void **state) {
    env *e = *state;
    am_principal admin = opsfx_user(ORG, "admin", AIRMESH__V1__ROLE__ROLE_ADMIN);
    char long_name[80], long_model[140], long_key[4200];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    memset(long_model, 'm', 129);
    long_model[129] = '\0';
    memset(long_key, 'k', 4097);
    long_key[4097] = '\0';
    const char *bad_models[] = {"ok", "with space"};
    const char *dup_models[] = {"a", "a"};
    const char *long_models[] = {long_model};
    static const struct {
        const char *field, *value, *says;
    } cases[] = {
        {"name", "", "name:"},
        {"name", "Upper", "name:"},
        {"name", "-dash", "name:"},
        {"name", "a/b", "name:"},
        {"api", "gemini", "api:"},
        {"url", "ftp://h/v1", "scheme"},
        {"url", "http://user:pw@h/v1", "no user or password"},
        {"url", "http://h/v1?x=1", "query"},
        {"url", "http://h/v1#f", "fragment"},
        {"url", "http://h:0/v1", "port"},
        {"url", "http://h:99999/v1", "port"},
        {"url", "http://h:80x/v1", "port"},
        {"url", "http://", "host"},
        {"url", "http://h h/v1", "spaces"},
        {"url", "vllm.lan:8000", "scheme"},
        {"key", "sk with space", "key:"},
        {"key", "sk\r\nX-Evil: 1", "key:"},
        {"ca_pem", "not a certificate", "ca_pem:"},
        {"ca_pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "ca_pem:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        am_model_spec s = spec("ok");
        if (strcmp(cases[i].field, "name") == 0)
            s.name = cases[i].value;
        else if (strcmp(cases[i].field, "api") == 0)
            s.api = cases[i].value;
        else if (strcmp(cases[i].field, "url") == 0)
            s.url = cases[i].value;
        else if (strcmp(cases[i].field, "key") == 0)
            s.key = cases[i].value;
        else
            s.ca_pem = cases[i].value;
        int rc = am_ops_model_add(e->fx.ops, &admin, "src", &s, NULL, NULL);
        if (rc != -AM_EINVAL || !strstr(am_err_last(), cases[i].says))
            fail_msg("case %zu (%s=%s): rc %d, \"%s\"", i, cases[i].field, cases[i].value, rc,
                     am_err_last());
    }
    struct {
        am_model_spec s;
        const char *says;
    } more[5];
    more[0].s = spec(long_name), more[0].says = "name:";
    more[1].s = spec("ok"), more[1].s.key = long_key, more[1].says = "key:";
    more[2].s = spec("ok"), more[2].s.models = bad_models, more[2].says = "models:";
    more[3].s = spec("ok"), more[3].s.models = dup_models, more[3].says = "twice";
    more[4].s = spec("ok"), more[4].s.models = long_models, more[4].s.n_models = 1,
    more[4].says = "models:";
    for (size_t i = 0; i < 5; i++) {
        int rc = am_ops_model_add(e->fx.ops, &admin, "src", &more[i].s, NULL, NULL);
        if (rc != -AM_EINVAL || !strstr(am_err_last(), more[i].says))
            fail_msg("case more[%zu]: rc %d, \"%s\"", i, rc, am_err_last());
    }
    assert_null(stored(e, "ok"));
    assert_int_equal(e->fx.nrec, 0);
    assert_int_equal(e->tests_run, 0);

    /* positive controls: the edges that are fine */
    am_model_spec ok = spec("a.b_c-9");
    ok.url = "https://[::1]:8443/openai/v1";
    ok.models = NULL;
    ok.n_models = 0;
    am_pki_key *k = NULL;
    char *pem = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    assert_int_equal(am_pki_make_root(k, "model CA", 30, &pem), 0);
    ok.ca_pem = pem;
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &ok, NULL, NULL), 0);
    Airmesh__V1__ModelEndpoint *st = stored(e, "a.b_c-9");
    assert_non_null(st);
    assert_string_equal(st->ca_pem, pem);
    protobuf_c_message_free_unpacked(&st->base, NULL);
    assert_non_null(strstr(e->fx.recs[0].details, "\"has_ca\":true"));
    free(pem);
    am_pki_key_free(k);
}

static void test_a_failed_audit_append_stores_nothing(void **state) {
    env *e = *state;
    am_principal admin = opsfx_user(ORG, "admin", AIRMESH__V1__ROLE__ROLE_ADMIN);
    am_model_spec s = spec("full");
    e->fx.audit_fail = 1;
    assert_int_not_equal(am_ops_model_add(e->fx.ops, &admin, "src", &s, NULL, NULL), 0);
    assert_null(stored(e, "full"));
    assert_int_equal(published(e), 0);
    e->fx.audit_fail = 0;
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &s, NULL, NULL), 0);
    e->fx.audit_fail = 1;
    assert_int_not_equal(am_ops_model_rm(e->fx.ops, &admin, "src", "full"), 0);
    Airmesh__V1__ModelEndpoint *st = stored(e, "full");
    assert_non_null(st);
    protobuf_c_message_free_unpacked(&st->base, NULL);
}

static void test_without_a_tester_the_result_says_so(void **state) {
    env *e = *state;
    am_ops_set_model_tester(e->fx.ops, NULL, NULL);
    am_principal admin = opsfx_user(ORG, "admin", AIRMESH__V1__ROLE__ROLE_ADMIN);
    am_model_spec s = spec("plain");
    Airmesh__V1__ModelEndpoint *out = NULL;
    assert_int_equal(am_ops_model_add(e->fx.ops, &admin, "src", &s, &out, NULL), 0);
    assert_false(out->last_test->reachable);
    assert_string_equal(out->last_test->error, "self-test not available");
    protobuf_c_message_free_unpacked(&out->base, NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_admin_adds_and_the_key_stays_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_member_is_refused_but_lists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_is_redacted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_test_and_rm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_fields_are_refused_and_nothing_is_stored, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_audit_append_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_without_a_tester_the_result_says_so, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
