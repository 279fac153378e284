/*
 * appliance/ctl/pod_cmd.c — `airmeshctl pod …`: create, list, show, wait, stop, rm, share,
 * rename, recording (logs and attach are attach_cmd.c). A thin client of /api/v1/pods; shares ctl.c's request
 * helpers through ctl.h. Flags are checked before anything is sent: a limit that is not a
 * number is refused here (exit 2), not sent as 0.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "appliance/ctl/ctl.h"
#include "appliance/ctl/wire.h"
#include "common/display_name.h"
#include "common/pod_state.h"

static int kv_into(json_t *obj, const char *kv, const char *what) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "airmeshctl: %s %s: expected KEY=VALUE\n", what, kv);
        return -1;
    }
    char key[256];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    json_object_set_new(obj, key, json_string(eq + 1));
    return 0;
}

/* The command as one line: words joined by spaces, a word with spaces or quotes in '…'. */
static void command_text(json_t *cmd, char *buf, size_t cap) {
    size_t o = 0, i;
    json_t *w;
    buf[0] = '\0';
    json_array_foreach(cmd, i, w) {
        const char *s = json_string_value(w);
        if (!s)
            continue;
        int quote = !*s || strpbrk(s, " \t\"'$\\;&|<>()*?") != NULL;
        int n = snprintf(buf + o, cap - o, quote ? "%s'%s'" : "%s%s", i ? " " : "", s);
        if (n < 0 || (size_t)n >= cap - o) {
            if (cap > 4)
                snprintf(buf + cap - 4, 4, "...");
            return;
        }
        o += (size_t)n;
    }
}

static void state_text(json_t *p, char *st, size_t cap) {
    const char *state = json_string_value(json_object_get(p, "state"));
    if (state && strcmp(state, am_pod_state_name(AM_POD_EXITED)) == 0)
        snprintf(st, cap, "exited(%d)", (int)json_integer_value(json_object_get(p, "exit_code")));
    else {
        /* "running · waiting": what the agent does, while the pod runs */
        const char *as = json_string_value(json_object_get(p, "agent_state"));
        snprintf(st, cap, "%s%s%s", state ? state : "?", as && *as ? " \xc2\xb7 " : "",
                 as && *as ? as : "");
    }
}

static const char *owner_of(json_t *p) {
    const char *o = json_string_value(json_object_get(p, "created_by"));
    return o && strncmp(o, "user:", 5) == 0 ? o + 5 : o;
}

static void add_pod_row(am_ctl_table *t, json_t *p) {
    char st[48], cmd[4096];
    state_text(p, st, sizeof st);
    command_text(json_object_get(p, "command"), cmd, sizeof cmd);
    am_ctl_table_add(t,
                     (const char *[]){json_string_value(json_object_get(p, "id")),
                                      json_string_value(json_object_get(p, "display_name")), st,
                                      owner_of(p),
                                      json_string_value(json_object_get(p, "runner")),
                                      json_string_value(json_object_get(p, "branch")), cmd});
}

/* --cpu 1.5: a finite number of cores above 0 (at most 1024). */
static int parse_cpu(const char *v, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d <= 0 || d > 1024) {
        fprintf(stderr,
                "airmeshctl pod create: --cpu %s: expected a number of CPU cores such as "
                "1 or 1.5\n",
                v);
        return -1;
    }
    *out = d;
    return 0;
}

/* --pids 512: a whole number of processes, 1 to 4194304. */
static int parse_pids(const char *v, long long *out) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || end == v || *end || n < 1 || n > 4194304) {
        fprintf(stderr,
                "airmeshctl pod create: --pids %s: expected a whole number of processes "
                "such as 512\n",
                v);
        return -1;
    }
    *out = n;
    return 0;
}

/* --memory 512M, --tmp, --shm, --workspace: digits with an optional K, M, G or T (and i, iB
 * or B). */
static int check_size(const char *flag, const char *v) {
    const char *p = v;
    while (*p >= '0' && *p <= '9')
        p++;
    int ok = p > v && (!*p || (strchr("KkMmGgTt", *p) &&
                               (!p[1] || strcmp(p + 1, "B") == 0 || strcmp(p + 1, "i") == 0 ||
                                strcmp(p + 1, "iB") == 0)));
    if (!ok)
        fprintf(stderr, "airmeshctl pod create: --%s %s: expected a size such as 512M or 2G\n",
                flag, v);
    return ok ? 0 : -1;
}

static int pod_create(am_ctl *c, int argc, char **argv) {
    static const struct option o[] = {
        {"repo", required_argument, 0, 'r'},    {"base-ref", required_argument, 0, 'b'},
        {"branch", required_argument, 0, 'B'},  {"runner", required_argument, 0, 'R'},
        {"label", required_argument, 0, 'l'},   {"env", required_argument, 0, 'e'},
        {"memory", required_argument, 0, 'm'},  {"pids", required_argument, 0, 'p'},
        {"cpu", required_argument, 0, 'c'},     {"network", required_argument, 0, 'n'},
        {"keep-worktree", no_argument, 0, 'k'}, {"json", no_argument, 0, 'j'},
        {"tmp", required_argument, 0, 'T'},     {"shm", required_argument, 0, 'S'},
        {"workspace", required_argument, 0, 'W'},
        {"shared", no_argument, 0, 'H'},
        {"agent", required_argument, 0, 'a'},   {"prompt", required_argument, 0, 'P'},
        {"display-name", required_argument, 0, 'N'},
        {0, 0, 0, 0}};
    json_t *body = json_object(), *labels = json_object(), *env = json_object(),
           *limits = json_object();
    int ch, as_json = 0, rc = 2;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "+", o, NULL)) != -1) {
        switch (ch) {
        case 'r': json_object_set_new(body, "repo", json_string(optarg)); break;
        case 'b': json_object_set_new(body, "base_ref", json_string(optarg)); break;
        case 'B': json_object_set_new(body, "branch", json_string(optarg)); break;
        case 'R': json_object_set_new(body, "runner", json_string(optarg)); break;
        case 'n': json_object_set_new(body, "network", json_string(optarg)); break;
        case 'k': json_object_set_new(body, "keep_worktree", json_true()); break;
        case 'H': json_object_set_new(body, "shared", json_true()); break;
        case 'a': json_object_set_new(body, "agent", json_string(optarg)); break;
        case 'P': json_object_set_new(body, "prompt", json_string(optarg)); break;
        case 'j': as_json = 1; break;
        case 'N': {
            char dn[AM_DISPLAY_NAME_BUF];
            if (am_ctl_display_name_arg("pod create", optarg, dn, sizeof dn) != 0)
                goto out;
            json_object_set_new(body, "display_name", json_string(dn));
            break;
        }
        case 'm':
        case 'T':
        case 'S':
        case 'W': {
            const char *key = ch == 'm' ? "memory" : ch == 'T' ? "tmp" : ch == 'S' ? "shm" : "workspace";
            if (check_size(key, optarg))
                goto out;
            json_object_set_new(limits, key, json_string(optarg));
            break;
        }
        case 'p': {
            long long n;
            if (parse_pids(optarg, &n))
                goto out;
            json_object_set_new(limits, "pids", json_integer(n));
            break;
        }
        case 'c': {
            double d;
            if (parse_cpu(optarg, &d))
                goto out;
            json_object_set_new(limits, "cpu", json_real(d));
            break;
        }
        case 'l':
            if (kv_into(labels, optarg, "--label"))
                goto out;
            break;
        case 'e':
            if (kv_into(env, optarg, "--env"))
                goto out;
            break;
        default:
            goto out;
        }
    }
    int agent = json_object_get(body, "agent") != NULL;
    if (!json_object_get(body, "repo") || (optind >= argc && !agent)) {
        fprintf(stderr, "airmeshctl pod create: --repo URL and a command (after --) or "
                        "--agent NAME are required\n");
        goto out;
    }
    if (optind < argc) {
        json_t *cmd = json_array();
        for (int i = optind; i < argc; i++)
            json_array_append_new(cmd, json_string(argv[i]));
        json_object_set_new(body, "command", cmd);
    }
    json_object_set(body, "labels", labels);
    json_object_set(body, "env", env);
    json_object_set(body, "limits", limits);
    json_t *resp = NULL;
    long st = am_ctl_api(c, "POST", "/api/v1/pods", body, &resp);
    if (st != 201) {
        rc = am_ctl_report(st, resp);
        goto out;
    }
    if (as_json) {
        json_dumpf(resp, stdout, JSON_INDENT(2));
        printf("\n");
    } else {
        printf("pod %s created on runner %s (branch %s)\n",
               json_string_value(json_object_get(resp, "id")),
               json_string_value(json_object_get(resp, "runner")),
               json_string_value(json_object_get(resp, "branch")));
    }
    json_decref(resp);
    rc = 0;
out:
    json_decref(body);
    json_decref(labels);
    json_decref(env);
    json_decref(limits);
    return rc;
}

/* One fact per line; times in the local zone; exit codes and limits in words. */
static void show_pod(json_t *p) {
    char st[48], cmd[4096], t[64];
    state_text(p, st, sizeof st);
    command_text(json_object_get(p, "command"), cmd, sizeof cmd);
    const char *reason = json_string_value(json_object_get(p, "reason"));
    printf("%-12s %s\n", "ID", json_string_value(json_object_get(p, "id")));
    const char *dn = json_string_value(json_object_get(p, "display_name"));
    if (dn && *dn) {
        char *shown = am_ctl_clean_text(dn);
        printf("%-12s %s\n", "Name", shown ? shown : "");
        free(shown);
    }
    printf("%-12s %s%s%s\n", "State", st, reason && *reason ? ": " : "", reason ? reason : "");
    printf("%-12s %s\n", "Command", cmd);
    const char *agent = json_string_value(json_object_get(p, "agent"));
    if (agent && *agent)
        printf("%-12s %s\n", "Agent", agent);
    printf("%-12s %s\n", "Repository", json_string_value(json_object_get(p, "repo")));
    const char *base = json_string_value(json_object_get(p, "base_ref"));
    printf("%-12s %s\n", "Base", base && *base ? base : "(the default branch)");
    printf("%-12s %s\n", "Branch", json_string_value(json_object_get(p, "branch")));
    const char *commit = json_string_value(json_object_get(p, "commit"));
    if (commit && *commit)
        printf("%-12s %s\n", "Commit", commit);
    printf("%-12s %s\n", "Runner", json_string_value(json_object_get(p, "runner")));
    printf("%-12s %s\n", "Owner", owner_of(p) ? owner_of(p) : "-");
    json_t *l = json_object_get(p, "limits");
    long long mem = json_integer_value(json_object_get(l, "memory"));
    long long pids = json_integer_value(json_object_get(l, "pids"));
    long long cpu = json_integer_value(json_object_get(l, "cpu_millis"));
    char lim[200] = "";
    size_t o = 0;
    if (mem)
        o += (size_t)snprintf(lim + o, sizeof lim - o, "memory %lld MiB", mem >> 20);
    if (pids)
        o += (size_t)snprintf(lim + o, sizeof lim - o, "%sprocesses %lld", o ? ", " : "", pids);
    if (cpu)
        snprintf(lim + o, sizeof lim - o, "%scpu %.2f", o ? ", " : "", (double)cpu / 1000.0);
    const char *note = json_string_value(json_object_get(p, "limits_note"));
    printf("%-12s %s%s%s%s\n", "Limits", lim[0] ? lim : "none set", note && *note ? " (" : "",
           note && *note ? note : "", note && *note ? ")" : "");
    printf("%-12s %s\n", "Network", json_string_value(json_object_get(p, "network")));
    static const char *const times[][2] = {
        {"Created", "created_ms"}, {"Started", "started_ms"}, {"Ended", "ended_ms"}};
    for (int i = 0; i < 3; i++) {
        am_ctl_local_time(json_integer_value(json_object_get(p, times[i][1])), t, sizeof t);
        printf("%-12s %s\n", times[i][0], t);
    }
    printf("%-12s %s\n", "Recording",
           json_is_true(json_object_get(p, "recording"))
               ? "yes (airmeshctl pod recording ID -o FILE)"
               : "no");
}

static int get_pod(am_ctl *c, const char *id, json_t **resp) {
    char path[300];
    snprintf(path, sizeof path, "/api/v1/pods/%s", id);
    long st = am_ctl_api(c, "GET", path, NULL, resp);
    if (st != 200)
        return am_ctl_report(st, *resp);
    return 0;
}

static int ended(const char *state) {
    return am_pod_state_name_final(state);
}

static int pod_wait(am_ctl *c, const char *id, int timeout_s) {
    time_t deadline = time(NULL) + timeout_s;
    for (;;) {
        json_t *p = NULL;
        if (get_pod(c, id, &p) != 0)
            return 1;
        const char *state = json_string_value(json_object_get(p, "state"));
        if (ended(state)) {
            const char *reason = json_string_value(json_object_get(p, "reason"));
            if (strcmp(state, am_pod_state_name(AM_POD_EXITED)) == 0)
                printf("%s exited(%d)\n", id,
                       (int)json_integer_value(json_object_get(p, "exit_code")));
            else
                printf("%s %s%s%s\n", id, state, reason && *reason ? ": " : "",
                       reason ? reason : "");
            int rc = strcmp(state, am_pod_state_name(AM_POD_EXITED)) == 0
                         ? (int)json_integer_value(json_object_get(p, "exit_code")) != 0
                         : strcmp(state, am_pod_state_name(AM_POD_FAILED)) == 0;
            json_decref(p);
            return rc;
        }
        json_decref(p);
        if (time(NULL) >= deadline) {
            fprintf(stderr, "airmeshctl: %s still %s after %d s\n", id, state, timeout_s);
            return 1;
        }
        usleep(200000);
    }
}

int am_ctl_pod(am_ctl *c, int argc, char **argv) {
    const char *sub = argc > 1 ? argv[1] : "";
    json_t *resp = NULL;
    char path[300];
    if (strcmp(sub, "create") == 0)
        return pod_create(c, argc, argv);
    if (strcmp(sub, "list") == 0) {
        long st = am_ctl_api(c, "GET", "/api/v1/pods", NULL, &resp);
        if (st != 200)
            return am_ctl_report(st, resp);
        if (argc > 2 && strcmp(argv[2], "--json") == 0) {
            json_dumpf(json_object_get(resp, "pods"), stdout, JSON_INDENT(2));
            printf("\n");
        } else {
            am_ctl_table t;
            am_ctl_table_init(&t, 7,
                              (const char *[]){"ID", "NAME", "STATE", "OWNER", "RUNNER", "BRANCH",
                                               "COMMAND"});
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(resp, "pods"), i, p) add_pod_row(&t, p);
            am_ctl_table_print(&t, stdout);
            am_ctl_table_free(&t);
        }
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "show") == 0 && (argc == 3 || (argc == 4 && strcmp(argv[3], "--json") == 0))) {
        if (get_pod(c, argv[2], &resp) != 0)
            return 1;
        /* JSON with --json, and when stdout is a pipe or a file (scripts parse it). */
        if (argc == 4 || !isatty(STDOUT_FILENO)) {
            json_dumpf(resp, stdout, JSON_INDENT(2));
            printf("\n");
        } else {
            show_pod(resp);
        }
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "wait") == 0 && argc >= 3) {
        int timeout = argc == 5 && strcmp(argv[3], "--timeout") == 0 ? atoi(argv[4]) : 300;
        return pod_wait(c, argv[2], timeout > 0 ? timeout : 300);
    }
    if ((strcmp(sub, "stop") == 0 || strcmp(sub, "rm") == 0) && argc == 3) {
        int stop = sub[0] == 's';
        snprintf(path, sizeof path, "/api/v1/pods/%s%s", argv[2], stop ? "/stop" : "");
        json_t *empty = stop ? json_object() : NULL;
        long st = am_ctl_api(c, stop ? "POST" : "DELETE", path, empty, &resp);
        json_decref(empty);
        if (st != 200 && st != 202)
            return am_ctl_report(st, resp);
        printf("%s %s\n", argv[2], stop ? "stopping" : "removed");
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "share") == 0 &&
        (argc == 3 || (argc == 4 && strcmp(argv[3], "--off") == 0))) {
        /* issue 14: let other members take control of and stop it (--off: only you and admins) */
        int on = argc == 3;
        snprintf(path, sizeof path, "/api/v1/pods/%s/share", argv[2]);
        json_t *b = json_pack("{s:b}", "shared", on);
        long st = am_ctl_api(c, "POST", path, b, &resp);
        json_decref(b);
        if (st != 200)
            return am_ctl_report(st, resp);
        printf("%s %s\n", argv[2], on ? "shared" : "not shared");
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "rename") == 0) {
        const char *id = argc > 2 && argv[2][0] != '-' ? argv[2] : NULL;
        snprintf(path, sizeof path, "/api/v1/pods/%s", id ? id : "");
        return am_ctl_rename(c, "pod", path, id, argc, argv, 3);
    }
    if (strcmp(sub, "recording") == 0 && argc == 5 && strcmp(argv[3], "-o") == 0) {
        snprintf(path, sizeof path, "/api/v1/pods/%s/recording", argv[2]);
        return am_ctl_download(c, path, argv[4]);
    }
    fprintf(stderr,
            "airmeshctl pod: expected create --repo URL [options] -- CMD..., list [--json], "
            "show ID [--json], logs ID [--follow], attach ID, wait ID [--timeout S], stop ID, "
            "rm ID, share ID [--off], rename ID \"NAME\" | --clear, recording ID -o FILE (see "
            "airmeshctl help pod)\n");
    return 2;
}
