/*
 * tests/unit/agents_test.c — unit tests for appliance/agents (cmocka): the catalog's presets
 * build the commands the README promises, the prompt becomes exactly one bracketed paste plus
 * Enter with control characters (C0, DEL, C1 in UTF-8) removed, and the Claude Code preset's
 * ~/.claude.json approves the last 20 characters of the key the pod is given; every preset whose
 * CLI takes stdio MCP servers names airmesh-mcp (AM_MCP_BIN) as server "airmesh" with its tools
 * allowed unattended, in that CLI's own format (and each JSON file parses); the config's
 * agents_file changes presets, and a bad one (unknown agent or field, a HOME path the runner would
 * refuse, a wrong type) is refused naming the line, leaving the built-ins as they were.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/agents/catalog.h"
#include "common/err.h"
#include "common/mcp.h"

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

/* preset name's HOME file path as built for a pod (malloc'd copy; NULL: the preset has none). */
static char *home_file(const char *name, const char *path) {
    Airmesh__V1__CreatePod m = AIRMESH__V1__CREATE_POD__INIT;
    assert_int_equal(am_agents_home_files(am_agents_find(name), &m), 0);
    char *out = NULL;
    for (size_t i = 0; i < m.n_home_files; i++)
        if (!strcmp(m.home_files[i]->key, path))
            out = strndup((const char *)m.home_files[i]->value.data, m.home_files[i]->value.len);
    am_agents_home_files_free(&m);
    return out;
}

static json_t *home_json(const char *name, const char *path) {
    char *text = home_file(name, path);
    if (!text)
        fail_msg("%s: no %s", name, path);
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (!j)
        fail_msg("%s %s: not JSON (line %d: %s)", name, path, err.line, err.text);
    free(text);
    return j;
}

static void test_every_mcp_capable_preset_runs_airmesh_mcp_with_its_tools_allowed(void **st) {
    (void)st;
    assert_string_equal(AM_MCP_SERVER_NAME, "airmesh"); /* the names below spell it */
    /* Claude Code: user-scope server (no approval prompt), tools not deferred, and allowed. */
    json_t *cj = home_json("claude", ".claude.json");
    json_t *srv = json_object_get(json_object_get(cj, "mcpServers"), "airmesh");
    assert_string_equal(json_string_value(json_object_get(srv, "type")), "stdio");
    assert_string_equal(json_string_value(json_object_get(srv, "command")), AM_MCP_BIN);
    assert_int_equal(json_array_size(json_object_get(srv, "args")), 0);
    assert_true(json_is_true(json_object_get(srv, "alwaysLoad")));
    json_decref(cj);
    json_t *cs = home_json("claude", ".claude/settings.json");
    json_t *perm = json_object_get(cs, "permissions");
    assert_string_equal(json_string_value(json_object_get(perm, "defaultMode")),
                        "bypassPermissions");
    assert_string_equal(json_string_value(json_array_get(json_object_get(perm, "allow"), 0)),
                        "mcp__airmesh");
    json_decref(cs);
    /* Codex: a [mcp_servers.airmesh] table, approved without asking. */
    char *toml = home_file("codex", ".codex/config.toml");
    assert_non_null(toml);
    assert_non_null(strstr(toml, "\n[mcp_servers.airmesh]\n"
                                 "command = \"" AM_MCP_BIN "\"\n"
                                 "args = []\n"));
    assert_non_null(strstr(toml, "default_tools_approval_mode = \"approve\"\n"));
    /* the table is the file's last: nothing after it is read as one of its keys by accident */
    assert_null(strstr(strstr(toml, "[mcp_servers.airmesh]") + 1, "\n["));
    free(toml);
    /* Gemini CLI: a trusted server, and /workspace a trusted folder (else it starts none). */
    json_t *gs = home_json("gemini", ".gemini/settings.json");
    srv = json_object_get(json_object_get(gs, "mcpServers"), "airmesh");
    assert_string_equal(json_string_value(json_object_get(srv, "command")), AM_MCP_BIN);
    assert_true(json_is_true(json_object_get(srv, "trust")));
    assert_non_null(json_object_get(gs, "security")); /* the rest still there */
    json_decref(gs);
    json_t *gt = home_json("gemini", ".gemini/trustedFolders.json");
    assert_string_equal(json_string_value(json_object_get(gt, "/workspace")), "TRUST_FOLDER");
    json_decref(gt);
    /* opencode: a local server, enabled. */
    json_t *oc = home_json("opencode", ".config/opencode/opencode.json");
    srv = json_object_get(json_object_get(oc, "mcp"), "airmesh");
    assert_string_equal(json_string_value(json_object_get(srv, "type")), "local");
    assert_string_equal(json_string_value(json_array_get(json_object_get(srv, "command"), 0)),
                        AM_MCP_BIN);
    assert_int_equal(json_array_size(json_object_get(srv, "command")), 1);
    assert_true(json_is_true(json_object_get(srv, "enabled")));
    assert_non_null(json_object_get(oc, "provider"));
    json_decref(oc);
    /* goose: a stdio extension, next to its own developer tools. */
    char *yaml = home_file("goose", ".config/goose/config.yaml");
    assert_non_null(yaml);
    assert_non_null(strstr(yaml, "\n  airmesh:\n    type: stdio\n    name: airmesh\n"
                                 "    enabled: true\n    cmd: " AM_MCP_BIN "\n"));
    assert_non_null(strstr(yaml, "\n  developer:\n    type: builtin\n"));
    free(yaml);
    /* aider takes no MCP servers: still no files. */
    Airmesh__V1__CreatePod m = AIRMESH__V1__CREATE_POD__INIT;
    assert_int_equal(am_agents_home_files(am_agents_find("aider"), &m), 0);
    assert_int_equal(m.n_home_files, 0);
}

static const char *write_yaml(const char *text) {
    static char path[256];
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(path, sizeof path, "%s/agents-%d.yaml", tmp ? tmp : "/tmp", (int)getpid());
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void test_an_agents_file_changes_presets_and_reset_restores_them(void **st) {
    (void)st;
    const char *path =
        write_yaml("agents:\n"
                   "  claude:\n"
                   "    title: Claude (site build)\n"
                   "    command: [claude, --dangerously-skip-permissions, --model, qwen]\n"
                   "    prompt: typed\n"
                   "    env: {ANTHROPIC_MODEL: qwen}\n"
                   "    home_files:\n"
                   "      .claude/settings.json: |\n"
                   "        {\"model\": \"qwen\"}\n");
    assert_int_equal(am_agents_load_file(path), 0);
    const am_agent_preset *p = am_agents_find("claude");
    assert_string_equal(p->title, "Claude (site build)");
    assert_int_equal(p->prompt, AM_AGENT_PROMPT_TYPED);
    const char *argv[32];
    size_t n;
    assert_int_equal(am_agents_command(p, "not an argument now", argv, 32, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(argv[3], "qwen");
    assert_string_equal(p->env[0].key, "ANTHROPIC_MODEL");
    assert_null(p->env[1].key);
    Airmesh__V1__CreatePod m = AIRMESH__V1__CREATE_POD__INIT;
    assert_int_equal(am_agents_home_files(p, &m), 0);
    assert_int_equal(m.n_home_files, 1);
    assert_string_equal((const char *)m.home_files[0]->value.data, "{\"model\": \"qwen\"}\n");
    am_agents_home_files_free(&m);
    assert_string_equal(am_agents_find("codex")->title, "Codex CLI"); /* untouched */
    am_agents_reset();
    assert_string_equal(am_agents_find("claude")->title, "Claude Code");
    assert_int_equal(am_agents_find("claude")->prompt, AM_AGENT_PROMPT_ARG);
    unlink(path);
}

static void test_a_bad_agents_file_is_refused_naming_the_line_and_changes_nothing(void **st) {
    (void)st;
    static const struct {
        const char *yaml, *says;
    } bad[] = {
        {"agents:\n  cursor:\n    title: x\n", "line 2: 'cursor' is not an agent of the catalog"},
        {"agents:\n  claude:\n    colour: red\n", "line 3: unknown field 'colour'"},
        {"agents:\n  claude:\n    home_files:\n      ../../etc/cron.d/x: boom\n",
         "line 4: home file '../../etc/cron.d/x'"},
        {"agents:\n  claude:\n    home_files: {/etc/passwd: x}\n",
         "line 3: home file '/etc/passwd'"},
        {"agents:\n  claude:\n    prompt: sometimes\n", "line 3: prompt: argument or typed"},
        {"agents:\n  claude:\n    command: []\n", "line 3: a command has 1 to 32 words"},
        {"agents:\n  claude:\n    env: {1BAD: x}\n", "line 3: env: a variable name"},
        {"things: {}\n", "line 1: the only top-level key is 'agents'"},
        {"agents: [claude]\n", "agents: a mapping"},
        {"agents:\n  claude: {title: [x]\n", "agents file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* the first mapping of each bad file is valid: a half-applied file would show */
        char text[512];
        snprintf(text, sizeof text, "%s", bad[i].yaml);
        const char *path = write_yaml(text);
        int rc = am_agents_load_file(path);
        if (rc != -AM_EINVAL || !strstr(am_err_last(), bad[i].says))
            fail_msg("file %zu: rc %d, message \"%s\", expected \"%s\"", i, rc, am_err_last(),
                     bad[i].says);
        assert_string_equal(am_agents_find("claude")->title, "Claude Code");
        unlink(path);
    }
    const char *path = write_yaml("agents:\n  codex: {title: Changed}\n  claude:\n    nope: 1\n");
    assert_int_equal(am_agents_load_file(path), -AM_EINVAL);
    assert_string_equal(am_agents_find("codex")->title, "Codex CLI"); /* all or nothing */
    unlink(path);
    assert_int_equal(am_agents_load_file("/nonexistent/agents.yaml"), -AM_EIO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_named_cli_has_a_preset),
        cmocka_unit_test(test_commands_carry_the_prompt_as_argument_or_leave_it_to_be_typed),
        cmocka_unit_test(test_prompt_bytes_are_one_bracketed_paste_and_enter_without_controls),
        cmocka_unit_test(test_claude_json_approves_the_pods_key_and_marks_onboarding_done),
        cmocka_unit_test(test_every_mcp_capable_preset_runs_airmesh_mcp_with_its_tools_allowed),
        cmocka_unit_test(test_an_agents_file_changes_presets_and_reset_restores_them),
        cmocka_unit_test(test_a_bad_agents_file_is_refused_naming_the_line_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
