/*
 * tests/unit/bindings_tools_test.c — the pods, bindings and channels MCP tools
 * (appliance/mcp/tools_pods.c, tools_bindings.c, tools_channels.c) called the way the MCP core
 * calls them (a tool function with an am_mcp_call whose principal is a pod), over a real store,
 * hub and ops with a recording audit writer. What the in-pod test (mcp_pods_test) cannot script
 * with fixed steps is proved here: accept_binding / reject_binding / unbind_pod with ids only
 * known at run time, wait_for_pod's cancellation and timeout, list_pods' binding column,
 * list_channels' membership filter, bad arguments, and that every schema is a strict JSON
 * object.
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
#include <jansson.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/mcp/tools.h"
#include "common/err.h"
#include "common/util.h"
#include "tests/unit/ops_fixture.h"

#define ORG "acme"
#define A "p-00000000000a"
#define B "p-00000000000b"
#define C "p-00000000000c"

typedef struct {
    opsfx fx; /* store, hub, ops, audit records */
} env;

static int fake_send(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    (void)ctx, (void)runner_id, (void)m;
    return 0;
}

static void put_pod(env *e, const char *id, const char *starter, const char *agent_state) {
    Airmesh__V1__Pod p = AIRMESH__V1__POD__INIT;
    char by[64];
    snprintf(by, sizeof by, "user:%s", starter);
    p.id = (char *)id;
    p.org_id = ORG;
    p.runner_id = "r-1";
    p.created_by = by;
    p.state = "running";
    p.repo = "file:///x";
    p.branch = "b";
    p.agent_state = (char *)agent_state;
    assert_int_equal(am_store_put(e->fx.store, AM_DB_PODS, ORG, id, &p.base), 0);
}

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    opsfx_open(&e->fx, "bindings_tools_test", NULL);
    am_ops_set_runner_link(e->fx.ops, fake_send, e);
    opsfx_put_org(&e->fx, ORG);
    put_pod(e, A, "ann", "working");
    put_pod(e, B, "ann", "working");
    put_pod(e, C, "bob", "waiting");
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    opsfx_close(&e->fx);
    free(e);
    return 0;
}

/* The latest audit record (fails the test when there is none). */
static const opsfx_rec *latest(env *e) {
    assert_true(e->fx.nrec > 0);
    return &e->fx.recs[e->fx.nrec - 1];
}

static const am_mcp_tool *tool(const char *name) {
    const am_mcp_tool *tables[] = {am_mcp_tools_pods, am_mcp_tools_bindings, am_mcp_tools_channels};
    for (size_t t = 0; t < 3; t++)
        for (const am_mcp_tool *x = tables[t]; x->name; x++)
            if (!strcmp(x->name, name))
                return x;
    fail_msg("no tool %s", name);
    return NULL;
}

typedef struct {
    am_mcp_call c;
    volatile int cancelled;
} caller;

static void as_pod(env *e, caller *k, const char *pod, const char *starter) {
    memset(k, 0, sizeof *k);
    k->c.ops = e->fx.ops;
    snprintf(k->c.who.user_id, sizeof k->c.who.user_id, "%s", starter);
    snprintf(k->c.who.org_id, sizeof k->c.who.org_id, "%s", ORG);
    snprintf(k->c.who.pod_id, sizeof k->c.who.pod_id, "%s", pod);
    k->c.who.role = AIRMESH__V1__ROLE__ROLE_MEMBER;
    k->c.source = "runner:r-1";
    k->c.cancelled = &k->cancelled;
}

/* Call a tool with args (JSON text); *out = its result (or NULL). Returns the tool's rc. */
static int call(caller *k, const char *name, const char *args, json_t **out) {
    json_error_t err;
    json_t *a = json_loads(args, 0, &err);
    assert_non_null(a);
    json_t *r = NULL;
    int rc = tool(name)->fn(&k->c, a, &r);
    json_decref(a);
    if (rc)
        assert_null(r);
    if (out)
        *out = r;
    else
        json_decref(r);
    return rc;
}

static const char *jstr(json_t *o, const char *path) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    json_t *cur = o;
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k && cur;
         k = strtok_r(NULL, ".", &save))
        cur = json_object_get(cur, k);
    return json_string_value(cur);
}

static void test_every_schema_is_a_strict_object(void **state) {
    (void)state;
    const am_mcp_tool *tables[] = {am_mcp_tools_pods, am_mcp_tools_bindings, am_mcp_tools_channels};
    size_t n = 0;
    for (size_t t = 0; t < 3; t++)
        for (const am_mcp_tool *x = tables[t]; x->name; x++, n++) {
            json_error_t err;
            json_t *s = json_loads(x->input_schema, 0, &err);
            if (!s)
                fail_msg("%s: schema is not JSON: %s", x->name, err.text);
            assert_string_equal(json_string_value(json_object_get(s, "type")), "object");
            assert_true(json_is_false(json_object_get(s, "additionalProperties")));
            assert_true(json_is_object(json_object_get(s, "properties")));
            assert_true(x->description && *x->description && x->title && x->fn);
            json_decref(s);
        }
    assert_int_equal(n, 6 + 5 + 4);
}

static void test_bind_accept_reject_unbind_through_the_tools(void **state) {
    env *e = *state;
    caller a, c;
    as_pod(e, &a, A, "ann");
    as_pod(e, &c, C, "bob");
    json_t *r = NULL;
    /* A asks C (another starter): pending; A cannot accept its own request; C can */
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":\"" C "\",\"scopes\":[\"read\"]}", &r), 0);
    assert_string_equal(jstr(r, "binding.state"), "pending");
    char id[32];
    snprintf(id, sizeof id, "%s", jstr(r, "binding.id"));
    json_decref(r);
    assert_string_equal(latest(e)->actor, "pod:" A);
    char args[128];
    snprintf(args, sizeof args, "{\"binding_id\":\"%s\"}", id);
    assert_int_equal(call(&a, "accept_binding", args, NULL), -AM_EPERM);
    assert_string_equal(latest(e)->result, "denied");
    assert_int_equal(call(&c, "accept_binding", args, &r), 0);
    assert_string_equal(jstr(r, "binding.state"), "active");
    assert_string_equal(jstr(r, "binding.decided_by"), "pod:" C);
    json_decref(r);
    /* the positive control of what it unlocks: A reads C's screen */
    assert_int_equal(call(&a, "get_pod_snapshot", "{\"pod_id\":\"" C "\"}", &r), 0);
    json_decref(r);
    assert_int_equal(call(&a, "send_pod_input", "{\"pod_id\":\"" C "\",\"text\":\"x\"}", NULL),
                     -AM_EPERM); /* read only */
    /* unbind by pod id: A's live binding to C ends */
    assert_int_equal(call(&a, "unbind_pod", "{\"pod_id\":\"" C "\"}", &r), 0);
    assert_string_equal(jstr(r, "binding.state"), "ended");
    json_decref(r);
    assert_int_equal(call(&a, "get_pod_snapshot", "{\"pod_id\":\"" C "\"}", NULL), -AM_EPERM);
    assert_int_equal(call(&a, "unbind_pod", "{\"pod_id\":\"" C "\"}", NULL), -AM_ENOTFOUND);
    assert_int_equal(call(&a, "unbind_pod", "{}", NULL), -AM_EINVAL);
    /* a second request, rejected by C with a reason */
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":\"" C "\"}", &r), 0);
    snprintf(args, sizeof args, "{\"binding_id\":\"%s\",\"reason\":\"busy\"}",
             jstr(r, "binding.id"));
    json_decref(r);
    assert_int_equal(call(&c, "reject_binding", args, &r), 0);
    assert_string_equal(jstr(r, "binding.state"), "rejected");
    assert_string_equal(jstr(r, "binding.reason"), "busy");
    json_decref(r);
    /* get_bindings: each pod sees its own; B sees none */
    assert_int_equal(call(&c, "get_bindings", "{}", &r), 0);
    assert_int_equal(json_array_size(json_object_get(r, "bindings")), 2);
    assert_string_equal(jstr(r, "policy"), "same_creator");
    json_decref(r);
    caller b;
    as_pod(e, &b, B, "ann");
    assert_int_equal(call(&b, "get_bindings", "{}", &r), 0);
    assert_int_equal(json_array_size(json_object_get(r, "bindings")), 0);
    json_decref(r);
    /* bad arguments name themselves */
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":7}", NULL), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "pod_id"));
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":\"" C "\",\"scopes\":[\"root\"]}", NULL),
                     -AM_EINVAL);
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":\"" A "\"}", NULL), -AM_EINVAL);
}

static void test_list_pods_shows_the_callers_bindings(void **state) {
    env *e = *state;
    caller a;
    as_pod(e, &a, A, "ann");
    json_t *r = NULL;
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":\"" B "\",\"scopes\":[\"write\"]}", NULL),
                     0); /* same starter: active */
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":\"" C "\"}", NULL), 0); /* pending */
    assert_int_equal(call(&a, "list_pods", "{}", &r), 0);
    json_t *rows = json_object_get(r, "pods");
    assert_int_equal(json_array_size(rows), 3);
    size_t i;
    json_t *p;
    json_array_foreach(rows, i, p) {
        const char *id = jstr(p, "id");
        json_t *sc = json_object_get(p, "binding");
        if (!strcmp(id, A)) {
            assert_true(json_is_true(json_object_get(p, "self")));
        } else if (!strcmp(id, B)) {
            assert_int_equal(json_array_size(sc), 1);
            assert_string_equal(json_string_value(json_array_get(sc, 0)), "write");
        } else {
            assert_int_equal(json_array_size(sc), 0);
            assert_non_null(jstr(p, "pending_binding"));
        }
    }
    json_decref(r);
    assert_int_equal(call(&a, "get_pod_status", "{\"pod_id\":\"" C "\"}", &r), 0);
    assert_string_equal(jstr(r, "agent_state"), "waiting");
    json_decref(r);
    assert_int_equal(call(&a, "get_pod_status", "{\"pod_id\":\"p-000000000999\"}", NULL),
                     -AM_ENOTFOUND);
}

static void test_wait_for_pod_returns_at_once_times_out_and_honours_cancel(void **state) {
    env *e = *state;
    caller a;
    as_pod(e, &a, A, "ann");
    json_t *r = NULL;
    assert_int_equal(call(&a, "wait_for_pod", "{\"pod_id\":\"" C "\"}", &r), 0); /* waiting */
    assert_true(json_is_false(json_object_get(r, "timed_out")));
    json_decref(r);
    assert_int_equal(call(&a, "wait_for_pod", "{\"pod_id\":\"" B "\",\"timeout_s\":0}", &r), 0);
    assert_true(json_is_true(json_object_get(r, "timed_out")));
    assert_string_equal(jstr(r, "agent_state"), "working");
    json_decref(r);
    a.cancelled = 1; /* the connection closed: a long wait gives up at its next poll */
    assert_int_equal(call(&a, "wait_for_pod", "{\"pod_id\":\"" B "\",\"timeout_s\":300}", NULL),
                     -AM_ESTATE);
    a.cancelled = 0;
    assert_int_equal(call(&a, "wait_for_pod", "{\"pod_id\":\"" B "\",\"timeout_s\":301}", NULL),
                     -AM_EINVAL);
}

static void test_channels_through_the_tools(void **state) {
    env *e = *state;
    caller a, b, c;
    as_pod(e, &a, A, "ann");
    as_pod(e, &b, B, "ann");
    as_pod(e, &c, C, "bob");
    json_t *r = NULL;
    assert_int_equal(call(&a, "bind_pod", "{\"pod_id\":\"" B "\"}", NULL), 0);
    assert_int_equal(
        call(&a, "create_channel", "{\"name\":\"ops\",\"members\":[\"pod:" B "\"]}", &r), 0);
    json_decref(r);
    assert_int_equal(
        call(&a, "create_channel", "{\"name\":\"ops2\",\"members\":[\"pod:" C "\"]}", NULL),
        -AM_EPERM);
    assert_int_equal(
        call(&a, "send_channel_message", "{\"channel\":\"ops\",\"text\":\"hi @" B "\"}", &r), 0);
    json_t *m = json_array_get(json_object_get(json_object_get(r, "message"), "mentions"), 0);
    assert_string_equal(jstr(m, "state"), "queued");
    json_decref(r);
    assert_int_equal(call(&b, "get_channel_messages", "{\"channel\":\"ops\"}", &r), 0);
    assert_int_equal(json_array_size(json_object_get(r, "messages")), 1);
    json_decref(r);
    assert_int_equal(call(&b, "list_channels", "{}", &r), 0);
    assert_int_equal(json_array_size(json_object_get(r, "channels")), 1);
    json_decref(r);
    /* C: not a member: reads nothing, lists nothing */
    assert_int_equal(call(&c, "get_channel_messages", "{\"channel\":\"ops\"}", NULL), -AM_EPERM);
    assert_int_equal(call(&c, "list_channels", "{}", &r), 0);
    assert_int_equal(json_array_size(json_object_get(r, "channels")), 0);
    json_decref(r);
    assert_int_equal(
        call(&b, "get_channel_messages", "{\"channel\":\"ops\",\"before\":3,\"after\":1}", NULL),
        -AM_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_schema_is_a_strict_object),
        cmocka_unit_test_setup_teardown(test_bind_accept_reject_unbind_through_the_tools, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_list_pods_shows_the_callers_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_wait_for_pod_returns_at_once_times_out_and_honours_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels_through_the_tools, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
