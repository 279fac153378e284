/*
 * tests/unit/bindings_ops_test.c — appliance/ops/bindings.c, podio.c and the pod-principal
 * rules of channels.c with no sockets: a real store in a temporary directory, a real hub, an
 * audit writer that records what it is given, and a runner link that records what it is asked to
 * send. Pod principals are built by hand (pod_id set, user_id = the starter, role member), as
 * appliance/mcp builds them. It proves:
 *   - same_creator activates a binding between one starter's pods at once; pods of different
 *     starters wait for the target's side; "explicit" makes every binding wait;
 *   - who may request (a pod only from itself; a user who controls both), decide (the target pod
 *     or who controls it; never the requester's side) and end (either side);
 *   - bad scopes, self-binding, an unknown or another org's pod change nothing;
 *   - a second request replaces the live one and keeps its scopes (widens);
 *   - expiry makes a binding count as ended (allows refuses, decide refuses, state "expired");
 *   - a pod that ends ends its bindings (audited by system);
 *   - a pod's snapshot and input of another pod need read / write bindings (denied records
 *     without, positive controls with: the screen's text without escapes, the input's control
 *     characters stripped and Enter appended);
 *   - channels: a pod reads only channels it is in, adds and @mentions only pods it may write to,
 *     and a refused mention stays a message with its reason.
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
#include "tests/unit/ops_fixture.h"

#define ORG "acme"
#define MEMBER AIRMESH__V1__ROLE__ROLE_MEMBER
#define ADMIN AIRMESH__V1__ROLE__ROLE_ADMIN

typedef struct {
    opsfx fx; /* store, hub, ops, audit records */
    uint8_t sent[4096];
    size_t nsent;
    char sent_pod[64];
} env;

static int fake_send(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    env *e = ctx;
    (void)runner_id;
    if (m->msg_case == AIRMESH__V1__APPLIANCE_MESSAGE__MSG_INPUT) {
        size_t n = m->input->data.len < sizeof e->sent ? m->input->data.len : sizeof e->sent;
        memcpy(e->sent, m->input->data.data, n);
        e->nsent = n;
        snprintf(e->sent_pod, sizeof e->sent_pod, "%s", m->input->pod_id);
    }
    return 0;
}

static void put_pod(env *e, const char *org, const char *id, const char *starter,
                    const char *state) {
    Airmesh__V1__Pod p = AIRMESH__V1__POD__INIT;
    char by[64];
    snprintf(by, sizeof by, "user:%s", starter);
    p.id = (char *)id;
    p.org_id = (char *)org;
    p.runner_id = "r-1";
    p.created_by = by;
    p.state = (char *)state;
    p.repo = "file:///x";
    p.branch = "b";
    assert_int_equal(am_store_put(e->fx.store, AM_DB_PODS, org, id, &p.base), 0);
}

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    opsfx_open(&e->fx, "bindings_ops_test", NULL);
    am_ops_set_runner_link(e->fx.ops, fake_send, e);
    opsfx_put_org(&e->fx, ORG);
    opsfx_put_org(&e->fx, "beta");
    /* ann starts A and B, bob starts C, carol starts D; beta's eve starts X */
    put_pod(e, ORG, "p-00000000000a", "ann", "running");
    put_pod(e, ORG, "p-00000000000b", "ann", "running");
    put_pod(e, ORG, "p-00000000000c", "bob", "running");
    put_pod(e, ORG, "p-00000000000d", "carol", "running");
    put_pod(e, "beta", "p-0000000000ff", "eve", "running");
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    opsfx_close(&e->fx);
    free(e);
    return 0;
}

#define A "p-00000000000a"
#define B "p-00000000000b"
#define C "p-00000000000c"
#define D "p-00000000000d"
#define X "p-0000000000ff"

static am_principal pod(const char *pod_id, const char *starter) {
    am_principal p = opsfx_user(ORG, starter, MEMBER);
    snprintf(p.pod_id, sizeof p.pod_id, "%s", pod_id);
    return p;
}

static int count_cb(void *ud, const Airmesh__V1__Binding *b) {
    (void)b;
    (*(int *)ud)++;
    return 0;
}

static int count(env *e) {
    am_principal admin = opsfx_user(ORG, "root", ADMIN);
    int n = 0;
    assert_int_equal(am_ops_binding_list(e->fx.ops, &admin, NULL, count_cb, &n), 0);
    return n;
}

static const char *const RW[] = {"read", "write"};
static const char *const R[] = {"read"};
static const char *const W[] = {"write"};

/* request → the binding's id (asserting rc 0) and its state */
static void request(env *e, const am_principal *who, const char *from, const char *to,
                    const char *const *sc, size_t n, uint64_t ttl, char *id, const char *state) {
    Airmesh__V1__Binding *b = NULL;
    int rc = am_ops_binding_request(e->fx.ops, who, "test", from, to, sc, n, ttl, &b);
    if (rc)
        fail_msg("request %s → %s: %s", from, to, am_err_last());
    assert_non_null(b);
    assert_string_equal(b->state, state);
    snprintf(id, 32, "%s", b->id);
    protobuf_c_message_free_unpacked(&b->base, NULL);
}

static void test_same_creator_is_active_at_once_and_scoped(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    char id[32];
    request(e, &ann, A, B, R, 1, 0, id, "active");
    const opsfx_rec *r = opsfx_last(&e->fx, "binding.request");
    assert_non_null(r);
    assert_string_equal(r->actor, "user:ann");
    assert_string_equal(r->result, "ok");
    assert_non_null(strstr(r->details, "\"state\":\"active\""));
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "read"), 0);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "write"), -AM_EPERM);
    assert_non_null(strstr(am_err_last(), "no active write binding"));
    /* directed: B → A is nothing */
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, B, A, "read"), -AM_EPERM);
    /* another org sees none of it */
    assert_int_equal(am_ops_binding_allows(e->fx.ops, "beta", A, B, "read"), -AM_EPERM);
}

static void test_bad_input_changes_nothing(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    size_t n0 = e->fx.nrec;
    const char *const dup[] = {"read", "read"}, *const bad[] = {"admin"};
    assert_int_equal(am_ops_binding_request(e->fx.ops, &ann, "t", A, B, dup, 2, 0, NULL),
                     -AM_EINVAL);
    assert_int_equal(am_ops_binding_request(e->fx.ops, &ann, "t", A, B, bad, 1, 0, NULL),
                     -AM_EINVAL);
    assert_int_equal(am_ops_binding_request(e->fx.ops, &ann, "t", A, B, R, 0, 0, NULL), -AM_EINVAL);
    assert_int_equal(am_ops_binding_request(e->fx.ops, &ann, "t", A, A, R, 1, 0, NULL), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "itself"));
    assert_int_equal(
        am_ops_binding_request(e->fx.ops, &ann, "t", A, "p-000000000999", R, 1, 0, NULL),
        -AM_ENOTFOUND);
    /* another org's pod looks like none, also to a pod principal */
    assert_int_equal(am_ops_binding_request(e->fx.ops, &ann, "t", A, X, R, 1, 0, NULL),
                     -AM_ENOTFOUND);
    am_principal pa = pod(A, "ann");
    assert_int_equal(am_ops_binding_request(e->fx.ops, &pa, "t", A, X, R, 1, 0, NULL),
                     -AM_ENOTFOUND);
    am_principal eve = opsfx_user("beta", "eve", ADMIN);
    assert_int_equal(am_ops_binding_request(e->fx.ops, &eve, "t", X, A, R, 1, 0, NULL),
                     -AM_ENOTFOUND);
    assert_int_equal(count(e), 0);
    assert_int_equal(e->fx.nrec, n0); /* bad input is not an event */
    /* a viewer: refused with a denied record */
    am_principal v = opsfx_user(ORG, "vic", AIRMESH__V1__ROLE__ROLE_VIEWER);
    assert_int_equal(am_ops_binding_request(e->fx.ops, &v, "t", A, B, R, 1, 0, NULL), -AM_EPERM);
    assert_string_equal(opsfx_last(&e->fx, "binding.request")->result, "denied");
    assert_int_equal(count(e), 0);
}

static void test_who_may_request_and_decide(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER), bob = opsfx_user(ORG, "bob", MEMBER),
                 carol = opsfx_user(ORG, "carol", MEMBER), admin = opsfx_user(ORG, "root", ADMIN);
    /* ann does not control bob's C */
    assert_int_equal(am_ops_binding_request(e->fx.ops, &ann, "t", A, C, R, 1, 0, NULL), -AM_EPERM);
    assert_string_equal(opsfx_last(&e->fx, "binding.request")->result, "denied");
    /* a pod requests only from itself */
    am_principal pa = pod(A, "ann"), pc = pod(C, "bob"), pb = pod(B, "ann");
    assert_int_equal(am_ops_binding_request(e->fx.ops, &pa, "t", B, C, R, 1, 0, NULL), -AM_EPERM);
    assert_int_equal(count(e), 0);
    /* pod A asks C: different starters → pending, audited with the pod as actor */
    char id[32];
    request(e, &pa, A, C, RW, 2, 0, id, "pending");
    assert_string_equal(opsfx_last(&e->fx, "binding.request")->actor, "pod:" A);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, C, "read"), -AM_EPERM);
    /* neither the requester, another pod, nor a member who does not control C may accept */
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &pa, "t", id, 1, NULL, NULL), -AM_EPERM);
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &pb, "t", id, 1, NULL, NULL), -AM_EPERM);
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &carol, "t", id, 1, NULL, NULL), -AM_EPERM);
    assert_string_equal(opsfx_last(&e->fx, "binding.accept")->result, "denied");
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &ann, "t", id, 1, NULL, NULL), -AM_EPERM);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, C, "read"), -AM_EPERM);
    /* the target pod itself accepts */
    Airmesh__V1__Binding *b = NULL;
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &pc, "t", id, 1, NULL, &b), 0);
    assert_string_equal(b->state, "active");
    assert_string_equal(b->decided_by, "pod:" C);
    protobuf_c_message_free_unpacked(&b->base, NULL);
    assert_string_equal(opsfx_last(&e->fx, "binding.accept")->actor, "pod:" C);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, C, "write"), 0);
    /* only a pending one can be decided */
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &bob, "t", id, 0, "late", NULL), -AM_ESTATE);
    /* an admin requests D → C (controls both): pending (different starters); bob, C's starter,
     * rejects it with a reason */
    request(e, &admin, D, C, W, 1, 0, id, "pending");
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &bob, "t", id, 0, "not now", &b), 0);
    assert_string_equal(b->state, "rejected");
    assert_string_equal(b->reason, "not now");
    protobuf_c_message_free_unpacked(&b->base, NULL);
    assert_non_null(strstr(opsfx_last(&e->fx, "binding.reject")->details, "not now"));
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, D, C, "write"), -AM_EPERM);
    /* a pod sees only its own bindings */
    int n = 0;
    am_principal pd = pod(D, "carol");
    assert_int_equal(am_ops_binding_list(e->fx.ops, &pd, NULL, count_cb, &n), 0);
    assert_int_equal(n, 1);
    n = 0;
    assert_int_equal(am_ops_binding_list(e->fx.ops, &pb, NULL, count_cb, &n), 0);
    assert_int_equal(n, 0);
    /* end: a pod that is neither side may not; the source pod may */
    char id2[32];
    request(e, &ann, A, B, R, 1, 0, id2, "active");
    assert_int_equal(am_ops_binding_end(e->fx.ops, &pc, "t", id2), -AM_EPERM);
    assert_int_equal(am_ops_binding_end(e->fx.ops, &carol, "t", id2), -AM_EPERM);
    assert_int_equal(am_ops_binding_end(e->fx.ops, &pb, "t", id2), 0);
    assert_string_equal(opsfx_last(&e->fx, "binding.unbind")->actor, "pod:" B);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "read"), -AM_EPERM);
    assert_int_equal(am_ops_binding_end(e->fx.ops, &ann, "t", id2), -AM_ESTATE);
    /* another org's binding is none */
    am_principal eve = opsfx_user("beta", "eve", ADMIN);
    assert_int_equal(am_ops_binding_end(e->fx.ops, &eve, "t", id2), -AM_ENOTFOUND);
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &eve, "t", id, 1, NULL, NULL), -AM_ENOTFOUND);
}

static void test_explicit_policy(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER), admin = opsfx_user(ORG, "root", ADMIN);
    assert_int_equal(am_ops_binding_policy_set(e->fx.ops, &ann, "t", NULL, "explicit"), -AM_EPERM);
    assert_string_equal(opsfx_last(&e->fx, "org.binding_policy")->result, "denied");
    assert_int_equal(am_ops_binding_policy_set(e->fx.ops, &admin, "t", NULL, "sometimes"),
                     -AM_EINVAL);
    assert_int_equal(am_ops_binding_policy_set(e->fx.ops, &admin, "t", "beta", "explicit"),
                     -AM_ENOTFOUND);
    assert_string_equal(am_ops_binding_policy(e->fx.ops, ORG), "same_creator");
    assert_int_equal(am_ops_binding_policy_set(e->fx.ops, &admin, "t", ORG, "explicit"), 0);
    assert_string_equal(opsfx_last(&e->fx, "org.binding_policy")->details,
                        "{\"policy\":\"explicit\"}");
    assert_string_equal(am_ops_binding_policy(e->fx.ops, ORG), "explicit");
    assert_string_equal(am_ops_binding_policy(e->fx.ops, "beta"), "same_creator");
    char id[32];
    request(e, &ann, A, B, R, 1, 0, id, "pending"); /* same starter, still waits */
    am_principal pb = pod(B, "ann");
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &pb, "t", id, 1, NULL, NULL), 0);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "read"), 0);
    assert_int_equal(am_ops_binding_policy_set(e->fx.ops, &admin, "t", ORG, "same_creator"), 0);
    request(e, &ann, B, A, R, 1, 0, id, "active");
}

static int find_cb(void *ud, const Airmesh__V1__Binding *b) {
    Airmesh__V1__Binding **out = ud;
    if (!strcmp(b->state, "ended") && !*out) {
        size_t n = protobuf_c_message_get_packed_size(&b->base);
        uint8_t *buf = malloc(n);
        protobuf_c_message_pack(&b->base, buf);
        *out = airmesh__v1__binding__unpack(NULL, n, buf);
        free(buf);
    }
    return 0;
}

static void test_second_request_replaces_and_widens(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    char id1[32], id2[32];
    request(e, &ann, A, B, R, 1, 0, id1, "active");
    /* the same request again changes nothing: the live one answers, no new record */
    char same[32];
    request(e, &ann, A, B, R, 1, 0, same, "active");
    assert_string_equal(same, id1);
    assert_int_equal(count(e), 1);
    assert_non_null(strstr(opsfx_last(&e->fx, "binding.request")->details, "\"unchanged\":true"));
    request(e, &ann, A, B, W, 1, 0, id2, "active");
    assert_string_not_equal(id1, id2);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "read"), 0); /* kept */
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "write"), 0);
    Airmesh__V1__Binding *old = NULL;
    assert_int_equal(am_ops_binding_list(e->fx.ops, &ann, NULL, find_cb, &old), 0);
    assert_non_null(old);
    assert_string_equal(old->id, id1);
    assert_non_null(strstr(old->reason, id2));
    protobuf_c_message_free_unpacked(&old->base, NULL);
    assert_int_equal(count(e), 2);
    const opsfx_rec *u = opsfx_last(&e->fx, "binding.unbind");
    assert_non_null(u);
    assert_non_null(strstr(u->target, id1));
}

static void test_expiry_counts_as_ended(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER), admin = opsfx_user(ORG, "root", ADMIN);
    char id[32], pid[32];
    request(e, &ann, A, B, RW, 2, 1, id, "active");    /* 1 ms */
    request(e, &admin, A, C, R, 1, 1, pid, "pending"); /* 1 ms */
    uint64_t until = am_now_ms() + 2;
    while (am_now_ms() < until)
        usleep(500);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "read"), -AM_EPERM);
    am_principal pc = pod(C, "bob");
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &pc, "t", pid, 1, NULL, NULL), -AM_ESTATE);
    assert_non_null(strstr(am_err_last(), "expired"));
    Airmesh__V1__Binding *b = NULL;
    assert_int_equal(am_ops_get(e->fx.ops, AM_DB_BINDINGS, ORG, id,
                                &airmesh__v1__binding__descriptor, (ProtobufCMessage **)&b),
                     0);
    assert_string_equal(am_ops_binding_state(b, am_now_ms()), "expired");
    json_t *j = am_ops_binding_json(b);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "expired");
    json_decref(j);
    protobuf_c_message_free_unpacked(&b->base, NULL);
    /* a new request for the pair is not blocked by the expired one */
    request(e, &ann, A, B, R, 1, 0, id, "active");
}

static void test_pod_end_ends_its_bindings(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    char id[32];
    request(e, &ann, A, B, RW, 2, 0, id, "active");
    Airmesh__V1__PodStatus st = AIRMESH__V1__POD_STATUS__INIT;
    st.pod_id = B;
    st.state = "exited";
    am_ops_peer peer = {"r-1", ORG, "test"};
    assert_int_equal(am_ops_pod_status(e->fx.ops, &peer, &st), 0);
    assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "read"), -AM_EPERM);
    const opsfx_rec *u = opsfx_last(&e->fx, "binding.unbind");
    assert_non_null(u);
    assert_string_equal(u->actor, "system");
    assert_non_null(strstr(u->details, "ended"));
    /* an ended pod takes no new bindings */
    assert_int_equal(am_ops_binding_request(e->fx.ops, &ann, "t", A, B, R, 1, 0, NULL), -AM_ESTATE);
}

static void test_snapshot_and_input_need_bindings(void **state) {
    env *e = *state;
    am_principal pa = pod(A, "ann"), ann = opsfx_user(ORG, "ann", MEMBER);
    /* B's screen: colours, a title (OSC), a redrawn progress line, a cursor move */
    const char *screen = "\x1b]0;title\x07\x1b[1;32mhello\x1b[0m world\r\n"
                         "progress 10%\rprogress 100%\r\r\n\x1b[2J\x1b[Hthird\x1b[K line\r\n";
    assert_int_equal(am_hub_pod_open(e->fx.hub, ORG, "r-1", B), 0);
    assert_int_equal(
        am_hub_pod_output(e->fx.hub, ORG, "r-1", B, 0, (const uint8_t *)screen, strlen(screen)), 0);
    char *text = NULL;
    size_t sent = 0;
    /* the attack first: no binding */
    assert_int_equal(am_ops_pod_snapshot(e->fx.ops, &pa, "t", B, 10, &text), -AM_EPERM);
    assert_null(text);
    const opsfx_rec *r = opsfx_last(&e->fx, "pod.snapshot");
    assert_non_null(r);
    assert_string_equal(r->result, "denied");
    assert_string_equal(r->actor, "pod:" A);
    assert_int_equal(am_ops_pod_input(e->fx.ops, &pa, "t", B, "rm -rf /", 8, 1, &sent), -AM_EPERM);
    assert_int_equal(e->nsent, 0);
    assert_string_equal(opsfx_last(&e->fx, "pod.input")->result, "denied");
    /* a read binding: the snapshot works, input still refused */
    char id[32];
    request(e, &ann, A, B, R, 1, 0, id, "active");
    assert_int_equal(am_ops_pod_snapshot(e->fx.ops, &pa, "t", B, 10, &text), 0);
    assert_string_equal(text, "hello world\nprogress 100%\nthird line");
    free(text);
    assert_int_equal(am_ops_pod_snapshot(e->fx.ops, &pa, "t", B, 1, &text), 0);
    assert_string_equal(text, "third line");
    free(text);
    assert_string_equal(opsfx_last(&e->fx, "pod.snapshot")->result, "ok");
    assert_int_equal(am_ops_pod_input(e->fx.ops, &pa, "t", B, "x", 1, 0, &sent), -AM_EPERM);
    /* write: input goes out, control characters stripped, Enter appended */
    request(e, &ann, A, B, W, 1, 0, id, "active");
    const char in[] = "ls\x1b[A\x03 -la\tx\n";
    assert_int_equal(am_ops_pod_input(e->fx.ops, &pa, "t", B, in, sizeof in - 1, 1, &sent), 0);
    assert_int_equal(e->nsent, sent);
    assert_memory_equal(e->sent, "ls[A -la\tx\n\r", sent);
    assert_string_equal(e->sent_pod, B);
    r = opsfx_last(&e->fx, "pod.input");
    assert_string_equal(r->result, "ok");
    assert_non_null(strstr(r->details, "binding:"));
    /* a user: the terminal's rules (carol does not control B; ann does) */
    am_principal carol = opsfx_user(ORG, "carol", MEMBER);
    assert_int_equal(am_ops_pod_input(e->fx.ops, &carol, "t", B, "x", 1, 0, &sent), -AM_EPERM);
    assert_int_equal(am_ops_pod_input(e->fx.ops, &ann, "t", B, "x", 1, 0, &sent), 0);
    assert_non_null(strstr(opsfx_last(&e->fx, "pod.input")->details, "starter"));
    /* a user reads any pod of the org; not another org's */
    assert_int_equal(am_ops_pod_snapshot(e->fx.ops, &carol, "t", B, 0, &text), 0);
    free(text);
    am_principal eve = opsfx_user("beta", "eve", ADMIN);
    assert_int_equal(am_ops_pod_snapshot(e->fx.ops, &eve, "t", B, 0, &text), -AM_ENOTFOUND);
    assert_int_equal(am_ops_pod_input(e->fx.ops, &eve, "t", B, "x", 1, 0, &sent), -AM_ENOTFOUND);
    assert_int_equal(am_ops_pod_snapshot(e->fx.ops, &ann, "t", B, 5000, &text), -AM_EINVAL);
}

static void test_channels_for_pods(void **state) {
    env *e = *state;
    am_principal pa = pod(A, "ann"), pc = pod(C, "bob"), pd = pod(D, "carol"),
                 ann = opsfx_user(ORG, "ann", MEMBER), bob = opsfx_user(ORG, "bob", MEMBER);
    /* A may not bring C into a channel without a write binding to it */
    const char *const mc[] = {"pod:" C};
    assert_int_equal(am_ops_channel_create(e->fx.ops, &pa, "t", "work", mc, 1), -AM_EPERM);
    assert_string_equal(opsfx_last(&e->fx, "channel.create")->result, "denied");
    /* C accepts A's write binding; then A creates #work with C */
    char id[32];
    request(e, &pa, A, C, RW, 2, 0, id, "pending");
    assert_int_equal(am_ops_binding_decide(e->fx.ops, &bob, "t", id, 1, NULL, NULL), 0);
    assert_int_equal(am_ops_channel_create(e->fx.ops, &pa, "t", "work", mc, 1), 0);
    Airmesh__V1__Channel *ch = NULL;
    assert_int_equal(am_ops_channel_get(e->fx.ops, &pc, "work", &ch), 0);
    assert_string_equal(ch->created_by, "pod:" A);
    protobuf_c_message_free_unpacked(&ch->base, NULL);
    /* D is not a member: it cannot read, join by itself, or post */
    assert_int_equal(am_ops_channel_get(e->fx.ops, &pd, "work", &ch), -AM_EPERM);
    assert_int_equal(am_ops_channel_member(e->fx.ops, &pd, "t", "work", NULL, 1), -AM_EPERM);
    Airmesh__V1__ChannelMessage *m = NULL;
    assert_int_equal(am_ops_channel_post(e->fx.ops, &pd, "t", "work", "hi", 2, &m), -AM_EPERM);
    /* nor add D: A has no binding to it */
    assert_int_equal(am_ops_channel_member(e->fx.ops, &pa, "t", "work", "pod:" D, 1), -AM_EPERM);
    /* A posts with @C: queued (write binding), with the pod as author */
    const char *txt = "please review, @" C;
    assert_int_equal(am_ops_channel_post(e->fx.ops, &pa, "t", "work", txt, strlen(txt), &m), 0);
    assert_string_equal(m->author, "pod:" A);
    assert_int_equal(m->n_mentions, 1);
    assert_string_equal(m->mentions[0]->state, "queued");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* C (a member) mentions @A: C has no binding to A, refused with the reason, message kept */
    txt = "thanks @" A;
    assert_int_equal(am_ops_channel_post(e->fx.ops, &pc, "t", "work", txt, strlen(txt), &m), 0);
    assert_string_equal(m->mentions[0]->state, "refused");
    assert_non_null(strstr(m->mentions[0]->reason, "no active write binding"));
    protobuf_c_message_free_unpacked(&m->base, NULL);
    assert_string_equal(opsfx_last(&e->fx, "channel.mention")->result, "denied");
    /* a user keeps the user rule: ann (A's starter) may mention A */
    opsfx_put_user(&e->fx, ORG, "ann", 0);
    assert_int_equal(am_ops_channel_member(e->fx.ops, &ann, "t", "work", NULL, 1), 0);
    txt = "@" A " go";
    assert_int_equal(am_ops_channel_post(e->fx.ops, &ann, "t", "work", txt, strlen(txt), &m), 0);
    assert_string_equal(m->mentions[0]->state, "queued");
    protobuf_c_message_free_unpacked(&m->base, NULL);
    /* a pod leaves by itself */
    assert_int_equal(am_ops_channel_member(e->fx.ops, &pc, "t", "work", NULL, 0), 0);
    assert_int_equal(am_ops_channel_get(e->fx.ops, &pc, "work", &ch), -AM_EPERM);
}

/* Not a timed assertion: the cost of a check with many bindings in the org, printed for the
 * report (am_ops_binding_allows reads the org's bindings in key order). */
static void test_allows_with_many_bindings_prints_its_cost(void **state) {
    env *e = *state;
    enum { N = 2000, CALLS = 500 };
    for (int i = 0; i < N; i++) {
        char id[32], from[32];
        snprintf(id, sizeof id, "b-%012d", i);
        snprintf(from, sizeof from, "p-%012d", i);
        char *sc[] = {"read"};
        Airmesh__V1__Binding b = AIRMESH__V1__BINDING__INIT;
        b.id = id;
        b.org_id = ORG;
        b.from_pod = from;
        b.to_pod = B;
        b.scopes = sc;
        b.n_scopes = 1;
        b.state = "active";
        assert_int_equal(am_store_put(e->fx.store, AM_DB_BINDINGS, ORG, id, &b.base), 0);
    }
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    char id[32];
    request(e, &ann, A, B, R, 1, 0, id, "active");
    uint64_t t0 = am_now_ms();
    for (int i = 0; i < CALLS; i++)
        assert_int_equal(am_ops_binding_allows(e->fx.ops, ORG, A, B, "read"), 0);
    uint64_t dt = am_now_ms() - t0;
    printf("bindings: am_ops_binding_allows with %d bindings in the org: %.3f ms a check (%d "
           "checks in %llu ms)\n",
           N + 1, (double)dt / CALLS, CALLS, (unsigned long long)dt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_creator_is_active_at_once_and_scoped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_who_may_request_and_decide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_explicit_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_request_replaces_and_widens, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_counts_as_ended, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pod_end_ends_its_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_and_input_need_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_channels_for_pods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allows_with_many_bindings_prints_its_cost, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
