/*
 * appliance/mcp/tools_pods.c — the pod tools (tools.h): list_pods, get_pod_status,
 * get_pod_snapshot, send_pod_input, delegate_task, wait_for_pod. Thin wrappers over am_ops_*:
 * ops decides and audits (the snapshot needs an active read binding from the calling pod, input
 * a write binding: appliance/ops/podio.c); here only the arguments are read and the answers
 * rendered.
 *
 * delegate_task is what the reference platform's agent skill tells agents to call and its code
 * never had: a ticket (am_ops_ticket_create: title, the prompt as its description), a pod for
 * it (am_ops_ticket_start: branch = the key, the ticket as the initial prompt; the pod's starter
 * is the caller's starter), and a read+write binding caller → new pod (active at once under the
 * org's default policy, same_creator; pending under "explicit"). Defaults: the caller's repo,
 * base ref, runner and agent. wait_for_pod polls the store (every 200 ms, *cancelled checked each
 * time) until the pod waits, is idle or ended, or timeout_s (at most 300) passes.
 * Threads: any worker (mcp.c). Memory: arguments borrowed from args; records from ops freed here.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/mcp/tools.h"
#include "common/err.h"
#include "common/util.h"

#define CMD_MAX 64

static const char *s_or(const char *s) {
    return s ? s : "";
}

static int is_final(const char *state) {
    return state &&
           (!strcmp(state, "exited") || !strcmp(state, "failed") || !strcmp(state, "stopped"));
}

/* The caller's active scopes towards pod id ("" none) and whether one is pending. */
typedef struct {
    const char *self;
    json_t *scopes;  /* object: pod id → ["read","write"] */
    json_t *pending; /* object: pod id → binding id */
} bind_map;

static int bind_map_cb(void *ud, const Airmesh__V1__Binding *b) {
    bind_map *m = ud;
    if (strcmp(s_or(b->from_pod), m->self) != 0)
        return 0;
    const char *st = am_ops_binding_state(b, am_now_ms());
    if (!strcmp(st, "active")) {
        json_t *a = json_array();
        for (size_t i = 0; i < b->n_scopes; i++)
            json_array_append_new(a, json_string(b->scopes[i]));
        json_object_set_new(m->scopes, b->to_pod, a);
    } else if (!strcmp(st, "pending")) {
        json_object_set_new(m->pending, b->to_pod, json_string(b->id));
    }
    return 0;
}

static json_t *pod_json(const Airmesh__V1__Pod *p) {
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I}", "id", s_or(p->id), "display_name",
                     s_or(p->display_name), "state", s_or(p->state), "agent_state",
                     s_or(p->agent_state), "agent", s_or(p->agent), "branch", s_or(p->branch),
                     "started_by", s_or(p->created_by), "created_ms", (json_int_t)p->created_ms);
}

typedef struct {
    am_mcp_call *c;
    bind_map *bm;
    json_t *rows;
    int all;
    size_t limit;
} list_ctx;

static int list_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    list_ctx *l = ud;
    const Airmesh__V1__Pod *p = (const Airmesh__V1__Pod *)m;
    if (!l->all && is_final(p->state))
        return 0;
    if (json_array_size(l->rows) >= l->limit)
        return 1;
    json_t *o = pod_json(p);
    json_t *sc = json_object_get(l->bm->scopes, p->id);
    json_object_set_new(o, "self", json_boolean(!strcmp(p->id, l->c->who.pod_id)));
    json_object_set_new(o, "binding", sc ? json_incref(sc) : json_array());
    json_t *pend = json_object_get(l->bm->pending, p->id);
    if (pend)
        json_object_set(o, "pending_binding", pend);
    json_array_append_new(l->rows, o);
    return 0;
}

static int t_list(am_mcp_call *c, json_t *args, json_t **result) {
    int all = 0, rc;
    json_int_t limit = 100;
    if ((rc = am_mcp_arg_bool(args, "include_ended", &all)) ||
        (rc = am_mcp_arg_int(args, "limit", 0, 1, 500, &limit)))
        return rc;
    if ((rc = am_auth_can(&c->who, AM_CAN_READ, NULL)) != 0)
        return rc;
    bind_map bm = {c->who.pod_id, json_object(), json_object()};
    list_ctx l = {c, &bm, json_array(), all, (size_t)limit};
    rc = am_ops_binding_list(c->ops, &c->who, NULL, bind_map_cb, &bm);
    if (rc == 0)
        rc = am_ops_list(c->ops, AM_DB_PODS, c->who.org_id, &airmesh__v1__pod__descriptor, list_cb,
                         &l);
    if (rc < 0) {
        json_decref(l.rows);
    } else {
        rc = 0;
        *result = json_pack("{s:o}", "pods", l.rows);
    }
    json_decref(bm.scopes);
    json_decref(bm.pending);
    return rc;
}

static int get_pod(am_mcp_call *c, const char *id, Airmesh__V1__Pod **p) {
    *p = NULL;
    int rc = am_auth_can(&c->who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    if (!id || !*id || strlen(id) > 64 ||
        am_ops_get(c->ops, AM_DB_PODS, c->who.org_id, id, &airmesh__v1__pod__descriptor,
                   (ProtobufCMessage **)p) != 0)
        return am_err_set(AM_ENOTFOUND, "no such pod '%.64s'", s_or(id));
    return 0;
}

static int t_status(am_mcp_call *c, json_t *args, json_t **result) {
    const char *id;
    int rc = am_mcp_arg_str(args, "pod_id", 1, &id);
    Airmesh__V1__Pod *p = NULL;
    if (rc || (rc = get_pod(c, id, &p)))
        return rc;
    json_t *o = pod_json(p);
    json_object_set_new(o, "exit_code", json_integer(p->exit_code));
    json_object_set_new(o, "agent_state_ms", json_integer((json_int_t)p->agent_state_ms));
    json_object_set_new(o, "ended", json_boolean(is_final(p->state)));
    *result = o;
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return 0;
}

static int t_snapshot(am_mcp_call *c, json_t *args, json_t **result) {
    const char *id;
    json_int_t lines = 50;
    int rc;
    if ((rc = am_mcp_arg_str(args, "pod_id", 1, &id)) ||
        (rc = am_mcp_arg_int(args, "lines", 0, 1, 1000, &lines)))
        return rc;
    char *text = NULL;
    rc = am_ops_pod_snapshot(c->ops, &c->who, c->source, id, (size_t)lines, &text);
    if (rc)
        return rc;
    *result = json_pack("{s:s,s:I,s:s}", "pod_id", id, "lines", lines, "text", text);
    free(text);
    return 0;
}

static int t_input(am_mcp_call *c, json_t *args, json_t **result) {
    const char *id, *text;
    int enter = 1, rc;
    if ((rc = am_mcp_arg_str(args, "pod_id", 1, &id)) ||
        (rc = am_mcp_arg_str(args, "text", 0, &text)) ||
        (rc = am_mcp_arg_bool(args, "enter", &enter)))
        return rc;
    size_t sent = 0;
    rc = am_ops_pod_input(c->ops, &c->who, c->source, id, text, text ? strlen(text) : 0, enter,
                          &sent);
    if (rc)
        return rc;
    *result =
        json_pack("{s:s,s:I,s:b}", "pod_id", id, "sent_bytes", (json_int_t)sent, "enter", enter);
    return 0;
}

static int t_delegate(am_mcp_call *c, json_t *args, json_t **result) {
    const char *title, *prompt, *desc, *agent, *repo, *base, *runner, *name;
    const char *argv[CMD_MAX];
    size_t argc = 0;
    int rc;
    if ((rc = am_mcp_arg_str(args, "title", 1, &title)) ||
        (rc = am_mcp_arg_str(args, "prompt", 0, &prompt)) ||
        (rc = am_mcp_arg_str(args, "description", 0, &desc)) ||
        (rc = am_mcp_arg_str(args, "agent", 0, &agent)) ||
        (rc = am_mcp_arg_str(args, "repo", 0, &repo)) ||
        (rc = am_mcp_arg_str(args, "base", 0, &base)) ||
        (rc = am_mcp_arg_str(args, "runner", 0, &runner)) ||
        (rc = am_mcp_arg_str(args, "display_name", 0, &name)))
        return rc;
    json_t *cmd = json_object_get(args, "command");
    if (cmd && !json_is_null(cmd)) {
        if (!json_is_array(cmd) || json_array_size(cmd) == 0 || json_array_size(cmd) > CMD_MAX)
            return am_err_set(AM_EINVAL, "command: an array of 1-%d strings", CMD_MAX);
        for (size_t i = 0; i < json_array_size(cmd); i++) {
            if (!json_is_string(json_array_get(cmd, i)))
                return am_err_set(AM_EINVAL, "command: an array of strings");
            argv[argc++] = json_string_value(json_array_get(cmd, i));
        }
    }
    const Airmesh__V1__Pod *me = c->pod;
    am_ticket_spec ts = {.title = title, .description = prompt ? prompt : desc};
    Airmesh__V1__Ticket *t = NULL, *t2 = NULL;
    Airmesh__V1__Pod *p = NULL;
    Airmesh__V1__Binding *b = NULL;
    if ((rc = am_ops_ticket_create(c->ops, &c->who, c->source, &ts, &t)) != 0)
        return rc;
    am_pod_spec ps = {0};
    ps.repo = repo ? repo : me ? me->repo : NULL;
    ps.base_ref = base ? base : me ? me->base_ref : NULL;
    ps.runner_id = runner ? runner : me ? me->runner_id : NULL;
    ps.agent = agent ? (*agent ? agent : NULL) : (me && me->agent && *me->agent ? me->agent : NULL);
    if (argc) {
        ps.argv = argv;
        ps.argc = argc;
        if (!agent)
            ps.agent = NULL; /* an explicit command unless an agent was asked for */
    }
    ps.display_name = name;
    rc = am_ops_ticket_start(c->ops, &c->who, c->source, t->key, &ps, &t2, &p);
    if (rc && !p) {
        char why[400];
        snprintf(why, sizeof why, "%s", am_err_last());
        rc = am_err_set(-rc, "ticket %s was created, but its pod was not started: %s", t->key, why);
        goto out;
    }
    static const char *const rw[] = {"read", "write"};
    int brc =
        am_ops_binding_request(c->ops, &c->who, c->source, c->who.pod_id, p->id, rw, 2, 0, &b);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "ticket", t->key, "pod_id", p->id, "branch",
                          s_or(p->branch), "state", s_or(p->state));
    if (brc == 0 && b) {
        json_object_set_new(o, "binding", am_ops_binding_json(b));
    } else {
        json_object_set_new(o, "binding", json_null());
        json_object_set_new(o, "binding_error", json_string(am_err_last()));
    }
    if (rc) /* the pod was recorded but its runner could not take it */
        json_object_set_new(o, "pod_error", json_string(am_err_last()));
    rc = 0;
    *result = o;
out:
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
    if (t2)
        protobuf_c_message_free_unpacked(&t2->base, NULL);
    if (p)
        protobuf_c_message_free_unpacked(&p->base, NULL);
    if (b)
        protobuf_c_message_free_unpacked(&b->base, NULL);
    return rc;
}

static int t_wait(am_mcp_call *c, json_t *args, json_t **result) {
    const char *id;
    json_int_t timeout = 60;
    int rc;
    if ((rc = am_mcp_arg_str(args, "pod_id", 1, &id)) ||
        (rc = am_mcp_arg_int(args, "timeout_s", 0, 0, 300, &timeout)))
        return rc;
    uint64_t deadline = am_now_ms() + (uint64_t)timeout * 1000;
    for (;;) {
        Airmesh__V1__Pod *p = NULL;
        if ((rc = get_pod(c, id, &p)) != 0)
            return rc;
        int ended = is_final(p->state);
        int ready = p->agent_state &&
                    (!strcmp(p->agent_state, "waiting") || !strcmp(p->agent_state, "idle"));
        int timed_out = !ended && !ready && am_now_ms() >= deadline;
        if (ended || ready || timed_out) {
            *result = json_pack("{s:s,s:s,s:s,s:b,s:b,s:i}", "pod_id", p->id, "state",
                                s_or(p->state), "agent_state", s_or(p->agent_state), "ended", ended,
                                "timed_out", timed_out, "exit_code", p->exit_code);
            protobuf_c_message_free_unpacked(&p->base, NULL);
            return 0;
        }
        protobuf_c_message_free_unpacked(&p->base, NULL);
        if (c->cancelled && *c->cancelled)
            return am_err_set(AM_ESTATE, "wait_for_pod: cancelled");
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

#define S_POD "\"pod_id\":{\"type\":\"string\",\"description\":\"a pod id, e.g. p-0123456789ab\"}"

const am_mcp_tool am_mcp_tools_pods[] = {
    {"list_pods", "List pods",
     "The organization's pods (running and starting; include_ended for all): id, display name, "
     "state, agent state (working / waiting / idle), branch, who started it, and this pod's "
     "active binding scopes to each (\"binding\": [] = none) and a pending binding's id.",
     "{\"type\":\"object\",\"properties\":{\"include_ended\":{\"type\":\"boolean\","
     "\"default\":false},\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":500,"
     "\"default\":100}},\"additionalProperties\":false}",
     t_list, 1},
    {"get_pod_status", "Get a pod's status",
     "One pod's state (pending, starting, running, exited, failed, stopped), its agent's state "
     "(working, waiting, idle), branch and exit code.",
     "{\"type\":\"object\",\"properties\":{" S_POD "},\"required\":[\"pod_id\"],"
     "\"additionalProperties\":false}",
     t_status, 1},
    {"get_pod_snapshot", "Read a pod's screen",
     "The last lines of another pod's terminal as plain text (escape sequences removed). Needs "
     "an active read binding from this pod to it (bind_pod).",
     "{\"type\":\"object\",\"properties\":{" S_POD ",\"lines\":{\"type\":\"integer\","
     "\"minimum\":1,\"maximum\":1000,\"default\":50}},\"required\":[\"pod_id\"],"
     "\"additionalProperties\":false}",
     t_snapshot, 1},
    {"send_pod_input", "Type into a pod",
     "Type text into another running pod's terminal (control characters other than tab and "
     "newline are removed), then Enter unless enter is false. Needs an active write binding "
     "from this pod to it. At most 64 KiB.",
     "{\"type\":\"object\",\"properties\":{" S_POD ",\"text\":{\"type\":\"string\","
     "\"maxLength\":65536},\"enter\":{\"type\":\"boolean\",\"default\":true}},"
     "\"required\":[\"pod_id\"],\"additionalProperties\":false}",
     t_input, 0},
    {"delegate_task", "Delegate a task to a new pod",
     "Create a ticket (title, the prompt as its description) and start a pod for it on branch "
     "<ticket key> with the ticket as its initial prompt, bound to this pod with read and write "
     "(so get_pod_snapshot, send_pod_input and @mentions work). Defaults: this pod's repository, "
     "base ref, runner and agent. Returns the ticket key and the pod id; follow it with "
     "wait_for_pod.",
     "{\"type\":\"object\",\"properties\":{\"title\":{\"type\":\"string\",\"maxLength\":200},"
     "\"prompt\":{\"type\":\"string\",\"description\":\"what the new pod should do "
     "(markdown)\"},\"description\":{\"type\":\"string\",\"description\":\"same as prompt\"},"
     "\"agent\":{\"type\":\"string\",\"description\":\"an agent preset (claude, codex, ...); "
     "default: this pod's\"},\"repo\":{\"type\":\"string\"},\"base\":{\"type\":\"string\","
     "\"description\":\"the base ref\"},\"runner\":{\"type\":\"string\"},"
     "\"display_name\":{\"type\":\"string\"},\"command\":{\"type\":\"array\",\"items\":"
     "{\"type\":\"string\"},\"description\":\"a plain command instead of an agent\"}},"
     "\"required\":[\"title\"],\"additionalProperties\":false}",
     t_delegate, 0},
    {"wait_for_pod", "Wait for a pod",
     "Wait until a pod's agent is waiting for input or idle, or the pod ended, or timeout_s "
     "(default 60, at most 300) passed; returns its state and whether it timed out.",
     "{\"type\":\"object\",\"properties\":{" S_POD ",\"timeout_s\":{\"type\":\"integer\","
     "\"minimum\":0,\"maximum\":300,\"default\":60}},\"required\":[\"pod_id\"],"
     "\"additionalProperties\":false}",
     t_wait, 1},
    {0},
};
