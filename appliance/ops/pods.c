/*
 * appliance/ops/pods.c — the state changes of pods: create (record, then CreatePod to the
 * runner; an unreachable runner marks it failed), stop, delete, the web terminal's input
 * control and keystrokes, sharing (issue 14: members act only on their own pods unless
 * shared; admins and owners on any), and what runners report (states, output, recordings). Members
 * and above change pods and type; viewers watch. Another org's pod is -AM_ENOTFOUND. Publish step:
 * a final state ends the pod's live terminal in the hub (viewers get `exit` after its last byte),
 * messages for the runner go out through the runner link. Threads: any.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/agents/catalog.h"
#include "appliance/ops/internal.h"
#include "common/display_name.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

static void pod_target(char *buf, size_t cap, const char *id) {
    snprintf(buf, cap, "pod:%.32s", id ? id : "");
}

/* A pod of the caller's org, or -AM_ENOTFOUND "no such pod". */
static int load_pod(am_ops *o, const char *org, const char *id, Airmesh__V1__Pod **p) {
    *p = NULL;
    if (!id || am_pods_get(o->c.store, org, id, p) != 0)
        return am_err_set(AM_ENOTFOUND, "no such pod");
    return 0;
}

/* 1 when who started p (created_by "user:<id>"). */
static int pod_is_own(const am_principal *who, const Airmesh__V1__Pod *p) {
    const char *by = p->created_by ? p->created_by : "";
    return strcmp(strncmp(by, "user:", 5) == 0 ? by + 5 : by, who->user_id) == 0;
}

/* Issue 14: taking control of, typing into and stopping a pod another user started, and not
 * shared, needs AM_CAN_POD_OTHERS (admins and owners); its starter always may. A refusal is a
 * denied record (ops_check). with_shared = 0: sharing does not count (changing the flag). */
static int pod_owner_check(ops_act *a, const am_principal *who, const Airmesh__V1__Pod *p,
                           int with_shared) {
    if (pod_is_own(who, p) || (with_shared && p->shared))
        return 0;
    return ops_check(a, who, AM_CAN_POD_OTHERS, NULL);
}

/* ---- state changes (shared by runners' reports and the appliance's own decisions) ---- */

static const char *state_action(const char *state) {
    am_pod_state st;
    if (!state || am_pod_state_parse(state, &st) != 0)
        return NULL;
    switch (st) {
    case AM_POD_RUNNING:
        return "pod.start";
    case AM_POD_EXITED:
        return "pod.exit";
    case AM_POD_FAILED:
        return "pod.fail";
    case AM_POD_STOPPED:
        return "pod.stopped";
    default:
        return NULL;
    }
}

int ops_pod_state(am_ops *o, const char *actor, const char *org, am_pod_update *u) {
    char target[48];
    pod_target(target, sizeof target, u->id);
    ops_act a;
    ops_act_init(&a, o, actor, org, state_action(u->state), target, "");
    a.skip = state_action(u->state) == NULL; /* "starting": no event of its own */
    snprintf(a.result, sizeof a.result, "%s",
             u->state && !strcmp(u->state, am_pod_state_name(AM_POD_FAILED)) ? "error" : "ok");
    ops_act_details(&a, "{\"state\":\"%s\",\"exit_code\":%d}", u->state ? u->state : "",
                    u->exit_code);
    if (u->reason && *u->reason) { /* e.g. the runner refused to take the pod's branch back */
        json_t *d = json_pack("{s:s,s:i,s:s}", "state", u->state ? u->state : "", "exit_code",
                              u->exit_code, "reason", u->reason);
        char *js = d ? json_dumps(d, JSON_COMPACT) : NULL;
        if (js && strlen(js) < sizeof a.details)
            snprintf(a.details, sizeof a.details, "%s", js);
        free(js);
        json_decref(d);
    }
    int rc = ops_act_done(&a, am_pods_update(o->c.store, u, &a.hook));
    if (rc == 0 && u->changed && o->c.hub) {
        am_pod_state st;
        if (am_pod_state_parse(u->state, &st) == 0 && am_pod_state_final(st))
            am_hub_pod_end(o->c.hub, org, u->pod_runner, u->id, u->state, u->exit_code);
    }
    if (rc == 0 && u->changed && u->state) {
        am_pod_state st;
        if (am_pod_state_parse(u->state, &st) == 0 && am_pod_state_final(st)) {
            ops_ticket_pod_ended(o, actor, org, u->id); /* its ticket → in_review */
            ops_channel_pod_ended(o, org, u->id); /* its channel @mentions will never arrive */
            ops_binding_pod_ended(o, org, u->id); /* its bindings end with it */
        }
    }
    return rc;
}

/* ---- create ---- */

static int runner_online(void *ud, const char *runner_id) {
    am_ops *o = ud;
    return o->c.hub && am_hub_runner_get(o->c.hub, runner_id, NULL);
}

typedef struct {
    ops_act *a;
    const am_pod_new *n;
    const am_pod_spec *spec;
    size_t argc_audit; /* the command's words before the prompt (the prompt is never audited) */
    size_t prompt_len; /* bytes of the initial prompt, 0 = none */
} create_hook_ctx;

/* Inside the creating transaction, once the runner is chosen: the record names it. */
static int create_hook(am_txn *t, void *ud) {
    create_hook_ctx *c = ud;
    ops_act *a = c->a;
    pod_target(a->target, sizeof a->target, c->n->id);
    json_t *cmd = json_array();
    for (size_t i = 0; i < c->argc_audit; i++)
        json_array_append_new(cmd, json_string(c->spec->argv[i]));
    const char *net = c->n->network[0] ? c->n->network : "none"; /* as decided */
    const char *base = c->spec->base_ref && *c->spec->base_ref ? c->spec->base_ref : "HEAD";
    json_t *d =
        json_pack("{s:s,s:s,s:s,s:s,s:o,s:s}", "runner", c->n->runner, "repo", c->spec->repo,
                  "base_ref", base, "branch", c->n->branch, "command", cmd, "network", net);
    if (d && c->spec->agent && *c->spec->agent) {
        json_object_set_new(d, "agent", json_string(c->spec->agent));
        json_object_set_new(d, "prompt_length", json_integer((json_int_t)c->prompt_len));
    }
    if (d && c->spec->display_name && *c->spec->display_name)
        json_object_set_new(d, "display_name", json_string(c->spec->display_name));
    char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    if (!s)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    snprintf(a->details, sizeof a->details, "%s",
             strlen(s) < sizeof a->details ? s : "{\"truncated\":true}");
    free(s);
    return a->hook.fn(t, a);
}

/* A pod create with an agent preset and/or a prompt, expanded into a plain spec: the preset's
 * command (unless one is given) with the prompt as its argument, its env under the request's
 * (a key the request sets wins), and the prompt's terminal bytes when it is to be typed. */
#define AGENT_ENV_MAX 16
typedef struct {
    am_pod_spec s;
    const am_agent_preset *preset;
    const char *argv[256], *ek[256 + AGENT_ENV_MAX], *ev[256 + AGENT_ENV_MAX];
    size_t argc_audit, prompt_len;
    uint8_t *typed; /* CreatePod.initial_input (malloc'd) */
    size_t typed_len;
} agent_spec;

static int agent_expand(const am_pod_spec *in, agent_spec *x) {
    memset(x, 0, sizeof *x);
    x->s = *in;
    x->argc_audit = in->argc;
    const char *prompt = in->prompt && *in->prompt ? in->prompt : NULL;
    int has_agent = in->agent && *in->agent;
    if (!has_agent && !prompt)
        return 0;
    if (has_agent && !(x->preset = am_agents_find(in->agent)))
        return am_err_set(AM_EINVAL, "agent: no preset '%.32s' (the catalog has %s)", in->agent,
                          am_agents_names());
    if (prompt && strlen(prompt) > AM_AGENT_PROMPT_MAX)
        return am_err_set(AM_EINVAL, "prompt: at most %u bytes", AM_AGENT_PROMPT_MAX);
    x->prompt_len = prompt ? strlen(prompt) : 0;
    int typed = prompt != NULL;
    if (x->preset && in->argc == 0) {
        size_t argc;
        int rc = am_agents_command(x->preset, NULL, x->argv, 256, &argc);
        x->argc_audit = argc;
        if (rc == 0)
            rc = am_agents_command(x->preset, prompt, x->argv, 256, &argc);
        if (rc)
            return rc;
        x->s.argv = x->argv;
        x->s.argc = argc;
        typed = prompt && x->preset->prompt == AM_AGENT_PROMPT_TYPED;
    }
    if (typed) {
        size_t clean;
        int rc = am_agents_prompt_bytes(prompt, strlen(prompt), &x->typed, &x->typed_len, &clean);
        if (rc)
            return am_err_set(rc, "prompt: %s", am_err_last());
    }
    if (x->preset) {
        size_t ne = 0;
        for (const am_agent_kv *kv = x->preset->env; kv->key && ne < AGENT_ENV_MAX; kv++) {
            int overridden = 0;
            for (size_t i = 0; i < in->n_env && !overridden; i++)
                overridden = strcmp(in->env_keys[i], kv->key) == 0;
            if (!overridden) {
                x->ek[ne] = kv->key;
                x->ev[ne++] = kv->value;
            }
        }
        for (size_t i = 0; i < in->n_env && ne < 256 + AGENT_ENV_MAX; i++) {
            x->ek[ne] = in->env_keys[i];
            x->ev[ne++] = in->env_values[i];
        }
        x->s.env_keys = x->ek;
        x->s.env_values = x->ev;
        x->s.n_env = ne;
    }
    return 0;
}

int am_ops_pod_create(am_ops *o, const am_principal *who, const char *source,
                      const am_pod_spec *spec_in, Airmesh__V1__Pod **out) {
    *out = NULL;
    ops_act a;
    ops_act_user(&a, o, who, "pod.create", "pod:", source);
    int rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL);
    if (rc == 0 && spec_in->network && strcmp(spec_in->network, "host") == 0)
        rc = ops_check(&a, who, AM_CAN_HOST_NET, NULL);
    if (rc)
        return rc;
    /* The display name (optional) is checked here, once; the record gets the trimmed text. */
    char dn[AM_DISPLAY_NAME_BUF] = "";
    am_pod_spec named = *spec_in;
    if (spec_in->display_name) {
        if ((rc = am_display_name_check(spec_in->display_name, strlen(spec_in->display_name), dn,
                                        sizeof dn)) != 0)
            return rc;
        named.display_name = dn;
    }
    agent_spec *x = calloc(1, sizeof *x);
    if (!x)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    if ((rc = agent_expand(&named, x)) != 0) {
        free(x->typed);
        free(x);
        return rc;
    }
    const am_pod_spec *spec = &x->s;
    am_pod_new n;
    create_hook_ctx hc = {&a, &n, spec, x->argc_audit, x->prompt_len};
    am_txn_hook h = {create_hook, &hc};
    Airmesh__V1__Pod *pod = NULL;
    /* The starter is always a user: a pod acting through MCP (delegate_task) starts pods for
     * its own starter (the record's actor says which pod did it), so the new pod's owner
     * rules, bindings' same_creator and its own MCP principal are its human's. */
    char by[160];
    snprintf(by, sizeof by, "user:%s", who->user_id);
    rc = am_pods_create(o->c.store, who->org_id, by, spec, &o->c.pod_defaults, runner_online, o, &n,
                        &h, &pod);
    rc = ops_act_done(&a, rc);
    if (rc) {
        free(x->typed);
        free(x);
        am_wipe(n.gateway_key, sizeof n.gateway_key);
        return rc;
    }
    /* Publish: hand it to its runner. */
    Airmesh__V1__CreatePod cp;
    Airmesh__V1__ApplianceMessage msg = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
    /* The virtual model key (network models/allow) goes into this message's env only: never
     * into the record, the audit log or an API answer. */
    rc = am_pods_create_msg(pod, n.gateway_key, &cp);
    if (rc == 0) {
        /* The agent's HOME files last: they may depend on the env the message carries. */
        if (x->preset)
            rc = am_agents_home_files(x->preset, &cp);
        cp.initial_input.data = x->typed;
        cp.initial_input.len = x->typed_len;
        msg.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_CREATE_POD;
        msg.create_pod = &cp;
        if (rc == 0)
            rc = ops_send(o, pod->runner_id, &msg);
        am_agents_home_files_free(&cp);
        am_pods_create_msg_free(&cp);
    }
    free(x->typed);
    free(x);
    am_wipe(n.gateway_key, sizeof n.gateway_key);
    *out = pod;
    if (rc) {
        char why[400];
        snprintf(why, sizeof why, "%s", am_err_last());
        am_pod_update u = {.org = who->org_id,
                           .id = pod->id,
                           .state = am_pod_state_name(AM_POD_FAILED),
                           .reason = "its runner could not be reached"};
        if (ops_pod_state(o, "system", who->org_id, &u) != 0)
            am_log_warn("ops", "pod not marked failed", "pod=%s error=\"%s\"", pod->id,
                        am_err_last());
        return am_err_set(AM_EUNAVAIL, "%s", why);
    }
    return 0;
}

/* ---- stop, delete ---- */

int am_ops_pod_stop(am_ops *o, const am_principal *who, const char *source, const char *pod_id) {
    Airmesh__V1__Pod *p = NULL;
    int rc = load_pod(o, who->org_id, pod_id, &p);
    if (rc)
        return rc;
    char target[48];
    pod_target(target, sizeof target, p->id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.stop", target, source);
    if ((rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL)) != 0 ||
        (rc = pod_owner_check(&a, who, p, 1)) != 0)
        goto out;
    if (am_pods_ended(p)) { /* nothing to stop: still an answered, audited request */
        rc = ops_record(&a, "ok");
        goto out;
    }
    if (runner_online(o, p->runner_id)) {
        /* Audit first: a stop the log cannot record is not sent. */
        if ((rc = ops_record(&a, "ok")) != 0)
            goto out;
        Airmesh__V1__StopPod sp = AIRMESH__V1__STOP_POD__INIT;
        sp.pod_id = p->id;
        sp.grace_ms = 5000;
        Airmesh__V1__ApplianceMessage msg = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
        msg.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_STOP_POD;
        msg.stop_pod = &sp;
        if (ops_send(o, p->runner_id, &msg) == 0)
            goto out;
        am_log_warn("ops", "stop not delivered", "pod=%s error=\"%s\"", p->id, am_err_last());
        rc = am_err_set(AM_EUNAVAIL, "the pod's runner went offline; it is reconciled when the "
                                     "runner reconnects");
        goto out;
    }
    if (strcmp(p->state, am_pod_state_name(AM_POD_PENDING)) != 0) {
        ops_act_details(&a, "{\"error\":\"runner offline\"}");
        rc = ops_record(&a, "error");
        if (rc == 0)
            rc = am_err_set(AM_EUNAVAIL, "the pod's runner is offline; it is reconciled when the "
                                         "runner reconnects");
        goto out;
    }
    /* Never reached its runner: stopped here, in the same transaction as the record. */
    am_pod_update u = {.org = who->org_id,
                       .id = p->id,
                       .state = am_pod_state_name(AM_POD_STOPPED),
                       .reason = "stopped before start"};
    rc = ops_act_done(&a, am_pods_update(o->c.store, &u, &a.hook));
    if (rc == 0 && u.changed && o->c.hub)
        am_hub_pod_end(o->c.hub, who->org_id, u.pod_runner, p->id,
                       am_pod_state_name(AM_POD_STOPPED), 0);
    if (rc == 0 && u.changed)
        ops_binding_pod_ended(o, who->org_id, p->id);
out:
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

int am_ops_pod_delete(am_ops *o, const am_principal *who, const char *source, const char *pod_id) {
    Airmesh__V1__Pod *p = NULL;
    int rc = load_pod(o, who->org_id, pod_id, &p);
    if (rc)
        return rc;
    protobuf_c_message_free_unpacked(&p->base, NULL);
    char target[48];
    pod_target(target, sizeof target, pod_id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.delete", target, source);
    if ((rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL)) != 0)
        return rc;
    rc = am_pods_delete(o->c.store, o->c.data_dir, who->org_id, pod_id, &a.hook);
    rc = ops_act_done(&a, rc);
    if (rc == 0)
        ops_binding_pod_ended(o, who->org_id, pod_id); /* a deleted pod binds nothing */
    return rc;
}

int am_ops_pod_share(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                     int shared) {
    Airmesh__V1__Pod *p = NULL;
    int rc = load_pod(o, who->org_id, pod_id, &p);
    if (rc)
        return rc;
    char target[48];
    pod_target(target, sizeof target, p->id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.share", target, source);
    ops_act_details(&a, "{\"shared\":%s}", shared ? "true" : "false");
    if ((rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL)) != 0 ||
        (rc = pod_owner_check(&a, who, p, 0)) != 0)
        goto out;
    am_pod_update u = {.org = who->org_id, .id = p->id, .set_shared = 1, .shared = !!shared};
    rc = am_pods_update(o->c.store, &u, &a.hook);
    if (rc == 0 && !u.changed) /* already so: still an answered, audited request */
        rc = ops_record(&a, "ok");
    else
        rc = ops_act_done(&a, rc);
out:
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

/* ---- the web terminal ---- */

/* The input checks of taking control: the role, then (issue 14) the pod's owner or sharing. */
static int take_check(ops_act *a, am_ops *o, const am_principal *who, const char *pod_id) {
    int rc = ops_check(a, who, AM_CAN_TERMINAL_INPUT, NULL);
    if (rc)
        return rc;
    Airmesh__V1__Pod *p = NULL;
    if ((rc = load_pod(o, who->org_id, pod_id, &p)) != 0)
        return rc;
    rc = pod_owner_check(a, who, p, 1);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

int am_ops_terminal_control(am_ops *o, const am_principal *who, const char *source,
                            const char *pod_id, int take) {
    char target[48];
    pod_target(target, sizeof target, pod_id);
    ops_act a;
    ops_act_user(&a, o, who, take ? "pod.terminal.take" : "pod.terminal.release", target, source);
    if (take) {
        int rc = take_check(&a, o, who, pod_id);
        if (rc)
            return rc;
    }
    return ops_record(&a, "ok");
}

int am_ops_terminal_take_over(am_ops *o, const am_principal *who, const char *source,
                              const char *pod_id, const char *from_user, const char *why) {
    char target[48];
    pod_target(target, sizeof target, pod_id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.terminal.take", target, source);
    int rc = take_check(&a, o, who, pod_id);
    if (rc)
        return rc;
    /* from_user is a user id (a-z 0-9 . _ -) and why one of two words: no escaping needed */
    ops_act_details(&a, "{\"from\":\"user:%s\",\"why\":\"%s\"}", from_user, why);
    return ops_record(&a, "ok");
}

int am_ops_terminal_send(am_ops *o, const am_principal *who, const char *runner_id,
                         Airmesh__V1__ApplianceMessage *m) {
    /* Keystrokes are not audited one by one (taking control is); the role is still checked,
     * and so is the pod's owner or sharing (a share withdrawn while another member types). */
    int rc = am_auth_can(who, AM_CAN_TERMINAL_INPUT, NULL);
    if (rc)
        return rc;
    const char *pod_id = NULL;
    if (m->msg_case == AIRMESH__V1__APPLIANCE_MESSAGE__MSG_INPUT && m->input)
        pod_id = m->input->pod_id;
    else if (m->msg_case == AIRMESH__V1__APPLIANCE_MESSAGE__MSG_RESIZE && m->resize)
        pod_id = m->resize->pod_id;
    if (pod_id) {
        Airmesh__V1__Pod *p = NULL;
        if ((rc = load_pod(o, who->org_id, pod_id, &p)) != 0)
            return rc;
        int mine = pod_is_own(who, p) || p->shared;
        protobuf_c_message_free_unpacked(&p->base, NULL);
        if (!mine && (rc = am_auth_can(who, AM_CAN_POD_OTHERS, NULL)) != 0)
            return rc;
    }
    return ops_send(o, runner_id, m);
}

/* ---- from runners ---- */

int am_ops_pod_status(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__PodStatus *st) {
    am_pod_state s;
    if (am_pod_state_parse(st->state, &s) != 0 || s == AM_POD_PENDING)
        return am_err_set(AM_EINVAL, "pod status: unknown state '%.32s'", st->state);
    char actor[80];
    snprintf(actor, sizeof actor, "runner:%s", peer->runner_id);
    am_pod_update u = {.org = peer->org,
                       .id = st->pod_id,
                       .runner = peer->runner_id,
                       .state = st->state,
                       .reason = st->reason,
                       .limits_note = st->limits_note,
                       .commit = st->commit,
                       .exit_code = st->exit_code};
    return ops_pod_state(o, actor, peer->org, &u);
}

int am_ops_pod_output(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__TerminalOutput *out) {
    if (out->offset == 0) {
        am_pod_update u = {
            .org = peer->org, .id = out->pod_id, .runner = peer->runner_id, .set_first_output = 1};
        am_pods_update(o->c.store, &u, NULL); /* start latency; not a user-visible change */
    }
    if (!o->c.hub)
        return 0;
    int rc = am_hub_pod_output(o->c.hub, peer->org, peer->runner_id, out->pod_id, out->offset,
                               out->data.data, out->data.len);
    if (rc == -AM_ENOTFOUND) {
        /* The first output of a pod the hub does not know yet: only the pod's own runner (in
         * its org) may write to its terminal. */
        Airmesh__V1__Pod *p = NULL;
        if (am_pods_get(o->c.store, peer->org, out->pod_id, &p) != 0 ||
            strcmp(p->runner_id, peer->runner_id) != 0) {
            if (p)
                protobuf_c_message_free_unpacked(&p->base, NULL);
            am_log_warn("ops", "terminal output for a pod of another runner dropped",
                        "runner=%s pod=%.20s", peer->runner_id, out->pod_id);
            return am_err_set(AM_EAUTH, "pod %.20s is not a pod of runner %s", out->pod_id,
                              peer->runner_id);
        }
        protobuf_c_message_free_unpacked(&p->base, NULL);
        if ((rc = am_hub_pod_open(o->c.hub, peer->org, peer->runner_id, out->pod_id)) == 0)
            rc = am_hub_pod_output(o->c.hub, peer->org, peer->runner_id, out->pod_id, out->offset,
                                   out->data.data, out->data.len);
    }
    return rc;
}

int am_ops_pod_recording(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__RecordingChunk *c) {
    return am_pods_on_recording(o->c.store, o->c.data_dir, peer->org, peer->runner_id, c);
}

/* ---- the audit log ---- */

int am_ops_audit_export(am_ops *o, const am_principal *who, const char *source,
                        const char *root_pem, uint64_t since_ms, uint64_t until_ms, int fd,
                        am_audit_export_info *info) {
    ops_act a;
    ops_act_user(&a, o, who, "audit.export", "audit", source);
    int rc = ops_check(&a, who, AM_CAN_AUDIT_EXPORT, NULL);
    if (rc)
        return rc;
    rc = o->c.ca ? am_audit_signer_ensure(o->c.audit, o->c.ca)
                 : am_err_set(AM_ESTATE, "audit export: no CA");
    char why[400];
    snprintf(why, sizeof why, "%s", am_err_last());
    /* Audited before the export is made, so the file records who took it. */
    ops_act_details(&a, "{\"since_ms\":%llu,\"until_ms\":%llu}", (unsigned long long)since_ms,
                    (unsigned long long)until_ms);
    int arc = ops_record(&a, rc ? "error" : "ok");
    if (rc)
        return am_err_set(rc, "%s", why);
    if (arc)
        return arc;
    return am_audit_export(o->c.audit, root_pem, since_ms, until_ms, fd, info);
}
