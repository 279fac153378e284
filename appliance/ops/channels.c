/*
 * appliance/ops/channels.c — channels (issue 13): per-org rooms whose members are users and
 * pods, their messages, and the @mention queue that turns a mention of a pod into a prompt.
 *
 * Store: Channel in AM_DB_CHANNELS "org/<name>"; ChannelMessage in AM_DB_MESSAGES
 * "<org>~<name>/<16-hex seq>" (its own key space per channel, so a page lists that channel's
 * messages only, in order); a pod's mention queue in the same table,
 * "<org>~q~<pod id>/<name>:<16-hex seq>" (a ChannelMessage with channel and seq only). Org ids
 * and channel names have no '~', so no two spaces meet and another org's never match. Every write
 * is one store transaction with its audit records appended inside it (a multi-record hook),
 * published after the commit.
 *
 * Why a queue: a message typed into a busy agent's terminal lands in the middle of its work (the
 * reference platform does that). A mention is queued and delivered when the pod's agent reports
 * waiting or idle (agentstate.c calls ops_channel_deliver), one prompt per report, through the
 * same bytes as POST /pods/{id}/prompt (am_agents_prompt_bytes: control characters stripped, a
 * bracketed paste and Enter). Exactly once: the delivering transaction deletes the queue entry,
 * and only the caller whose transaction deleted it sends. Only a poster who may prompt the pod
 * (ops_prompt_may: its starter, an admin/owner) queues anything; a refused mention stays a
 * message with its reason. An ended pod's queue is dropped (pods.c calls
 * ops_channel_pod_ended). Audited channel.mention (queued / delivered / refused / dropped).
 *
 * Pods as callers (who.pod_id set, through appliance/mcp): the member is "pod:<id>"; a pod reads
 * (am_ops_channel_get, messages) and posts only in channels it is a member of, never joins by
 * itself (a member adds it), may add (or create a channel with) only pods it has an active
 * write binding to and its own starter, and its @mention of a pod needs an active write binding
 * to that pod (ops_binding_find) instead of ops_prompt_may; a refused mention keeps the message.
 *
 * Threads: any (http thread for posts, the rpc thread for agent states and pod ends).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/agents/catalog.h"
#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define NAME_MAX_LEN 48 /* <org>~<name> is a store org key: at most 128 bytes */

static int name_ok(const char *n) {
    size_t len = n ? strlen(n) : 0;
    if (len == 0 || len > NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '-' && c != '_')))
            return 0;
    }
    return 1;
}

static int bad_name(void) {
    return am_err_set(AM_EINVAL, "channel name: 1-48 of a-z 0-9 - _ (starting with a letter or "
                                 "digit)");
}

/* Where a channel's messages live: store "org" <org>~<channel> (org ids and channel names
 * have no '~'), so listing one channel visits its messages only; the ids are 16-hex seqs. */
static void msg_space(char *out, size_t cap, const char *org, const char *name) {
    snprintf(out, cap, "%s~%s", org, name);
}
static void seq_id(char *out, size_t cap, uint64_t seq) {
    snprintf(out, cap, "%016llx", (unsigned long long)seq);
}
/* A pod's mention queue: store "org" <org>~q~<pod id>, ids "<channel>:<16-hex seq>". */
static void queue_space(char *out, size_t cap, const char *org, const char *pod) {
    snprintf(out, cap, "%s~q~%s", org, pod);
}
static void queue_id(char *out, size_t cap, const char *name, uint64_t seq) {
    snprintf(out, cap, "%s:%016llx", name, (unsigned long long)seq);
}

/* Several audit records appended inside one transaction (all or none). */
typedef struct {
    ops_act *acts[1 + AM_CHANNEL_MENTIONS_MAX];
    size_t n;
} multi_hook;

static int multi_run(am_txn *t, void *ud) {
    (void)t;
    multi_hook *m = ud;
    for (size_t i = 0; i < m->n; i++) {
        int rc = ops_act_append(m->acts[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void publish_json(am_ops *o, const char *org, json_t *j) {
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s && o->c.hub)
        am_hub_event_publish(o->c.hub, org, s, strlen(s));
    free(s);
}

static int is_member(const Airmesh__V1__Channel *c, const char *m) {
    for (size_t i = 0; i < c->n_members; i++)
        if (strcmp(c->members[i], m) == 0)
            return 1;
    return 0;
}

static int get_channel(am_txn *t, const char *org, const char *name, Airmesh__V1__Channel **out) {
    int rc = am_txn_get(t, AM_DB_CHANNELS, org, name, &airmesh__v1__channel__descriptor,
                        (ProtobufCMessage **)out);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND, "no such channel '%s'", name);
    return rc;
}

/* "user:<id>" of a user of org, or "pod:<id>" of a pod of org. */
static int member_ok(am_txn *t, const char *org, const char *m) {
    const char *id = NULL;
    am_db db;
    const ProtobufCMessageDescriptor *d;
    if (strncmp(m, "user:", 5) == 0) {
        id = m + 5;
        db = AM_DB_USERS;
        d = &airmesh__v1__user__descriptor;
    } else if (strncmp(m, "pod:", 4) == 0) {
        id = m + 4;
        db = AM_DB_PODS;
        d = &airmesh__v1__pod__descriptor;
    } else {
        return am_err_set(AM_EINVAL, "member '%.64s': expected user:<id> or pod:<id>", m);
    }
    ProtobufCMessage *x = NULL;
    if (!*id || strlen(id) > 128 || am_txn_get(t, db, org, id, d, &x) != 0)
        return am_err_set(AM_ENOTFOUND, "member '%.64s': no such %s in this organization", m,
                          db == AM_DB_USERS ? "user" : "pod");
    protobuf_c_message_free_unpacked(x, NULL);
    return 0;
}

/* A pod principal may bring into a channel only pods it has an active write binding to (and its
 * own starter): a channel is a way to reach a pod, so it needs what typing into it needs.
 * 0, or -AM_EPERM with the reason. Users: 0 (their rules are the role table's). */
static int pod_may_add(am_ops *o, const am_principal *who, const char *member) {
    if (!who->pod_id[0])
        return 0;
    if (strncmp(member, "pod:", 4) == 0) {
        if (strcmp(member + 4, who->pod_id) == 0)
            return 0;
        if (ops_binding_find(o, who->org_id, who->pod_id, member + 4, "write", NULL, 0) != 0)
            return am_err_set(AM_EPERM,
                              "pod %s may add pod %.64s to a channel only with an active write "
                              "binding to it (%s)",
                              who->pod_id, member + 4, am_err_last());
        return 0;
    }
    if (strncmp(member, "user:", 5) == 0 && strcmp(member + 5, who->user_id) == 0)
        return 0;
    return am_err_set(AM_EPERM,
                      "pod %s may add only pods it is bound to (write) and its own "
                      "starter to a channel, not %.64s",
                      who->pod_id, member);
}

/* ---- create ---- */

typedef struct {
    ops_act *a;
    const char *org, *name, *me;
    const char *const *members;
    size_t n;
} create_ctx;

static int create_txn(am_txn *t, void *ud) {
    create_ctx *c = ud;
    ProtobufCMessage *old = NULL;
    if (am_txn_get(t, AM_DB_CHANNELS, c->org, c->name, &airmesh__v1__channel__descriptor, &old) ==
        0) {
        protobuf_c_message_free_unpacked(old, NULL);
        return am_err_set(AM_EEXISTS, "channel '%s' exists", c->name);
    }
    char **ms = calloc(c->n + 1, sizeof *ms);
    if (!ms)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    size_t n = 0;
    int rc = 0;
    ms[n++] = (char *)c->me;
    for (size_t i = 0; i < c->n; i++) {
        if ((rc = member_ok(t, c->org, c->members[i])) != 0)
            goto out;
        int dup = 0;
        for (size_t j = 0; j < n; j++)
            dup |= strcmp(ms[j], c->members[i]) == 0;
        if (!dup)
            ms[n++] = (char *)c->members[i];
    }
    Airmesh__V1__Channel ch = AIRMESH__V1__CHANNEL__INIT;
    ch.name = (char *)c->name;
    ch.org_id = (char *)c->org;
    ch.members = ms;
    ch.n_members = n;
    ch.created_by = (char *)c->me;
    ch.created_ms = am_now_ms();
    ch.next_seq = 1;
    if ((rc = am_txn_put(t, AM_DB_CHANNELS, c->org, c->name, &ch.base)) != 0)
        goto out;
    rc = am_txn_hook_run(&c->a->hook, t);
out:
    free(ms);
    return rc;
}

int am_ops_channel_create(am_ops *o, const am_principal *who, const char *source, const char *name,
                          const char *const *members, size_t n_members) {
    char target[100], me[140];
    snprintf(target, sizeof target, "channel:%.64s", name ? name : "");
    ops_actor_of(who, me, sizeof me); /* "pod:<id>" for a pod */
    ops_act a;
    ops_act_user(&a, o, who, "channel.create", target, source);
    int rc = ops_check(&a, who, AM_CAN_CHANNELS, NULL);
    if (rc)
        return rc;
    if (!name_ok(name))
        return bad_name();
    if (n_members > AM_CHANNEL_MEMBERS_MAX)
        return am_err_set(AM_EINVAL, "a channel has at most %d members", AM_CHANNEL_MEMBERS_MAX);
    json_t *d = json_pack("{s:s,s:[s]}", "channel", name, "members", me);
    for (size_t i = 0; i < n_members; i++)
        if (members[i] && strcmp(members[i], me) != 0)
            json_array_append_new(json_object_get(d, "members"), json_string(members[i]));
    char *js = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s",
             js && strlen(js) < sizeof a.details ? js : "{\"truncated\":true}");
    free(js);
    for (size_t i = 0; i < n_members; i++) {
        if (!members[i])
            return am_err_set(AM_EINVAL, "members: not a string");
        if (pod_may_add(o, who, members[i]) != 0) {
            ops_act_error_details(&a, am_err_last());
            return ops_deny(&a, -AM_EPERM);
        }
    }
    create_ctx c = {&a, who->org_id, name, me, members, n_members};
    return ops_act_done(&a, am_store_update(o->c.store, create_txn, &c));
}

/* ---- members ---- */

typedef struct {
    ops_act *a;
    const am_principal *who;
    const char *org, *name, *member, *me;
    int add, changed;
} member_ctx;

static int member_txn(am_txn *t, void *ud) {
    member_ctx *c = ud;
    c->changed = 0;
    Airmesh__V1__Channel *ch = NULL;
    int rc = get_channel(t, c->org, c->name, &ch);
    if (rc)
        return rc;
    int self = strcmp(c->member, c->me) == 0;
    if (c->add && !self && !is_member(ch, c->me) &&
        am_auth_can(c->who, AM_CAN_CHANNEL_MANAGE, NULL) != 0) {
        rc = am_err_set(AM_EPERM, "only a member of #%s or an admin may add others to it", c->name);
        goto out;
    }
    if (!c->add && !self && strcmp(ch->created_by, c->me) != 0 &&
        am_auth_can(c->who, AM_CAN_CHANNEL_MANAGE, NULL) != 0) {
        rc = am_err_set(AM_EPERM, "%s", am_auth_rule_of(AM_CAN_CHANNEL_MANAGE)->refusal);
        goto out;
    }
    if (c->add && (rc = member_ok(t, c->org, c->member)) != 0)
        goto out;
    int has = is_member(ch, c->member);
    if (c->add == has)
        goto out; /* already so */
    if (c->add) {
        if (ch->n_members >= AM_CHANNEL_MEMBERS_MAX) {
            rc = am_err_set(AM_ELIMIT, "a channel has at most %d members", AM_CHANNEL_MEMBERS_MAX);
            goto out;
        }
        char **ms = realloc(ch->members, (ch->n_members + 1) * sizeof *ms);
        if (!ms) {
            rc = am_err_set(AM_ENOMEM, "ops: out of memory");
            goto out;
        }
        ch->members = ms;
        ms[ch->n_members++] = strdup(c->member);
        if (!ms[ch->n_members - 1]) {
            ch->n_members--;
            rc = am_err_set(AM_ENOMEM, "ops: out of memory");
            goto out;
        }
    } else {
        for (size_t i = 0; i < ch->n_members; i++)
            if (strcmp(ch->members[i], c->member) == 0) {
                free(ch->members[i]);
                ch->members[i] = ch->members[--ch->n_members];
                break;
            }
    }
    if ((rc = am_txn_put(t, AM_DB_CHANNELS, c->org, c->name, &ch->base)) != 0)
        goto out;
    c->changed = 1;
    rc = am_txn_hook_run(&c->a->hook, t);
out:
    protobuf_c_message_free_unpacked(&ch->base, NULL);
    return rc;
}

int am_ops_channel_member(am_ops *o, const am_principal *who, const char *source, const char *name,
                          const char *member, int add) {
    char target[100], me[140];
    snprintf(target, sizeof target, "channel:%.64s", name ? name : "");
    ops_actor_of(who, me, sizeof me); /* "pod:<id>" for a pod */
    if (!member)
        member = me;
    ops_act a;
    ops_act_user(&a, o, who, "channel.member", target, source);
    json_t *d = json_pack("{s:s,s:s,s:s}", "channel", name ? name : "", "member", member, "change",
                          add ? "add" : "remove");
    char *js = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s",
             js && strlen(js) < sizeof a.details ? js : "{\"truncated\":true}");
    free(js);
    int rc = ops_check(&a, who, AM_CAN_CHANNELS, NULL);
    if (rc)
        return rc;
    if (!name_ok(name))
        return bad_name();
    if (who->pod_id[0] && add && strcmp(member, me) == 0) {
        am_err_set(AM_EPERM, "a pod does not join channels itself: a member adds it");
        ops_act_error_details(&a, am_err_last());
        return ops_deny(&a, -AM_EPERM);
    }
    if (add && pod_may_add(o, who, member) != 0) {
        ops_act_error_details(&a, am_err_last());
        return ops_deny(&a, -AM_EPERM);
    }
    member_ctx c = {&a, who, who->org_id, name, member, me, add, 0};
    rc = am_store_update(o->c.store, member_txn, &c);
    if (rc == -AM_EPERM)
        return ops_deny(&a, rc);
    if (rc == 0 && !c.changed)
        return ops_record(&a, "ok");
    return ops_act_done(&a, rc);
}

/* ---- post ---- */

/* A valid UTF-8 text without NUL, 1..AM_CHANNEL_TEXT_MAX bytes. */
static int text_ok(const char *text, size_t len) {
    if (!text || len == 0)
        return am_err_set(AM_EINVAL, "text: empty");
    if (len > AM_CHANNEL_TEXT_MAX)
        return am_err_set(AM_EINVAL, "text: at most %u bytes (this one is %zu)",
                          AM_CHANNEL_TEXT_MAX, len);
    if (memchr(text, 0, len))
        return am_err_set(AM_EINVAL, "text: U+0000 is not allowed");
    json_t *j = json_stringn(text, len); /* NULL unless valid UTF-8 */
    json_decref(j);
    if (!j)
        return am_err_set(AM_EINVAL, "text: not valid UTF-8");
    return 0;
}

static int word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c >= 0x80;
}

typedef struct {
    char id[AM_POD_ID_LEN + 1];
    char dn[260];
} named_pod;

typedef struct {
    named_pod *v;
    size_t n, cap;
} pod_names;

static int names_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    pod_names *pn = ud;
    const Airmesh__V1__Pod *p = (const Airmesh__V1__Pod *)m;
    if (!p->display_name || !*p->display_name || am_pods_ended(p) || strlen(id) > AM_POD_ID_LEN)
        return 0;
    if (pn->n == pn->cap) {
        size_t cap = pn->cap ? pn->cap * 2 : 16;
        named_pod *v = realloc(pn->v, cap * sizeof *v);
        if (!v)
            return -AM_ENOMEM;
        pn->v = v;
        pn->cap = cap;
    }
    snprintf(pn->v[pn->n].id, sizeof pn->v[pn->n].id, "%s", id);
    snprintf(pn->v[pn->n].dn, sizeof pn->v[pn->n].dn, "%s", p->display_name);
    pn->n++;
    return 0;
}

/* The pods a text mentions: "@p-<12 hex>" or "@<display name of an active pod>" (the longest
 * name that matches), '@' at the start or after a non-word byte, a non-word byte after. */
static size_t find_mentions(am_ops *o, const char *org, const char *text, size_t len,
                            char (*ids)[AM_POD_ID_LEN + 1], size_t cap) {
    pod_names pn = {0};
    am_ops_list(o, AM_DB_PODS, org, &airmesh__v1__pod__descriptor, names_cb, &pn);
    size_t n = 0;
    for (size_t i = 0; i < len && n < cap; i++) {
        if (text[i] != '@' || (i > 0 && word_char((unsigned char)text[i - 1])))
            continue;
        const char *s = text + i + 1;
        size_t rest = len - i - 1;
        char id[AM_POD_ID_LEN + 1] = "";
        if (rest >= AM_POD_ID_LEN && strncmp(s, "p-", 2) == 0 &&
            (rest == AM_POD_ID_LEN || !word_char((unsigned char)s[AM_POD_ID_LEN]))) {
            int hex = 1;
            for (size_t k = 2; k < AM_POD_ID_LEN; k++)
                hex &= (s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f');
            if (hex)
                snprintf(id, sizeof id, "%.*s", AM_POD_ID_LEN, s);
        }
        if (!*id) {
            size_t best = 0;
            for (size_t k = 0; k < pn.n; k++) {
                size_t dl = strlen(pn.v[k].dn);
                if (dl > best && dl <= rest && memcmp(s, pn.v[k].dn, dl) == 0 &&
                    (dl == rest || !word_char((unsigned char)s[dl]))) {
                    best = dl;
                    snprintf(id, sizeof id, "%s", pn.v[k].id);
                }
            }
        }
        if (!*id)
            continue;
        int dup = 0;
        for (size_t k = 0; k < n; k++)
            dup |= strcmp(ids[k], id) == 0;
        if (!dup)
            snprintf(ids[n++], sizeof ids[0], "%s", id);
    }
    free(pn.v);
    return n;
}

typedef struct {
    ops_act *a;
    multi_hook *mh;
    const char *org, *name, *me;
    const char *text;
    size_t len;
    Airmesh__V1__ChannelMention *mentions;
    size_t n_mentions;
    uint64_t seq, time_ms;
} post_ctx;

static int post_txn(am_txn *t, void *ud) {
    post_ctx *c = ud;
    Airmesh__V1__Channel *ch = NULL;
    int rc = get_channel(t, c->org, c->name, &ch);
    if (rc)
        return rc;
    if (!is_member(ch, c->me)) {
        rc = am_err_set(AM_EPERM, "you are not a member of #%s: join it first", c->name);
        goto out;
    }
    c->seq = ch->next_seq ? ch->next_seq : 1;
    ch->next_seq = c->seq + 1;
    if ((rc = am_txn_put(t, AM_DB_CHANNELS, c->org, c->name, &ch->base)) != 0)
        goto out;
    Airmesh__V1__ChannelMessage m = AIRMESH__V1__CHANNEL_MESSAGE__INIT;
    Airmesh__V1__ChannelMention *mp[AM_CHANNEL_MENTIONS_MAX];
    for (size_t i = 0; i < c->n_mentions; i++)
        mp[i] = &c->mentions[i];
    m.channel = (char *)c->name;
    m.seq = c->seq;
    m.author = (char *)c->me;
    m.time_ms = c->time_ms;
    char *text = strndup(c->text, c->len);
    if (!text) {
        rc = am_err_set(AM_ENOMEM, "ops: out of memory");
        goto out;
    }
    m.text = text;
    m.mentions = mp;
    m.n_mentions = c->n_mentions;
    char key[200], space[200];
    msg_space(space, sizeof space, c->org, c->name);
    seq_id(key, sizeof key, c->seq);
    rc = am_txn_put(t, AM_DB_MESSAGES, space, key, &m.base);
    free(text);
    if (rc)
        goto out;
    for (size_t i = 0; i < c->n_mentions && !rc; i++) {
        if (strcmp(c->mentions[i].state, "queued") != 0)
            continue;
        Airmesh__V1__ChannelMessage q = AIRMESH__V1__CHANNEL_MESSAGE__INIT;
        q.channel = (char *)c->name;
        q.seq = c->seq;
        queue_space(space, sizeof space, c->org, c->mentions[i].pod_id);
        queue_id(key, sizeof key, c->name, c->seq);
        rc = am_txn_put(t, AM_DB_MESSAGES, space, key, &q.base);
    }
    if (rc)
        goto out;
    /* The records name the message's seq: fill it in now that it is known. */
    for (size_t i = 0; i < c->mh->n; i++) {
        char *p = strstr(c->mh->acts[i]->details, "\"seq\":0,");
        if (p) {
            char tail[1024];
            snprintf(tail, sizeof tail, "%s", p + 8);
            snprintf(p, sizeof c->mh->acts[i]->details - (size_t)(p - c->mh->acts[i]->details),
                     "\"seq\":%llu,%s", (unsigned long long)c->seq, tail);
        }
    }
    rc = multi_run(t, c->mh);
out:
    protobuf_c_message_free_unpacked(&ch->base, NULL);
    return rc;
}

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

int am_ops_channel_post(am_ops *o, const am_principal *who, const char *source, const char *name,
                        const char *text, size_t len, Airmesh__V1__ChannelMessage **out) {
    *out = NULL;
    char target[100], me[140];
    snprintf(target, sizeof target, "channel:%.64s", name ? name : "");
    ops_actor_of(who, me, sizeof me); /* "pod:<id>" for a pod */
    ops_act a;
    ops_act_user(&a, o, who, "channel.message", target, source);
    int rc = ops_check(&a, who, AM_CAN_CHANNELS, NULL);
    if (rc)
        return rc;
    if (!name_ok(name))
        return bad_name();
    if ((rc = text_ok(text, len)) != 0)
        return rc;
    {
        Airmesh__V1__Channel *ch = NULL;
        if (am_ops_get(o, AM_DB_CHANNELS, who->org_id, name, &airmesh__v1__channel__descriptor,
                       (ProtobufCMessage **)&ch) != 0)
            return am_err_set(AM_ENOTFOUND, "no such channel '%s'", name);
        protobuf_c_message_free_unpacked(&ch->base, NULL);
    }
    char ids[AM_CHANNEL_MENTIONS_MAX][AM_POD_ID_LEN + 1];
    size_t n = find_mentions(o, who->org_id, text, len, ids, AM_CHANNEL_MENTIONS_MAX);
    Airmesh__V1__ChannelMention mm[AM_CHANNEL_MENTIONS_MAX];
    char reasons[AM_CHANNEL_MENTIONS_MAX][400];
    ops_act ma[AM_CHANNEL_MENTIONS_MAX];
    multi_hook mh = {.n = 0};
    mh.acts[mh.n++] = &a;
    uint64_t now = am_now_ms();
    size_t kept = 0;
    json_t *mlist = json_array();
    for (size_t i = 0; i < n; i++) {
        Airmesh__V1__Pod *p = NULL;
        if (am_pods_get(o->c.store, who->org_id, ids[i], &p) != 0)
            continue; /* no such pod here: just text */
        Airmesh__V1__ChannelMention *x = &mm[kept];
        airmesh__v1__channel_mention__init(x);
        x->pod_id = ids[i];
        x->time_ms = now;
        reasons[kept][0] = '\0';
        int refused = who->pod_id[0]
                          ? ops_binding_find(o, who->org_id, who->pod_id, p->id, "write", NULL, 0)
                          : ops_prompt_may(who, p, NULL);
        if (refused != 0) {
            x->state = "refused";
            snprintf(reasons[kept], sizeof reasons[kept], "%s", am_err_last());
        } else if (am_pods_ended(p)) {
            x->state = "refused";
            snprintf(reasons[kept], sizeof reasons[kept], "pod %s is %s: it takes no prompts",
                     p->id, p->state);
        } else {
            x->state = "queued";
        }
        x->reason = reasons[kept];
        protobuf_c_message_free_unpacked(&p->base, NULL);
        char mt[160];
        snprintf(mt, sizeof mt, "pod:%s", ids[i]);
        ops_act_user(&ma[kept], o, who, "channel.mention", mt, source);
        snprintf(ma[kept].result, sizeof ma[kept].result, "%s",
                 strcmp(x->state, "refused") == 0 ? "denied" : "ok");
        json_t *d = json_pack("{s:s,s:I,s:s,s:s}", "channel", name, "seq", (json_int_t)0, "state",
                              x->state, "reason", reasons[kept]);
        char *js = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(d);
        snprintf(ma[kept].details, sizeof ma[kept].details, "%s",
                 js && strlen(js) < sizeof ma[kept].details ? js : "{\"truncated\":true}");
        free(js);
        mh.acts[mh.n++] = &ma[kept];
        json_array_append_new(mlist, json_string(ids[i]));
        kept++;
    }
    json_t *d = json_pack("{s:s,s:I,s:I,s:o}", "channel", name, "seq", (json_int_t)0, "length",
                          (json_int_t)len, "mentions", mlist);
    char *js = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(d);
    snprintf(a.details, sizeof a.details, "%s",
             js && strlen(js) < sizeof a.details ? js : "{\"truncated\":true}");
    free(js);
    post_ctx c = {&a, &mh, who->org_id, name, me, text, len, mm, kept, 0, now};
    rc = am_store_update(o->c.store, post_txn, &c);
    if (rc == -AM_EPERM)
        return ops_deny(&a, rc);
    if (rc != 0) {
        int r = ops_act_done(&a, rc);
        for (size_t i = 1; i < mh.n; i++)
            ops_act_done(mh.acts[i], rc);
        return r;
    }
    for (size_t i = 0; i < mh.n; i++)
        ops_act_done(mh.acts[i], 0);
    /* The live message (with its text) for the console, then the stored copy for the caller. */
    Airmesh__V1__ChannelMessage *m = NULL;
    char key[200], space[200];
    msg_space(space, sizeof space, who->org_id, name);
    seq_id(key, sizeof key, c.seq);
    if (am_ops_get(o, AM_DB_MESSAGES, space, key, &airmesh__v1__channel_message__descriptor,
                   (ProtobufCMessage **)&m) == 0)
        publish_json(o, who->org_id,
                     json_pack("{s:s,s:o}", "type", "channel.message", "message", message_json(m)));
    for (size_t i = 0; i < kept; i++)
        if (strcmp(mm[i].state, "queued") == 0)
            ops_channel_deliver(o, who->org_id, mm[i].pod_id);
    if (m)
        protobuf_c_message_free_unpacked(&m->base, NULL);
    if (am_ops_get(o, AM_DB_MESSAGES, space, key, &airmesh__v1__channel_message__descriptor,
                   (ProtobufCMessage **)out) != 0)
        return am_err_set(AM_EIO, "channel: the message was stored but cannot be read back");
    return 0;
}

/* ---- reads ---- */

int am_ops_channel_get(am_ops *o, const am_principal *who, const char *name,
                       Airmesh__V1__Channel **out) {
    int rc = am_auth_can(who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    if (!name_ok(name) || am_ops_get(o, AM_DB_CHANNELS, who->org_id, name,
                                     &airmesh__v1__channel__descriptor, (ProtobufCMessage **)out))
        return am_err_set(AM_ENOTFOUND, "no such channel '%s'", name ? name : "");
    if (who->pod_id[0]) { /* a pod reads only the channels it is a member of */
        char me[140];
        ops_actor_of(who, me, sizeof me); /* "pod:<id>" for a pod */
        if (!is_member(*out, me)) {
            protobuf_c_message_free_unpacked(&(*out)->base, NULL);
            *out = NULL;
            return am_err_set(AM_EPERM, "pod %s is not a member of #%s: a member must add it",
                              who->pod_id, name);
        }
    }
    return 0;
}

typedef struct {
    uint64_t before, after;
    size_t limit;
    Airmesh__V1__ChannelMessage **ring; /* the page being collected */
    size_t n, head;
    int more;
} page_ctx;

static int page_cb(void *ud, const char *id, const ProtobufCMessage *msg) {
    (void)id;
    page_ctx *c = ud;
    const Airmesh__V1__ChannelMessage *m = (const Airmesh__V1__ChannelMessage *)msg;
    if (c->after && m->seq <= c->after)
        return 0;
    if (!c->after && c->before && m->seq >= c->before)
        return 1;
    if (c->after && c->n == c->limit) {
        c->more = 1;
        return 1;
    }
    uint8_t *buf = malloc(protobuf_c_message_get_packed_size(msg) + 1);
    if (!buf)
        return -AM_ENOMEM;
    size_t len = protobuf_c_message_pack(msg, buf);
    Airmesh__V1__ChannelMessage *copy = airmesh__v1__channel_message__unpack(NULL, len, buf);
    free(buf);
    if (!copy)
        return -AM_ENOMEM;
    if (c->n == c->limit) { /* keep the newest `limit` */
        protobuf_c_message_free_unpacked(&c->ring[c->head]->base, NULL);
        c->ring[c->head] = copy;
        c->head = (c->head + 1) % c->limit;
        c->more = 1;
    } else {
        c->ring[c->n++] = copy;
    }
    return 0;
}

int am_ops_channel_messages(am_ops *o, const am_principal *who, const char *name, uint64_t before,
                            uint64_t after, size_t limit, am_ops_channel_msg_fn fn, void *ud,
                            int *more) {
    *more = 0;
    Airmesh__V1__Channel *ch = NULL;
    int rc = am_ops_channel_get(o, who, name, &ch);
    if (rc)
        return rc;
    protobuf_c_message_free_unpacked(&ch->base, NULL);
    if (limit == 0 || limit > 500)
        limit = limit ? 500 : 50;
    page_ctx c = {.before = before, .after = after, .limit = limit};
    char space[200];
    msg_space(space, sizeof space, who->org_id, name);
    c.ring = calloc(limit, sizeof *c.ring);
    if (!c.ring)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    rc = am_ops_list(o, AM_DB_MESSAGES, space, &airmesh__v1__channel_message__descriptor, page_cb,
                     &c);
    for (size_t i = 0; i < c.n; i++) {
        Airmesh__V1__ChannelMessage *m = c.ring[(c.head + i) % c.n];
        if (rc == 0)
            rc = fn(ud, m);
    }
    for (size_t i = 0; i < c.n; i++)
        protobuf_c_message_free_unpacked(&c.ring[i]->base, NULL);
    free(c.ring);
    *more = c.more;
    return rc;
}

/* ---- the mention queue ---- */

typedef struct {
    char first[200]; /* the oldest entry's key */
    char (*all)[200];
    size_t n, cap;
} queue_ctx;

static int queue_cb(void *ud, const char *id, const ProtobufCMessage *msg) {
    (void)msg;
    queue_ctx *c = ud;
    if (!c->n)
        snprintf(c->first, sizeof c->first, "%s", id);
    if (c->all && c->n < c->cap)
        snprintf(c->all[c->n], sizeof c->all[0], "%s", id);
    c->n++;
    return c->all ? 0 : 1;
}

static int set_mention(Airmesh__V1__ChannelMessage *m, const char *pod, const char *state,
                       const char *reason) {
    for (size_t i = 0; i < m->n_mentions; i++)
        if (strcmp(m->mentions[i]->pod_id, pod) == 0) {
            /* protobuf-c leaves an empty string pointing at its static default */
            if (m->mentions[i]->state != protobuf_c_empty_string)
                free(m->mentions[i]->state);
            m->mentions[i]->state = strdup(state);
            if (m->mentions[i]->reason != protobuf_c_empty_string)
                free(m->mentions[i]->reason);
            m->mentions[i]->reason = strdup(reason);
            if (!m->mentions[i]->state || !m->mentions[i]->reason)
                return am_err_set(AM_ENOMEM, "ops: out of memory");
            m->mentions[i]->time_ms = am_now_ms();
        }
    return 0;
}

typedef struct {
    ops_act *a;
    const char *org, *qspace, *pod, *qkey, *state, *reason;
    int taken;
    char channel[80];
    uint64_t seq;
    char *prompt; /* malloc'd: the text to type */
} take_ctx;

/* Delete one queue entry and mark its mention; take->taken = 1 when this call removed it. */
static int take_txn(am_txn *t, void *ud) {
    take_ctx *c = ud;
    c->taken = 0;
    free(c->prompt);
    c->prompt = NULL;
    Airmesh__V1__ChannelMessage *q = NULL, *m = NULL;
    if (am_txn_get(t, AM_DB_MESSAGES, c->qspace, c->qkey, &airmesh__v1__channel_message__descriptor,
                   (ProtobufCMessage **)&q) != 0)
        return 0; /* someone else took it */
    int rc = am_txn_del(t, AM_DB_MESSAGES, c->qspace, c->qkey);
    if (rc)
        goto out;
    snprintf(c->channel, sizeof c->channel, "%s", q->channel);
    c->seq = q->seq;
    char key[200], space[200];
    msg_space(space, sizeof space, c->org, q->channel);
    seq_id(key, sizeof key, q->seq);
    if (am_txn_get(t, AM_DB_MESSAGES, space, key, &airmesh__v1__channel_message__descriptor,
                   (ProtobufCMessage **)&m) == 0) {
        if ((rc = set_mention(m, c->pod, c->state, c->reason)) != 0)
            goto out;
        if ((rc = am_txn_put(t, AM_DB_MESSAGES, space, key, &m->base)) != 0)
            goto out;
        const char *author = strncmp(m->author, "user:", 5) == 0 ? m->author + 5 : m->author;
        size_t cap = strlen(m->text) + strlen(author) + strlen(q->channel) + 32;
        c->prompt = malloc(cap);
        if (!c->prompt) {
            rc = am_err_set(AM_ENOMEM, "ops: out of memory");
            goto out;
        }
        snprintf(c->prompt, cap, "[#%s, from %s]: %s", q->channel, author, m->text);
    }
    snprintf(c->a->details, sizeof c->a->details,
             "{\"channel\":\"%s\",\"seq\":%llu,\"state\":\"%s\"}", c->channel,
             (unsigned long long)c->seq, c->state);
    c->taken = 1;
    rc = am_txn_hook_run(&c->a->hook, t);
out:
    if (q)
        protobuf_c_message_free_unpacked(&q->base, NULL);
    if (m)
        protobuf_c_message_free_unpacked(&m->base, NULL);
    return rc;
}

static int take(am_ops *o, const char *org, const char *pod, const char *qkey, const char *state,
                const char *reason, char **prompt) {
    char target[48];
    snprintf(target, sizeof target, "pod:%s", pod);
    ops_act a;
    ops_act_init(&a, o, "system", org, "channel.mention", target, "");
    char qspace[200];
    queue_space(qspace, sizeof qspace, org, pod);
    take_ctx c = {.a = &a,
                  .org = org,
                  .qspace = qspace,
                  .pod = pod,
                  .qkey = qkey,
                  .state = state,
                  .reason = reason};
    int rc = am_store_update(o->c.store, take_txn, &c);
    rc = ops_act_done(&a, rc);
    if (rc == 0 && c.taken) {
        publish_json(o, org,
                     json_pack("{s:s,s:s,s:I,s:s,s:s}", "type", "channel.mention", "channel",
                               c.channel, "seq", (json_int_t)c.seq, "pod", pod, "state", state));
        if (prompt) {
            *prompt = c.prompt;
            c.prompt = NULL;
        }
    }
    free(c.prompt);
    return rc ? rc : c.taken ? 0 : -AM_ENOTFOUND;
}

void ops_channel_deliver(am_ops *o, const char *org, const char *pod_id) {
    queue_ctx q = {0};
    char qspace[200];
    queue_space(qspace, sizeof qspace, org, pod_id);
    if (am_ops_list(o, AM_DB_MESSAGES, qspace, &airmesh__v1__channel_message__descriptor, queue_cb,
                    &q) != 0 ||
        !q.n)
        return;
    Airmesh__V1__Pod *p = NULL;
    if (am_pods_get(o->c.store, org, pod_id, &p) != 0)
        return;
    int ended = am_pods_ended(p);
    int ready = !ended && p->agent_state &&
                (!strcmp(p->agent_state, "waiting") || !strcmp(p->agent_state, "idle"));
    char runner[160];
    snprintf(runner, sizeof runner, "%s", p->runner_id ? p->runner_id : "");
    protobuf_c_message_free_unpacked(&p->base, NULL);
    if (ended) {
        ops_channel_pod_ended(o, org, pod_id);
        return;
    }
    if (!ready)
        return;
    char *prompt = NULL;
    if (take(o, org, pod_id, q.first, "delivered", "", &prompt) != 0 || !prompt)
        return;
    uint8_t *bytes = NULL;
    size_t n = 0, clean = 0;
    int rc = am_agents_prompt_bytes(prompt, strlen(prompt), &bytes, &n, &clean);
    free(prompt);
    if (rc == 0)
        rc = ops_send_input(o, runner, pod_id, bytes, n);
    free(bytes);
    if (rc) {
        char target[48];
        snprintf(target, sizeof target, "pod:%s", pod_id);
        ops_act a;
        ops_act_init(&a, o, "system", org, "channel.mention", target, "");
        ops_act_error_details(&a, am_err_last());
        ops_record(&a, "error");
        am_log_warn("ops", "channel mention not delivered", "pod=%s error=\"%s\"", pod_id,
                    am_err_last());
    }
}

void ops_channel_pod_ended(am_ops *o, const char *org, const char *pod_id) {
    char keys[64][200];
    for (int round = 0; round < 64; round++) { /* at most 64 x 64 entries per call */
        queue_ctx q = {.all = keys, .cap = 64};
        char qspace[200];
        queue_space(qspace, sizeof qspace, org, pod_id);
        if (am_ops_list(o, AM_DB_MESSAGES, qspace, &airmesh__v1__channel_message__descriptor,
                        queue_cb, &q) != 0 ||
            !q.n)
            return;
        size_t n = q.n < q.cap ? q.n : q.cap;
        for (size_t i = 0; i < n; i++)
            take(o, org, pod_id, keys[i], "dropped", "the pod ended before it was waiting", NULL);
    }
}
