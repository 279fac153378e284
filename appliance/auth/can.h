/*
 * appliance/auth/can.h — who may do what: the one table behind every role check (RBAC).
 *
 * Every state change in appliance/ops asks am_auth_can(who, action, target) before it touches
 * the store; nothing else compares roles. The table (can.c) is the README's role matrix: each
 * rule names its README row, and tests/unit/auth_can_test.c checks the README against the table,
 * so the document cannot drift from the code.
 * Threads: any (the table is constant). No allocation.
 */
#ifndef AM_APPLIANCE_AUTH_CAN_H
#define AM_APPLIANCE_AUTH_CAN_H

#include <stddef.h>

typedef struct am_principal am_principal;

typedef enum {
    AM_CAN_READ,           /* see runners, pods, recordings, the org's audit events */
    AM_CAN_SELF,           /* change one's own password, manage one's own API tokens */
    AM_CAN_POD_WRITE,      /* create, stop and delete pods */
    AM_CAN_TERMINAL_INPUT, /* take input control of a pod's terminal and type */
    AM_CAN_POD_OTHERS,     /* the above on a pod another user started and did not share */
    AM_CAN_FLEET,          /* enrollment tokens, revoke runners */
    AM_CAN_MANAGE_USERS,   /* users, teams, others' API tokens (never above one's own role) */
    AM_CAN_AUDIT_SYSTEM,   /* see system audit events (org "") */
    AM_CAN_AUDIT_EXPORT,   /* export the whole audit log */
    AM_CAN_ORG_CREATE,     /* create organizations (the appliance administrator) */
    AM_CAN_ORG_LIMITS,     /* set the org's pod limit defaults and maxima */
    AM_CAN_HOST_NET,       /* create a pod with network "host" (the runner host's network) */
    AM_CAN_ORG_RENAME,     /* change the org's display name */
    AM_CAN_MODELS,         /* add, test and remove the org's model endpoints */
    AM_CAN_EGRESS_ALLOW,   /* set the org's egress allow list (pods with network "allow") */
    AM_CAN_MODEL_QUOTA,    /* set the org's model gateway quota (tokens per day) */
    AM_CAN_TICKETS_WRITE,  /* create, update and comment on tickets, start pods for them */
    AM_CAN_TICKETS_REOPEN, /* reopen a done ticket (its assignee may too) */
    AM_CAN_CHANNELS,       /* create and join channels, post messages in them */
    AM_CAN_CHANNEL_MANAGE, /* remove others from channels another user created */
    AM_CAN_BINDING_POLICY, /* set the org's pod binding policy (same_creator | explicit) */
    AM_CAN__COUNT
} am_action;

typedef struct {
    const char *org; /* the target's org; NULL = the caller's */
    int role;        /* the highest role involved (target user's role, role granted); 0 = none */
} am_can_target;

typedef struct {
    am_action action;
    const char *row;     /* the README role-matrix row this rule is */
    int min_role;        /* lowest Airmesh__V1__Role allowed */
    int superuser_only;  /* only the appliance administrator (never through an API token) */
    int up_to_own;       /* target->role must not exceed the caller's role */
    const char *refusal; /* the message a refused caller gets */
} am_auth_rule;

/* 0 when who may do action on target (NULL = no target), else -AM_EPERM with the rule's refusal
 * in am_err_last(); -AM_ENOTFOUND when the target is in another org (its existence must not
 * leak, so the caller answers 404). */
int am_auth_can(const am_principal *who, am_action action, const am_can_target *target);

/* The table, for the README matrix test and the docs. */
const am_auth_rule *am_auth_rules(size_t *n);
/* The rule of one action (never NULL for a valid action). */
const am_auth_rule *am_auth_rule_of(am_action action);

#endif
