/*
 * appliance/agents — the agent catalog: one preset per agent CLI a pod can run (claude, codex,
 * gemini, aider, opencode, goose), kept on the appliance. A preset says how to run the CLI
 * unattended in a sandbox (command and args), how the initial prompt reaches it (as an argument
 * or typed once it is ready), what environment it needs beyond the gateway's (common/egress.h)
 * and which config files to create in the pod's HOME (CreatePod.home_files: e.g. Claude Code's
 * hooks that call `airmesh-notify`, its onboarding marked done; Codex's provider pointing at the
 * in-pod gateway; airmesh-mcp as the MCP server "airmesh" of every CLI that takes one).
 *
 * Which runners have which CLI is not here: runners report it in Hello (Runner.agents); pods
 * choose a runner that has the preset's CLI (appliance/pods).
 *
 * Ownership: the presets are a static, read-only table (process lifetime); strings handed out
 * are borrowed. am_agents_home_files allocates into a CreatePod (am_agents_home_files_free).
 * Threads: any.
 */
#ifndef AM_APPLIANCE_AGENTS_H
#define AM_APPLIANCE_AGENTS_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/runner.pb-c.h"

typedef enum {
    AM_AGENT_PROMPT_ARG,   /* the prompt is an argument (after prompt_flag, if any) */
    AM_AGENT_PROMPT_TYPED, /* typed into the terminal once the CLI is ready
                              (CreatePod.initial_input) */
} am_agent_prompt_mode;

typedef struct {
    const char *key, *value;
} am_agent_kv;

typedef struct {
    const char *path;    /* relative to HOME, e.g. ".codex/config.toml" */
    const char *content; /* NULL: built by am_agents_home_files (depends on the pod) */
} am_agent_file;

typedef struct {
    const char *name;             /* the CLI's name as runners report it ("claude") */
    const char *title;            /* "Claude Code" */
    const char *const *argv;      /* NULL-terminated: the command with a prompt */
    const char *const *argv_bare; /* NULL-terminated, or NULL = argv: the command without one */
    const char *prompt_flag;      /* NULL: the prompt is the last, positional argument */
    am_agent_prompt_mode prompt;
    const am_agent_kv *env;     /* {NULL, NULL}-terminated */
    const am_agent_file *files; /* {NULL, NULL}-terminated */
    const char *notes;          /* what a user must know (model choice, limits) */
} am_agent_preset;

/* Once at startup, before other threads read the catalog (the config's agents_file; see
 * agents_file.c for the format): change the built-in presets. All or nothing: -AM_EINVAL naming
 * the file, line and field (the built-ins stay), -AM_EIO when it cannot be read. */
int am_agents_load_file(const char *path);
/* Back to the built-ins, freeing what a file loaded (tests). */
void am_agents_reset(void);

/* Every preset, in display order. */
size_t am_agents_list(const am_agent_preset **out);
/* The preset called name, or NULL. */
const am_agent_preset *am_agents_find(const char *name);
/* "claude, codex, ..." for error messages. */
const char *am_agents_names(void);

/* The command of a pod of preset p with prompt (NULL or "" = none): its words into argv (at
 * most cap, borrowed from p and prompt). With mode TYPED the prompt is not part of it.
 * -AM_EINVAL when cap is too small. */
int am_agents_command(const am_agent_preset *p, const char *prompt, const char **argv, size_t cap,
                      size_t *argc);

/* The largest text a prompt may carry (POST /pods/{id}/prompt, pod create's "prompt"). */
#define AM_AGENT_PROMPT_MAX (64u << 10)
/* What typing a prompt sends to the terminal: control characters other than tab and newline
 * removed (C0, DEL, and the C1 range U+0080..U+009F), wrapped in a bracketed paste (ESC[200~
 * text ESC[201~), then Enter (CR). *out malloc'd (caller frees), *clean_len = the text's length
 * after stripping. -AM_EINVAL when longer than AM_AGENT_PROMPT_MAX or empty once stripped. */
int am_agents_prompt_bytes(const char *text, size_t len, uint8_t **out, size_t *out_len,
                           size_t *clean_len);

/* Limits the runner enforces too (runner/pod/homefiles.c). */
#define AM_AGENT_HOME_FILES_MAX 64
#define AM_AGENT_HOME_BYTES_MAX (1u << 20)

/* Fill msg->home_files with preset p's files for this pod (after msg->env is complete: Claude
 * Code's approved-key entry is the last 20 characters of the ANTHROPIC_API_KEY msg carries).
 * Free with am_agents_home_files_free. */
int am_agents_home_files(const am_agent_preset *p, Airmesh__V1__CreatePod *msg);
void am_agents_home_files_free(Airmesh__V1__CreatePod *msg);

#endif
