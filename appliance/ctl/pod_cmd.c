/*
 * appliance/ctl/pod_cmd.c — `airmeshctl pod …`: create, list, show, wait, stop, rm, recording.
 * A thin client of /api/v1/pods; shares ctl.c's request helpers through ctl.h.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "appliance/ctl/ctl.h"
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

static void print_pod_row(json_t *p) {
    const char *state = json_string_value(json_object_get(p, "state"));
    char st[48];
    if (strcmp(state, am_pod_state_name(AM_POD_EXITED)) == 0)
        snprintf(st, sizeof st, "exited(%d)", (int)json_integer_value(json_object_get(p, "exit_code")));
    else
        snprintf(st, sizeof st, "%s", state);
    json_t *cmd = json_object_get(p, "command");
    printf("%-15s %-12s %-19s %-28s %s\n", json_string_value(json_object_get(p, "id")), st,
           json_string_value(json_object_get(p, "runner")),
           json_string_value(json_object_get(p, "branch")),
           json_string_value(json_array_get(cmd, 0)));
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
        case 'j': as_json = 1; break;
        case 'm': json_object_set_new(limits, "memory", json_string(optarg)); break;
        case 'p': json_object_set_new(limits, "pids", json_integer(atoi(optarg))); break;
        case 'c': json_object_set_new(limits, "cpu", json_real(atof(optarg))); break;
        case 'T': json_object_set_new(limits, "tmp", json_string(optarg)); break;
        case 'S': json_object_set_new(limits, "shm", json_string(optarg)); break;
        case 'W': json_object_set_new(limits, "workspace", json_string(optarg)); break;
        case 'l':
            if (kv_into(labels, optarg, "--label"))
                goto out;
            break;
        case 'e':
            if (kv_into(env, optarg, "--env"))
                goto out;
            break;
        default: goto out;
        }
    }
    if (!json_object_get(body, "repo") || optind >= argc) {
        fprintf(stderr, "airmeshctl pod create: --repo URL and a command (after --) are "
                        "required\n");
        goto out;
    }
    json_t *cmd = json_array();
    for (int i = optind; i < argc; i++)
        json_array_append_new(cmd, json_string(argv[i]));
    json_object_set_new(body, "command", cmd);
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
                printf("%s exited(%d)\n", id, (int)json_integer_value(json_object_get(p, "exit_code")));
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
            printf("%-15s %-12s %-19s %-28s %s\n", "ID", "STATE", "RUNNER", "BRANCH", "COMMAND");
            size_t i;
            json_t *p;
            json_array_foreach(json_object_get(resp, "pods"), i, p) print_pod_row(p);
        }
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "show") == 0 && argc == 3) {
        if (get_pod(c, argv[2], &resp) != 0)
            return 1;
        json_dumpf(resp, stdout, JSON_INDENT(2));
        printf("\n");
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
    if (strcmp(sub, "recording") == 0 && argc == 5 && strcmp(argv[3], "-o") == 0) {
        snprintf(path, sizeof path, "/api/v1/pods/%s/recording", argv[2]);
        return am_ctl_download(c, path, argv[4]);
    }
    fprintf(stderr,
            "airmeshctl pod: expected create --repo URL [options] -- CMD..., list [--json], "
            "show ID, wait ID [--timeout S], stop ID, rm ID, recording ID -o FILE\n");
    return 2;
}
