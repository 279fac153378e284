/*
 * appliance/auth/teams.c — teams of users in the store (AM_DB_TEAMS, key "org/<team>"): create,
 * add or remove a member, delete. Who may change teams is decided by the caller
 * (appliance/ops, am_auth_can); its hook appends the audit record in the same transaction.
 * Threads: any; each call is one LMDB write transaction.
 */
#include <stdio.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/auth/auth.h"
#include "common/err.h"
#include "common/util.h"

#define MAX_MEMBERS 512

typedef struct {
    const char *org, *team, *user, *display_name;
    am_team_op op;
    const am_txn_hook *hook;
} team_ctx;

static int team_txn(am_txn *t, void *ud) {
    team_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_TEAMS, c->org, c->team, &airmesh__v1__team__descriptor, &m);
    if (c->op == AM_TEAM_CREATE) {
        if (rc == 0) {
            protobuf_c_message_free_unpacked(m, NULL);
            return am_err_set(AM_EEXISTS, "team %s already exists", c->team);
        }
        Airmesh__V1__Team nt = AIRMESH__V1__TEAM__INIT;
        nt.id = (char *)c->team;
        nt.org_id = (char *)c->org;
        nt.name = (char *)c->team;
        nt.created_ms = am_now_ms();
        nt.display_name = (char *)(c->display_name ? c->display_name : "");
        rc = am_txn_put(t, AM_DB_TEAMS, c->org, c->team, &nt.base);
        return rc ? rc : am_txn_hook_run(c->hook, t);
    }
    if (rc)
        return rc == -AM_ENOTFOUND ? am_err_set(AM_ENOTFOUND, "no team %s", c->team) : rc;
    Airmesh__V1__Team *tm = (Airmesh__V1__Team *)m;
    if (c->op == AM_TEAM_DELETE) {
        rc = am_txn_del(t, AM_DB_TEAMS, c->org, c->team);
    } else {
        ProtobufCMessage *um = NULL;
        if (c->op == AM_TEAM_ADD &&
            am_txn_get(t, AM_DB_USERS, c->org, c->user, &airmesh__v1__user__descriptor, &um) != 0) {
            protobuf_c_message_free_unpacked(m, NULL);
            return am_err_set(AM_ENOTFOUND, "no user %s", c->user);
        }
        if (um)
            protobuf_c_message_free_unpacked(um, NULL);
        char *members[MAX_MEMBERS];
        size_t n = 0;
        int present = 0;
        for (size_t i = 0; i < tm->n_members && n < MAX_MEMBERS - 1; i++) {
            if (strcmp(tm->members[i], c->user) == 0) {
                present = 1;
                if (c->op == AM_TEAM_REMOVE)
                    continue;
            }
            members[n++] = tm->members[i];
        }
        if (c->op == AM_TEAM_ADD && !present)
            members[n++] = (char *)c->user;
        if (c->op == AM_TEAM_REMOVE && !present) {
            protobuf_c_message_free_unpacked(m, NULL);
            return am_err_set(AM_ENOTFOUND, "%s is not in team %s", c->user, c->team);
        }
        Airmesh__V1__Team nt = *tm;
        nt.members = members;
        nt.n_members = n;
        rc = am_txn_put(t, AM_DB_TEAMS, c->org, c->team, &nt.base);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc ? rc : am_txn_hook_run(c->hook, t);
}

int am_teams_change(am_store *s, const char *org, const char *team, const char *user, am_team_op op,
                    const am_txn_hook *hook) {
    if (!am_auth_valid_name(team))
        return am_err_set(AM_EINVAL, "team: 1-64 of a-z 0-9 . _ -");
    if ((op == AM_TEAM_ADD || op == AM_TEAM_REMOVE) && !am_auth_valid_name(user))
        return am_err_set(AM_EINVAL, "user: 1-64 of a-z 0-9 . _ -");
    team_ctx c = {org, team, user ? user : "", NULL, op, hook};
    return am_store_update(s, team_txn, &c);
}

int am_teams_create(am_store *s, const char *org, const char *team, const char *display_name,
                    const am_txn_hook *hook) {
    if (!am_auth_valid_name(team))
        return am_err_set(AM_EINVAL, "team: 1-64 of a-z 0-9 . _ -");
    team_ctx c = {org, team, "", display_name, AM_TEAM_CREATE, hook};
    return am_store_update(s, team_txn, &c);
}
