/*
 * runner/pod/lifecycle.c — one pod's thread: worktree, sandbox, PTY pump, recording, the end.
 * See pod.h for the lifecycle and internal.h for what the manager shares. Output goes to the
 * recording (asciicast.c, DATA/recordings/<pod>.cast.zst, uploaded when the pod ends) and to
 * the appliance, which keeps the scrollback ring; the runner keeps none.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mcp.h"
#include "common/util.h"
#include "runner/egress/egress.h"
#include "runner/mcp/relay.h"
#include "runner/pod/homefiles.h"
#include "runner/pod/internal.h"
#include "runner/worktree/worktree.h"

#define OUT_CHUNK (32u << 10)
#define UPLOAD_CHUNK (512u << 10)

int am_pod_state_final(const char *s) {
    return strcmp(s, "exited") == 0 || strcmp(s, "stopped") == 0 || strcmp(s, "failed") == 0;
}

/* ---- messages ---- */

void am_pod_emit_status(pod *p) {
    Airmesh__V1__PodStatus st = AIRMESH__V1__POD_STATUS__INIT;
    pthread_mutex_lock(&p->mu);
    st.pod_id = p->cp->pod_id;
    st.state = p->state;
    st.exit_code = p->exit_code;
    st.reason = p->reason;
    st.limits_note = p->limits_note;
    st.worktree = p->worktree;
    st.commit = p->commit;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_POD_STATUS;
    m.pod_status = &st;
    if (p->mgr->emit(p->mgr->ud, &m) == 0 && am_pod_state_final(p->state))
        p->final_sent = 1;
    pthread_mutex_unlock(&p->mu);
}

static void set_state(pod *p, const char *state, const char *reason) {
    pthread_mutex_lock(&p->mu);
    snprintf(p->state, sizeof p->state, "%s", state);
    if (reason)
        snprintf(p->reason, sizeof p->reason, "%s", reason);
    pthread_mutex_unlock(&p->mu);
    am_pod_emit_status(p);
    am_log_info("pod", "state", "pod=%s state=%s", p->cp->pod_id, state);
}

static void emit_output(pod *p, const uint8_t *data, size_t len) {
    for (size_t off = 0; off < len; off += OUT_CHUNK) {
        size_t n = len - off < OUT_CHUNK ? len - off : OUT_CHUNK;
        Airmesh__V1__TerminalOutput to = AIRMESH__V1__TERMINAL_OUTPUT__INIT;
        to.pod_id = p->cp->pod_id;
        to.offset = p->out_offset + off;
        to.data.data = (uint8_t *)data + off;
        to.data.len = n;
        Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
        m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_OUTPUT;
        m.output = &to;
        p->mgr->emit(p->mgr->ud, &m);
    }
}

/* ---- recording ---- */

static void rec_open(pod *p) {
    snprintf(p->rec_path, sizeof p->rec_path, "%s/recordings/%s.cast.zst", p->mgr->data_dir,
             p->cp->pod_id);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/recordings", p->mgr->data_dir);
    am_mkdir_p(dir, 0700);
    if (am_cast_open(p->rec_path, p->cp->cols ? p->cp->cols : 80, p->cp->rows ? p->cp->rows : 24,
                     am_now_ms() / 1000, &p->rec) != 0) {
        am_log_warn("pod", "no recording", "pod=%s error=\"%s\"", p->cp->pod_id, am_err_last());
        return;
    }
    p->have_recording = 1;
}

static void rec_close(pod *p) {
    if (p->rec && am_cast_close(p->rec) != 0)
        am_log_warn("pod", "recording", "pod=%s error=\"%s\"", p->cp->pod_id, am_err_last());
    p->rec = NULL;
}

void am_pod_upload_recording(pod *p) {
    pthread_mutex_lock(&p->mu);
    int skip = !p->have_recording || p->recording_uploaded;
    pthread_mutex_unlock(&p->mu);
    if (skip)
        return;
    uint8_t *data = NULL;
    size_t len = 0;
    if (am_read_file(p->rec_path, AM_POD_RECORDING_MAX, &data, &len) != 0)
        return;
    int ok = 1;
    for (size_t off = 0; ok && (off < len || off == 0); off += UPLOAD_CHUNK) {
        size_t n = len - off < UPLOAD_CHUNK ? len - off : UPLOAD_CHUNK;
        Airmesh__V1__RecordingChunk ch = AIRMESH__V1__RECORDING_CHUNK__INIT;
        ch.pod_id = p->cp->pod_id;
        ch.offset = off;
        ch.data.data = data + off;
        ch.data.len = n;
        ch.last = off + n >= len;
        Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
        m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_RECORDING;
        m.recording = &ch;
        ok = p->mgr->emit(p->mgr->ud, &m) == 0;
        if (ch.last)
            break;
    }
    free(data);
    pthread_mutex_lock(&p->mu);
    if (ok)
        p->recording_uploaded = 1;
    pthread_mutex_unlock(&p->mu);
}

/* ---- the pod thread ---- */

/* Drain what the PTY has now into one buffer, then recording + one batch of messages:
 * a PTY read returns a few KiB at a time, and one gRPC message per read caps throughput. No
 * waiting: the batch ends as soon as the PTY has nothing more (keystroke echo stays immediate). */
#define PUMP_BATCH (256u << 10)

static void pump_output(pod *p, int fd) {
    static _Thread_local uint8_t buf[PUMP_BATCH];
    for (;;) {
        size_t n = 0;
        while (n < sizeof buf) {
            ssize_t r = read(fd, buf + n, sizeof buf - n);
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        if (n == 0)
            return;
        if (p->rec)
            am_cast_output(p->rec, buf, n);
        emit_output(p, buf, n);
        am_pod_agent_output(p, buf, n); /* agent state (agentstate_pod.c) */
        p->out_offset += n;
        if (n < sizeof buf)
            return;
    }
}

/* DATA/podmeta/<pod>: the repo URL and keep flag, so that a runner that crashed can clean up
 * its pods' worktrees (unmount overlays, drop registrations) when it starts again. */
static void meta_path(am_podmgr *m, const char *pod_id, char *out, size_t cap) {
    snprintf(out, cap, "%s/podmeta/%s", m->data_dir, pod_id);
}

static void meta_write(am_podmgr *m, const Airmesh__V1__CreatePod *cp) {
    char dir[PATH_MAX], path[PATH_MAX + 512], buf[2048];
    snprintf(dir, sizeof dir, "%s/podmeta", m->data_dir);
    am_mkdir_p(dir, 0700);
    meta_path(m, cp->pod_id, path, sizeof path);
    int n = snprintf(buf, sizeof buf, "%d\n%s", cp->keep_worktree ? 1 : 0, cp->repo);
    if (n > 0 && (size_t)n < sizeof buf)
        am_write_file_atomic(path, buf, (size_t)n, 0600);
}

static void meta_remove(am_podmgr *m, const char *pod_id) {
    char path[PATH_MAX + 512];
    meta_path(m, pod_id, path, sizeof path);
    unlink(path);
}

/* At start: every pod left by an earlier life of this runner is gone (its processes died with
 * the runner): remove its worktree unless it was to be kept. */
void am_pod_cleanup_leftovers(am_podmgr *m) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/podmeta", m->data_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX + 512];
        uint8_t *data = NULL;
        size_t len = 0;
        meta_path(m, e->d_name, path, sizeof path);
        if (am_read_file(path, 4096, &data, &len) != 0)
            continue;
        char *nl = strchr((char *)data, '\n');
        if (nl) {
            int keep = data[0] == '1';
            if (am_wt_remove(m->data_dir, nl + 1, e->d_name, keep) == 0 || !keep)
                am_log_info("pod", "cleaned up a pod left by a previous run", "pod=%s kept=%d",
                            e->d_name, keep);
        }
        free(data);
        unlink(path);
    }
    if (d)
        closedir(d);
}

/* Before any mirror is made for it: a local repository path (or file://) that is not there is
 * the commonest typo, and libgit2 would call it an "unsupported URL protocol". The other repo and
 * base ref mistakes are worded by runner/worktree (fetch and resolve failures). */
static int check_repo(const am_podmgr *m, const char *url) {
    const char *path = strncmp(url, "file://", 7) == 0 ? url + 7 : url[0] == '/' ? url : NULL;
    struct stat st;
    if (!path || stat(path, &st) == 0)
        return 0;
    int e = errno;
    char where[160] = "this runner";
    if (m->runner_id[0])
        snprintf(where, sizeof where, "runner %s", m->runner_id);
    if (e == ENOENT || e == ENOTDIR)
        return am_err_set(AM_ENOTFOUND,
                          "repository %s: no such directory on %s; give the path of a git "
                          "repository on that runner",
                          url, where);
    return am_err_set(AM_EIO, "repository %s: cannot be read on %s: %s", url, where, strerror(e));
}

/* The egress policy (common/egress.h) as sandbox listeners: 0 none, 1 gateway, 2 + proxy;
 * -1 for a policy this runner does not know (refused, never run with more than asked). */
static int egress_listeners(const char *net) {
    if (!net || !*net || strcmp(net, "none") == 0 || strcmp(net, "host") == 0)
        return 0;
    if (strcmp(net, "models") == 0)
        return 1;
    if (strcmp(net, "allow") == 0)
        return 2;
    return -1;
}

void *am_pod_main(void *arg) {
    pod *p = arg;
    am_podmgr *m = p->mgr;
    const Airmesh__V1__CreatePod *cp = p->cp;
    am_egress_pod *egp = NULL;
    am_mcprelay_pod *mcp = NULL;
    meta_write(m, cp);
    set_state(p, "starting", NULL);
    int listeners = egress_listeners(cp->network);
    if (listeners < 0 || (listeners > 0 && !m->egress)) {
        char why[160];
        snprintf(why, sizeof why, "network \"%.32s\" is not supported by this runner", cp->network);
        set_state(p, "failed", why);
        goto done;
    }

    /* Limits: what CreatePod says, the defaults where it says 0 (sandbox.h). */
    const Airmesh__V1__PodLimits *lim = cp->limits;
#define LIMIT(field, dflt) (lim && lim->field ? lim->field : (dflt))
    am_wt_set_quota(LIMIT(workspace_bytes, AM_SBX_DEFAULT_WORKSPACE));
    if (am_sbx_idmap_unusable()[0]) { /* refused, with the reason (never run as host root) */
        set_state(p, "failed", am_sbx_idmap_unusable());
        goto done;
    }
    if (check_repo(m, cp->repo) != 0) {
        set_state(p, "failed", am_err_last());
        goto done;
    }
    am_wt_info wt;
    if (am_wt_create(m->data_dir, cp->repo, cp->base_ref, cp->branch, cp->pod_id, &wt) != 0) {
        set_state(p, "failed", am_err_last());
        goto done;
    }
    pthread_mutex_lock(&p->mu);
    snprintf(p->worktree, sizeof p->worktree, "%s", wt.path);
    snprintf(p->commit, sizeof p->commit, "%s", wt.commit);
    pthread_mutex_unlock(&p->mu);
    /* The agent preset's config files, in HOME before the command starts (homefiles.h: every
     * path checked here again, never a link followed). */
    if (cp->n_home_files &&
        am_pod_home_files_write(wt.home, cp->home_files, cp->n_home_files) != 0) {
        char why[600];
        snprintf(why, sizeof why, "%s", am_err_last());
        set_state(p, "failed", why);
        am_wt_remove(m->data_dir, cp->repo, cp->pod_id, cp->keep_worktree);
        goto done;
    }

    const char **env = calloc(cp->n_env + 3, sizeof *env);
    char **env_store = calloc(cp->n_env + 1, sizeof *env_store);
    int has_path = 0, has_mcp = 0;
    size_t ne = cp->n_env;
    for (size_t i = 0; env && env_store && i < cp->n_env; i++) {
        size_t l = strlen(cp->env[i]->key) + strlen(cp->env[i]->value) + 2;
        env_store[i] = malloc(l);
        if (env_store[i])
            snprintf(env_store[i], l, "%s=%s", cp->env[i]->key, cp->env[i]->value);
        env[i] = env_store[i];
        has_path |= strcmp(cp->env[i]->key, "PATH") == 0;
        has_mcp |= strcmp(cp->env[i]->key, AM_MCP_ENV_SOCKET) == 0;
    }
    if (env && pod_default_path_env() && !has_path)
        env[ne++] = pod_default_path_env(); /* agent CLIs first, airmesh-notify last */
    if (env && !has_mcp) /* where airmesh-mcp finds the pod's socket (common/mcp.h) */
        env[ne++] = AM_MCP_ENV_SOCKET "=" AM_MCP_SOCKET;
    const char **argv = calloc(cp->n_command + 1, sizeof *argv);
    for (size_t i = 0; argv && i < cp->n_command; i++)
        argv[i] = cp->command[i];
    /* The pod's own git dir read-write (index, HEAD, its branch, new objects); the mirror it
     * borrows objects from (objects/info/alternates) read-only. */
    const char *rw[] = {wt.gitdir, NULL};
    const char *ro[] = {wt.mirror[0] ? wt.mirror : NULL, NULL, NULL};
    if (am_pod_agents_dir()[0])
        ro[ro[0] ? 1 : 0] = am_pod_agents_dir(); /* the agent CLIs, read-only (--agents-dir) */
    /* The pod tools, read-only in /opt/airmesh/bin: airmesh-notify, airmesh-mcp. */
    const char *tools[5] = {NULL};
    size_t nt = 0;
    if (am_pod_notify_bin()[0]) {
        tools[nt++] = am_pod_notify_bin();
        tools[nt++] = AM_POD_NOTIFY_PATH;
    }
    if (am_pod_mcp_bin()[0]) {
        tools[nt++] = am_pod_mcp_bin();
        tools[nt++] = AM_MCP_BIN;
    }
    am_sbx_opts o = {.argv = argv,
                     .ro_binds_to = nt ? tools : NULL,
                     .env = env,
                     .workspace = wt.path,
                     .ro_binds = ro[0] ? ro : NULL,
                     .rw_binds = wt.gitdir[0] ? rw : NULL,
                     .network_none = !cp->network || strcmp(cp->network, "host") != 0,
                     .egress_listeners = listeners,
                     .memory_bytes = LIMIT(memory_bytes, AM_SBX_DEFAULT_MEMORY),
                     .pids_max = LIMIT(pids, AM_SBX_DEFAULT_PIDS),
                     .cpu_millis = LIMIT(cpu_millis, AM_SBX_DEFAULT_CPU_MILLIS),
                     .tmp_bytes = LIMIT(tmp_bytes, AM_SBX_DEFAULT_TMP),
                     .shm_bytes = LIMIT(shm_bytes, AM_SBX_DEFAULT_SHM),
                     .cols = (uint16_t)(cp->cols ? cp->cols : 80),
                     .rows = (uint16_t)(cp->rows ? cp->rows : 24),
                     .hostname = cp->pod_id,
                     /* the command runs as `agent` (uid 1000), HOME = its own dir */
                     .as_agent = am_sbx_idmap_current()->agent_uid != 0,
                     .home = wt.home[0] ? wt.home : NULL};
#undef LIMIT
    am_sbx *sbx = NULL;
    uint64_t t_spawn = am_mono_ns();
    int rc = argv && env ? am_sbx_spawn(&o, &sbx) : am_err_set(AM_ENOMEM, "out of memory");
    am_log_debug("pod", "started", "pod=%s worktree_ms=%.1f spawn_ms=%.1f", cp->pod_id, wt.ms_total,
                 (double)(am_mono_ns() - t_spawn) / 1e6);
    for (size_t i = 0; env_store && i < cp->n_env; i++)
        free(env_store[i]);
    free(env_store);
    free(env);
    free(argv);
    if (rc) {
        set_state(p, "failed", am_err_last());
        am_wt_remove(m->data_dir, cp->repo, cp->pod_id, cp->keep_worktree);
        goto done;
    }
    if (listeners > 0) {
        int gw = -1, px = -1;
        am_sbx_take_listeners(sbx, &gw, &px);
        if (am_egress_pod_start(m->egress, cp->pod_id, gw, px, cp->egress_allow,
                                listeners > 1 ? cp->n_egress_allow : 0, &egp) != 0) {
            char why[512];
            snprintf(why, sizeof why, "%s", am_err_last());
            am_sbx_free(sbx);
            set_state(p, "failed", why);
            am_wt_remove(m->data_dir, cp->repo, cp->pod_id, cp->keep_worktree);
            goto done;
        }
    }
    /* The pod's MCP socket: served by the relay (a pod without one still runs; airmesh-mcp
     * inside it then says the socket is not answered). */
    int mfd = am_sbx_take_mcp_listener(sbx);
    if (m->mcp && mfd >= 0) {
        if (am_mcprelay_pod_start(m->mcp, cp->pod_id, mfd, &mcp) != 0)
            am_log_warn("pod", "no MCP relay for the pod", "pod=%s error=\"%s\"", cp->pod_id,
                        am_err_last());
    } else if (mfd >= 0) {
        close(mfd);
    }
    pthread_mutex_lock(&p->mu);
    p->sbx = sbx;
    snprintf(p->limits_note, sizeof p->limits_note, "%s", am_sbx_limits_note(sbx));
    int stop_early = p->stop_requested;
    pthread_mutex_unlock(&p->mu);
    rec_open(p);
    set_state(p, "running", NULL);

    int fd = am_sbx_pty_fd(sbx), exited = 0, code = 0, sig = 0, stopping = stop_early;
    am_pod_agent_start(p);
    if (stop_early)
        am_sbx_stop(sbx, (int)p->stop_grace_ms);
    /* CreatePod.initial_input (an agent's initial prompt it takes no argument for): typed once
     * the command looks ready — it has printed something and then been quiet for 1.5 s — or 30 s
     * after start at the latest. */
    uint64_t t_run = am_mono_ns() / 1000000, t_out = 0;
    int typed = cp->initial_input.len == 0;
    while (!exited) {
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {p->wake_fd, POLLIN, 0}};
        poll(pf, 2, 200);
        if (pf[0].revents & POLLIN) {
            pump_output(p, fd);
            t_out = am_mono_ns() / 1000000;
        }
        uint64_t now_ms = am_mono_ns() / 1000000;
        if (!typed && ((t_out && now_ms - t_out >= 1500) || now_ms - t_run >= 30000)) {
            typed = 1;
            if (am_podmgr_input(m, cp->pod_id, cp->initial_input.data, cp->initial_input.len) != 0)
                am_log_warn("pod", "initial prompt not typed", "pod=%s error=\"%s\"", cp->pod_id,
                            am_err_last());
        }
        am_pod_agent_tick(p); /* the quiet fallback */
        if (pf[1].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(p->wake_fd, &v, sizeof v);
            (void)r;
        }
        pthread_mutex_lock(&p->mu);
        int want_stop = p->stop_requested && !stopping;
        uint32_t grace = p->stop_grace_ms;
        pthread_mutex_unlock(&p->mu);
        if (want_stop) {
            stopping = 1;
            am_sbx_stop(sbx, (int)grace);
        }
        if (am_sbx_wait(sbx, 0, &code, &sig) == 0) {
            pump_output(p, fd); /* what is still buffered in the PTY */
            exited = 1;
        } else if (pf[0].revents & (POLLHUP | POLLERR) && !(pf[0].revents & POLLIN)) {
            /* Every holder of the slave closed it: the command is ending. */
            am_sbx_wait(sbx, 5000, &code, &sig);
            exited = 1;
        }
    }
    am_egress_pod_stop(egp); /* the pod is gone: its listeners and connections too */
    egp = NULL;
    am_mcprelay_pod_stop(mcp);
    mcp = NULL;
    rec_close(p);
    char why[192];
    snprintf(why, sizeof why, "%s", am_sbx_end_reason(sbx)); /* e.g. the memory limit */
    pthread_mutex_lock(&p->mu);
    p->exit_code = code;
    p->sbx = NULL;
    pthread_mutex_unlock(&p->mu);
    am_sbx_free(sbx);
    /* The branch comes back (or is refused) before the final state, which carries the refusal
     * as its reason: the appliance records it with the pod's end (and ignores later updates). */
    char wt_err[512] = "";
    if (am_wt_remove(m->data_dir, cp->repo, cp->pod_id, cp->keep_worktree) != 0) {
        snprintf(wt_err, sizeof wt_err, "%s", am_err_last());
        am_log_warn("pod", "worktree removal failed", "pod=%s error=\"%s\"", cp->pod_id, wt_err);
    }
    /* The recording goes up before the final state: once the appliance says the pod ended,
     * its recording is there (pod wait, then download, never races). */
    am_pod_upload_recording(p);
    char reason[sizeof why + sizeof wt_err + 2];
    snprintf(reason, sizeof reason, "%s%s%s", why, why[0] && wt_err[0] ? "; " : "", wt_err);
    if (stopping)
        set_state(p, "stopped", reason[0] ? reason : NULL);
    else if (why[0] && code != 0)
        set_state(p, "failed", reason); /* "memory limit 2 GiB reached (…)" */
    else
        set_state(p, "exited", reason[0] ? reason : NULL);
done:
    meta_remove(m, cp->pod_id);
    OPENSSL_thread_stop(); /* the mirror hash (EVP) left per-thread state: free it now */
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}
