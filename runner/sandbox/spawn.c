/*
 * runner/sandbox/spawn.c — the parent side of a sandbox: prepare the plan, clone the pod's init
 * into new namespaces, write its uid/gid maps and cgroups, wait for "exec'd or failed", and later
 * resize, stop, wait for and free it.
 *
 * Why a raw clone(2) without a new stack: it has fork() semantics (the child gets a copy of our
 * stack) while taking the namespace flags, so init is pid 1 of the new pid namespace and our
 * child (we can wait for it). It also skips libc/ASan atfork handlers; the child (setup.c) never
 * allocates, so locks held by other threads at clone time do not matter.
 *
 * Ownership: am_sbx owns the PTY master, the pidfd of init and the cgroup dirs; am_sbx_free()
 * releases all. Threads: one thread per am_sbx (see sandbox.h for the PDEATHSIG caveat).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "runner/sandbox/internal.h"
#include "runner/sandbox/sandbox.h"

#define SBX_SETUP_TIMEOUT_MS 10000

struct am_sbx {
    pid_t pid;
    int pidfd;
    int master;
    int reaped;
    int status;
    int gw_fd, proxy_fd; /* egress listeners from the pod's netns, until taken */
    int mcp_fd;          /* the pod's MCP socket (common/mcp.h), until taken */
    uint64_t memory_bytes;
    char end_reason[160];
    sbx_cgroup cg;
};

/* "2 GiB", "512 MiB", "1234 bytes" */
static void human_bytes(uint64_t b, char *out, size_t cap) {
    if (b && b % (1ull << 30) == 0)
        snprintf(out, cap, "%llu GiB", (unsigned long long)(b >> 30));
    else if (b && b % (1ull << 20) == 0)
        snprintf(out, cap, "%llu MiB", (unsigned long long)(b >> 20));
    else
        snprintf(out, cap, "%llu bytes", (unsigned long long)b);
}

/* ---- env ------------------------------------------------------------------------------------- */

static int has_key(const char *const *env, const char *key) {
    size_t n = strlen(key);
    for (const char *const *e = env; e && *e; e++)
        if (strncmp(*e, key, n) == 0 && (*e)[n] == '=')
            return 1;
    return 0;
}

/* The caller's env plus defaults for TERM, HOME, PATH, USER and LOGNAME (who the command runs
 * as: `agent` with its home, or pod root). Only the pointer array is allocated. */
static char **build_env(const char *const *env, int as_agent, int has_home) {
    const char *const defaults[][2] = {
        {"TERM", "TERM=xterm-256color"},
        {"HOME", has_home ? "HOME=" AM_SBX_AGENT_HOME : "HOME=/tmp"},
        {"PATH", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"},
        {"USER", as_agent ? "USER=agent" : "USER=root"},
        {"LOGNAME", as_agent ? "LOGNAME=agent" : "LOGNAME=root"}};
    const size_t nd = sizeof defaults / sizeof defaults[0];
    size_t n = 0;
    while (env && env[n])
        n++;
    char **out = calloc(n + nd + 1, sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        out[k++] = (char *)env[i];
    for (size_t i = 0; i < nd; i++)
        if (!has_key(env, defaults[i][0]))
            out[k++] = (char *)defaults[i][1];
    out[k] = NULL;
    return out;
}

/* ---- parent-side steps ------------------------------------------------------------------------
 */

/* The exec of the command failed: say so in the user's terms, from the pod's own view (the
 * PATH execvp searched inside the sandbox, the errno it got there), instead of "execvp x: No
 * such file or directory". Other errnos keep the step and strerror. */
static int exec_fail(const char *argv0, char *const *envp, int err) {
    const char *path = "";
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0) {
            path = envp[i] + 5;
            break;
        }
    int slash = strchr(argv0, '/') != NULL;
    if (err == ENOENT && !slash)
        return am_err_set(AM_ENOTFOUND,
                          "command '%s' not found in the pod's PATH (%s); install it on the "
                          "runner or give its full path",
                          argv0, path);
    if (err == ENOENT)
        return am_err_set(AM_ENOTFOUND,
                          "command '%s' not found in the pod (no such file, or its #! "
                          "interpreter is missing)",
                          argv0);
    if (err == EACCES)
        return am_err_set(AM_EINVAL,
                          "command '%s' is not executable in the pod (permission denied); "
                          "make it executable (chmod +x) or run it through its interpreter",
                          argv0);
    return am_err_set(AM_EIO, "command '%s' could not be started in the pod: %s", argv0,
                      strerror(err));
}

/* Read the child's report pipe until EOF (exec happened) or a sbx_report (a step failed). */
static int await_exec(int report_rd, const char *argv0, char *const *envp) {
    sbx_report r;
    size_t got = 0;
    uint64_t deadline = am_mono_ns() / 1000000 + SBX_SETUP_TIMEOUT_MS;
    for (;;) {
        uint64_t now = am_mono_ns() / 1000000;
        if (now >= deadline)
            return am_err_set(AM_EIO, "sandbox: setup timed out after %d ms", SBX_SETUP_TIMEOUT_MS);
        struct pollfd pfd = {report_rd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            return am_err_set(AM_EIO, "sandbox: poll report pipe: %s", strerror(errno));
        if (pr == 0)
            continue;
        ssize_t n = read(report_rd, (char *)&r + got, sizeof r - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return am_err_set(AM_EIO, "sandbox: read report pipe: %s", strerror(errno));
        if (n == 0) {
            if (got == 0)
                return 0; /* EOF with nothing said: the command was exec'd */
            return am_err_set(AM_EIO, "sandbox: setup failed (truncated report)");
        }
        got += (size_t)n;
        if (got == sizeof r) {
            r.what[sizeof r.what - 1] = '\0';
            if (strncmp(r.what, "execvp ", 7) == 0)
                return exec_fail(argv0, envp, r.err);
            return am_err_set(AM_EIO, "sandbox: %s: %s", r.what, strerror(r.err));
        }
    }
}

/* The listeners the child sent over the socketpair before it exec'd (so the message is there
 * once await_exec saw EOF): the MCP socket, then the egress ones asked for (0, 1 or 2). */
static int receive_listeners(am_sbx *s, int fd, int egress) {
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 3)];
    } u;
    char byte = 0;
    struct iovec iov = {&byte, 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = sizeof u.buf;
    ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n != 1)
        return am_err_set(AM_EIO, "sandbox: receive the pod's listeners: %s",
                          n < 0 ? strerror(errno) : "nothing was sent");
    int fds[3] = {-1, -1, -1};
    size_t got = 0;
    int want = 1 + egress;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            memcpy(fds, CMSG_DATA(c), (got > 3 ? 3 : got) * sizeof(int));
        }
    if ((int)got != want || (mh.msg_flags & MSG_CTRUNC)) {
        for (size_t i = 0; i < 3; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        return am_err_set(AM_EIO, "sandbox: receive the pod's listeners: got %zu of %d", got, want);
    }
    s->mcp_fd = fds[0];
    s->gw_fd = egress > 0 ? fds[1] : -1;
    s->proxy_fd = egress > 1 ? fds[2] : -1;
    return 0;
}

void am_sbx_take_listeners(am_sbx *s, int *gateway_fd, int *proxy_fd) {
    *gateway_fd = s->gw_fd;
    *proxy_fd = s->proxy_fd;
    s->gw_fd = s->proxy_fd = -1;
}

int am_sbx_take_mcp_listener(am_sbx *s) {
    int fd = s->mcp_fd;
    s->mcp_fd = -1;
    return fd;
}

/* ---- public API ------------------------------------------------------------------------------ */

int am_sbx_spawn(const am_sbx_opts *o, am_sbx **out) {
    *out = NULL;
    if (!o || !o->argv || !o->argv[0] || !o->workspace || !o->workspace[0])
        return am_err_set(AM_EINVAL, "sandbox: argv and workspace are required");
    int rc = 0;
    int go[2] = {-1, -1}, rep[2] = {-1, -1}, eg[2] = {-1, -1}, slave = -1;
    char ws[4096], pty_name[128];
    char **envp = NULL;
    sbx_plan plan;
    memset(&plan, 0, sizeof plan);
    am_sbx *s = calloc(1, sizeof *s);
    if (!s)
        return am_err_set(AM_ENOMEM, "sandbox: out of memory");
    s->pid = -1;
    s->pidfd = -1;
    s->master = -1;
    s->gw_fd = s->proxy_fd = s->mcp_fd = -1;

    /* Absolute workspace path (existence is checked by the child, which names the step). */
    if (o->workspace[0] == '/') {
        snprintf(ws, sizeof ws, "%s", o->workspace);
    } else {
        char cwd[2048];
        if (!getcwd(cwd, sizeof cwd)) {
            rc = am_err_set(AM_EIO, "sandbox: getcwd: %s", strerror(errno));
            goto fail;
        }
        if (snprintf(ws, sizeof ws, "%s/%s", cwd, o->workspace) >= (int)sizeof ws) {
            rc = am_err_set(AM_EINVAL, "sandbox: workspace path too long");
            goto fail;
        }
    }
    if (o->as_agent && !am_sbx_idmap_current()->agent_uid) {
        rc = am_err_set(AM_EINVAL,
                        "sandbox: no agent user on this runner (pod uid %u is not "
                        "mapped: %s)",
                        AM_SBX_AGENT_UID, am_sbx_idmap_current()->desc);
        goto fail;
    }
    if (!(envp = build_env(o->env, o->as_agent, o->home != NULL))) {
        rc = am_err_set(AM_ENOMEM, "sandbox: out of memory");
        goto fail;
    }
    if ((rc = sbx_seccomp_get(&plan.seccomp)) < 0)
        goto fail;
    if ((rc = sbx_pty_open(o->cols, o->rows, &s->master, &slave, pty_name, sizeof pty_name)) < 0)
        goto fail;
    if (pipe2(go, O_CLOEXEC) != 0 || pipe2(rep, O_CLOEXEC) != 0) {
        rc = am_err_set(AM_EIO, "sandbox: pipe2: %s", strerror(errno));
        goto fail;
    }
    if (o->egress_listeners && !o->network_none) {
        rc = am_err_set(AM_EINVAL, "sandbox: egress listeners need the pod's own network");
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, eg) != 0) {
        rc = am_err_set(AM_EIO, "sandbox: socketpair for the pod's listeners: %s", strerror(errno));
        goto fail;
    }
    sbx_cgroup_create(&s->cg, o->memory_bytes, o->pids_max ? o->pids_max : 512, o->cpu_millis);
    s->memory_bytes = o->memory_bytes;
    if (o->memory_bytes && s->cg.mem_slot < 0) {
        /* No memory cgroup: bound the address space instead, and say so. */
        plan.rlimit_as = o->memory_bytes;
        size_t n = strlen(s->cg.note);
        snprintf(s->cg.note + n, sizeof s->cg.note - n,
                 "; RLIMIT_AS (virtual memory) set to the memory limit instead");
    }
    if (strstr(s->cg.note, "pids: not applied")) {
        /* Pod root is an unprivileged host uid (idmap.c), so RLIMIT_NPROC still binds. */
        size_t n = strlen(s->cg.note);
        snprintf(s->cg.note + n, sizeof s->cg.note - n, "; RLIMIT_NPROC=%u still applies",
                 o->pids_max ? o->pids_max : 512);
    }

    plan.argv = (char *const *)o->argv;
    plan.envp = envp;
    plan.workspace = ws;
    plan.ro_binds = o->ro_binds;
    plan.rw_binds = o->rw_binds;
    plan.ro_binds_to = o->ro_binds_to;
    plan.hostname = o->hostname;
    plan.home = o->home;
    plan.as_agent = o->as_agent;
    plan.network_none = o->network_none;
    plan.tmp_bytes = o->tmp_bytes ? o->tmp_bytes : AM_SBX_DEFAULT_TMP;
    plan.shm_bytes = o->shm_bytes ? o->shm_bytes : AM_SBX_DEFAULT_SHM;
    plan.no_seccomp = o->test_no_seccomp;
    plan.pids_max = o->pids_max ? o->pids_max : 512;
    plan.pty_name = pty_name;
    plan.slave_fd = slave;
    plan.report_fd = rep[1];
    plan.go_fd = go[0];
    plan.listener_fd = eg[1];
    plan.egress_gateway = o->egress_listeners > 0;
    plan.egress_proxy = o->egress_listeners > 1;

    long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS;
    if (o->network_none)
        flags |= CLONE_NEWNET;
    pid_t pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0) {
        rc = am_err_set(AM_EIO, "sandbox: clone: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0)
        sbx_child_main(&plan); /* never returns */

    s->pid = pid;
    close(go[0]);
    close(rep[1]);
    close(slave);
    go[0] = rep[1] = slave = -1;
    if (eg[1] >= 0)
        close(eg[1]);
    eg[1] = -1;
    s->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (s->pidfd < 0) {
        rc = am_err_set(AM_EIO, "sandbox: pidfd_open: %s", strerror(errno));
        goto fail;
    }
    if ((rc = sbx_idmap_write(pid)) < 0)
        goto fail;
    sbx_cgroup_attach(&s->cg, pid);
    if (write(go[1], "g", 1) != 1) {
        rc = am_err_set(AM_EIO, "sandbox: write go byte: %s", strerror(errno));
        goto fail;
    }
    if ((rc = await_exec(rep[0], o->argv[0], envp)) < 0)
        goto fail;
    if ((rc = receive_listeners(s, eg[0],
                                o->egress_listeners > 1   ? 2
                                : o->egress_listeners > 0 ? 1
                                                          : 0)) < 0)
        goto fail;
    close(eg[0]);
    eg[0] = -1;
    close(go[1]);
    close(rep[0]);
    free(envp);
    *out = s;
    return 0;

fail:
    if (go[0] >= 0)
        close(go[0]);
    if (go[1] >= 0)
        close(go[1]);
    if (rep[0] >= 0)
        close(rep[0]);
    if (rep[1] >= 0)
        close(rep[1]);
    if (slave >= 0)
        close(slave);
    for (int i = 0; i < 2; i++)
        if (eg[i] >= 0)
            close(eg[i]);
    free(envp);
    am_sbx_free(s); /* kills and reaps the child if there is one; keeps the error message */
    return rc;
}

int am_sbx_pty_fd(const am_sbx *s) {
    return s->master;
}

pid_t am_sbx_pid(const am_sbx *s) {
    return s->pid;
}

const char *am_sbx_limits_note(const am_sbx *s) {
    return s->cg.note;
}

const char *am_sbx_end_reason(const am_sbx *s) {
    return s->end_reason;
}

int am_sbx_resize(am_sbx *s, uint16_t cols, uint16_t rows) {
    return sbx_pty_resize(s->master, cols, rows);
}

int am_sbx_wait(am_sbx *s, int timeout_ms, int *exit_code, int *signal_no) {
    if (s->pid < 0)
        return am_err_set(AM_ESTATE, "sandbox: not started");
    while (!s->reaped) {
        struct pollfd pfd = {s->pidfd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr < 0 && errno == EINTR)
            continue; /* the timeout restarts; good enough for callers */
        if (pr < 0)
            return am_err_set(AM_EIO, "sandbox: poll pidfd: %s", strerror(errno));
        if (pr == 0)
            return am_err_set(AM_ESTATE, "sandbox: pod %d still running", (int)s->pid);
        pid_t w = waitpid(s->pid, &s->status, WNOHANG);
        if (w == s->pid) {
            s->reaped = 1;
            uint64_t kills = sbx_cgroup_oom_kills(&s->cg);
            if (kills) {
                char hb[32];
                human_bytes(s->memory_bytes, hb, sizeof hb);
                snprintf(s->end_reason, sizeof s->end_reason,
                         "memory limit %s reached (the kernel killed %llu process%s)", hb,
                         (unsigned long long)kills, kills == 1 ? "" : "es");
            }
            sbx_cgroup_destroy(&s->cg);
        } else if (w < 0 && errno != EINTR) {
            return am_err_set(AM_EIO, "sandbox: waitpid %d: %s", (int)s->pid, strerror(errno));
        }
    }
    if (exit_code)
        *exit_code = WIFEXITED(s->status) ? WEXITSTATUS(s->status) : 128 + WTERMSIG(s->status);
    if (signal_no)
        *signal_no = WIFSIGNALED(s->status) ? WTERMSIG(s->status) : 0;
    return 0;
}

int am_sbx_stop(am_sbx *s, int grace_ms) {
    if (s->pid < 0)
        return am_err_set(AM_ESTATE, "sandbox: not started");
    if (s->reaped)
        return 0;
    if (grace_ms > 0) {
        /* init forwards SIGTERM to the command's process group. */
        if (syscall(SYS_pidfd_send_signal, s->pidfd, SIGTERM, NULL, 0) != 0 && errno != ESRCH)
            return am_err_set(AM_EIO, "sandbox: SIGTERM pod: %s", strerror(errno));
        if (am_sbx_wait(s, grace_ms, NULL, NULL) == 0)
            return 0;
    }
    /* SIGKILL of init: the kernel kills every process of the pid namespace. */
    if (syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0) != 0 && errno != ESRCH)
        return am_err_set(AM_EIO, "sandbox: SIGKILL pod: %s", strerror(errno));
    return am_sbx_wait(s, -1, NULL, NULL);
}

void am_sbx_free(am_sbx *s) {
    if (!s)
        return;
    if (s->pid > 0 && !s->reaped) {
        if (s->pidfd >= 0) {
            syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
            int st;
            while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
            }
        } else {
            kill(s->pid, SIGKILL);
            int st;
            while (waitpid(s->pid, &st, 0) < 0 && errno == EINTR) {
            }
        }
        s->reaped = 1;
    }
    sbx_cgroup_destroy(&s->cg);
    if (s->pidfd >= 0)
        close(s->pidfd);
    if (s->master >= 0)
        close(s->master);
    if (s->gw_fd >= 0)
        close(s->gw_fd);
    if (s->proxy_fd >= 0)
        close(s->proxy_fd);
    if (s->mcp_fd >= 0)
        close(s->mcp_fd);
    free(s);
}
