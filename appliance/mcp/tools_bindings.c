/*
 * appliance/mcp/tools_bindings.c — the binding tools (tools.h): bind_pod, accept_binding,
 * reject_binding, unbind_pod, get_bindings. Thin wrappers over am_ops_binding_* (ops decides:
 * a pod requests bindings only from itself, decides only those to itself, ends only its own;
 * the org's policy; and audits binding.request / accept / reject / unbind with the pod as
 * actor). A binding is shown as am_ops_binding_json renders it (the REST API's fields).
 * Threads: any worker (mcp.c). Memory: arguments borrowed from args; records freed here.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/mcp/tools.h"
#include "common/err.h"
#include "common/util.h"

static int answer(int rc, Airmesh__V1__Binding *b, json_t **result) {
    if (rc == 0 && b)
        *result = json_pack("{s:o}", "binding", am_ops_binding_json(b));
    else if (rc == 0)
        rc = am_err_set(AM_EIO, "binding: changed but not readable");
    if (b)
        protobuf_c_message_free_unpacked(&b->base, NULL);
    return rc;
}

static int t_bind(am_mcp_call *c, json_t *args, json_t **result) {
    const char *to;
    json_int_t ttl = 0;
    int rc;
    if ((rc = am_mcp_arg_str(args, "pod_id", 1, &to)) ||
        (rc = am_mcp_arg_int(args, "ttl_s", 0, 0, 30ll * 24 * 3600, &ttl)))
        return rc;
    const char *sc[2] = {"read", "write"};
    size_t n = 2;
    json_t *scopes = json_object_get(args, "scopes");
    if (scopes && !json_is_null(scopes)) {
        if (!json_is_array(scopes) || json_array_size(scopes) > 2)
            return am_err_set(AM_EINVAL, "scopes: an array of \"read\" and/or \"write\"");
        n = json_array_size(scopes);
        for (size_t i = 0; i < n; i++) {
            if (!json_is_string(json_array_get(scopes, i)))
                return am_err_set(AM_EINVAL, "scopes: an array of \"read\" and/or \"write\"");
            sc[i] = json_string_value(json_array_get(scopes, i));
        }
    }
    Airmesh__V1__Binding *b = NULL;
    rc = am_ops_binding_request(c->ops, &c->who, c->source, c->who.pod_id, to, sc, n,
                                (uint64_t)ttl * 1000, &b);
    return answer(rc, b, result);
}

static int t_decide(am_mcp_call *c, json_t *args, json_t **result, int accept) {
    const char *id, *reason = NULL;
    int rc = am_mcp_arg_str(args, "binding_id", 1, &id);
    if (rc || (!accept && (rc = am_mcp_arg_str(args, "reason", 0, &reason))))
        return rc;
    Airmesh__V1__Binding *b = NULL;
    rc = am_ops_binding_decide(c->ops, &c->who, c->source, id, accept, reason, &b);
    return answer(rc, b, result);
}

static int t_accept(am_mcp_call *c, json_t *args, json_t **result) {
    return t_decide(c, args, result, 1);
}

static int t_reject(am_mcp_call *c, json_t *args, json_t **result) {
    return t_decide(c, args, result, 0);
}

typedef struct {
    const char *from, *to;
    char id[80];
} live_ctx;

static int live_cb(void *ud, const Airmesh__V1__Binding *b) {
    live_ctx *l = ud;
    const char *st = am_ops_binding_state(b, am_now_ms());
    if ((!strcmp(st, "active") || !strcmp(st, "pending")) && !strcmp(b->from_pod, l->from) &&
        !strcmp(b->to_pod, l->to))
        snprintf(l->id, sizeof l->id, "%s", b->id);
    return 0;
}

static int t_unbind(am_mcp_call *c, json_t *args, json_t **result) {
    const char *id, *pod;
    int rc;
    if ((rc = am_mcp_arg_str(args, "binding_id", 0, &id)) ||
        (rc = am_mcp_arg_str(args, "pod_id", 0, &pod)))
        return rc;
    live_ctx l = {c->who.pod_id, pod, ""};
    if (!id) {
        if (!pod)
            return am_err_set(AM_EINVAL, "binding_id or pod_id: one is required");
        if ((rc = am_ops_binding_list(c->ops, &c->who, pod, live_cb, &l)) != 0)
            return rc;
        if (!l.id[0])
            return am_err_set(AM_ENOTFOUND, "pod %s has no live binding to %.64s", c->who.pod_id,
                              pod);
        id = l.id;
    }
    if ((rc = am_ops_binding_end(c->ops, &c->who, c->source, id)) != 0)
        return rc;
    Airmesh__V1__Binding *b = NULL;
    am_ops_get(c->ops, AM_DB_BINDINGS, c->who.org_id, id, &airmesh__v1__binding__descriptor,
               (ProtobufCMessage **)&b);
    return answer(0, b, result);
}

static int list_cb(void *ud, const Airmesh__V1__Binding *b) {
    json_array_append_new(ud, am_ops_binding_json(b));
    return 0;
}

static int t_get(am_mcp_call *c, json_t *args, json_t **result) {
    const char *pod;
    int rc = am_mcp_arg_str(args, "pod_id", 0, &pod);
    if (rc)
        return rc;
    json_t *rows = json_array();
    if ((rc = am_ops_binding_list(c->ops, &c->who, pod, list_cb, rows)) != 0) {
        json_decref(rows);
        return rc;
    }
    *result = json_pack("{s:s,s:s,s:o}", "self", c->who.pod_id, "policy",
                        am_ops_binding_policy(c->ops, c->who.org_id), "bindings", rows);
    return 0;
}

#define S_BID "\"binding_id\":{\"type\":\"string\",\"description\":\"e.g. b-0123456789ab\"}"

const am_mcp_tool am_mcp_tools_bindings[] = {
    {"bind_pod", "Ask for a binding to a pod",
     "Ask that this pod may read (get_pod_snapshot) and/or write (send_pod_input, @mentions in "
     "channels) another pod of the organization. Active at once when both pods were started by "
     "the same user and the org's policy is same_creator; otherwise pending until the target pod "
     "(accept_binding) or its user accepts. A new request for the same pod replaces the live "
     "one and keeps its scopes.",
     "{\"type\":\"object\",\"properties\":{\"pod_id\":{\"type\":\"string\",\"description\":"
     "\"the pod to bind to\"},\"scopes\":{\"type\":\"array\",\"items\":{\"type\":\"string\","
     "\"enum\":[\"read\",\"write\"]},\"minItems\":1,\"maxItems\":2,\"uniqueItems\":true,"
     "\"default\":[\"read\",\"write\"]},\"ttl_s\":{\"type\":\"integer\",\"minimum\":0,"
     "\"maximum\":2592000,\"description\":\"expire after this many seconds (0 = never)\"}},"
     "\"required\":[\"pod_id\"],\"additionalProperties\":false}",
     t_bind, 0},
    {"accept_binding", "Accept a binding",
     "Accept a pending binding another pod asked for to this pod (only the target pod may).",
     "{\"type\":\"object\",\"properties\":{" S_BID "},\"required\":[\"binding_id\"],"
     "\"additionalProperties\":false}",
     t_accept, 0},
    {"reject_binding", "Reject a binding",
     "Reject a pending binding another pod asked for to this pod, with an optional reason.",
     "{\"type\":\"object\",\"properties\":{" S_BID ",\"reason\":{\"type\":\"string\","
     "\"maxLength\":256}},\"required\":[\"binding_id\"],\"additionalProperties\":false}",
     t_reject, 0},
    {"unbind_pod", "End a binding",
     "End a binding from or to this pod: by binding_id, or pod_id for this pod's live binding "
     "to that pod.",
     "{\"type\":\"object\",\"properties\":{" S_BID ",\"pod_id\":{\"type\":\"string\"}},"
     "\"additionalProperties\":false}",
     t_unbind, 0},
    {"get_bindings", "List this pod's bindings",
     "The bindings from and to this pod (optionally only those with pod_id), with their state "
     "(pending, active, rejected, ended, expired) and scopes, and the org's policy.",
     "{\"type\":\"object\",\"properties\":{\"pod_id\":{\"type\":\"string\"}},"
     "\"additionalProperties\":false}",
     t_get, 1},
    {0},
};
