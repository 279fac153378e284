/*
 * tests/unit/tickets_ops_test.c — appliance/ops/tickets.c with no sockets: a real store in a
 * temporary directory, a real hub and an audit writer that records what it is given and can
 * fail like a full disk. It proves:
 *   - the status table is exactly the README's (every pair of the five statuses);
 *   - keys grow per org (ACME-1, ACME-2; another org starts at 1), each create one record;
 *   - a refused move is -AM_EINVAL naming the allowed ones, with nothing stored or audited;
 *   - blocks/blocked_by stay symmetric and a cycle is refused with both tickets unchanged;
 *   - a viewer is refused with a denied record; another org's ticket is -AM_ENOTFOUND;
 *   - a failed audit append fails the change and stores nothing.
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

typedef struct {
    opsfx fx; /* store, hub, ops, audit records */
} env;

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    opsfx_open(&e->fx, "tickets_ops_test", NULL);
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    opsfx_close(&e->fx);
    free(e);
    return 0;
}

#define MEMBER AIRMESH__V1__ROLE__ROLE_MEMBER

static void create(env *e, const am_principal *who, const char *title, char *key_out) {
    am_ticket_spec s = {.title = title};
    Airmesh__V1__Ticket *t = NULL;
    assert_int_equal(am_ops_ticket_create(e->fx.ops, who, "test", &s, &t), 0);
    snprintf(key_out, 32, "%s", t->key);
    protobuf_c_message_free_unpacked(&t->base, NULL);
}

static Airmesh__V1__Ticket *get(env *e, const char *key) {
    am_principal who = opsfx_user(ORG, "ann", MEMBER);
    Airmesh__V1__Ticket *t = NULL;
    assert_int_equal(am_ops_ticket_get(e->fx.ops, &who, key, &t), 0);
    return t;
}

static int move(env *e, const char *key, const char *status) {
    am_principal who = opsfx_user(ORG, "ann", AIRMESH__V1__ROLE__ROLE_ADMIN);
    am_ticket_spec s = {.status = status};
    return am_ops_ticket_update(e->fx.ops, &who, "test", key, &s, NULL);
}

static void test_transition_table(void **state) {
    (void)state;
    static const char *const st[] = {"backlog", "todo", "in_progress", "in_review", "done"};
    /* rows: from; columns: to (README "Tickets") */
    static const int want[5][5] = {
        {0, 1, 1, 1, 0}, /* backlog */
        {1, 0, 1, 1, 0}, /* todo */
        {0, 1, 0, 1, 0}, /* in_progress */
        {0, 1, 1, 0, 1}, /* in_review */
        {0, 1, 0, 0, 0}, /* done: reopen */
    };
    for (int f = 0; f < 5; f++)
        for (int t = 0; t < 5; t++)
            assert_int_equal(am_ticket_transition_ok(st[f], st[t]), want[f][t]);
    assert_int_equal(am_ticket_transition_ok("todo", "doing"), 0);
}

static void test_keys_and_moves(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER), bob = opsfx_user("beta", "bob", MEMBER);
    char k1[32], k2[32], k3[32];
    create(e, &ann, "one", k1);
    create(e, &ann, "two", k2);
    create(e, &bob, "theirs", k3);
    assert_string_equal(k1, "ACME-1");
    assert_string_equal(k2, "ACME-2");
    assert_string_equal(k3, "BETA-1");
    assert_int_equal(e->fx.nrec, 3);
    assert_string_equal(e->fx.recs[0].action, "ticket.create");
    assert_string_equal(e->fx.recs[0].target, "ticket:ACME-1");
    /* refused: names the allowed moves, nothing stored or audited */
    size_t n = e->fx.nrec;
    assert_int_equal(move(e, "acme-1", "done"), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "from backlog: todo, in_progress, in_review"));
    assert_int_equal(e->fx.nrec, n);
    Airmesh__V1__Ticket *t = get(e, "ACME-1");
    assert_string_equal(t->status, "backlog");
    protobuf_c_message_free_unpacked(&t->base, NULL);
    /* allowed: one record with from → to */
    assert_int_equal(move(e, "ACME-1", "todo"), 0);
    assert_int_equal(e->fx.nrec, n + 1);
    assert_non_null(
        strstr(e->fx.recs[n].details, "\"status\":{\"from\":\"backlog\",\"to\":\"todo\"}"));
    /* the same status again: no change, no record */
    assert_int_equal(move(e, "ACME-1", "todo"), 0);
    assert_int_equal(e->fx.nrec, n + 1);
    /* another org's ticket does not exist for us */
    Airmesh__V1__Ticket *x = NULL;
    assert_int_equal(am_ops_ticket_get(e->fx.ops, &ann, "BETA-1", &x), -AM_ENOTFOUND);
    assert_int_equal(
        am_ops_ticket_update(e->fx.ops, &ann, "t", "BETA-1", &(am_ticket_spec){.title = "x"}, NULL),
        -AM_ENOTFOUND);
    /* a viewer: denied record, nothing changed */
    am_principal vic = opsfx_user(ORG, "vic", AIRMESH__V1__ROLE__ROLE_VIEWER);
    n = e->fx.nrec;
    assert_int_equal(am_ops_ticket_update(e->fx.ops, &vic, "t", "ACME-1",
                                          &(am_ticket_spec){.title = "pwned"}, NULL),
                     -AM_EPERM);
    assert_int_equal(e->fx.nrec, n + 1);
    assert_string_equal(e->fx.recs[n].result, "denied");
    t = get(e, "ACME-1");
    assert_string_equal(t->title, "one");
    protobuf_c_message_free_unpacked(&t->base, NULL);
}

static void test_blocks(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    char a[32], b[32], c[32];
    create(e, &ann, "a", a);
    create(e, &ann, "b", b);
    create(e, &ann, "c", c);
    const char *ab[] = {b}, *bc[] = {c}, *ca[] = {a};
    assert_int_equal(
        am_ops_ticket_update(e->fx.ops, &ann, "t", a,
                             &(am_ticket_spec){.set_blocks = 1, .blocks = ab, .n_blocks = 1}, NULL),
        0);
    assert_int_equal(
        am_ops_ticket_update(e->fx.ops, &ann, "t", b,
                             &(am_ticket_spec){.set_blocks = 1, .blocks = bc, .n_blocks = 1}, NULL),
        0);
    Airmesh__V1__Ticket *t = get(e, b);
    assert_int_equal(t->n_blocked_by, 1);
    assert_string_equal(t->blocked_by[0], a);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    size_t n = e->fx.nrec;
    assert_int_equal(
        am_ops_ticket_update(e->fx.ops, &ann, "t", c,
                             &(am_ticket_spec){.set_blocks = 1, .blocks = ca, .n_blocks = 1}, NULL),
        -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "cycle"));
    assert_int_equal(e->fx.nrec, n);
    t = get(e, a);
    assert_int_equal(t->n_blocked_by, 0);
    protobuf_c_message_free_unpacked(&t->base, NULL);
    t = get(e, c);
    assert_int_equal(t->n_blocks, 0);
    protobuf_c_message_free_unpacked(&t->base, NULL);
}

static void test_audit_failure_stores_nothing(void **state) {
    env *e = *state;
    am_principal ann = opsfx_user(ORG, "ann", MEMBER);
    char k[32];
    create(e, &ann, "kept", k);
    e->fx.audit_fail = 1;
    am_ticket_spec s = {.title = "lost"};
    Airmesh__V1__Ticket *t = NULL;
    assert_int_not_equal(am_ops_ticket_create(e->fx.ops, &ann, "t", &s, &t), 0);
    assert_null(t);
    assert_int_not_equal(
        am_ops_ticket_update(e->fx.ops, &ann, "t", k, &(am_ticket_spec){.title = "changed"}, NULL),
        0);
    assert_int_not_equal(am_ops_ticket_comment(e->fx.ops, &ann, "t", k, "hello", NULL), 0);
    e->fx.audit_fail = 0;
    Airmesh__V1__Ticket *x = NULL;
    assert_int_equal(am_ops_ticket_get(e->fx.ops, &ann, "ACME-2", &x), -AM_ENOTFOUND);
    x = get(e, k);
    assert_string_equal(x->title, "kept");
    assert_int_equal(x->n_comments, 0);
    protobuf_c_message_free_unpacked(&x->base, NULL);
    /* the next create takes the next number: nothing half-made used ACME-2 */
    char k2[32];
    create(e, &ann, "next", k2);
    assert_string_equal(k2, "ACME-2");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test_setup_teardown(test_keys_and_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_failure_stores_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
