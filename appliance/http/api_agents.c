/*
 * appliance/http/api_agents.c — the agent catalog and prompts over REST:
 *   GET  /api/v1/agents             the presets (appliance/agents), each with the online runners
 *                                   of the caller's org that reported its CLI, and the version
 *   POST /api/v1/pods/{id}/prompt   {"text": "..."}: typed into the running pod (bracketed paste
 *                                   + Enter) through appliance/ops (am_ops_pod_prompt), which
 *                                   decides who may; here only the web terminal's current input
 *                                   holder is read (ws_terminal.c's rooms live on this thread).
 * Any role may read the catalog. Threads: the http thread.
 */
#include <stdio.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/agents/catalog.h"
#include "appliance/http/internal.h"
#include "appliance/http/ws.h"
#include "common/err.h"

#define MAX_RUNNERS 256

typedef struct {
    am_app *app;
    json_t *by_name; /* name -> [runner rows] */
} agents_ctx;

static int runner_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    agents_ctx *c = ud;
    const Airmesh__V1__Runner *r = (const Airmesh__V1__Runner *)m;
    am_hub_runner_info info;
    if (r->revoked || !am_hub_runner_get(am_ops_hub(c->app->ops), r->id, &info) || !info.introduced)
        return 0; /* online only: what a new pod can be placed on */
    for (size_t i = 0; i < r->n_agents; i++) {
        json_t *list = json_object_get(c->by_name, r->agents[i]->name);
        if (list && json_array_size(list) < MAX_RUNNERS)
            json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "id", r->id, "hostname",
                                                  r->hostname, "version", r->agents[i]->version,
                                                  "path", r->agents[i]->path));
    }
    return 0;
}

static json_t *words(const char *const *w) {
    json_t *a = json_array();
    for (size_t i = 0; w && w[i]; i++)
        json_array_append_new(a, json_string(w[i]));
    return a;
}

int am_api_agent_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    const am_agent_preset *p;
    size_t n = am_agents_list(&p);
    agents_ctx c = {h->app, json_object()};
    for (size_t i = 0; i < n; i++)
        json_object_set_new(c.by_name, p[i].name, json_array());
    if (am_ops_list(h->app->ops, AM_DB_RUNNERS, who.org_id, &airmesh__v1__runner__descriptor,
                    runner_cb, &c) != 0) {
        json_decref(c.by_name);
        return am_api_send_rc(req, -AM_EIO);
    }
    json_t *rows = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *env = json_object(), *files = json_array();
        for (const am_agent_kv *kv = p[i].env; kv->key; kv++)
            json_object_set_new(env, kv->key, json_string(kv->value));
        for (const am_agent_file *f = p[i].files; f->path; f++)
            json_array_append_new(files, json_string(f->path));
        json_t *runners = json_object_get(c.by_name, p[i].name);
        json_array_append_new(
            rows, json_pack("{s:s,s:s,s:o,s:o,s:s,s:s*,s:o,s:o,s:O,s:s}", "name", p[i].name,
                            "title", p[i].title, "command", words(p[i].argv), "command_bare",
                            words(p[i].argv_bare ? p[i].argv_bare : p[i].argv), "prompt",
                            p[i].prompt == AM_AGENT_PROMPT_ARG ? "argument" : "typed",
                            "prompt_flag", p[i].prompt_flag, "env", env, "home_files", files,
                            "runners", runners, "notes", p[i].notes));
    }
    json_decref(c.by_name);
    am_http_send_json(req, 200, json_pack("{s:o}", "agents", rows));
    return 0;
}

int am_api_pod_prompt(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    json_t *t = json_object_get(body, "text");
    if (!json_is_string(t)) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request", "expected {\"text\": string}");
        return 0;
    }
    /* Who holds the pod's input control right now (NULL: nobody, or nobody is watching). */
    room *r = am_ws_room_find(param[0]);
    const char *holder = r && r->holder && strcmp(r->org, who.org_id) == 0 ? r->holder->user : NULL;
    char peer[64];
    size_t sent = 0;
    int rc = am_ops_pod_prompt(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0],
                               holder, json_string_value(t), json_string_length(t), &sent);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(
        req, 200, json_pack("{s:b,s:s,s:I}", "ok", 1, "pod", param[0], "length", (json_int_t)sent));
    return 0;
}
