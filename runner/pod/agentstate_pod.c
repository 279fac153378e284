/*
 * runner/pod/agentstate_pod.c — the agent-state scanner (agentstate.c) wired into a pod: fed
 * from the pod thread's output pump, ticked by its poll loop, told about the user's input by
 * the manager, and each change sent to the appliance as an AgentState message. Also where
 * airmesh-notify comes from: the runner's own copy (--notify-bin, else next to the runner's
 * executable), bound read-only into every pod at AM_POD_NOTIFY_PATH, its dir last on the
 * pods' default PATH; and airmesh-mcp (runner/mcp) the same way, at AM_MCP_BIN beside it.
 *
 * Identity: an AgentState names the pod whose PTY the bytes came from; nothing a pod writes
 * can name another pod (there is no pod id in the sequence to forge).
 * Threads: am_pod_agent_* run on the pod's thread, except am_pod_agent_resend (the session's
 * thread, takes p->mu); the manager sets p->agent_input (under p->mu) when the user types. The
 * settings are set once at startup, before pods.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/pod/internal.h"

static uint64_t g_quiet_ms = AM_AGENTSTATE_QUIET_DEFAULT_MS;
static char g_notify_bin[PATH_MAX];
static char g_mcp_bin[PATH_MAX];
static char g_path_env[PATH_MAX + 160];

void am_pod_set_quiet_after(uint64_t ms) {
    g_quiet_ms = ms ? ms : AM_AGENTSTATE_QUIET_DEFAULT_MS;
}

/* A tool binary bound into every pod: an absolute path of an executable file, resolved. */
static int set_bin(char out[PATH_MAX], const char *path) {
    char real[PATH_MAX];
    struct stat st;
    if (!path || path[0] != '/')
        return am_err_set(AM_EINVAL, "'%s' is not an absolute path", path ? path : "");
    if (!realpath(path, real) || stat(real, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(real, X_OK) != 0)
        return am_err_set(AM_EINVAL, "'%s' is not an executable file", path);
    snprintf(out, PATH_MAX, "%s", real);
    return 0;
}

/* Unless set: `name` next to the runner's own executable (a warning when it is not there). */
static void find_bin(char out[PATH_MAX], const char *name) {
    if (out[0])
        return;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 32);
    if (n <= 0)
        return;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return;
    snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), "%s", name);
    if (set_bin(out, exe) != 0)
        am_log_warn("pod", "a pod tool is not next to the runner: pods get none",
                    "tool=%s "
                    "looked_for=%s",
                    name, exe);
}

int am_pod_set_notify_bin(const char *path) {
    return set_bin(g_notify_bin, path);
}

int am_pod_set_mcp_bin(const char *path) {
    return set_bin(g_mcp_bin, path);
}

void am_pod_find_bins(void) {
    find_bin(g_notify_bin, "airmesh-notify");
    find_bin(g_mcp_bin, "airmesh-mcp");
}

const char *am_pod_notify_bin(void) {
    return g_notify_bin;
}

const char *am_pod_mcp_bin(void) {
    return g_mcp_bin;
}

const char *pod_default_path_env(void) {
    const char *agents = pod_agents_path_env(); /* "PATH=<agents>/bin:<default>" or NULL */
    if (!g_notify_bin[0])
        return agents;
    snprintf(g_path_env, sizeof g_path_env, "%s:%s",
             agents ? agents : "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
             AM_POD_NOTIFY_DIR);
    return g_path_env;
}

/* ---- the pod's scanner ---- */

static void emit_locked(pod *p) {
    Airmesh__V1__AgentState as = AIRMESH__V1__AGENT_STATE__INIT;
    as.pod_id = p->cp->pod_id;
    as.state = p->agent_state;
    as.source = p->agent_source;
    as.message = p->agent_msg;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_AGENT_STATE;
    m.agent_state = &as;
    p->mgr->emit(p->mgr->ud, &m); /* dropped while disconnected: resync re-sends it */
}

static void on_change(void *ud, const char *state, const char *source, const char *message) {
    pod *p = ud;
    pthread_mutex_lock(&p->mu);
    snprintf(p->agent_state, sizeof p->agent_state, "%s", state);
    snprintf(p->agent_source, sizeof p->agent_source, "%s", source);
    snprintf(p->agent_msg, sizeof p->agent_msg, "%s", message);
    emit_locked(p);
    pthread_mutex_unlock(&p->mu);
    am_log_debug("pod", "agent state", "pod=%s state=%s source=%s", p->cp->pod_id, state, source);
}

void am_pod_agent_start(pod *p) {
    am_agentstate_init(&p->as, g_quiet_ms, am_mono_ns() / 1000000, on_change, p);
}

/* Input the manager wrote since we last looked (before the output it may have caused). */
static void take_input(pod *p) {
    pthread_mutex_lock(&p->mu);
    int input = p->agent_input;
    p->agent_input = 0;
    pthread_mutex_unlock(&p->mu);
    if (input)
        am_agentstate_input(&p->as);
}

void am_pod_agent_output(pod *p, const uint8_t *data, size_t len) {
    take_input(p);
    am_agentstate_output(&p->as, data, len, am_mono_ns() / 1000000);
}

void am_pod_agent_tick(pod *p) {
    take_input(p);
    am_agentstate_tick(&p->as, am_mono_ns() / 1000000);
}

void am_pod_agent_resend(pod *p) {
    pthread_mutex_lock(&p->mu);
    if (p->agent_state[0] && p->sbx) /* only while the pod runs */
        emit_locked(p);
    pthread_mutex_unlock(&p->mu);
}
