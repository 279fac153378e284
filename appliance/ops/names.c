/*
 * appliance/ops/names.c — display names (issue 14): the unicode name people read instead of an
 * id, for users, teams, the org and pods. The text is checked once, here, with
 * am_display_name_check (common/display_name.h); ids stay ASCII and never change. Renaming a
 * user or team needs AM_CAN_MANAGE_USERS (on a user no higher than oneself), the org
 * AM_CAN_ORG_RENAME, a pod its starter or AM_CAN_POD_OTHERS. Every rename is audited
 * "<kind>.display_name" with the new name (null = cleared). Threads: any.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/display_name.h"
#include "common/err.h"

/* details = {"role"?: role, "display_name": name or null}. */
static void name_details(ops_act *a, const char *role, const char *name, int with_name) {
    json_t *d = json_object();
    if (role)
        json_object_set_new(d, "role", json_string(role));
    if (with_name)
        json_object_set_new(d, "display_name", name ? json_string(name) : json_null());
    char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a->details, sizeof a->details, "%s",
             s && strlen(s) < sizeof a->details ? s : "{\"truncated\":true}");
    free(s);
}

int ops_display_name(ops_act *a, const char *in, char *out, size_t cap, const char *role) {
    if (in) {
        int rc = am_display_name_check(in, strlen(in), out, cap);
        if (rc)
            return rc;
    }
    if (in || role)
        name_details(a, role, in ? out : NULL, in != NULL);
    return 0;
}

static const char *const kind_names[] = {"user", "team", "org", "pod"};

/* The record's existence in the caller's org (404 before any role answer) and the role gate. */
static int gate(am_ops *o, ops_act *a, const am_principal *who, am_named_kind kind,
                const char *id) {
    ProtobufCMessage *m = NULL;
    int rc;
    switch (kind) {
    case AM_NAMED_USER: {
        if (!id || am_store_get(o->c.store, AM_DB_USERS, who->org_id, id,
                                &airmesh__v1__user__descriptor, &m) != 0)
            return am_err_set(AM_ENOTFOUND, "no such user");
        am_can_target t = {NULL, ((Airmesh__V1__User *)m)->role};
        protobuf_c_message_free_unpacked(m, NULL);
        return ops_check(a, who, AM_CAN_MANAGE_USERS, &t);
    }
    case AM_NAMED_TEAM:
        if (!id || am_store_get(o->c.store, AM_DB_TEAMS, who->org_id, id,
                                &airmesh__v1__team__descriptor, &m) != 0)
            return am_err_set(AM_ENOTFOUND, "no such team");
        protobuf_c_message_free_unpacked(m, NULL);
        return ops_check(a, who, AM_CAN_MANAGE_USERS, NULL);
    case AM_NAMED_ORG: {
        am_can_target t = {id, 0};
        if ((rc = am_auth_can(who, AM_CAN_READ, &t)) != 0)
            return rc == -AM_ENOTFOUND ? am_err_set(AM_ENOTFOUND, "no such organization") : rc;
        return ops_check(a, who, AM_CAN_ORG_RENAME, &t);
    }
    case AM_NAMED_POD: {
        Airmesh__V1__Pod *p = NULL;
        if (!id || am_pods_get(o->c.store, who->org_id, id, &p) != 0)
            return am_err_set(AM_ENOTFOUND, "no such pod");
        const char *by = p->created_by ? p->created_by : "";
        int own = strcmp(strncmp(by, "user:", 5) == 0 ? by + 5 : by, who->user_id) == 0;
        protobuf_c_message_free_unpacked(&p->base, NULL);
        if ((rc = ops_check(a, who, AM_CAN_POD_WRITE, NULL)) != 0)
            return rc;
        return own ? 0 : ops_check(a, who, AM_CAN_POD_OTHERS, NULL);
    }
    }
    return am_err_set(AM_EINVAL, "ops: unknown kind of name");
}

int am_ops_display_name_set(am_ops *o, const am_principal *who, const char *source,
                            am_named_kind kind, const char *id, const char *display_name) {
    if ((unsigned)kind > AM_NAMED_POD)
        return am_err_set(AM_EINVAL, "ops: unknown kind of name");
    if (kind == AM_NAMED_ORG && !id)
        id = who->org_id;
    char action[40], target[160];
    snprintf(action, sizeof action, "%s.display_name", kind_names[kind]);
    snprintf(target, sizeof target, "%s:%.64s", kind_names[kind], id ? id : "");
    ops_act a;
    ops_act_user(&a, o, who, action, target, source);
    int rc = gate(o, &a, who, kind, id);
    if (rc)
        return rc;
    char dn[AM_DISPLAY_NAME_BUF] = "";
    if ((rc = ops_display_name(&a, display_name, dn, sizeof dn, NULL)) != 0)
        return rc;
    if (!display_name)
        name_details(&a, NULL, NULL, 1);
    int changed = 0;
    if (kind == AM_NAMED_POD) {
        am_pod_update u = {.org = who->org_id, .id = id, .display_name = dn};
        rc = am_pods_update(o->c.store, &u, &a.hook);
        changed = u.changed;
    } else {
        am_db db = kind == AM_NAMED_USER   ? AM_DB_USERS
                   : kind == AM_NAMED_TEAM ? AM_DB_TEAMS
                                           : AM_DB_ORGS;
        rc = am_auth_set_display(o->c.store, db, who->org_id, id, dn, &changed, &a.hook);
    }
    if (rc == 0 && !changed) /* already so: still an answered, audited request */
        return ops_record(&a, "ok");
    return ops_act_done(&a, rc);
}
