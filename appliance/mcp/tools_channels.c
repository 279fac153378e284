/*
 * appliance/mcp/tools_channels.c — the channel tools (tools.h): list_channels, create_channel,
 * send_channel_message, get_channel_messages. Thin wrappers over am_ops_channel_* (ops decides,
 * with the calling pod as the member "pod:<id>": a pod reads and posts only in channels it is a
 * member of, adds other pods only with a write binding to them, and its @mentions reach a pod
 * only with a write binding; and audits channel.* with the pod as actor).
 * Threads: any worker (mcp.c). Memory: arguments borrowed from args; records freed here.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/mcp/tools.h"
#include "common/err.h"

static json_t *channel_json(const Airmesh__V1__Channel *c) {
    json_t *ms = json_array();
    for (size_t i = 0; i < c->n_members; i++)
        json_array_append_new(ms, json_string(c->members[i]));
    return json_pack("{s:s,s:o,s:s,s:I}", "name", c->name, "members", ms, "created_by",
                     c->created_by, "messages", (json_int_t)(c->next_seq ? c->next_seq - 1 : 0));
}

static json_t *message_json(const Airmesh__V1__ChannelMessage *m) {
    json_t *ms = json_array();
    for (size_t i = 0; i < m->n_mentions; i++)
        json_array_append_new(ms, json_pack("{s:s,s:s,s:s}", "pod", m->mentions[i]->pod_id, "state",
                                            m->mentions[i]->state, "reason",
                                            m->mentions[i]->reason ? m->mentions[i]->reason : ""));
    return json_pack("{s:s,s:I,s:s,s:I,s:s,s:o}", "channel", m->channel, "seq", (json_int_t)m->seq,
                     "author", m->author, "time_ms", (json_int_t)m->time_ms, "text", m->text,
                     "mentions", ms);
}

typedef struct {
    const char *me;
    json_t *rows;
} list_ctx;

static int list_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    list_ctx *l = ud;
    const Airmesh__V1__Channel *c = (const Airmesh__V1__Channel *)m;
    for (size_t i = 0; i < c->n_members; i++)
        if (!strcmp(c->members[i], l->me)) {
            json_array_append_new(l->rows, channel_json(c));
            break;
        }
    return 0;
}

static int t_list(am_mcp_call *c, json_t *args, json_t **result) {
    (void)args;
    int rc = am_auth_can(&c->who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    char me[160];
    snprintf(me, sizeof me, "pod:%s", c->who.pod_id);
    list_ctx l = {me, json_array()};
    rc = am_ops_list(c->ops, AM_DB_CHANNELS, c->who.org_id, &airmesh__v1__channel__descriptor,
                     list_cb, &l);
    if (rc < 0) {
        json_decref(l.rows);
        return rc;
    }
    *result = json_pack("{s:o}", "channels", l.rows);
    return 0;
}

static int t_create(am_mcp_call *c, json_t *args, json_t **result) {
    const char *name;
    int rc = am_mcp_arg_str(args, "name", 1, &name);
    if (rc)
        return rc;
    const char *ms[AM_CHANNEL_MEMBERS_MAX];
    size_t n = 0;
    json_t *members = json_object_get(args, "members");
    if (members && !json_is_null(members)) {
        if (!json_is_array(members) || json_array_size(members) > AM_CHANNEL_MEMBERS_MAX)
            return am_err_set(AM_EINVAL, "members: an array of \"pod:<id>\" / \"user:<id>\"");
        for (size_t i = 0; i < json_array_size(members); i++) {
            json_t *v = json_array_get(members, i);
            if (!json_is_string(v))
                return am_err_set(AM_EINVAL, "members: an array of strings");
            ms[n++] = json_string_value(v);
        }
    }
    if ((rc = am_ops_channel_create(c->ops, &c->who, c->source, name, ms, n)) != 0)
        return rc;
    Airmesh__V1__Channel *ch = NULL;
    if ((rc = am_ops_channel_get(c->ops, &c->who, name, &ch)) != 0)
        return rc;
    *result = json_pack("{s:o}", "channel", channel_json(ch));
    protobuf_c_message_free_unpacked(&ch->base, NULL);
    return 0;
}

static int t_send(am_mcp_call *c, json_t *args, json_t **result) {
    const char *name, *text;
    int rc;
    if ((rc = am_mcp_arg_str(args, "channel", 1, &name)) ||
        (rc = am_mcp_arg_str(args, "text", 1, &text)))
        return rc;
    Airmesh__V1__ChannelMessage *m = NULL;
    rc = am_ops_channel_post(c->ops, &c->who, c->source, name, text, strlen(text), &m);
    if (rc)
        return rc;
    *result = json_pack("{s:o}", "message", message_json(m));
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return 0;
}

static int page_cb(void *ud, const Airmesh__V1__ChannelMessage *m) {
    json_array_append_new(ud, message_json(m));
    return 0;
}

static int t_messages(am_mcp_call *c, json_t *args, json_t **result) {
    const char *name;
    json_int_t before = 0, after = 0, limit = 50;
    int rc;
    if ((rc = am_mcp_arg_str(args, "channel", 1, &name)) ||
        (rc = am_mcp_arg_int(args, "before", 0, 0, INT64_MAX, &before)) ||
        (rc = am_mcp_arg_int(args, "after", 0, 0, INT64_MAX, &after)) ||
        (rc = am_mcp_arg_int(args, "limit", 0, 1, 500, &limit)))
        return rc;
    if (before && after)
        return am_err_set(AM_EINVAL, "before and after: one of them");
    json_t *rows = json_array();
    int more = 0;
    rc = am_ops_channel_messages(c->ops, &c->who, name, (uint64_t)before, (uint64_t)after,
                                 (size_t)limit, page_cb, rows, &more);
    if (rc) {
        json_decref(rows);
        return rc;
    }
    *result = json_pack("{s:s,s:o,s:b}", "channel", name, "messages", rows, "more", more);
    return 0;
}

#define S_CH "\"channel\":{\"type\":\"string\",\"description\":\"the channel's name\"}"

const am_mcp_tool am_mcp_tools_channels[] = {
    {"list_channels", "List channels",
     "The organization's channels this pod is a member of, with their members and message "
     "counts.",
     "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":false}", t_list, 1},
    {"create_channel", "Create a channel",
     "Create a channel with this pod as its first member. Other members: \"pod:<id>\" of pods "
     "this pod has an active write binding to, or \"user:<id>\" of the user who started this "
     "pod. Name: 1-48 of a-z 0-9 - _.",
     "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"pattern\":"
     "\"^[a-z0-9][a-z0-9_-]{0,47}$\"},\"members\":{\"type\":\"array\",\"items\":{\"type\":"
     "\"string\"},\"maxItems\":256}},\"required\":[\"name\"],\"additionalProperties\":false}",
     t_create, 0},
    {"send_channel_message", "Post in a channel",
     "Post a message in a channel this pod is a member of (at most 16 KiB). An @p-<id> or "
     "@<display name> of a pod this pod has a write binding to becomes a prompt for it, typed "
     "once it waits for input, as \"[#channel, from pod:<this id>]: text\"; other mentions are "
     "refused with the reason (the message stays).",
     "{\"type\":\"object\",\"properties\":{" S_CH ",\"text\":{\"type\":\"string\","
     "\"minLength\":1,\"maxLength\":16384}},\"required\":[\"channel\",\"text\"],"
     "\"additionalProperties\":false}",
     t_send, 0},
    {"get_channel_messages", "Read a channel",
     "Messages of a channel this pod is a member of, oldest first: the newest `limit` (default "
     "50), or those before / after a seq; more = there are others beyond the page.",
     "{\"type\":\"object\",\"properties\":{" S_CH ",\"before\":{\"type\":\"integer\","
     "\"minimum\":0},\"after\":{\"type\":\"integer\",\"minimum\":0},\"limit\":{\"type\":"
     "\"integer\",\"minimum\":1,\"maximum\":500,\"default\":50}},\"required\":[\"channel\"],"
     "\"additionalProperties\":false}",
     t_messages, 1},
    {0},
};
