/*
 * appliance/http/api_names.c — display names over REST (issue 14): PATCH /api/v1/users/:id,
 * /teams/:id, /orgs/:id and /pods/:id with {"display_name": "Zoë"} (null clears it: the id is
 * shown again), and the "display_name" member of create bodies and of answers. This file only
 * parses and renders: the check of the text (common/display_name.h), the role check, the store
 * and the audit record are am_ops_display_name_set's. Another org's thing answers 404.
 * Threads: the http thread.
 */
#include <stdio.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "common/err.h"

#define MAX_DISPLAY_BYTES 1000 /* far above 64 characters of 4 bytes: refused before any work */

int am_api_display_name_arg(h2o_req_t *req, json_t *body, const char **out) {
    *out = NULL;
    json_t *v = json_object_get(body, "display_name");
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        am_http_send_error(req, 400, "bad_request",
                           "display_name: a string of 1-64 characters (or null for none)");
        return -1;
    }
    if (json_string_length(v) > MAX_DISPLAY_BYTES) {
        am_http_send_error(req, 400, "bad_request",
                           "display_name: at most 64 characters (this one is over 1000 bytes)");
        return -1;
    }
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        am_http_send_error(req, 400, "bad_request",
                           "display_name: control character U+0000 is not allowed");
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

void am_api_add_display_name(json_t *out, am_db db, am_http_handler *h, const char *org,
                             const char *id) {
    const ProtobufCMessageDescriptor *d = db == AM_DB_USERS   ? &airmesh__v1__user__descriptor
                                          : db == AM_DB_TEAMS ? &airmesh__v1__team__descriptor
                                          : db == AM_DB_PODS  ? &airmesh__v1__pod__descriptor
                                                              : &airmesh__v1__org__descriptor;
    ProtobufCMessage *m = NULL;
    const char *dn = "";
    if (out && am_ops_get(h->app->ops, db, org, id, d, &m) == 0) {
        dn = db == AM_DB_USERS   ? ((Airmesh__V1__User *)m)->display_name
             : db == AM_DB_TEAMS ? ((Airmesh__V1__Team *)m)->display_name
             : db == AM_DB_PODS  ? ((Airmesh__V1__Pod *)m)->display_name
                                 : ((Airmesh__V1__Org *)m)->display_name;
    }
    if (out)
        json_object_set_new(out, "display_name", json_string(dn ? dn : ""));
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
}

static int patch(am_http_handler *h, h2o_req_t *req, char **param, am_named_kind kind, am_db db) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *dn = NULL;
    if (json_object_size(body) != 1 || !json_object_get(body, "display_name")) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"display_name\": string | null} (the only field that "
                           "changes here)");
        return 0;
    }
    if (am_api_display_name_arg(req, body, &dn) != 0) {
        json_decref(body);
        return 0;
    }
    char peer[64];
    int rc = am_ops_display_name_set(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), kind,
                                     param[0], dn);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    const char *org = db == AM_DB_ORGS ? "" : who.org_id;
    json_t *out = json_pack("{s:b,s:s}", "ok", 1, "id", param[0]);
    am_api_add_display_name(out, db, h, org, param[0]);
    am_http_send_json(req, 200, out);
    return 0;
}

int am_api_user_patch(am_http_handler *h, h2o_req_t *req, char **param) {
    return patch(h, req, param, AM_NAMED_USER, AM_DB_USERS);
}
int am_api_team_patch(am_http_handler *h, h2o_req_t *req, char **param) {
    return patch(h, req, param, AM_NAMED_TEAM, AM_DB_TEAMS);
}
int am_api_org_patch(am_http_handler *h, h2o_req_t *req, char **param) {
    return patch(h, req, param, AM_NAMED_ORG, AM_DB_ORGS);
}
int am_api_pod_patch(am_http_handler *h, h2o_req_t *req, char **param) {
    return patch(h, req, param, AM_NAMED_POD, AM_DB_PODS);
}
