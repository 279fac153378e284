/*
 * appliance/auth/can.c — the role table (see can.h). One row per action, in the order of the
 * README's role matrix. Roles are ordered viewer < member < admin < owner (Airmesh__V1__Role).
 */
#include "appliance/auth/can.h"

#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/auth/auth.h"
#include "common/err.h"

#define VIEWER AIRMESH__V1__ROLE__ROLE_VIEWER
#define MEMBER AIRMESH__V1__ROLE__ROLE_MEMBER
#define ADMIN AIRMESH__V1__ROLE__ROLE_ADMIN
#define OWNER AIRMESH__V1__ROLE__ROLE_OWNER

static const am_auth_rule k_rules[AM_CAN__COUNT] = {
    {AM_CAN_READ, "see runners, pods, recordings, the org's audit events", VIEWER, 0, 0,
     "this needs a role in the organization"},
    {AM_CAN_SELF, "change their own password, manage their own API tokens", VIEWER, 0, 1,
     "a token can never carry more than its user's role"},
    {AM_CAN_POD_WRITE, "create, stop and delete pods", MEMBER, 0, 0,
     "viewers cannot create, stop or delete pods"},
    {AM_CAN_TERMINAL_INPUT, "type into a pod's terminal", MEMBER, 0, 0,
     "your role may watch but not type (member or above may)"},
    {AM_CAN_POD_OTHERS,
     "take control of, type into, stop and share pods others started and did not share", ADMIN, 0,
     0,
     "this pod belongs to another user and is not shared: only its owner or an admin may take "
     "control of, type into or stop it (the owner can share it)"},
    {AM_CAN_FLEET, "enrollment tokens, revoke runners", ADMIN, 0, 0,
     "this needs the admin or owner role"},
    {AM_CAN_MANAGE_USERS, "manage users and teams (up to their own role)", ADMIN, 0, 1,
     "this needs the admin role, on a user and a role no higher than yours"},
    {AM_CAN_AUDIT_SYSTEM, "see system audit events", ADMIN, 0, 0,
     "system audit events need the admin role"},
    {AM_CAN_AUDIT_EXPORT, "export the audit log", OWNER, 0, 0,
     "exporting the audit log needs the owner role (it spans every org)"},
    {AM_CAN_ORG_CREATE, "create organizations", OWNER, 1, 0,
     "only the appliance administrator creates organizations"},
    {AM_CAN_ORG_LIMITS, "set the org's pod limit defaults and maxima", ADMIN, 0, 0,
     "setting the organization's pod limits needs the admin or owner role"},
    /* Such a pod shares the runner host's network namespace: its loopback-only services and
     * its abstract unix sockets, which no file permission guards. */
    {AM_CAN_HOST_NET, "create pods with network host", ADMIN, 0, 0,
     "network \"host\": admins and owners only (the pod would share the runner host's "
     "network: its loopback services and abstract unix sockets)"},
    {AM_CAN_ORG_RENAME, "rename the organization (its display name)", ADMIN, 0, 0,
     "renaming the organization needs the admin or owner role"},
    /* An endpoint holds a real API key the appliance uses on the org's behalf. */
    {AM_CAN_MODELS, "add, test and remove model endpoints", ADMIN, 0, 0,
     "adding, testing and removing model endpoints needs the admin or owner role"},
    /* What pods with network "allow" may reach through their runner's CONNECT proxy. */
    {AM_CAN_EGRESS_ALLOW, "set the org's egress allow list", ADMIN, 0, 0,
     "setting the organization's egress allow list needs the admin or owner role"},
    {AM_CAN_MODEL_QUOTA, "set the org's model token quota", ADMIN, 0, 0,
     "setting the organization's model token quota needs the admin or owner role"},
    {AM_CAN_TICKETS_WRITE, "create, update and comment on tickets, start pods for them", MEMBER, 0,
     0, "viewers can read tickets but not create, change or comment on them"},
    /* The assignee of a ticket may reopen it too (appliance/ops/tickets.c checks that first). */
    {AM_CAN_TICKETS_REOPEN, "reopen done tickets (their assignee may too)", ADMIN, 0, 0,
     "reopening a done ticket needs the admin or owner role, or being its assignee"},
    {AM_CAN_CHANNELS, "create and join channels, post messages in them", MEMBER, 0, 0,
     "viewers may read channels but not create, join or post in them"},
    {AM_CAN_CHANNEL_MANAGE, "remove others from channels another user created", ADMIN, 0, 0,
     "only the channel's creator or an admin may remove another member"},
    {AM_CAN_BINDING_POLICY, "set the org's pod binding policy", ADMIN, 0, 0,
     "setting the organization's pod binding policy needs the admin or owner role"},
};

const am_auth_rule *am_auth_rules(size_t *n) {
    *n = AM_CAN__COUNT;
    return k_rules;
}

const am_auth_rule *am_auth_rule_of(am_action action) {
    return (unsigned)action < AM_CAN__COUNT ? &k_rules[action] : &k_rules[AM_CAN_ORG_CREATE];
}

int am_auth_can(const am_principal *who, am_action action, const am_can_target *target) {
    if ((unsigned)action >= AM_CAN__COUNT)
        return am_err_set(AM_EPERM, "auth: unknown action %d", (int)action);
    const am_auth_rule *r = &k_rules[action];
    if (!who)
        return am_err_set(AM_EPERM, "%s", r->refusal);
    if (target && target->org && strcmp(target->org, who->org_id) != 0)
        return am_err_set(AM_ENOTFOUND, "not found");
    if (who->role < r->min_role || (r->superuser_only && !who->superuser) ||
        (r->up_to_own && target && target->role > who->role))
        return am_err_set(AM_EPERM, "%s", r->refusal);
    return 0;
}
