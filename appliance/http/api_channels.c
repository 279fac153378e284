/*
 * appliance/http/api_channels.c — channels over REST (issue 13): GET/POST /api/v1/channels,
 * GET /api/v1/channels/{name}, POST/DELETE /api/v1/channels/{name}/members and GET/POST
 * /api/v1/channels/{name}/messages (paged by ?before=SEQ / ?after=SEQ and ?limit=N). Parsing and
 * rendering only: the checks, the store, the mention queue and the audit are appliance/ops's
 * (channels.c). New messages also go out on /api/v1/events as {"type":"channel.message",...}.
 * Threads: the http thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "common/err.h"

static json_t *message_json(const Airmesh__V1__ChannelMessage *m) {
    json_t *ms = json_array();
    for (size_t i = 0; i < m->n_mentions; i++)
        json_array_append_new(ms, json_pack("{s:s,s:s,s:s,s:I}", "pod", m->mentions[i]->pod_id,
                                            "state", m->mentions[i]->state, "reason",
                                            m->mentions[i]->reason ? m->mentions[i]->reason : "",
                                            "time_ms", (json_int_t)m->mentions[i]->time_ms));
    return json_pack("{s:s,s:I,s:s,s:I,s:s,s:o}", "channel", m->channel, "seq", (json_int_t)m->seq,
                     "author", m->author, "time_ms", (json_int_t)m->time_ms, "text", m->text,
                     "mentions", ms);
}

static json_t *channel_json(const Airmesh__V1__Channel *c) {
    json_t *ms = json_array();
    for (size_t i = 0; i < c->n_members; i++)
        json_array_append_new(ms, json_string(c->members[i]));
    return json_pack("{s:s,s:o,s:s,s:I,s:I}", "name", c->name, "members", ms, "created_by",
                     c->created_by, "created_ms", (json_int_t)c->created_ms, "messages",
                     (json_int_t)(c->next_seq ? c->next_seq - 1 : 0));
}

static int list_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    json_array_append_new(ud, channel_json((const Airmesh__V1__Channel *)m));
    return 0;
}

int am_api_channel_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    int rc = am_auth_can(&who, AM_CAN_READ, NULL);
    if (rc)
        return am_api_send_rc(req, rc);
    json_t *rows = json_array();
    if ((rc = am_ops_list(h->app->ops, AM_DB_CHANNELS, who.org_id,
                          &airmesh__v1__channel__descriptor, list_cb, rows)) != 0) {
        json_decref(rows);
        return am_api_send_rc(req, rc);
    }
    am_http_send_json(req, 200, json_pack("{s:o}", "channels", rows));
    return 0;
}

int am_api_channel_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    json_t *name = json_object_get(body, "name"), *members = json_object_get(body, "members");
    if (!json_is_string(name) || (members && !json_is_array(members)) ||
        json_array_size(members) > AM_CHANNEL_MEMBERS_MAX) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request",
                           "expected {\"name\": string, \"members\"?: [\"user:<id>\" | "
                           "\"pod:<id>\", ...] (at most 256)}");
        return 0;
    }
    const char *ms[AM_CHANNEL_MEMBERS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < json_array_size(members); i++) {
        const char *s = json_string_value(json_array_get(members, i));
        if (!s || strlen(s) > 200) {
            json_decref(body);
            am_http_send_error(req, 400, "bad_request",
                               "members: strings \"user:<id>\" or \"pod:<id>\"");
            return 0;
        }
        ms[n++] = s;
    }
    char peer[64];
    int rc = am_ops_channel_create(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                   json_string_value(name), ms, n);
    if (rc) {
        json_decref(body);
        return am_api_send_rc(req, rc);
    }
    Airmesh__V1__Channel *c = NULL;
    rc = am_ops_channel_get(h->app->ops, &who, json_string_value(name), &c);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 201, channel_json(c));
    protobuf_c_message_free_unpacked(&c->base, NULL);
    return 0;
}

int am_api_channel_show(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    Airmesh__V1__Channel *c = NULL;
    int rc = am_ops_channel_get(h->app->ops, &who, param[0], &c);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, channel_json(c));
    protobuf_c_message_free_unpacked(&c->base, NULL);
    return 0;
}

/* POST {"member"?: "user:<id>"|"pod:<id>"} adds (none: join); DELETE ?member=... removes (none:
 * leave). */
static int members(am_http_handler *h, h2o_req_t *req, char **param, int add) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = NULL;
    const char *member = NULL;
    char qm[210] = "";
    if (add) {
        if (req->entity.len) {
            if (!(body = am_api_parse_body(req)))
                return 0;
            json_t *m = json_object_get(body, "member");
            if (m && !json_is_string(m)) {
                json_decref(body);
                am_http_send_error(req, 400, "bad_request",
                                   "expected {\"member\"?: \"user:<id>\" | \"pod:<id>\"}");
                return 0;
            }
            member = json_string_value(m);
        }
    } else if (am_api_query_param(req, 0, "member", qm, sizeof qm) == 1) {
        member = qm;
    }
    char peer[64];
    int rc = am_ops_channel_member(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                   param[0], member, add);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    return am_api_channel_show(h, req, param);
}

int am_api_channel_member_add(am_http_handler *h, h2o_req_t *req, char **param) {
    return members(h, req, param, 1);
}
int am_api_channel_member_remove(am_http_handler *h, h2o_req_t *req, char **param) {
    return members(h, req, param, 0);
}

static int msg_cb(void *ud, const Airmesh__V1__ChannelMessage *m) {
    json_array_append_new(ud, message_json(m));
    return 0;
}

static int num_param(h2o_req_t *req, const char *key, uint64_t *out) {
    char v[32];
    int r = am_api_query_param(req, 0, key, v, sizeof v);
    if (r != 1)
        return r == 0 ? 0 : -1;
    char *end = NULL;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || v[0] == '-')
        return -1;
    *out = x;
    return 0;
}

int am_api_channel_messages(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    uint64_t before = 0, after = 0, limit = 50;
    if (num_param(req, "before", &before) || num_param(req, "after", &after) ||
        num_param(req, "limit", &limit) || limit < 1 || limit > 500 || (before && after)) {
        am_http_send_error(req, 400, "bad_request",
                           "before=SEQ or after=SEQ (not both), limit=1..500");
        return 0;
    }
    json_t *rows = json_array();
    int more = 0;
    int rc = am_ops_channel_messages(h->app->ops, &who, param[0], before, after, (size_t)limit,
                                     msg_cb, rows, &more);
    if (rc) {
        json_decref(rows);
        return am_api_send_rc(req, rc);
    }
    am_http_send_json(
        req, 200, json_pack("{s:s,s:o,s:b}", "channel", param[0], "messages", rows, "more", more));
    return 0;
}

int am_api_channel_post(am_http_handler *h, h2o_req_t *req, char **param) {
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
    char peer[64];
    Airmesh__V1__ChannelMessage *m = NULL;
    int rc = am_ops_channel_post(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0],
                                 json_string_value(t), json_string_length(t), &m);
    json_decref(body);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 201, message_json(m));
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}
