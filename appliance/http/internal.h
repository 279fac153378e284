/*
 * appliance/http internals shared by server.c and api.c (not a public header).
 */
#ifndef AM_APPLIANCE_HTTP_INTERNAL_H
#define AM_APPLIANCE_HTTP_INTERNAL_H

#include <h2o.h>
#include <jansson.h>

#include "appliance/app.h"
#include "appliance/auth/auth.h"
#include "appliance/ops/ops.h"

typedef struct {
    h2o_handler_t super;
    am_app *app;
} am_http_handler;

/* Accept a connection: TLS, then HTTP/2 (with 413 for oversized bodies) or HTTP/1.1
 * (accept.c). */
void am_http_accept(h2o_accept_ctx_t *ctx, h2o_socket_t *sock);

/* REST router for /api/v1/... */
int am_api_on_req(h2o_handler_t *self, h2o_req_t *req);

/* Send a JSON document (takes ownership of doc) with the given status. */
void am_http_send_json(h2o_req_t *req, int status, json_t *doc);
/* Send {"error": {"code": code, "message": msg}} with the given status. */
void am_http_send_error(h2o_req_t *req, int status, const char *code, const char *msg);
/* The client's address as text ("127.0.0.1"), into buf. */
const char *am_http_peer(h2o_req_t *req, char *buf, size_t cap);

/* Helpers for API handlers (api.c). Each sends the error response itself on failure. */
int am_api_is_method(h2o_req_t *req, const char *m);
/* Parse the body as a JSON object; on failure sends 400 and returns NULL. */
json_t *am_api_parse_body(h2o_req_t *req);
/* Answer {key: [rows]} from every record of db under org: fn turns a record into a JSON row
 * (or NULL to leave it out). Sends 500 itself if the store cannot be read. */
typedef json_t *(*am_api_row_fn)(void *ud, const ProtobufCMessage *m);
void am_api_send_rows(am_http_handler *h, h2o_req_t *req, am_db db, const char *org,
                      const ProtobufCMessageDescriptor *d, const char *key, am_api_row_fn fn,
                      void *ud);
/* The one mapping from an am_ops_* result (-AM_E*) to an HTTP status and JSON error (see
 * api.c); sends it and returns 0, so a handler can `return am_api_send_rc(req, rc);`. */
int am_api_send_rc(h2o_req_t *req, int rc);
/* Authenticate the caller; on failure sends 401/403 and returns -1. */
int am_api_require_auth(am_http_handler *h, h2o_req_t *req, am_principal *who);

/* POST /api/v1/login, throttled and run on the worker pool (api_login.c). */
int am_api_login(am_http_handler *h, h2o_req_t *req, char **param);
/* Clear every login lock on (org, user): an administrator set a new password. */
void am_api_login_forget(const char *org, const char *user);
/* Set name's password (in who's org) on the worker pool and answer the request from there
 * (am_ops_user_set_password decides who may: an admin up to their own role, or the user with
 * `current` below admin). Always returns 0 (the response is sent, now or later). */
int am_api_password_start(am_http_handler *h, h2o_req_t *req, const am_principal *who,
                          const char *name, const char *password, const char *current);
/* Create user `name` (role_name, NULL = member) in who's org, or (org_create) organization `org`
 * with owner `name`, on the worker pool (am_ops_user_create / am_ops_org_create: the role
 * check, the password's hash (password NULL: a random one, returned once), the store, the
 * audit), then answer 201 from there. Always returns 0. */
int am_api_create_start(am_http_handler *h, h2o_req_t *req, const am_principal *who, int org_create,
                        const char *org, const char *display, const char *name,
                        const char *role_name, const char *display_name, const char *password);

/* Display names (api_names.c). The "display_name" member of a user, team, org or pod answer
 * ("" when none: show the id). */
void am_api_add_display_name(json_t *out, am_db db, am_http_handler *h, const char *org,
                             const char *id);
/* PATCH /api/v1/{users,teams,orgs,pods}/:id with {"display_name": string | null}. */
int am_api_user_patch(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_team_patch(am_http_handler *h, h2o_req_t *req, char **param);
/* GET /api/v1/teams/:id (api_users.c): one team of the caller's org. */
int am_api_team_show(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_org_patch(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_patch(am_http_handler *h, h2o_req_t *req, char **param);
/* The "display_name" member of a create body: 0 and *out (NULL when absent) or a 400 sent and
 * -1 (not a string). */
int am_api_display_name_arg(h2o_req_t *req, json_t *body, const char **out);

/* Runner fleet endpoints (api_runners.c); param[] holds the path's ":" segments. */
int am_api_token_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_token_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_token_revoke(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_runner_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_runner_show(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_runner_revoke(am_http_handler *h, h2o_req_t *req, char **param);

/* Orgs, users, teams, API tokens (api_users.c). */
int am_api_org_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_org_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_show(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_disable(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_enable(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_delete(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_role(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_password(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_user_sessions_revoke(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_team_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_team_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_team_add(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_team_remove(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_team_delete(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_apitoken_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_apitoken_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_apitoken_revoke(am_http_handler *h, h2o_req_t *req, char **param);

/* Audit endpoints (api_audit.c). */
int am_api_audit_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_audit_export(am_http_handler *h, h2o_req_t *req, char **param);

/* Pod endpoints (api_pods.c). */
int am_api_pod_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_show(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_stop(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_share(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_delete(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_recording(am_http_handler *h, h2o_req_t *req, char **param);
/* GET/PUT /api/v1/orgs/{id}/pod-limits: the org's pod limit defaults and maxima (api_pods.c). */
int am_api_org_limits_get(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_org_limits_put(am_http_handler *h, h2o_req_t *req, char **param);
/* api_usage.c: the model gateway's usage and the org's token quota */
int am_api_usage(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_model_quota_get(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_model_quota_put(am_http_handler *h, h2o_req_t *req, char **param);
/* {"requests", "tokens_in", "tokens_out", "tokens", "errors", "refused"} of one pod */
json_t *am_api_pod_usage(am_http_handler *h, const char *org, const char *pod_id);

/* Model endpoints (api_models.c): add and test run on app->models. */
int am_api_model_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_model_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_model_show(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_model_delete(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_model_test(am_http_handler *h, h2o_req_t *req, char **param);
/* GET/PUT /api/v1/orgs/{id}/egress-allow: the org's egress allow list (api_egress.c). */
int am_api_org_egress_get(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_org_egress_put(am_http_handler *h, h2o_req_t *req, char **param);
/* api_tickets.c */
int am_api_ticket_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_ticket_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_ticket_show(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_ticket_patch(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_ticket_comment(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_ticket_start(am_http_handler *h, h2o_req_t *req, char **param);

/* WebSockets (ws_terminal.c): the terminal and events upgrades, and their life on the http thread:
 * start (wake-up receiver on loop, hub notify), stop_begin (close 1001 to every viewer), count
 * of open viewers, stop_end (close the rest, unregister). */
int am_api_pod_terminal(am_http_handler *h, h2o_req_t *req, char **param);
/* GET /api/v1/agents and POST /api/v1/pods/{id}/prompt (api_agents.c). */
int am_api_agent_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_prompt(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_events(am_http_handler *h, h2o_req_t *req, char **param);
void am_ws_start(am_app *app, h2o_loop_t *loop);
void am_ws_stop_begin(void);
size_t am_ws_count(void);
/* Close every WebSocket opened by user of org (their sessions ended). Returns how many. */
size_t am_ws_close_user(const char *org, const char *user);
void am_ws_stop_end(void);

/* Channels (api_channels.c). */
int am_api_channel_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_channel_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_channel_show(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_channel_member_add(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_channel_member_remove(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_channel_messages(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_channel_post(am_http_handler *h, h2o_req_t *req, char **param);

/* Bindings and a pod's screen as text (api_bindings.c). */
int am_api_binding_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_binding_create(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_binding_accept(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_binding_reject(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_binding_delete(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_binding_policy_get(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_binding_policy_put(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_pod_snapshot(am_http_handler *h, h2o_req_t *req, char **param);

/* A query parameter of req, percent-decoded ('+' = space when plus_space): 1 present (in out),
 * 0 absent, -1 malformed or longer than cap - 1 (api.c). */
int am_api_query_param(h2o_req_t *req, int plus_space, const char *key, char *out, size_t cap);

#endif
