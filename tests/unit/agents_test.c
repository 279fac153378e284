/*
 * tests/unit/agents_test.c — unit tests for appliance/agents (cmocka): the catalog's presets
 * build the commands the README promises, the prompt becomes exactly one bracketed paste plus
 * Enter with control characters (C0, DEL, C1 in UTF-8) removed, and the Claude Code preset's
 * ~/.claude.json approves the last 20 characters of the key the pod is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/agents/catalog.h"
#include "common/err.h"

static void test_every_named_cli_has_a_preset(void **st) {
    (void)st;
    const am_agent_preset *p;
    size_t n = am_agents_list(&p);
    assert_int_equal(n, 6);
    static const char *const names[] = {"claude", "codex", "gemini", "aider", "opencode", "goose"};
    for (size_t i = 0; i < 6; i++)
        assert_non_null(am_agents_find(names[i]));
    assert_null(am_agents_find("nope"));
}

static void test_commands_carry_the_prompt_as_argument_or_leave_it_to_be_typed(void **st) {
    (void)st;
    const char *argv[32];
    size_t n;
    assert_int_equal(am_agents_command(am_agents_find("claude"), "fix it", argv, 32, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(argv[0], "claude");
    assert_string_equal(argv[1], "--dangerously-skip-permissions");
    assert_string_equal(argv[2], "fix it");
    assert_int_equal(am_agents_command(am_agents_find("gemini"), "p", argv, 32, &n), 0);
    assert_string_equal(argv[n - 2], "--prompt-interactive");
    assert_string_equal(argv[n - 1], "p");
    assert_int_equal(am_agents_command(am_agents_find("goose"), NULL, argv, 32, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(argv[1], "session");
    assert_int_equal(am_agents_command(am_agents_find("aider"), "typed later", argv, 32, &n), 0);
    for (size_t i = 0; i < n; i++)
        assert_string_not_equal(argv[i], "typed later");
    assert_int_equal(am_agents_command(am_agents_find("claude"), "x", argv, 2, &n), -AM_EINVAL);
}

static void test_prompt_bytes_are_one_bracketed_paste_and_enter_without_controls(void **st) {
    (void)st;
    uint8_t *b;
    size_t n, clean;
    const char in[] = "a\tb\nc\x1b[31md\x07\x7f\xc2\x9b"
                      "e\xc3\xa9";
    assert_int_equal(am_agents_prompt_bytes(in, sizeof in - 1, &b, &n, &clean), 0);
    const char want[] = "\x1b[200~a\tb\nc[31mde\xc3\xa9\x1b[201~\r";
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(b, want, n);
    assert_int_equal(clean, strlen("a\tb\nc[31mde\xc3\xa9"));
    free(b);
    assert_int_equal(am_agents_prompt_bytes("\x1b\x07 \n", 4, &b, &n, &clean), -AM_EINVAL);
    char *big = malloc(AM_AGENT_PROMPT_MAX + 1);
    memset(big, 'x', AM_AGENT_PROMPT_MAX + 1);
    assert_int_equal(am_agents_prompt_bytes(big, AM_AGENT_PROMPT_MAX + 1, &b, &n, &clean),
                     -AM_EINVAL);
    assert_int_equal(am_agents_prompt_bytes(big, AM_AGENT_PROMPT_MAX, &b, &n, &clean), 0);
    free(b);
    free(big);
}

static void test_claude_json_approves_the_pods_key_and_marks_onboarding_done(void **st) {
    (void)st;
    Airmesh__V1__CreatePod m = AIRMESH__V1__CREATE_POD__INIT;
    Airmesh__V1__CreatePod__EnvEntry e = AIRMESH__V1__CREATE_POD__ENV_ENTRY__INIT, *ep = &e;
    e.key = "ANTHROPIC_API_KEY";
    e.value = "amk_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    m.env = &ep;
    m.n_env = 1;
    assert_int_equal(am_agents_home_files(am_agents_find("claude"), &m), 0);
    assert_int_equal(m.n_home_files, 2);
    const char *cj = NULL, *settings = NULL;
    for (size_t i = 0; i < m.n_home_files; i++) {
        if (!strcmp(m.home_files[i]->key, ".claude.json"))
            cj = (const char *)m.home_files[i]->value.data;
        if (!strcmp(m.home_files[i]->key, ".claude/settings.json"))
            settings = (const char *)m.home_files[i]->value.data;
    }
    assert_non_null(cj);
    assert_non_null(settings);
    json_error_t err;
    json_t *j = json_loads(cj, 0, &err);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "hasCompletedOnboarding")));
    json_t *ap = json_object_get(json_object_get(j, "customApiKeyResponses"), "approved");
    assert_string_equal(json_string_value(json_array_get(ap, 0)), "cdef0123456789abcdef");
    assert_true(json_is_true(json_object_get(
        json_object_get(json_object_get(j, "projects"), "/workspace"), "hasTrustDialogAccepted")));
    json_decref(j);
    json_t *s = json_loads(settings, 0, &err);
    assert_non_null(s);
    json_decref(s);
    assert_non_null(strstr(settings, "airmesh-notify waiting"));
    am_agents_home_files_free(&m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_named_cli_has_a_preset),
        cmocka_unit_test(test_commands_carry_the_prompt_as_argument_or_leave_it_to_be_typed),
        cmocka_unit_test(test_prompt_bytes_are_one_bracketed_paste_and_enter_without_controls),
        cmocka_unit_test(test_claude_json_approves_the_pods_key_and_marks_onboarding_done),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
