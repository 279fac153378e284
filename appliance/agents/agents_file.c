/*
 * appliance/agents/agents_file.c — the config's `agents_file`: an admin's changes to the built-in
 * presets, in YAML (libyaml's document API, never parsed by hand):
 *
 *   agents:
 *     claude:                              # one of the catalog's names (runners detect only
 *       title: Claude Code (our build)     #   those CLIs, so a new name could run nowhere)
 *       command: [claude, --dangerously-skip-permissions, --model, qwen3-coder]
 *       command_bare: [claude]             # without a prompt (default: command)
 *       prompt: argument                   # argument | typed
 *       prompt_flag: ""                    # "" = the prompt is the last, positional argument
 *       env: {ANTHROPIC_MODEL: qwen3-coder}
 *       home_files:                        # replaces the preset's files (all of them)
 *         .claude/settings.json: |
 *           {"permissions": {"defaultMode": "bypassPermissions"}}
 *       notes: our on-prem model
 *
 * A field given replaces the built-in's; the rest stay. Checked here, before airmeshd starts:
 * unknown names and fields, wrong types, command words and env names, HOME file paths by the
 * runner's own rules (relative, no "."/".." or empty parts, no control characters, at most 8
 * levels and 255 bytes; at most 64 files, 1 MiB). Errors name the file, line and field.
 * Ownership: the strings live for the process (am_agents_reset frees them: tests).
 * Threads: am_agents_load_file once at startup, before any other thread reads the catalog.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "appliance/agents/catalog.h"
#include "appliance/agents/internal.h"
#include "common/err.h"

#define WORDS_MAX 32
#define ENV_MAX 16

typedef struct {
    const char *path;
    yaml_document_t *doc;
} ctx;

static int line_of(const yaml_node_t *n) {
    return (int)n->start_mark.line + 1;
}

static const char *scalar(const yaml_node_t *n) {
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int bad(const ctx *c, const yaml_node_t *n, const char *what) {
    return am_err_set(AM_EINVAL, "agents file %s line %d: %s", c->path, n ? line_of(n) : 0, what);
}

static int printable(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

/* A copy kept until am_agents_reset. */
static char *keep(const char *s) {
    char *d = strdup(s);
    return d && am_agents_own(d) == 0 ? d : NULL;
}

static int str_field(const ctx *c, const yaml_node_t *v, size_t max, int empty_ok,
                     const char **out) {
    const char *s = scalar(v);
    if (!s || (!empty_ok && !*s) || strlen(s) > max || !printable(s))
        return bad(c, v, "expected a short line of text");
    *out = keep(s);
    return *out ? 0 : am_err_set(AM_ENOMEM, "agents file: out of memory");
}

static int words_field(const ctx *c, const yaml_node_t *v, const char *const **out) {
    if (v->type != YAML_SEQUENCE_NODE)
        return bad(c, v,
                   "a command is a list of words, e.g. [claude, --dangerously-skip-permissions]");
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n == 0 || n > WORDS_MAX)
        return bad(c, v, "a command has 1 to 32 words");
    const char **w = calloc(n + 1, sizeof *w);
    if (!w || am_agents_own(w) != 0) {
        free(w);
        return am_err_set(AM_ENOMEM, "agents file: out of memory");
    }
    size_t i = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++, i++) {
        const yaml_node_t *e = yaml_document_get_node(c->doc, *it);
        const char *s = scalar(e);
        if (!s || !*s || strlen(s) > 1024 || !printable(s))
            return bad(c, e ? e : v, "every word of a command is a non-empty string");
        if (!(w[i] = keep(s)))
            return am_err_set(AM_ENOMEM, "agents file: out of memory");
    }
    *out = (const char *const *)w;
    return 0;
}

static int env_name_ok(const char *k) {
    if (!k || !*k || strlen(k) > 128 || (*k >= '0' && *k <= '9'))
        return 0;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return 1;
}

/* env or home_files: a mapping of strings into a {NULL, NULL}-ended array. */
static int map_field(const ctx *c, const yaml_node_t *v, int env, const am_agent_kv **env_out,
                     const am_agent_file **files_out) {
    if (v->type != YAML_MAPPING_NODE)
        return bad(c, v,
                   env ? "env is a mapping NAME: value" : "home_files is a mapping PATH: content");
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > (env ? ENV_MAX : AM_AGENT_HOME_FILES_MAX))
        return bad(c, v, env ? "env: at most 16 variables" : "home_files: at most 64 files");
    am_agent_kv *kv = env ? calloc(n + 1, sizeof *kv) : NULL;
    am_agent_file *fl = env ? NULL : calloc(n + 1, sizeof *fl);
    void *arr = env ? (void *)kv : (void *)fl;
    if (!arr || am_agents_own(arr) != 0) {
        free(arr);
        return am_err_set(AM_ENOMEM, "agents file: out of memory");
    }
    size_t i = 0, total = 0;
    for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
         pr++, i++) {
        const yaml_node_t *kn = yaml_document_get_node(c->doc, pr->key);
        const yaml_node_t *vn = yaml_document_get_node(c->doc, pr->value);
        const char *k = scalar(kn), *val = scalar(vn);
        if (!k || !val)
            return bad(c, kn ? kn : v, "names and values are strings");
        if (env && (!env_name_ok(k) || strlen(val) > 65536))
            return bad(c, kn, "env: a variable name is letters, digits and _");
        if (!env && am_agents_home_path_check(k) != 0) {
            char why[300];
            snprintf(why, sizeof why, "%s", am_err_last());
            return bad(c, kn, why);
        }
        total += strlen(val);
        if (!env && total > AM_AGENT_HOME_BYTES_MAX)
            return bad(c, vn, "home_files: at most 1 MiB in all");
        const char *ck = keep(k), *cv = keep(val);
        if (!ck || !cv)
            return am_err_set(AM_ENOMEM, "agents file: out of memory");
        if (env) {
            kv[i].key = ck;
            kv[i].value = cv;
        } else {
            fl[i].path = ck;
            fl[i].content = cv;
        }
    }
    if (env)
        *env_out = kv;
    else
        *files_out = fl;
    return 0;
}

static int apply_agent(const ctx *c, const char *name, const yaml_node_t *kn,
                       const yaml_node_t *v) {
    am_agent_preset *p = am_agents_mutable(name);
    if (!p) {
        char why[200];
        snprintf(why, sizeof why,
                 "'%.40s' is not an agent of the catalog (%s); runners detect only those CLIs",
                 name, am_agents_names());
        return bad(c, kn, why);
    }
    if (v->type != YAML_MAPPING_NODE)
        return bad(c, v, "an agent's settings are a mapping (title, command, prompt, env, ...)");
    for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top; pr++) {
        const yaml_node_t *fk = yaml_document_get_node(c->doc, pr->key);
        const yaml_node_t *fv = yaml_document_get_node(c->doc, pr->value);
        const char *f = scalar(fk);
        int rc;
        if (!f || !fv)
            return bad(c, fk ? fk : v, "expected field: value");
        if (strcmp(f, "title") == 0)
            rc = str_field(c, fv, 64, 0, &p->title);
        else if (strcmp(f, "notes") == 0)
            rc = str_field(c, fv, 300, 1, &p->notes);
        else if (strcmp(f, "prompt_flag") == 0) {
            rc = str_field(c, fv, 64, 1, &p->prompt_flag);
            if (rc == 0 && !*p->prompt_flag)
                p->prompt_flag = NULL;
        } else if (strcmp(f, "prompt") == 0) {
            const char *s = scalar(fv);
            if (s && strcmp(s, "argument") == 0)
                p->prompt = AM_AGENT_PROMPT_ARG;
            else if (s && strcmp(s, "typed") == 0)
                p->prompt = AM_AGENT_PROMPT_TYPED;
            else
                return bad(c, fv, "prompt: argument or typed");
            rc = 0;
        } else if (strcmp(f, "command") == 0)
            rc = words_field(c, fv, &p->argv);
        else if (strcmp(f, "command_bare") == 0)
            rc = words_field(c, fv, &p->argv_bare);
        else if (strcmp(f, "env") == 0)
            rc = map_field(c, fv, 1, &p->env, NULL);
        else if (strcmp(f, "home_files") == 0)
            rc = map_field(c, fv, 0, NULL, &p->files);
        else {
            char why[160];
            snprintf(why, sizeof why,
                     "unknown field '%.40s' (title, command, command_bare, prompt, prompt_flag, "
                     "env, home_files, notes)",
                     f);
            return bad(c, fk, why);
        }
        if (rc)
            return rc;
    }
    return 0;
}

int am_agents_load_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return am_err_set(AM_EIO, "agents file %s: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0;
    if (!yaml_parser_load(&parser, &doc)) {
        rc =
            am_err_set(AM_EINVAL, "agents file %s line %zu: %s", path, parser.problem_mark.line + 1,
                       parser.problem ? parser.problem : "syntax error");
        yaml_parser_delete(&parser);
        fclose(f);
        return rc;
    }
    ctx c = {path, &doc};
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    const yaml_node_t *agents = NULL;
    if (!root || root->type != YAML_MAPPING_NODE) {
        rc = bad(&c, root, "expected a mapping with the key 'agents'");
        goto out;
    }
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        const yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        if (!scalar(k) || strcmp(scalar(k), "agents") != 0) {
            rc = bad(&c, k, "the only top-level key is 'agents'");
            goto out;
        }
        agents = yaml_document_get_node(&doc, pr->value);
    }
    if (!agents || agents->type != YAML_MAPPING_NODE) {
        rc = bad(&c, agents ? agents : root, "agents: a mapping of agent name to its settings");
        goto out;
    }
    for (yaml_node_pair_t *pr = agents->data.mapping.pairs.start;
         rc == 0 && pr < agents->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        const yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
        rc = scalar(k) && v ? apply_agent(&c, scalar(k), k, v) : bad(&c, k, "expected name: {...}");
    }
out:
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc) {
        char why[600];
        snprintf(why, sizeof why, "%s", am_err_last());
        am_agents_reset(); /* all or nothing */
        am_err_set(rc, "%s", why);
    }
    return rc;
}
