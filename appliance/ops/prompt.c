/*
 * appliance/ops/prompt.c — a prompt typed into a running pod (POST /api/v1/pods/{id}/prompt,
 * `airmeshctl pod prompt`, the console's prompt box). Why its own rule: a prompt is input, so it
 * follows the web terminal's input control (issue 14) — whoever holds control types, an
 * admin/owner may always; with nobody holding it, the pod's starter may too — but it arrives as
 * one audited act (pod.prompt, its length only: prompts are the user's content, never logged).
 * The bytes are a bracketed paste and Enter (appliance/agents: am_agents_prompt_bytes), so a TUI
 * takes a multi-line prompt as one message and a stray ESC cannot leave the paste.
 * Threads: any (the caller passes the holder it read on the http thread).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/agents/catalog.h"
#include "appliance/ops/internal.h"
#include "common/err.h"

int ops_prompt_may(const am_principal *who, const Airmesh__V1__Pod *p, const char *holder) {
    if (am_auth_can(who, AM_CAN_TERMINAL_INPUT, NULL) != 0)
        return -AM_EPERM;
    const char *by = p->created_by ? p->created_by : "";
    int own = strcmp(strncmp(by, "user:", 5) == 0 ? by + 5 : by, who->user_id) == 0;
    int allowed = holder && *holder ? strcmp(holder, who->user_id) == 0 : own;
    if (allowed || am_auth_can(who, AM_CAN_POD_OTHERS, NULL) == 0)
        return 0;
    if (holder && *holder)
        return am_err_set(AM_EPERM,
                          "input control of pod %s is held by %s: only the holder or an admin may "
                          "send it a prompt",
                          p->id, holder);
    return am_err_set(AM_EPERM,
                      "pod %s was started by another user: only its starter or an admin may "
                      "send it a prompt (or take input control first)",
                      p->id);
}

int am_ops_pod_prompt(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                      const char *holder, const char *text, size_t len, size_t *sent) {
    *sent = 0;
    Airmesh__V1__Pod *p = NULL;
    if (!pod_id || am_pods_get(o->c.store, who->org_id, pod_id, &p) != 0)
        return am_err_set(AM_ENOTFOUND, "no such pod");
    char target[48];
    snprintf(target, sizeof target, "pod:%.32s", p->id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.prompt", target, source);
    ops_act_details(&a, "{\"length\":%zu}", len);
    uint8_t *bytes = NULL;
    size_t n = 0, clean = 0;
    int rc = ops_check(&a, who, AM_CAN_TERMINAL_INPUT, NULL);
    if (rc)
        goto out;
    if (ops_prompt_may(who, p, holder) != 0) {
        ops_act_error_details(&a, am_err_last());
        rc = ops_deny(&a, -AM_EPERM);
        goto out;
    }
    if (strcmp(p->state, am_pod_state_name(AM_POD_RUNNING)) != 0) {
        rc = am_err_set(AM_ESTATE, "pod %s is %s, not running: a prompt needs a running pod", p->id,
                        p->state);
        goto out;
    }
    if ((rc = am_agents_prompt_bytes(text, len, &bytes, &n, &clean)) != 0)
        goto out;
    ops_act_details(&a, "{\"length\":%zu}", clean);
    /* Audit first: a prompt the log cannot record is not sent. */
    if ((rc = ops_record(&a, "ok")) != 0)
        goto out;
    if ((rc = ops_send_input(o, p->runner_id, p->id, bytes, n)) != 0)
        goto out;
    *sent = clean;
out:
    free(bytes);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}
