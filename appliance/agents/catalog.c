/*
 * appliance/agents/catalog.c — the built-in agent presets (see catalog.h) and the two things
 * built from them per pod: the prompt's terminal bytes and the HOME config files.
 *
 * Where the flags come from (each CLI's own docs; what could not be checked here is marked
 * "assumed" in the README's catalog table):
 *   claude    `claude --dangerously-skip-permissions [prompt]`: interactive, prompt positional;
 *             refuses the flag as uid 0 (pods run it as `agent`). ~/.claude.json marks the
 *             first-run wizard, the /workspace trust dialog and the bypass-mode warning as done
 *             and approves the pod's key (its last 20 characters, as Claude Code stores it);
 *             ~/.claude/settings.json holds the hooks that report the agent's state through
 *             `airmesh-notify` (Notification = waiting, Stop = idle, UserPromptSubmit = working)
 *             and disables auto mode (2.1.x offers it in a dialog after the first turn, which
 *             would swallow the next prompt). Checked against Claude Code 2.1.332 on a PTY.
 *   codex     `codex --dangerously-bypass-approvals-and-sandbox [prompt]` (its own sandbox needs
 *             namespaces a pod does not give it; the pod is the sandbox); ~/.codex/config.toml
 *             names the gateway as its model provider (Responses API, key from OPENAI_API_KEY),
 *             trusts /workspace and calls airmesh-notify when a turn ends.
 *   gemini    `gemini --yolo --prompt-interactive PROMPT`; speaks Google's Gemini API, which the
 *             gateway does not serve (OpenAI and Anthropic only).
 *   aider     `aider --yes-always ...`: its --message runs one prompt and exits, so the prompt
 *             is typed once it is ready; OPENAI_API_BASE (common/egress.h) is its gateway.
 *   opencode  `opencode --prompt PROMPT` (the TUI); ~/.config/opencode/opencode.json points its
 *             openai and anthropic providers at the gateway and allows edits and commands.
 *   goose     `goose run --interactive --text PROMPT` (then interactive), `goose session`
 *             without one; GOOSE_PROVIDER=openai with OPENAI_HOST at the gateway.
 * The model a CLI asks for is the user's choice (ANTHROPIC_MODEL, AIDER_MODEL, GOOSE_MODEL, ...
 * in the pod's env): the gateway routes it to the org's endpoint that serves it.
 *
 * MCP (issue 13): every CLI that takes stdio MCP servers gets airmesh-mcp (AM_MCP_BIN, which the
 * runner binds into each pod) as server AM_MCP_SERVER_NAME, with its tools allowed unattended:
 *   claude    ~/.claude.json "mcpServers" (user scope: no approval prompt, unlike a project's
 *             .mcp.json) with alwaysLoad (its tools in every request, not deferred behind
 *             ToolSearch), and settings.json permissions.allow "mcp__airmesh" (bypass mode
 *             allows them anyway; this keeps them allowed under a command without it). Claude
 *             Code 2.1.332 connects MCP servers without blocking: in -p mode the first request
 *             already has the tools; interactively the first turn may go out while airmesh is
 *             still connecting, and Claude Code then tells the model to call ToolSearch, which
 *             waits for it. Checked on a PTY and in -p mode.
 *   codex     [mcp_servers.airmesh] in config.toml with default_tools_approval_mode "approve"
 *             (checked with Codex 0.171.0: `codex exec` calls the tool, which it offers as a
 *             Responses "namespace" tool mcp__airmesh).
 *   gemini    settings.json mcpServers with trust (no confirmation), and /workspace in
 *             trustedFolders.json: Gemini CLI 0.61.0 starts no MCP server in an untrusted folder
 *             (checked with `gemini mcp list`).
 *   opencode  opencode.json "mcp" local server (opencode 1.18.33: `opencode run` calls its
 *             airmesh_update_ticket without asking).
 *   goose     ~/.config/goose/config.yaml extensions: airmesh (stdio) next to developer (not
 *             installable here: its documented format).
 *   aider     takes no MCP servers.
 */
#include "appliance/agents/catalog.h"
#include "appliance/agents/internal.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/egress.h"
#include "common/err.h"
#include "common/mcp.h"

#define GW AM_EGRESS_GATEWAY_URL
#define MCP_NAME AM_MCP_SERVER_NAME
#define MCP_BIN AM_MCP_BIN

/* ---- the presets ---- */

static const char *const claude_argv[] = {"claude", "--dangerously-skip-permissions", NULL};
static const am_agent_kv claude_env[] = {{"DISABLE_AUTOUPDATER", "1"},
                                         {"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"},
                                         {"DISABLE_ERROR_REPORTING", "1"},
                                         {"DISABLE_TELEMETRY", "1"},
                                         {NULL, NULL}};
static const am_agent_file claude_files[] = {
    {".claude/settings.json",
     "{\n"
     "  \"permissions\": {\"defaultMode\": \"bypassPermissions\", \"allow\": [\"mcp__" MCP_NAME
     "\"]},\n"
     "  \"disableAutoMode\": \"disable\",\n"
     "  \"hooks\": {\n"
     "    \"Notification\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"airmesh-notify "
     "waiting\"}]}],\n"
     "    \"Stop\": [{\"hooks\": [{\"type\": \"command\", \"command\": \"airmesh-notify "
     "idle\"}]}],\n"
     "    \"UserPromptSubmit\": [{\"hooks\": [{\"type\": \"command\", \"command\": "
     "\"airmesh-notify working\"}]}]\n"
     "  }\n"
     "}\n"},
    {".claude.json", NULL}, /* built per pod: the approved key */
    {NULL, NULL}};

static const char *const codex_argv[] = {"codex", "--dangerously-bypass-approvals-and-sandbox",
                                         NULL};
static const am_agent_kv codex_env[] = {{"CODEX_HOME", "/home/agent/.codex"}, {NULL, NULL}};
static const am_agent_file codex_files[] = {
    {".codex/config.toml", "# airmesh: the in-pod model gateway is the model provider\n"
                           "model_provider = \"airmesh\"\n"
                           "approval_policy = \"never\"\n"
                           "sandbox_mode = \"danger-full-access\"\n"
                           "check_for_update_on_startup = false\n"
                           "notify = [\"airmesh-notify\", \"idle\"]\n"
                           "\n"
                           "[model_providers.airmesh]\n"
                           "name = \"airmesh model gateway\"\n"
                           "base_url = \"" GW "/v1\"\n"
                           "env_key = \"OPENAI_API_KEY\"\n"
                           "wire_api = \"responses\"\n"
                           "\n"
                           "[projects.\"/workspace\"]\n"
                           "trust_level = \"trusted\"\n"
                           "\n"
                           "# airmesh-mcp: the pod's tools (tickets, channels, pods)\n"
                           "[mcp_servers." MCP_NAME "]\n"
                           "command = \"" MCP_BIN "\"\n"
                           "args = []\n"
                           "startup_timeout_sec = 30\n"
                           "default_tools_approval_mode = \"approve\"\n"},
    {NULL, NULL}};

static const char *const gemini_argv[] = {"gemini", "--yolo", NULL};
static const am_agent_kv gemini_env[] = {{"GEMINI_CLI_NO_RELAUNCH", "true"}, {NULL, NULL}};
static const am_agent_file gemini_files[] = {
    {".gemini/settings.json",
     "{\n"
     "  \"general\": {\"disableAutoUpdate\": true, \"disableUpdateNag\": true},\n"
     "  \"privacy\": {\"usageStatisticsEnabled\": false},\n"
     "  \"security\": {\"auth\": {\"selectedType\": \"gemini-api-key\"}},\n"
     "  \"mcpServers\": {\"" MCP_NAME "\": {\"command\": \"" MCP_BIN
     "\", \"args\": [], \"trust\": true}}\n"
     "}\n"},
    /* Gemini CLI runs no MCP server (not even a user-level one) in an untrusted folder */
    {".gemini/trustedFolders.json", "{\"/workspace\": \"TRUST_FOLDER\"}\n"},
    {NULL, NULL}};

static const char *const aider_argv[] = {"aider",
                                         "--yes-always",
                                         "--no-check-update",
                                         "--no-show-release-notes",
                                         "--analytics-disable",
                                         "--no-gitignore",
                                         NULL};
static const am_agent_kv aider_env[] = {{"AIDER_CHECK_UPDATE", "false"}, {NULL, NULL}};
static const am_agent_file no_files[] = {{NULL, NULL}};

static const char *const opencode_argv[] = {"opencode", NULL};
static const am_agent_kv opencode_env[] = {{"OPENCODE_DISABLE_AUTOUPDATE", "true"}, {NULL, NULL}};
static const am_agent_file opencode_files[] = {
    {".config/opencode/opencode.json",
     "{\n"
     "  \"$schema\": \"https://opencode.ai/config.json\",\n"
     "  \"autoupdate\": false,\n"
     "  \"share\": \"disabled\",\n"
     "  \"permission\": {\"edit\": \"allow\", \"bash\": \"allow\", \"webfetch\": \"deny\"},\n"
     "  \"provider\": {\n"
     "    \"openai\": {\"options\": {\"baseURL\": \"" GW "/v1\"}},\n"
     "    \"anthropic\": {\"options\": {\"baseURL\": \"" GW "/v1\"}}\n"
     "  },\n"
     "  \"mcp\": {\"" MCP_NAME "\": {\"type\": \"local\", \"command\": [\"" MCP_BIN
     "\"], \"enabled\": true}}\n"
     "}\n"},
    {NULL, NULL}};

static const char *const goose_argv[] = {"goose", "run", "--interactive", NULL};
static const char *const goose_bare[] = {"goose", "session", NULL};
/* goose reads its extensions from config.yaml only (GOOSE_PROVIDER etc. stay in the env, which
 * wins over the file); a file that names extensions replaces the default set, so developer (its
 * shell and editor) is listed as `goose configure` would write it. */
static const am_agent_file goose_files[] = {
    {".config/goose/config.yaml",
     "# airmesh: goose's tools, and airmesh-mcp (tickets, channels, pods)\n"
     "extensions:\n"
     "  developer:\n"
     "    type: builtin\n"
     "    name: developer\n"
     "    enabled: true\n"
     "    bundled: true\n"
     "    timeout: 300\n"
     "  " MCP_NAME ":\n"
     "    type: stdio\n"
     "    name: " MCP_NAME "\n"
     "    enabled: true\n"
     "    cmd: " MCP_BIN "\n"
     "    args: []\n"
     "    env_keys: []\n"
     "    envs: {}\n"
     "    timeout: 300\n"},
    {NULL, NULL}};
static const am_agent_kv goose_env[] = {{"GOOSE_PROVIDER", "openai"},
                                        {"OPENAI_HOST", GW},
                                        {"OPENAI_BASE_PATH", "v1/chat/completions"},
                                        {"GOOSE_MODE", "auto"},
                                        {"GOOSE_DISABLE_KEYRING", "1"},
                                        {NULL, NULL}};

static const am_agent_preset k_presets[] = {
    {"claude", "Claude Code", claude_argv, NULL, NULL, AM_AGENT_PROMPT_ARG, claude_env,
     claude_files,
     "Anthropic Messages through the gateway; set ANTHROPIC_MODEL (and "
     "ANTHROPIC_SMALL_FAST_MODEL) to a model your endpoint serves"},
    {"codex", "Codex CLI", codex_argv, NULL, NULL, AM_AGENT_PROMPT_ARG, codex_env, codex_files,
     "OpenAI Responses API through the gateway; its default model unless an explicit "
     "command passes -m MODEL"},
    {"gemini", "Gemini CLI", gemini_argv, NULL, "--prompt-interactive", AM_AGENT_PROMPT_ARG,
     gemini_env, gemini_files,
     "speaks Google's Gemini API only, which the gateway does not serve: needs a "
     "Gemini-compatible endpoint reachable with network allow or host"},
    {"aider", "Aider", aider_argv, NULL, NULL, AM_AGENT_PROMPT_TYPED, aider_env, no_files,
     "OpenAI-compatible through OPENAI_API_BASE; set AIDER_MODEL=openai/<model>; the prompt is "
     "typed once aider is ready"},
    {"opencode", "opencode", opencode_argv, NULL, "--prompt", AM_AGENT_PROMPT_ARG, opencode_env,
     opencode_files, "openai and anthropic providers pointed at the gateway"},
    {"goose", "goose", goose_argv, goose_bare, "--text", AM_AGENT_PROMPT_ARG, goose_env,
     goose_files,
     "OpenAI-compatible through OPENAI_HOST; set GOOSE_MODEL to a model your endpoint serves"},
};
#define N_PRESETS (sizeof k_presets / sizeof k_presets[0])

/* The live table: the built-ins, changed by an agents_file at startup (agents_file.c), and what
 * such a file allocated (freed by am_agents_reset). */
static am_agent_preset g_table[N_PRESETS];
static int g_ready;
static void **g_owned;
static size_t g_n_owned, g_cap_owned;

static am_agent_preset *table(void) {
    if (!g_ready) {
        memcpy(g_table, k_presets, sizeof g_table);
        g_ready = 1;
    }
    return g_table;
}

int am_agents_own(void *p) {
    if (g_n_owned == g_cap_owned) {
        size_t cap = g_cap_owned ? g_cap_owned * 2 : 64;
        void **n = realloc(g_owned, cap * sizeof *n);
        if (!n)
            return am_err_set(AM_ENOMEM, "agents: out of memory");
        g_owned = n;
        g_cap_owned = cap;
    }
    g_owned[g_n_owned++] = p;
    return 0;
}

void am_agents_reset(void) {
    for (size_t i = 0; i < g_n_owned; i++)
        free(g_owned[i]);
    free(g_owned);
    g_owned = NULL;
    g_n_owned = g_cap_owned = 0;
    g_ready = 0;
}

am_agent_preset *am_agents_mutable(const char *name) {
    am_agent_preset *t = table();
    for (size_t i = 0; name && i < N_PRESETS; i++)
        if (strcmp(t[i].name, name) == 0)
            return &t[i];
    return NULL;
}

size_t am_agents_list(const am_agent_preset **out) {
    *out = table();
    return N_PRESETS;
}

const am_agent_preset *am_agents_find(const char *name) {
    return am_agents_mutable(name);
}

/* The runner's rules (runner/pod/homefiles.c, which checks again): relative, no ".", ".." or
 * empty parts, no control characters, at most 8 levels and 255 bytes. */
int am_agents_home_path_check(const char *p) {
    size_t len = p ? strlen(p) : 0;
    if (len == 0 || len > 255 || p[0] == '/' || p[len - 1] == '/')
        return am_err_set(AM_EINVAL, "home file '%.64s': a relative path of 1 to 255 bytes",
                          p ? p : "");
    int depth = 0;
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return am_err_set(AM_EINVAL,
                              "home file '%.64s': empty, \".\" and \"..\" parts are refused", p);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
                return am_err_set(AM_EINVAL, "home file '%.64s': control characters are refused",
                                  p);
        if (++depth > 8)
            return am_err_set(AM_EINVAL, "home file '%.64s': more than 8 levels", p);
        c = e ? e + 1 : c + n;
    }
    return 0;
}

const char *am_agents_names(void) {
    return "claude, codex, gemini, aider, opencode, goose";
}

int am_agents_command(const am_agent_preset *p, const char *prompt, const char **argv, size_t cap,
                      size_t *argc) {
    int with = prompt && *prompt && p->prompt == AM_AGENT_PROMPT_ARG;
    const char *const *src = !with && p->argv_bare ? p->argv_bare : p->argv;
    size_t n = 0;
    for (; src[n]; n++) {
        if (n >= cap)
            return am_err_set(AM_EINVAL, "agent %s: command too long", p->name);
        argv[n] = src[n];
    }
    if (with) {
        if (n + 2 > cap)
            return am_err_set(AM_EINVAL, "agent %s: command too long", p->name);
        if (p->prompt_flag)
            argv[n++] = p->prompt_flag;
        argv[n++] = prompt;
    }
    *argc = n;
    return 0;
}

/* ---- prompts ---- */

int am_agents_prompt_bytes(const char *text, size_t len, uint8_t **out, size_t *out_len,
                           size_t *clean_len) {
    static const char open[] = "\x1b[200~", close[] = "\x1b[201~\r";
    *out = NULL;
    *out_len = *clean_len = 0;
    if (len > AM_AGENT_PROMPT_MAX)
        return am_err_set(AM_EINVAL, "text: at most %u bytes (this one has %zu)",
                          AM_AGENT_PROMPT_MAX, len);
    uint8_t *b = malloc(sizeof open - 1 + len + sizeof close - 1);
    if (!b)
        return am_err_set(AM_ENOMEM, "prompt: out of memory");
    size_t o = sizeof open - 1;
    memcpy(b, open, o);
    const uint8_t *s = (const uint8_t *)text;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = s[i];
        if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
            continue; /* C0 (ESC among them: no way out of the paste) and DEL */
        if (c == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) {
            i++; /* U+0080..U+009F: C1 controls (CSI, OSC, ...) in UTF-8 */
            continue;
        }
        b[o++] = c;
    }
    size_t clean = o - (sizeof open - 1);
    int blank = 1;
    for (size_t i = sizeof open - 1; i < o && blank; i++)
        blank = b[i] == ' ' || b[i] == '\t' || b[i] == '\n';
    if (blank) {
        free(b);
        return am_err_set(AM_EINVAL, "text: empty (after removing control characters)");
    }
    memcpy(b + o, close, sizeof close - 1);
    o += sizeof close - 1;
    *out = b;
    *out_len = o;
    *clean_len = clean;
    return 0;
}

/* ---- HOME files ---- */

static const char *msg_env(const Airmesh__V1__CreatePod *m, const char *key) {
    for (size_t i = 0; i < m->n_env; i++)
        if (m->env[i]->key && strcmp(m->env[i]->key, key) == 0)
            return m->env[i]->value;
    return NULL;
}

/* ~/.claude.json: the first-run wizard, the trust dialog for /workspace and the bypass-mode
 * warning done; the pod's key approved (Claude Code keeps the last 20 characters of approved
 * keys and asks about any other key in ANTHROPIC_API_KEY). */
static char *claude_json(const Airmesh__V1__CreatePod *m) {
    const char *key = msg_env(m, "ANTHROPIC_API_KEY");
    json_t *approved = json_array();
    if (key && *key) {
        size_t n = strlen(key);
        json_array_append_new(approved, json_string(n > 20 ? key + n - 20 : key));
    }
    /* airmesh-mcp at user scope (no approval asked, unlike a project's .mcp.json), its tools
     * always in the tool list (alwaysLoad: not deferred behind ToolSearch, which a model
     * behind an on-prem endpoint may not know how to use). */
    json_t *mcp = json_pack("{s:{s:s,s:s,s:[],s:{},s:b}}", MCP_NAME, "type", "stdio", "command",
                            MCP_BIN, "args", "env", "alwaysLoad", 1);
    json_t *j =
        json_pack("{s:b,s:b,s:b,s:s,s:{s:o,s:[]},s:{s:{s:b,s:b,s:[]}},s:o}",
                  "hasCompletedOnboarding", 1, "bypassPermissionsModeAccepted", 1, "autoUpdates", 0,
                  "installMethod", "unknown", "customApiKeyResponses", "approved", approved,
                  "rejected", "projects", "/workspace", "hasTrustDialogAccepted", 1,
                  "hasCompletedProjectOnboarding", 1, "allowedTools", "mcpServers", mcp);
    char *s = j ? json_dumps(j, JSON_INDENT(2)) : NULL;
    json_decref(j);
    return s;
}

void am_agents_home_files_free(Airmesh__V1__CreatePod *m) {
    for (size_t i = 0; i < m->n_home_files; i++) {
        if (m->home_files[i]) {
            free(m->home_files[i]->value.data);
            free(m->home_files[i]);
        }
    }
    free(m->home_files);
    m->home_files = NULL;
    m->n_home_files = 0;
}

int am_agents_home_files(const am_agent_preset *p, Airmesh__V1__CreatePod *m) {
    size_t n = 0;
    while (p->files[n].path)
        n++;
    m->home_files = NULL;
    m->n_home_files = 0;
    if (n == 0)
        return 0;
    m->home_files = calloc(n, sizeof *m->home_files);
    if (!m->home_files)
        return am_err_set(AM_ENOMEM, "agents: out of memory");
    for (size_t i = 0; i < n; i++) {
        char *content = p->files[i].content ? strdup(p->files[i].content)
                        : strcmp(p->files[i].path, ".claude.json") == 0 ? claude_json(m)
                                                                        : NULL;
        Airmesh__V1__CreatePod__HomeFilesEntry *e = calloc(1, sizeof *e);
        if (!content || !e) {
            free(content);
            free(e);
            am_agents_home_files_free(m);
            return am_err_set(AM_ENOMEM, "agents: out of memory");
        }
        airmesh__v1__create_pod__home_files_entry__init(e);
        e->key = (char *)p->files[i].path;
        e->value.data = (uint8_t *)content;
        e->value.len = strlen(content);
        m->home_files[m->n_home_files++] = e;
    }
    return 0;
}
