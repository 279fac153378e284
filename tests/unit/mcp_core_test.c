/*
 * tests/unit/mcp_core_test.c — appliance/mcp (the MCP server core) over a real store, hub and
 * ops, with the runner link and the audit writer replaced by recorders. What the integration
 * test cannot stage with a real runner (which fills pod_id itself), this one does: McpRequests
 * as if relayed by another runner, another org's runner, for an ended pod, and a pod whose
 * starter is an admin (its role is capped at member). Positive controls first in each.
 */
#include <jansson.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/mcp/mcp.h"
#include "appliance/ops/ops.h"
#include "appliance/store/store.h"
#include "common/err.h"
#include "tests/unit/ops_fixture.h"

#define ORG "acme"
#define MAXSENT 64

typedef struct {
    opsfx fx; /* store, hub, ops, audit records */
    am_mcp *mcp;
    pthread_mutex_t mu; /* guards sent, sent_to, nsent (the records: fx.mu) */
    pthread_cond_t cv;
    char *sent[MAXSENT]; /* McpResponse messages, as text */
    char sent_to[MAXSENT][64];
    size_t nsent;
} env;

static int fake_send(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    env *e = ctx;
    assert_int_equal(m->msg_case, AIRMESH__V1__APPLIANCE_MESSAGE__MSG_MCP_RESPONSE);
    pthread_mutex_lock(&e->mu);
    assert_true(e->nsent < MAXSENT);
    e->sent[e->nsent] =
        strndup((const char *)m->mcp_response->message.data, m->mcp_response->message.len);
    snprintf(e->sent_to[e->nsent], sizeof e->sent_to[0], "%s", runner_id);
    e->nsent++;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

static void put_pod(env *e, const char *id, const char *runner, const char *by, const char *st) {
    Airmesh__V1__Pod p = AIRMESH__V1__POD__INIT;
    p.id = (char *)id;
    p.org_id = ORG;
    p.runner_id = (char *)runner;
    p.created_by = (char *)by;
    p.state = (char *)st;
    assert_int_equal(am_store_put(e->fx.store, AM_DB_PODS, ORG, id, &p.base), 0);
}

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    opsfx_open(&e->fx, "mcp_core_test", NULL);
    am_mcp_opts mo = {.ops = e->fx.ops, .workers = 2};
    assert_int_equal(am_mcp_start(&mo, &e->mcp), 0);
    am_mcp_set_link(e->mcp, fake_send, e);
    opsfx_put_user(&e->fx, ORG, "ann", AIRMESH__V1__ROLE__ROLE_MEMBER);
    opsfx_put_user(&e->fx, ORG, "boss", AIRMESH__V1__ROLE__ROLE_ADMIN);
    put_pod(e, "p-ann", "r-1", "user:ann", "running");
    put_pod(e, "p-boss", "r-1", "user:boss", "running");
    put_pod(e, "p-over", "r-1", "user:ann", "exited");
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    am_mcp_free(e->mcp);
    opsfx_close(&e->fx);
    for (size_t i = 0; i < e->nsent; i++)
        free(e->sent[i]);
    free(e);
    return 0;
}

/* Submit line as relayed by runner (of org) for pod, and wait (10 s) for the next answer. */
static json_t *ask(env *e, const char *runner, const char *org, const char *pod, const char *line) {
    am_ops_peer peer = {runner, org, "127.0.0.1:1"};
    Airmesh__V1__McpRequest r = AIRMESH__V1__MCP_REQUEST__INIT;
    r.pod_id = (char *)pod;
    r.conn_id = 7;
    r.message.data = (uint8_t *)line;
    r.message.len = strlen(line);
    pthread_mutex_lock(&e->mu);
    size_t before = e->nsent;
    pthread_mutex_unlock(&e->mu);
    am_mcp_submit(e->mcp, &peer, &r);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&e->mu);
    while (e->nsent == before)
        if (pthread_cond_timedwait(&e->cv, &e->mu, &dl) != 0)
            break;
    assert_true(e->nsent > before);
    assert_string_equal(e->sent_to[before], runner); /* answered to the runner that asked */
    json_t *doc = json_loads(e->sent[before], 0, NULL);
    pthread_mutex_unlock(&e->mu);
    assert_non_null(doc);
    return doc;
}

static json_t *call(env *e, const char *runner, const char *org, const char *pod, const char *tool,
                    const char *args) {
    char line[1024];
    snprintf(line, sizeof line,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
             "\"arguments\":%s}}",
             tool, args);
    return ask(e, runner, org, pod, line);
}

static int is_error(json_t *ans) {
    return json_is_true(json_object_get(json_object_get(ans, "result"), "isError"));
}

static const char *text_of(json_t *ans) {
    json_t *c = json_array_get(json_object_get(json_object_get(ans, "result"), "content"), 0);
    return json_string_value(json_object_get(c, "text"));
}

static size_t count(env *e, const char *action, const char *result) {
    size_t n = 0;
    pthread_mutex_lock(&e->fx.mu);
    for (size_t i = 0; i < e->fx.nrec; i++)
        n += strcmp(e->fx.recs[i].action, action) == 0 && strcmp(e->fx.recs[i].result, result) == 0;
    pthread_mutex_unlock(&e->fx.mu);
    return n;
}

static void test_only_the_pods_own_runner_may_relay_for_it(void **state) {
    env *e = *state;
    json_t *ok = call(e, "r-1", ORG, "p-ann", "search_tickets", "{}"); /* positive control */
    assert_false(is_error(ok));
    assert_int_equal(count(e, "mcp.call", "ok"), 1);
    json_decref(ok);
    json_t *no = call(e, "r-2", ORG, "p-ann", "search_tickets", "{}");
    assert_true(is_error(no));
    assert_non_null(strstr(text_of(no), "not one of runner r-2's pods"));
    json_decref(no);
    no = call(e, "r-1", "other", "p-ann", "search_tickets", "{}"); /* another org's runner */
    assert_true(is_error(no));
    json_decref(no);
    no = call(e, "r-1", ORG, "p-nope", "search_tickets", "{}");
    assert_true(is_error(no));
    json_decref(no);
    assert_int_equal(count(e, "mcp.call", "denied"), 3);
    assert_int_equal(count(e, "mcp.call", "ok"), 1);
}

static void test_an_ended_pod_is_refused(void **state) {
    env *e = *state;
    json_t *no = call(e, "r-1", ORG, "p-over", "search_tickets", "{}");
    assert_true(is_error(no));
    assert_non_null(strstr(text_of(no), "is exited"));
    json_decref(no);
    assert_int_equal(count(e, "mcp.call", "denied"), 1);
}

static void test_a_pod_of_an_admin_acts_as_a_member_at_most(void **state) {
    env *e = *state;
    /* A done ticket: reopening it needs admin (or being its assignee). */
    am_principal boss;
    memset(&boss, 0, sizeof boss);
    snprintf(boss.user_id, sizeof boss.user_id, "boss");
    snprintf(boss.org_id, sizeof boss.org_id, ORG);
    boss.role = AIRMESH__V1__ROLE__ROLE_ADMIN;
    const char *path[] = {"todo", "in_review", "done"};
    am_ticket_spec s = {.title = "done already"};
    Airmesh__V1__Ticket *t = NULL;
    assert_int_equal(am_ops_ticket_create(e->fx.ops, &boss, "test", &s, &t), 0);
    char key[64];
    snprintf(key, sizeof key, "%s", t->key);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    for (size_t i = 0; i < 3; i++) {
        am_ticket_spec m = {.status = path[i]};
        assert_int_equal(am_ops_ticket_update(e->fx.ops, &boss, "test", key, &m, NULL), 0);
    }
    char args[128];
    snprintf(args, sizeof args, "{\"key\":\"%s\",\"status\":\"todo\"}", key);
    json_t *no = call(e, "r-1", ORG, "p-boss", "update_ticket", args);
    assert_true(is_error(no)); /* boss's pod may not do what boss may */
    json_decref(no);
    Airmesh__V1__Ticket *still = NULL;
    assert_int_equal(am_ops_ticket_get(e->fx.ops, &boss, key, &still), 0);
    assert_string_equal(still->status, "done");
    protobuf_c_message_free_unpacked(&still->base, NULL);
    am_ticket_spec m = {.status = "todo"}; /* positive control: boss himself may */
    assert_int_equal(am_ops_ticket_update(e->fx.ops, &boss, "test", key, &m, NULL), 0);
}

static void test_every_call_is_one_record_with_the_pod_as_actor(void **state) {
    env *e = *state;
    json_t *a = call(e, "r-1", ORG, "p-ann", "create_ticket", "{\"title\":\"from a pod\"}");
    assert_false(is_error(a));
    json_t *tk = json_object_get(json_object_get(json_object_get(a, "result"), "structuredContent"),
                                 "ticket");
    assert_string_equal(json_string_value(json_object_get(tk, "status")), "backlog");
    json_decref(a);
    json_t *b = call(e, "r-1", ORG, "p-ann", "create_ticket", "{\"title\":\"x\",\"actor\":\"y\"}");
    assert_true(is_error(b));
    assert_non_null(strstr(text_of(b), "unknown argument 'actor'"));
    json_decref(b);
    pthread_mutex_lock(&e->fx.mu);
    size_t calls = 0, creates = 0;
    for (size_t i = 0; i < e->fx.nrec; i++) {
        if (strcmp(e->fx.recs[i].action, "mcp.call") == 0) {
            calls++;
            assert_string_equal(e->fx.recs[i].actor, "pod:p-ann");
            assert_non_null(strstr(e->fx.recs[i].details, "\"tool\":\"create_ticket\""));
        }
        if (strcmp(e->fx.recs[i].action, "ticket.create") == 0) {
            creates++;
            assert_string_equal(e->fx.recs[i].actor, "pod:p-ann");
        }
    }
    pthread_mutex_unlock(&e->fx.mu);
    assert_int_equal(calls, 2);
    assert_int_equal(creates, 1);
}

static void test_notifications_get_no_answer_and_methods_need_no_pod_check(void **state) {
    env *e = *state;
    am_ops_peer peer = {"r-1", ORG, "x"};
    Airmesh__V1__McpRequest r = AIRMESH__V1__MCP_REQUEST__INIT;
    r.pod_id = "p-ann";
    const char *note = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";
    r.message.data = (uint8_t *)note;
    r.message.len = strlen(note);
    am_mcp_submit(e->mcp, &peer, &r);
    json_t *p =
        ask(e, "r-1", ORG, "p-ann", "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"ping\"}");
    assert_string_equal(json_string_value(json_object_get(p, "id")), "x");
    json_decref(p);
    pthread_mutex_lock(&e->mu);
    assert_int_equal(e->nsent, 1); /* the notification got nothing */
    pthread_mutex_unlock(&e->mu);
    char *tools = am_mcp_tools_json(e->mcp);
    assert_non_null(strstr(tools, "\"update_ticket\""));
    free(tools);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_only_the_pods_own_runner_may_relay_for_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_ended_pod_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_pod_of_an_admin_acts_as_a_member_at_most, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_every_call_is_one_record_with_the_pod_as_actor, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_notifications_get_no_answer_and_methods_need_no_pod_check, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
