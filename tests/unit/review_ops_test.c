/*
 * tests/unit/review_ops_test.c — appliance/ops/review.c without sockets: a real store and hub,
 * a recording audit writer and a fake runner link that answers ReviewRequests from a thread
 * (as the rpc thread would, through am_ops_review_result). It proves:
 *   - the pod's own runner's answer wakes the waiting call with the runner's diff;
 *   - an answer from another runner (or for another pod) is ignored: the call times out with a
 *     clear -AM_EUNAVAIL, and the late answer afterwards finds no waiter;
 *   - an unreachable runner is -AM_EUNAVAIL at once, naming it offline;
 *   - a runner's failure becomes the call's error in the runner's words;
 *   - approve records approved + pushed_to + pushed_commit (or ready when read_only) with one
 *     pod.review.approve record; a member who did not start the pod is refused and audited.
 */
#include <pthread.h>
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
#define POD "p-000000000001"

typedef enum {
    ANSWER_OK,
    ANSWER_WRONG_RUNNER,
    ANSWER_WRONG_POD,
    ANSWER_NONE,
    LINK_DOWN,
    ANSWER_FAIL,
    ANSWER_PUSHED,
    ANSWER_READ_ONLY
} mode;

typedef struct {
    opsfx fx; /* store, hub, ops, audit records */
    mode m;
    uint64_t last_id;
    char last_kind[16];
    pthread_t th;
    int have_th;
} env;

/* The "rpc thread": answers the last request a little later. */
static void *answer(void *arg) {
    env *e = arg;
    usleep(50000);
    Airmesh__V1__ReviewResult rr = AIRMESH__V1__REVIEW_RESULT__INIT;
    Airmesh__V1__ReviewCommit c = AIRMESH__V1__REVIEW_COMMIT__INIT, *cs[1] = {&c};
    rr.request_id = e->last_id;
    rr.pod_id = e->m == ANSWER_WRONG_POD ? "p-000000000002" : POD;
    rr.ok = e->m != ANSWER_FAIL;
    rr.error = e->m == ANSWER_FAIL ? "review: branch 'x' is not in this runner's mirror" : "";
    c.id = "1111111111111111111111111111111111111111";
    c.summary = "add greeting";
    rr.commits = cs;
    rr.n_commits = 1;
    rr.diff.data = (uint8_t *)"+hello\n";
    rr.diff.len = 7;
    rr.files = 1;
    rr.additions = 1;
    rr.head_commit = "1111111111111111111111111111111111111111";
    rr.base_commit = "2222222222222222222222222222222222222222";
    if (e->m == ANSWER_PUSHED)
        rr.pushed_to = "http://git.example/app.git";
    rr.read_only = e->m == ANSWER_READ_ONLY;
    am_ops_peer peer = {e->m == ANSWER_WRONG_RUNNER ? "r-other" : "r-one", ORG, "test"};
    am_ops_review_result(e->fx.ops, &peer, &rr);
    return NULL;
}

static int fake_send(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    env *e = ctx;
    assert_string_equal(runner_id, "r-one");
    assert_int_equal(m->msg_case, AIRMESH__V1__APPLIANCE_MESSAGE__MSG_REVIEW_REQUEST);
    if (e->m == LINK_DOWN)
        return am_err_set(AM_EUNAVAIL, "runner r-one is not connected");
    e->last_id = m->review_request->request_id;
    snprintf(e->last_kind, sizeof e->last_kind, "%s", m->review_request->kind);
    assert_string_equal(m->review_request->branch, "airmesh/pod-" POD);
    assert_string_equal(m->review_request->base_ref, "main");
    if (e->m != ANSWER_NONE) {
        assert_int_equal(pthread_create(&e->th, NULL, answer, e), 0);
        e->have_th = 1;
    }
    return 0;
}

static void join(env *e) {
    if (e->have_th)
        pthread_join(e->th, NULL);
    e->have_th = 0;
}

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    opsfx_open(&e->fx, "review_ops_test", NULL);
    am_ops_set_runner_link(e->fx.ops, fake_send, e);
    Airmesh__V1__Pod p = AIRMESH__V1__POD__INIT;
    p.id = POD;
    p.org_id = ORG;
    p.runner_id = "r-one";
    p.repo = "/srv/git/app.git";
    p.base_ref = "main";
    p.branch = "airmesh/pod-" POD;
    p.state = "exited";
    p.created_by = "user:ann";
    assert_int_equal(am_store_put(e->fx.store, AM_DB_PODS, ORG, POD, &p.base), 0);
    am_ops_review_set_wait_ms(400);
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    join(e);
    am_ops_review_set_wait_ms(0);
    opsfx_close(&e->fx);
    free(e);
    return 0;
}

#define MEMBER AIRMESH__V1__ROLE__ROLE_MEMBER

static int get(env *e, Airmesh__V1__ReviewResult **r) {
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    Airmesh__V1__Pod *p = NULL;
    int rc = am_ops_review_get(e->fx.ops, &ann, POD, 0, r, &p);
    join(e);
    if (p)
        protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

static void test_the_pods_runner_answer_wakes_the_call(void **state) {
    env *e = *state;
    e->m = ANSWER_OK;
    Airmesh__V1__ReviewResult *r = NULL;
    assert_int_equal(get(e, &r), 0);
    assert_string_equal(e->last_kind, "diff");
    assert_int_equal(r->ok, 1);
    assert_int_equal(r->diff.len, 7);
    assert_memory_equal(r->diff.data, "+hello\n", 7);
    assert_string_equal(r->commits[0]->summary, "add greeting");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    assert_int_equal(e->fx.nrec, 0); /* a read: not audited */
}

static void test_another_runners_or_pods_answer_is_ignored_and_the_call_times_out(void **state) {
    env *e = *state;
    for (mode m = ANSWER_WRONG_RUNNER; m <= ANSWER_NONE; m++) {
        e->m = m;
        Airmesh__V1__ReviewResult *r = NULL;
        assert_int_equal(get(e, &r), -AM_EUNAVAIL);
        assert_null(r);
        assert_non_null(strstr(am_err_last(), "runner r-one did not answer the review request for "
                                              "pod " POD " within 0.4 s"));
        /* A late answer finds nobody waiting. */
        Airmesh__V1__ReviewResult late = AIRMESH__V1__REVIEW_RESULT__INIT;
        late.request_id = e->last_id;
        late.pod_id = POD;
        am_ops_peer peer = {"r-one", ORG, "test"};
        assert_int_equal(am_ops_review_result(e->fx.ops, &peer, &late), -AM_ENOTFOUND);
    }
}

static void test_an_unreachable_runner_is_unavailable_at_once(void **state) {
    env *e = *state;
    e->m = LINK_DOWN;
    Airmesh__V1__ReviewResult *r = NULL;
    assert_int_equal(get(e, &r), -AM_EUNAVAIL);
    assert_non_null(strstr(am_err_last(), "runner r-one is offline"));
}

static void test_the_runners_failure_is_the_error_in_its_words(void **state) {
    env *e = *state;
    e->m = ANSWER_FAIL;
    Airmesh__V1__ReviewResult *r = NULL;
    assert_int_equal(get(e, &r), -AM_ENOTFOUND);
    assert_string_equal(am_err_last(), "review: branch 'x' is not in this runner's mirror");
}

static void approve(env *e, mode m, const char *state, const char *to, const char *commit) {
    e->m = m;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    Airmesh__V1__Pod *p = NULL;
    size_t before = e->fx.nrec;
    int rc = am_ops_review_approve(e->fx.ops, &ann, "test", POD, &p);
    join(e);
    assert_int_equal(rc, 0);
    assert_string_equal(e->last_kind, "push");
    assert_string_equal(p->review_state, state);
    assert_string_equal(p->review_by, "user:ann");
    assert_true(p->review_ms > 0);
    assert_string_equal(p->pushed_to, to);
    assert_string_equal(p->pushed_commit, commit);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    assert_int_equal(e->fx.nrec, before + 1);
    assert_string_equal(e->fx.recs[before].action, "pod.review.approve");
    assert_string_equal(e->fx.recs[before].result, "ok");
    assert_string_equal(e->fx.recs[before].target, "pod:" POD);
}

static void test_approve_records_the_push_or_ready(void **state) {
    env *e = *state;
    approve(e, ANSWER_PUSHED, "approved", "http://git.example/app.git",
            "1111111111111111111111111111111111111111");
    assert_non_null(strstr(e->fx.recs[e->fx.nrec - 1].details, "\"result\":\"pushed\""));
    approve(e, ANSWER_READ_ONLY, "ready", "", "");
    assert_non_null(strstr(e->fx.recs[e->fx.nrec - 1].details, "\"result\":\"read_only\""));
    /* Another member may not approve ann's pod: refused and audited, nothing sent. */
    am_principal ben = opsfx_user(ORG, "ben", MEMBER);
    Airmesh__V1__Pod *p = NULL;
    e->last_kind[0] = '\0';
    assert_int_equal(am_ops_review_approve(e->fx.ops, &ben, "test", POD, &p), -AM_EPERM);
    assert_null(p);
    assert_string_equal(e->last_kind, "");
    assert_string_equal(e->fx.recs[e->fx.nrec - 1].result, "denied");
    /* Another org's user: no such pod. */
    am_principal bob = opsfx_user("beta", "bob", AIRMESH__V1__ROLE__ROLE_OWNER);
    assert_int_equal(am_ops_review_approve(e->fx.ops, &bob, "test", POD, &p), -AM_ENOTFOUND);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_the_pods_runner_answer_wakes_the_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_another_runners_or_pods_answer_is_ignored_and_the_call_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_unreachable_runner_is_unavailable_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_runners_failure_is_the_error_in_its_words, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_approve_records_the_push_or_ready, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
