/*
 * common/pod_state.c — the one table of pod state names (see pod_state.h).
 */
#include "common/pod_state.h"

#include <string.h>

#include "common/err.h"

static const char *const k_names[AM_POD__COUNT] = {
    [AM_POD_PENDING] = "pending", [AM_POD_STARTING] = "starting", [AM_POD_RUNNING] = "running",
    [AM_POD_EXITED] = "exited",   [AM_POD_FAILED] = "failed",     [AM_POD_STOPPED] = "stopped",
};

const char *am_pod_state_name(am_pod_state st) {
    return (unsigned)st < AM_POD__COUNT ? k_names[st] : "unknown";
}

int am_pod_state_parse(const char *s, am_pod_state *out) {
    for (int i = 0; s && i < AM_POD__COUNT; i++)
        if (strcmp(s, k_names[i]) == 0) {
            *out = (am_pod_state)i;
            return 0;
        }
    return am_err_set(AM_EINVAL, "pod state: unknown '%.32s'", s ? s : "");
}

int am_pod_state_final(am_pod_state st) {
    return st == AM_POD_EXITED || st == AM_POD_FAILED || st == AM_POD_STOPPED;
}

int am_pod_state_name_final(const char *s) {
    am_pod_state st;
    return am_pod_state_parse(s, &st) == 0 && am_pod_state_final(st);
}
