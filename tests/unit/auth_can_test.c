/*
 * tests/unit/auth_can_test.c — the role table in appliance/auth/can.c is the README's role
 * matrix: every README row is a rule with the same lowest role (or "the appliance administrator
 * only"), every rule is a README row, and am_auth_can answers by the table for every role.
 * argv[1]: README.md.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/auth/auth.h"
#include "common/err.h"
#include "common/util.h"

static const char *readme_path;

typedef struct {
    char row[200];
    int min_role; /* 1..4; 5 = nobody by role */
    int superuser;
} matrix_row;

static char *trim(char *s) {
    while (*s == ' ')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* Parse the README table that starts with "| | viewer | member | admin | owner |". */
static size_t parse_matrix(matrix_row *rows, size_t cap) {
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(am_read_file(readme_path, 1 << 20, &buf, &len), 0);
    char *text = realloc(buf, len + 1);
    assert_non_null(text);
    text[len] = '\0';
    char *at = strstr(text, "| | viewer | member | admin | owner |");
    assert_non_null(at);
    size_t n = 0;
    char *save = NULL;
    char *line = strtok_r(at, "\n", &save); /* header */
    line = strtok_r(NULL, "\n", &save);     /* |---| */
    assert_non_null(line);
    assert_true(strncmp(line, "|---", 4) == 0 || strncmp(line, "|--", 3) == 0);
    while ((line = strtok_r(NULL, "\n", &save)) && line[0] == '|' && n < cap) {
        char *cells[8];
        size_t nc = 0;
        char *p = line + 1, *bar;
        while (nc < 8 && (bar = strchr(p, '|'))) {
            *bar = '\0';
            cells[nc++] = trim(p);
            p = bar + 1;
        }
        assert_true(nc >= 2);
        matrix_row *r = &rows[n++];
        snprintf(r->row, sizeof r->row, "%s", cells[0]);
        r->superuser = strstr(cells[1], "appliance administrator") != NULL;
        r->min_role = 5;
        if (!r->superuser) {
            assert_int_equal(nc, 5);
            for (int role = 1; role <= 4; role++)
                if (strcmp(cells[role], "✓") == 0) {
                    if (r->min_role == 5)
                        r->min_role = role;
                } else {
                    assert_true(r->min_role == 5); /* a ✓ is never followed by a gap */
                }
        }
    }
    free(text);
    return n;
}

static void test_readme_matrix_is_the_rule_table(void **state) {
    (void)state;
    matrix_row rows[32];
    size_t n = parse_matrix(rows, 32);
    size_t nr;
    const am_auth_rule *rules = am_auth_rules(&nr);
    assert_int_equal(n, nr);
    for (size_t i = 0; i < nr; i++) {
        const matrix_row *found = NULL;
        for (size_t j = 0; j < n; j++)
            if (strcmp(rows[j].row, rules[i].row) == 0)
                found = &rows[j];
        if (!found)
            fail_msg("rule '%s' is not a row of the README role matrix", rules[i].row);
        assert_int_equal(found->superuser, rules[i].superuser_only);
        if (!found->superuser)
            assert_int_equal(found->min_role, rules[i].min_role);
        assert_int_equal(am_auth_rule_of(rules[i].action), &rules[i]);
    }
}

static am_principal user(int role, int superuser) {
    am_principal p;
    memset(&p, 0, sizeof p);
    snprintf(p.user_id, sizeof p.user_id, "u");
    snprintf(p.org_id, sizeof p.org_id, "acme");
    p.role = role;
    p.superuser = superuser;
    return p;
}

static void test_every_role_is_answered_by_the_table(void **state) {
    (void)state;
    size_t nr;
    const am_auth_rule *rules = am_auth_rules(&nr);
    for (size_t i = 0; i < nr; i++)
        for (int role = 1; role <= 4; role++)
            for (int su = 0; su <= 1; su++) {
                am_principal p = user(role, su);
                int want = role >= rules[i].min_role && (!rules[i].superuser_only || su);
                int rc = am_auth_can(&p, rules[i].action, NULL);
                assert_int_equal(rc, want ? 0 : -AM_EPERM);
                if (!want)
                    assert_string_equal(am_err_last(), rules[i].refusal);
            }
}

static void test_nobody_acts_above_their_own_role(void **state) {
    (void)state;
    am_principal admin = user(AIRMESH__V1__ROLE__ROLE_ADMIN, 0);
    am_can_target up = {NULL, AIRMESH__V1__ROLE__ROLE_OWNER};
    am_can_target same = {NULL, AIRMESH__V1__ROLE__ROLE_ADMIN};
    assert_int_equal(am_auth_can(&admin, AM_CAN_MANAGE_USERS, &up), -AM_EPERM);
    assert_int_equal(am_auth_can(&admin, AM_CAN_MANAGE_USERS, &same), 0);
    assert_int_equal(am_auth_can(&admin, AM_CAN_SELF, &up), -AM_EPERM);
}

static void test_another_orgs_target_is_not_found_not_forbidden(void **state) {
    (void)state;
    am_principal owner = user(AIRMESH__V1__ROLE__ROLE_OWNER, 1);
    am_can_target other = {"globex", 0};
    am_can_target mine = {"acme", 0};
    assert_int_equal(am_auth_can(&owner, AM_CAN_READ, &other), -AM_ENOTFOUND);
    assert_int_equal(am_auth_can(&owner, AM_CAN_FLEET, &other), -AM_ENOTFOUND);
    assert_int_equal(am_auth_can(&owner, AM_CAN_FLEET, &mine), 0);
    assert_int_equal(am_auth_can(NULL, AM_CAN_READ, NULL), -AM_EPERM);
}

int main(int argc, char **argv) {
    readme_path = argc > 1 ? argv[1] : "README.md";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readme_matrix_is_the_rule_table),
        cmocka_unit_test(test_every_role_is_answered_by_the_table),
        cmocka_unit_test(test_nobody_acts_above_their_own_role),
        cmocka_unit_test(test_another_orgs_target_is_not_found_not_forbidden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
