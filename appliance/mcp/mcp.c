/*
 * appliance/mcp/mcp.c — the MCP server core (see mcp.h): the queue and the workers, JSON-RPC
 * 2.0 framing and errors, initialize / ping / tools/list / tools/call / notifications, the
 * generic argument checks from each tool's schema (required fields, no unknown ones), and the
 * am_mcp_arg_* helpers of tools.h.
 *
 * Why the checks from the schema here: every tool's "additionalProperties": false and
 * "required" hold for all tools alike, so an argument a tool does not take (e.g. a pod id an
 * agent hopes to act as) is refused before any tool code runs, naming what the tool takes.
 * Identity never comes from the message: the pod is McpRequest.pod_id, which the runner fills
 * from the socket the line arrived on, checked against the stream's runner by
 * am_ops_pod_principal on every call.
 * Locking: m->mu guards the queue, the running list and the link. A worker runs a tool without
 * it. Threads: see mcp.h.
 */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/mcp/mcp.h"
#include "appliance/mcp/tools.h"
#include "common/err.h"
#include "common/log.h"
#include "common/mcp.h"
#include "common/version.h"

#define WORKERS_MAX 32

enum {
    RPC_PARSE = -32700,
    RPC_INVALID_REQUEST = -32600,
    RPC_METHOD_NOT_FOUND = -32601,
    RPC_INVALID_PARAMS = -32602,
    RPC_SERVER_BUSY = -32000,
};

typedef struct job {
    struct job *next;
    char runner_id[64], org[129], addr[128];
    char pod_id[129];
    uint64_t conn_id;
    uint8_t *msg;
    size_t len;
    char *req_id;           /* compact JSON of the request's id, once a worker parsed it */
    volatile int cancelled; /* the tool gives up */
    int silenced;           /* notifications/cancelled: no answer */
} job;

struct am_mcp {
    am_mcp_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *qh, *qt;
    size_t qn;
    job *running[WORKERS_MAX];
    pthread_t th[WORKERS_MAX];
    unsigned n_th;
    int stopping;
    am_mcp_send_fn send;
    void *ctx;
    json_t *tools;   /* the tools/list result */
    char *tools_txt; /* ... as text */
};

static const am_mcp_tool *const k_tables[] = {am_mcp_tools_tickets, am_mcp_tools_pods,
                                              am_mcp_tools_bindings, am_mcp_tools_channels};
#define N_TABLES (sizeof k_tables / sizeof k_tables[0])

static const char k_instructions[] =
    "airmesh tools for the pod you run in. You act as this pod, for the user who started it "
    "(never above the member role); every call is audited with the pod as the actor. Tickets of "
    "your organization: search_tickets, get_ticket, create_ticket, update_ticket (status moves "
    "backlog -> todo -> in_progress -> in_review -> done), post_comment. Other pods, bindings "
    "and channels, where this airmesh has them: list_pods, get_pod_status, delegate_task, "
    "wait_for_pod, bind_pod, get_bindings, list_channels, send_channel_message, ... (see "
    "tools/list). A tool that fails says why in its result (isError).";

/* ---- argument helpers (tools.h) ---- */

int am_mcp_arg_str(json_t *args, const char *name, int required, const char **out) {
    *out = NULL;
    json_t *v = json_is_object(args) ? json_object_get(args, name) : NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return am_err_set(AM_EINVAL, "%s: required (a string)", name);
        return 0;
    }
    if (!json_is_string(v))
        return am_err_set(AM_EINVAL, "%s: must be a string", name);
    *out = json_string_value(v);
    return 0;
}

int am_mcp_arg_int(json_t *args, const char *name, int required, json_int_t lo, json_int_t hi,
                   json_int_t *out) {
    json_t *v = json_is_object(args) ? json_object_get(args, name) : NULL;
    if (!v || json_is_null(v)) {
        if (required)
            return am_err_set(AM_EINVAL, "%s: required (an integer)", name);
        return 0;
    }
    if (!json_is_integer(v))
        return am_err_set(AM_EINVAL, "%s: must be an integer", name);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return am_err_set(AM_EINVAL, "%s: must be %" JSON_INTEGER_FORMAT "..%" JSON_INTEGER_FORMAT,
                          name, lo, hi);
    *out = x;
    return 0;
}

int am_mcp_arg_bool(json_t *args, const char *name, int *out) {
    json_t *v = json_is_object(args) ? json_object_get(args, name) : NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return am_err_set(AM_EINVAL, "%s: must be true or false", name);
    *out = json_is_true(v);
    return 0;
}

/* ---- the tool tables ---- */

static const am_mcp_tool *find_tool(const char *name) {
    for (size_t t = 0; t < N_TABLES; t++)
        for (const am_mcp_tool *x = k_tables[t]; x && x->name; x++)
            if (strcmp(x->name, name) == 0)
                return x;
    return NULL;
}

static int build_tools(am_mcp *m) {
    json_t *list = json_array();
    for (size_t t = 0; t < N_TABLES; t++)
        for (const am_mcp_tool *x = k_tables[t]; x && x->name; x++) {
            json_error_t e;
            json_t *schema = json_loads(x->input_schema ? x->input_schema : "", 0, &e);
            if (!json_is_object(schema) || !json_is_string(json_object_get(schema, "type")) ||
                strcmp(json_string_value(json_object_get(schema, "type")), "object") != 0) {
                json_decref(schema);
                json_decref(list);
                return am_err_set(AM_EINVAL,
                                  "mcp: tool %s: inputSchema is not a JSON Schema "
                                  "object: %s",
                                  x->name, e.text);
            }
            for (size_t t2 = 0; t2 < N_TABLES; t2++)
                for (const am_mcp_tool *y = k_tables[t2]; y && y->name; y++)
                    if (y != x && strcmp(y->name, x->name) == 0) {
                        json_decref(schema);
                        json_decref(list);
                        return am_err_set(AM_EINVAL, "mcp: tool %s is defined twice", x->name);
                    }
            json_array_append_new(
                list, json_pack("{s:s,s:s,s:s,s:o,s:{s:s,s:b}}", "name", x->name, "title",
                                x->title ? x->title : x->name, "description",
                                x->description ? x->description : "", "inputSchema", schema,
                                "annotations", "title", x->title ? x->title : x->name,
                                "readOnlyHint", x->read_only));
        }
    m->tools = json_pack("{s:o}", "tools", list);
    m->tools_txt = m->tools ? json_dumps(m->tools, JSON_COMPACT) : NULL;
    return m->tools_txt ? 0 : am_err_set(AM_ENOMEM, "mcp: out of memory");
}

char *am_mcp_tools_json(am_mcp *m) {
    return m->tools_txt ? strdup(m->tools_txt) : NULL;
}

/* The schema's rules every tool shares: required fields present, no field it does not list
 * (additionalProperties false). 0 or -AM_EINVAL naming the field. */
static int check_args(const am_mcp_tool *t, json_t *tools, json_t *args) {
    json_t *schema = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(tools, "tools"), i, v) {
        if (strcmp(json_string_value(json_object_get(v, "name")), t->name) == 0)
            schema = json_object_get(v, "inputSchema");
    }
    if (!schema)
        return 0;
    json_t *props = json_object_get(schema, "properties");
    if (json_is_false(json_object_get(schema, "additionalProperties"))) {
        const char *k;
        json_t *x;
        json_object_foreach(args, k, x) {
            if (!json_object_get(props, k)) {
                char names[400] = "";
                const char *pk;
                json_t *px;
                json_object_foreach(props, pk, px) {
                    size_t n = strlen(names);
                    snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", pk);
                }
                return am_err_set(AM_EINVAL, "unknown argument '%.64s' (%s takes: %s)", k, t->name,
                                  names[0] ? names : "none");
            }
        }
    }
    json_array_foreach(json_object_get(schema, "required"), i, v) {
        const char *k = json_string_value(v);
        if (k && !json_object_get(args, k))
            return am_err_set(AM_EINVAL, "%s: required", k);
    }
    return 0;
}

/* ---- answers ---- */

static void send_text(am_mcp *m, const job *j, const char *text, int close) {
    Airmesh__V1__McpResponse r = AIRMESH__V1__MCP_RESPONSE__INIT;
    r.pod_id = (char *)j->pod_id;
    r.conn_id = j->conn_id;
    r.message.data = (uint8_t *)text;
    r.message.len = text ? strlen(text) : 0;
    r.close = close;
    Airmesh__V1__ApplianceMessage out = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
    out.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_MCP_RESPONSE;
    out.mcp_response = &r;
    pthread_mutex_lock(&m->mu);
    am_mcp_send_fn send = m->send;
    void *ctx = m->ctx;
    pthread_mutex_unlock(&m->mu);
    if (!send || send(ctx, j->runner_id, &out) != 0)
        am_log_warn("mcp", "answer not sent (runner gone or its queue full)",
                    "runner=%s pod=%s conn=%llu", j->runner_id, j->pod_id,
                    (unsigned long long)j->conn_id);
}

/* Send doc (taken) as one message. An answer longer than a line may be becomes an error
 * saying so (the caller still gets an answer to its id). */
static void send_json(am_mcp *m, const job *j, json_t *doc) {
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (s && strlen(s) > AM_MCP_LINE_MAX) {
        free(s);
        am_log_warn("mcp", "answer longer than the line limit", "pod=%s", j->pod_id);
        json_t *e = json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id",
                              json_object_get(doc, "id") ? json_object_get(doc, "id") : json_null(),
                              "error", "code", -32603, "message",
                              "the answer is larger than 1 MiB: ask for less (e.g. a limit)");
        s = e ? json_dumps(e, JSON_COMPACT) : NULL;
        json_decref(e);
    }
    json_decref(doc);
    if (s)
        send_text(m, j, s, 0);
    free(s);
}

static json_t *rpc_error(json_t *id, int code, const char *msg) {
    return json_pack("{s:s,s:O,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                     "error", "code", code, "message", msg);
}

static json_t *rpc_result(json_t *id, json_t *result) {
    return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

/* ---- methods ---- */

static int supported_version(const char *v) {
    return v && (strcmp(v, AM_MCP_PROTOCOL_VERSION) == 0 || strcmp(v, "2025-03-26") == 0 ||
                 strcmp(v, "2024-11-05") == 0);
}

static json_t *do_initialize(json_t *id, json_t *params) {
    const char *v = json_string_value(json_object_get(params, "protocolVersion"));
    if (!json_is_object(params) || !v)
        return rpc_error(id, RPC_INVALID_PARAMS,
                         "initialize: params.protocolVersion (a string) is required");
    return rpc_result(id, json_pack("{s:s,s:{s:{s:b}},s:{s:s,s:s,s:s},s:s}", "protocolVersion",
                                    supported_version(v) ? v : AM_MCP_PROTOCOL_VERSION,
                                    "capabilities", "tools", "listChanged", 0, "serverInfo", "name",
                                    AM_MCP_SERVER_NAME, "title", "airmesh", "version", AM_VERSION,
                                    "instructions", k_instructions));
}

static json_t *tool_result(json_t *id, const char *text, json_t *structured, int is_error) {
    json_t *r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text",
                          text ? text : "", "isError", is_error);
    if (!r) /* text was not UTF-8 */
        r = json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text",
                      is_error ? "the tool failed (its message was not UTF-8)" : "{}", "isError",
                      is_error);
    if (structured)
        json_object_set_new(r, "structuredContent", structured);
    return rpc_result(id, r);
}

static json_t *do_call(am_mcp *m, job *j, json_t *id, json_t *params) {
    const char *name = json_string_value(json_object_get(params, "name"));
    json_t *args = json_object_get(params, "arguments");
    if (!json_is_object(params) || !name)
        return rpc_error(id, RPC_INVALID_PARAMS, "tools/call: params.name (a string) is required");
    if (args && !json_is_null(args) && !json_is_object(args))
        return rpc_error(id, RPC_INVALID_PARAMS, "tools/call: params.arguments must be an object");
    am_ops_peer peer = {j->runner_id, j->org, j->addr};
    am_principal who;
    Airmesh__V1__Pod *pod = NULL;
    /* Who calls: the pod whose socket the line came in on, as its runner relayed it. */
    if (am_ops_pod_principal(m->o.ops, &peer, j->pod_id, &who, &pod) != 0)
        return tool_result(id, am_err_last(), NULL, 1); /* audited (denied) by ops */
    char source[96];
    snprintf(source, sizeof source, "runner:%s", j->runner_id);
    const am_mcp_tool *t = find_tool(name);
    json_t *ans = NULL;
    if (!t) {
        char msg[160];
        snprintf(msg, sizeof msg, "Unknown tool: %.64s", name);
        am_ops_mcp_audit(m->o.ops, &who, source, "(unknown)", NULL, "error", msg);
        ans = rpc_error(id, RPC_INVALID_PARAMS, msg);
        goto out;
    }
    json_t *a = args && json_is_object(args) ? json_incref(args) : json_object();
    am_mcp_call c = {
        .ops = m->o.ops, .who = who, .pod = pod, .source = source, .cancelled = &j->cancelled};
    json_t *res = NULL;
    int rc = check_args(t, m->tools, a);
    if (rc == 0)
        rc = t->fn(&c, a, &res);
    json_decref(a);
    if (rc == 0 && !res)
        res = json_object();
    if (rc == 0) {
        char *txt = json_dumps(res, JSON_COMPACT);
        am_ops_mcp_audit(m->o.ops, &who, source, t->name, NULL, "ok", NULL);
        ans = tool_result(id, txt, res, 0);
        free(txt);
    } else {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", am_err_last());
        json_decref(res);
        am_ops_mcp_audit(m->o.ops, &who, source, t->name, NULL,
                         rc == -AM_EPERM || rc == -AM_EAUTH ? "denied" : "error", msg);
        ans = tool_result(id, msg, NULL, 1);
    }
out:
    protobuf_c_message_free_unpacked(&pod->base, NULL);
    return ans;
}

/* One message: the answer to send, or NULL (a notification, a response, a cancelled call). */
static json_t *handle(am_mcp *m, job *j) {
    json_error_t e;
    json_t *msg = json_loadb((const char *)j->msg, j->len, JSON_REJECT_DUPLICATES, &e);
    json_t *ans = NULL;
    if (!msg) {
        char why[256];
        snprintf(why, sizeof why, "Parse error: %s (at byte %d)", e.text, e.position);
        return rpc_error(NULL, RPC_PARSE, why);
    }
    if (json_is_array(msg)) {
        ans = rpc_error(NULL, RPC_INVALID_REQUEST,
                        "Invalid Request: batches are not supported (MCP 2025-06-18)");
        goto out;
    }
    if (!json_is_object(msg)) {
        ans = rpc_error(NULL, RPC_INVALID_REQUEST, "Invalid Request: not a JSON-RPC object");
        goto out;
    }
    json_t *id = json_object_get(msg, "id");
    json_t *method = json_object_get(msg, "method");
    int id_ok = id && (json_is_string(id) || json_is_integer(id));
    if (!method && (json_object_get(msg, "result") || json_object_get(msg, "error")))
        goto out; /* a response to a request of ours: we send none */
    if (!json_is_string(json_object_get(msg, "jsonrpc")) ||
        strcmp(json_string_value(json_object_get(msg, "jsonrpc")), "2.0") != 0 ||
        !json_is_string(method) || (id && !id_ok)) {
        ans = rpc_error(id_ok ? id : NULL, RPC_INVALID_REQUEST,
                        "Invalid Request: a JSON-RPC 2.0 request needs \"jsonrpc\": \"2.0\", a "
                        "string \"method\" and a string or integer \"id\" (none for a "
                        "notification)");
        goto out;
    }
    const char *name = json_string_value(method);
    json_t *params = json_object_get(msg, "params");
    if (!id) /* notifications: never answered (notifications/cancelled is handled at submit) */
        goto out;
    pthread_mutex_lock(&m->mu);
    j->req_id = json_dumps(id, JSON_COMPACT | JSON_ENCODE_ANY);
    pthread_mutex_unlock(&m->mu);
    if (params && !json_is_object(params)) {
        ans = rpc_error(id, RPC_INVALID_PARAMS, "params must be an object");
    } else if (strcmp(name, "initialize") == 0) {
        ans = do_initialize(id, params);
    } else if (strcmp(name, "ping") == 0) {
        ans = rpc_result(id, json_object());
    } else if (strcmp(name, "tools/list") == 0) {
        ans = rpc_result(id, json_deep_copy(m->tools));
    } else if (strcmp(name, "tools/call") == 0) {
        ans = do_call(m, j, id, params);
    } else {
        char why[160];
        snprintf(why, sizeof why, "Method not found: %.100s", name);
        ans = rpc_error(id, RPC_METHOD_NOT_FOUND, why);
    }
out:
    json_decref(msg);
    return ans;
}

/* ---- the queue ---- */

static void job_free(job *j) {
    if (!j)
        return;
    free(j->msg);
    free(j->req_id);
    free(j);
}

static int same_pod(const job *a, const job *b) {
    return strcmp(a->runner_id, b->runner_id) == 0 && strcmp(a->pod_id, b->pod_id) == 0;
}

/* The first queued job whose pod has fewer than per_pod running (caller holds mu). */
static job *take_locked(am_mcp *m) {
    for (job **pp = &m->qh, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        job *j = *pp;
        unsigned busy = 0;
        for (unsigned k = 0; k < m->o.workers; k++)
            busy += m->running[k] && same_pod(m->running[k], j);
        if (busy >= m->o.per_pod)
            continue;
        *pp = j->next;
        if (m->qt == j)
            m->qt = prev;
        m->qn--;
        j->next = NULL;
        return j;
    }
    return NULL;
}

typedef struct {
    am_mcp *m;
    unsigned slot;
} worker_arg;

static void *worker(void *arg) {
    worker_arg *w = arg;
    am_mcp *m = w->m;
    unsigned slot = w->slot;
    free(w);
    pthread_mutex_lock(&m->mu);
    for (;;) {
        job *j = NULL;
        while (!m->stopping && !(j = take_locked(m)))
            pthread_cond_wait(&m->cv, &m->mu);
        if (m->stopping) {
            job_free(j);
            break;
        }
        m->running[slot] = j;
        pthread_mutex_unlock(&m->mu);
        json_t *ans = handle(m, j);
        pthread_mutex_lock(&m->mu);
        int quiet = j->silenced || j->cancelled;
        pthread_mutex_unlock(&m->mu);
        if (ans && !quiet)
            send_json(m, j, ans);
        else
            json_decref(ans);
        pthread_mutex_lock(&m->mu);
        m->running[slot] = NULL;
        job_free(j);
        pthread_cond_broadcast(&m->cv); /* a pod's slot freed: its next job may run */
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

int am_mcp_start(const am_mcp_opts *o, am_mcp **out) {
    *out = NULL;
    am_mcp *m = calloc(1, sizeof *m);
    if (!m)
        return am_err_set(AM_ENOMEM, "mcp: out of memory");
    m->o = *o;
    if (!m->o.workers)
        m->o.workers = 4;
    if (m->o.workers > WORKERS_MAX)
        m->o.workers = WORKERS_MAX;
    if (!m->o.queue_max)
        m->o.queue_max = 256;
    if (!m->o.per_pod)
        m->o.per_pod = 2;
    if (m->o.per_pod >= m->o.workers && m->o.workers > 1)
        m->o.per_pod = m->o.workers - 1; /* one pod never takes every worker */
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    int rc = build_tools(m);
    if (rc) {
        am_mcp_free(m);
        return rc;
    }
    for (unsigned i = 0; i < m->o.workers; i++) {
        worker_arg *w = malloc(sizeof *w);
        if (w) {
            w->m = m;
            w->slot = i;
        }
        if (!w || pthread_create(&m->th[i], NULL, worker, w) != 0) {
            free(w);
            am_mcp_free(m); /* stops the ones started */
            return am_err_set(AM_EIO, "mcp: cannot start worker thread %u", i);
        }
        m->n_th++;
    }
    *out = m;
    return 0;
}

void am_mcp_set_link(am_mcp *m, am_mcp_send_fn send, void *ctx) {
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->send = send;
    m->ctx = ctx;
    pthread_mutex_unlock(&m->mu);
}

/* notifications/cancelled {requestId}: the running call of that connection with that id gives
 * up and is not answered (caller holds mu). */
static void cancel_request_locked(am_mcp *m, const job *key, const char *req_id) {
    for (unsigned k = 0; k < m->o.workers; k++) {
        job *r = m->running[k];
        if (r && same_pod(r, key) && r->conn_id == key->conn_id && r->req_id &&
            strcmp(r->req_id, req_id) == 0) {
            r->cancelled = 1;
            r->silenced = 1;
        }
    }
}

/* A cancellation is handled here, on the submitting thread, so it reaches a call even while
 * the pod's workers are all busy. 1 when msg was one. */
static int maybe_cancel(am_mcp *m, const job *key, const uint8_t *msg, size_t len) {
    if (len > 4096 || !memmem(msg, len, "notifications/cancelled", 23))
        return 0;
    json_t *doc = json_loadb((const char *)msg, len, 0, NULL);
    const char *method = json_string_value(json_object_get(doc, "method"));
    int is =
        method && strcmp(method, "notifications/cancelled") == 0 && !json_object_get(doc, "id");
    json_t *rid = json_object_get(json_object_get(doc, "params"), "requestId");
    char *req = is && rid ? json_dumps(rid, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    if (req) {
        pthread_mutex_lock(&m->mu);
        cancel_request_locked(m, key, req);
        pthread_mutex_unlock(&m->mu);
    }
    free(req);
    json_decref(doc);
    return is;
}

/* The queue is full: answer a request at once (a notification gets nothing). */
static void refuse_busy(am_mcp *m, const job *j) {
    json_t *doc = json_loadb((const char *)j->msg, j->len, 0, NULL);
    json_t *id = json_object_get(doc, "id");
    if (json_is_object(doc) && id && (json_is_string(id) || json_is_integer(id)))
        send_json(m, j,
                  rpc_error(id, RPC_SERVER_BUSY,
                            "airmeshd is busy (its MCP queue is full): try again shortly"));
    json_decref(doc);
}

/* Takes m->mu: frees every queued job that matches and marks every running one cancelled (its
 * worker sees the flag; that job is freed where it runs). */
static void drop_and_cancel(am_mcp *m, int (*match)(const job *q, const void *arg),
                            const void *arg) {
    pthread_mutex_lock(&m->mu);
    for (job **pp = &m->qh, *prev = NULL; *pp;) {
        job *q = *pp;
        if (match(q, arg)) {
            *pp = q->next;
            if (m->qt == q)
                m->qt = prev;
            m->qn--;
            job_free(q);
            continue;
        }
        prev = q;
        pp = &q->next;
    }
    for (unsigned k = 0; k < m->o.workers; k++)
        if (m->running[k] && match(m->running[k], arg))
            m->running[k]->cancelled = 1;
    pthread_mutex_unlock(&m->mu);
}

/* A job of the same pod connection as arg (a job); of the runner arg (a runner id). */
static int same_conn(const job *q, const void *arg) {
    const job *j = arg;
    return same_pod(q, j) && q->conn_id == j->conn_id;
}

static int of_runner(const job *q, const void *arg) {
    return strcmp(q->runner_id, (const char *)arg) == 0;
}

void am_mcp_submit(am_mcp *m, const am_ops_peer *peer, const Airmesh__V1__McpRequest *r) {
    if (!m || !r || !r->pod_id || !*r->pod_id)
        return;
    job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    snprintf(j->runner_id, sizeof j->runner_id, "%s", peer->runner_id ? peer->runner_id : "");
    snprintf(j->org, sizeof j->org, "%s", peer->org ? peer->org : "");
    snprintf(j->addr, sizeof j->addr, "%s", peer->source ? peer->source : "");
    snprintf(j->pod_id, sizeof j->pod_id, "%s", r->pod_id);
    j->conn_id = r->conn_id;
    if (r->closed) {
        /* The connection ended: drop what it still has queued, cancel what runs. */
        drop_and_cancel(m, same_conn, j);
        job_free(j);
        return;
    }
    if (r->message.len == 0 || r->message.len > AM_MCP_LINE_MAX ||
        maybe_cancel(m, j, r->message.data, r->message.len)) {
        job_free(j);
        return;
    }
    j->msg = malloc(r->message.len);
    if (!j->msg) {
        job_free(j);
        return;
    }
    memcpy(j->msg, r->message.data, r->message.len);
    j->len = r->message.len;
    pthread_mutex_lock(&m->mu);
    int full = m->stopping || m->qn >= m->o.queue_max;
    if (!full) {
        if (m->qt)
            m->qt->next = j;
        else
            m->qh = j;
        m->qt = j;
        m->qn++;
        pthread_cond_broadcast(&m->cv);
    }
    pthread_mutex_unlock(&m->mu);
    if (full) {
        refuse_busy(m, j);
        job_free(j);
    }
}

void am_mcp_runner_gone(am_mcp *m, const char *runner_id) {
    if (!m || !runner_id)
        return;
    drop_and_cancel(m, of_runner, runner_id);
}

void am_mcp_stop(am_mcp *m) {
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stopping = 1;
    for (unsigned k = 0; k < m->o.workers; k++)
        if (m->running[k])
            m->running[k]->cancelled = 1;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    for (unsigned i = 0; i < m->n_th; i++)
        pthread_join(m->th[i], NULL);
    m->n_th = 0;
    while (m->qh) {
        job *n = m->qh->next;
        job_free(m->qh);
        m->qh = n;
    }
    m->qt = NULL;
    m->qn = 0;
}

void am_mcp_free(am_mcp *m) {
    if (!m)
        return;
    am_mcp_stop(m);
    json_decref(m->tools);
    free(m->tools_txt);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
}
