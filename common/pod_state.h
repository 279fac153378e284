/*
 * common/pod_state — the pod states, once for every binary: the appliance's records
 * (appliance/pods), airmeshctl, and (later) the runner. The console's list is POD_STATE in
 * ui/src/api.ts. Records and messages carry the name; code compares the enum.
 *   pending → starting → running → exited(code) | failed(reason) | stopped
 * Threads: any (constant tables).
 */
#ifndef AM_COMMON_POD_STATE_H
#define AM_COMMON_POD_STATE_H

typedef enum {
    AM_POD_PENDING,
    AM_POD_STARTING,
    AM_POD_RUNNING,
    AM_POD_EXITED,
    AM_POD_FAILED,
    AM_POD_STOPPED,
    AM_POD__COUNT
} am_pod_state;

/* "pending", ... ("unknown" for a value out of range). */
const char *am_pod_state_name(am_pod_state st);
/* 0 and *out set, or -AM_EINVAL for a name that is not a state. */
int am_pod_state_parse(const char *s, am_pod_state *out);
/* 1 for exited, failed, stopped. */
int am_pod_state_final(am_pod_state st);
/* 1 when the name is a final state (unknown names are not). */
int am_pod_state_name_final(const char *s);

#endif
