/*
 * runner/sandbox — start one pod's command on a PTY inside Linux namespaces + seccomp.
 *
 * What it owns: the pod's init process (pid 1 of a fresh pid namespace), the PTY master, the
 * pidfd of init and the pod's cgroup directories (if any). am_sbx_free() releases all of them and
 * kills the pod if it is still running.
 *
 * Threads: one thread per am_sbx; different am_sbx objects may be used from different threads.
 * The child is started with PR_SET_PDEATHSIG=SIGKILL, so the thread that called am_sbx_spawn()
 * must outlive the pod (if that thread exits, the kernel kills the pod).
 *
 * The exact sequence (runner/sandbox/setup.c follows it line by line; every failure is reported
 * to the caller as "sandbox: <step>: <strerror(errno)>" through a CLOEXEC pipe, except the exec
 * of the command, which reads "command 'x' not found in the pod's PATH (<PATH>); ...",
 * "command 'x' not found in the pod (...)" or "command 'x' is not executable in the pod ..."):
 *
 *   parent: build env, seccomp BPF, PTY pair, pipes, the listener socketpair,
 *           cgroup dirs (v2 if delegated, else v1 when
 *           writable, else "not applied"); clone(NEWUSER|NEWPID|NEWNS|NEWIPC|NEWUTS[|NEWNET])
 *   parent: write the uid/gid maps (idmap.c: a root runner maps pod 0..65535 to an unprivileged
 *           host range, default 100000..165535; never host uid 0); move the child into the
 *           cgroups; send the "go" byte
 *   init:   wait for "go"; keep only fds 0-2 (PTY slave), 3 (report pipe) and 4 (listener
 *           socketpair); open the
 *           caller's bind sources (O_PATH, still with the runner's ids); drop the runner's
 *           supplementary groups, setresgid/setresuid(0) = pod root, PDEATHSIG again (the
 *           credential change cleared it); unshare(NEWCGROUP)
 *   init:   make / rprivate; tmpfs on /tmp (the base); pivot_root(base, base/oldroot)
 *   init:   tmpfs /newroot; read-only recursive nosuid/nodev binds of /usr, /bin, /sbin, /lib,
 *           /lib64 (symlinks recreated as symlinks), selected /etc files, a minimal /etc/passwd
 *           and /etc/group of the pod's own (root, agent, nobody; the host's names stay out),
 *           the caller's ro_binds, ro_binds_to and rw_binds (through /proc/self/fd of the
 *           O_PATH fds), the caller's home dir read-write at /home/agent;
 *           workspace read-write at /workspace; tmpfs /tmp (1777, size-limited); /dev = small
 *           tmpfs with null, zero, full, random, urandom, tty bound from the host, the PTY slave
 *           as /dev/console, a new devpts instance, ptmx symlink, /dev/shm (size-limited), then
 *           /dev itself read-only; fresh /proc with /proc/sys, sysrq-trigger, irq, bus, fs
 *           read-only and the paths runc masks (kcore, keys, timer_list, sched_debug, acpi, …)
 *           masked; every mount the pod can write is nosuid,nodev
 *   init:   network none: bring lo up (SIOCSIFFLAGS); the MCP socket (every pod): mkdir
 *           /run/airmesh (0755, pod root's) in the root tmpfs, bind + listen an AF_UNIX socket
 *           at /run/airmesh/mcp.sock (0666); with egress listeners (network models / allow):
 *           socket + bind + listen on 127.0.0.1:4000 (the model gateway) and, for allow,
 *           127.0.0.1:3128 (the CONNECT proxy) inside the pod's netns; send them all to the
 *           parent over the socketpair made before clone (fd 4, SCM_RIGHTS), close the pod's
 *           copies and fd 4 (nothing in the pod can accept() on them); sethostname
 *   init:   umount old root (detach); pivot_root(/newroot); detach the base; / read-only
 *   init:   chdir /workspace; rlimits (nproc, nofile, core=0; as only without a memory
 *           cgroup); no_new_privs; drop the capability bounding set and ambient set, lock the
 *           securebits; with as_agent: setgroups(0), setresgid/setresuid(1000) = `agent` (init
 *           too, so that it may still signal the command); PDEATHSIG again; capset(0); seccomp
 *           filter (allow list, seccomp.c)
 *   init:   fork the command: setsid, TIOCSCTTY on the PTY, execvp with the caller's env only
 *   init:   close the report pipe (the parent sees EOF = exec happened; it then receives the
 *           listeners from its end of the socketpair: am_sbx_take_mcp_listener,
 *           am_sbx_take_listeners), reap zombies, forward
 *           SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the command's process group, exit
 *           with the command's exit code (128+N if it died of signal N)
 *
 * Stop: SIGTERM to init (forwarded to the command), wait up to grace, then SIGKILL init, which
 * makes the kernel kill every process of the pid namespace.
 */
#ifndef AM_RUNNER_SANDBOX_H
#define AM_RUNNER_SANDBOX_H

#include <stdint.h>
#include <sys/types.h>

/* Default limits (a pod whose CreatePod leaves a limit at 0 gets these). */
#define AM_SBX_DEFAULT_MEMORY (2ull << 30) /* 2 GiB: processes + the pod's tmpfs pages */
#define AM_SBX_DEFAULT_CPU_MILLIS 2000u    /* 2 cores */
#define AM_SBX_DEFAULT_PIDS 512u
#define AM_SBX_DEFAULT_TMP (256ull << 20)     /* /tmp */
#define AM_SBX_DEFAULT_SHM (64ull << 20)      /* /dev/shm */
#define AM_SBX_DEFAULT_WORKSPACE (1ull << 30) /* /workspace changes + the pod's git dir */

/* The unprivileged user a pod's command runs as with am_sbx_opts.as_agent (agent CLIs refuse
 * their unattended modes as uid 0): pod uid/gid 1000, named `agent` in the pod's /etc/passwd,
 * HOME /home/agent. With the default map that is host uid 101000. */
#define AM_SBX_AGENT_UID 1000u
#define AM_SBX_AGENT_GID 1000u
#define AM_SBX_AGENT_HOME "/home/agent"

/* Host ids the pods' ids map to (see idmap.c). Process-wide. */
typedef struct {
    uint32_t uid, gid; /* first host uid/gid of the range (pod uid 0, or 1 with helpers) */
    uint32_t count;    /* ids mapped (65536 by default); 0 = only pod 0 -> pod_root_uid */
    uint32_t pod_root_uid, pod_root_gid; /* host ids of pod root: own the pod's writable dirs */
    int helpers; /* 1: maps written by newuidmap/newgidmap (unprivileged runner) */
    /* Host ids of pod uid/gid AM_SBX_AGENT_UID (root runner with count > 1000; they own the
     * pods' writable dirs when pods run as agent). 0 = no agent user on this runner (an
     * unprivileged runner cannot chown to its subordinate ids): commands run as pod root. */
    uint32_t agent_uid, agent_gid;
    char desc[160]; /* "pod 0..65535 -> host 100000..165535" */
} am_sbx_idmap;

/* Once at startup, before threads: spec NULL or "auto" = defaults, else "BASE:COUNT" (root
 * runner only). -AM_EINVAL with the reason for a bad spec. */
int am_sbx_idmap_setup(const char *spec);
const am_sbx_idmap *am_sbx_idmap_current(void);
/* "" when pods can start with the mapping, else why not (set by a failed setup: -AM_EIO). */
const char *am_sbx_idmap_unusable(void);
/* A user namespace carrying the mapping (root runner; for idmapped mounts), or -1. */
int am_sbx_idmap_userns_fd(void);
/* A user namespace mapping uid/gid 0 to the agent's host ids only (root runner with an agent
 * user): an idmapped mount through it shows root's files as the agent's. -1 if none. */
int am_sbx_idmap_agent_userns_fd(void);

typedef struct {
    const char *const *argv; /* command; argv[0] looked up in PATH inside the sandbox */
    const char *const *env;  /* NULL-terminated "K=V"; TERM/HOME/PATH/USER/LOGNAME defaults
                                added if absent */
    const char *workspace;   /* host dir bound read-write at /workspace (cwd); pod root
                                (am_sbx_idmap_current()->pod_root_uid) must be able to write it */
    const char *const
        *ro_binds; /* extra host paths bound read-only at the same path; may be NULL */
    const char *const *rw_binds; /* extra host paths bound read-write at the same path (e.g. the git
                                    dir a worktree's .git file points to); may be NULL */
    int network_none;            /* 1: new net ns with only lo; 0: host network */
    int egress_listeners;        /* with network_none: 1 = listen on the gateway address
                                    (common/egress.h) in the pod's netns, 2 = also the CONNECT
                                    proxy; 0 = none. Take them with am_sbx_take_listeners. */
    uint64_t memory_bytes;       /* 0 = no limit */
    uint32_t pids_max;           /* 0 = default 512 */
    uint32_t cpu_millis;         /* 0 = no limit; 1000 = one core */
    uint64_t tmp_bytes;          /* size of the /tmp tmpfs; 0 = AM_SBX_DEFAULT_TMP */
    uint64_t shm_bytes;          /* size of the /dev/shm tmpfs; 0 = AM_SBX_DEFAULT_SHM */
    int test_no_seccomp;         /* TESTS ONLY: no seccomp filter (the probe's control run) */
    uint16_t cols, rows;         /* initial PTY size */
    const char *hostname;        /* uts hostname, e.g. "pod-1234"; NULL = "pod" */
    int as_agent;     /* 1: init and the command drop from pod root to AM_SBX_AGENT_UID/GID
                         after setup (needs am_sbx_idmap_current()->agent_uid); 0: pod root */
    const char *home; /* host dir bound read-write at /home/agent (HOME of an agent command;
                         owned by the agent's host ids); NULL: no home, HOME defaults to /tmp */
    /* pairs: host path, pod path, ..., NULL: bound read-only at the pod path (e.g.
     * airmesh-notify at /opt/airmesh/bin/airmesh-notify); may be NULL */
    const char *const *ro_binds_to;
} am_sbx_opts;

typedef struct am_sbx am_sbx;

/* Returns when the command has been exec'd (or failed, with the step in am_err_last()). */
int am_sbx_spawn(const am_sbx_opts *o, am_sbx **out);
/* Master side of the PTY, non-blocking, O_CLOEXEC: read output / write input. Owned by s. */
int am_sbx_pty_fd(const am_sbx *s);
/* Host pid of the pod's init. */
pid_t am_sbx_pid(const am_sbx *s);
/* Set the PTY window size (the command gets SIGWINCH). */
int am_sbx_resize(am_sbx *s, uint16_t cols, uint16_t rows);
/* SIGTERM, wait up to grace_ms, then SIGKILL the whole pid namespace. 0 once init is reaped. */
int am_sbx_stop(am_sbx *s, int grace_ms);
/* 0 when exited (exit_code = command's code, 128+N if it died of signal N; signal_no = the
 * signal that killed init itself, e.g. 9 after a forced stop, else 0); -AM_ESTATE on timeout.
 * timeout_ms < 0 waits forever. Either out pointer may be NULL. */
int am_sbx_wait(am_sbx *s, int timeout_ms, int *exit_code, int *signal_no);
/* "" when every requested limit is applied, else which limits were not (and why). */
const char *am_sbx_limits_note(const am_sbx *s);
/* After am_sbx_wait returned 0: "" or why the pod ended besides its command, e.g.
 * "memory limit 2 GiB reached (the kernel killed 1 process)". */
const char *am_sbx_end_reason(const am_sbx *s);
/* The listening sockets made in the pod's netns (egress_listeners): ownership moves to the
 * caller (CLOEXEC, blocking). -1 for one not requested or already taken. */
void am_sbx_take_listeners(am_sbx *s, int *gateway_fd, int *proxy_fd);
/* The pod's listening MCP socket (AM_MCP_SOCKET in common/mcp.h; every pod has one, whatever
 * its network): ownership moves to the caller (CLOEXEC, blocking). -1 once taken. */
int am_sbx_take_mcp_listener(am_sbx *s);
/* Kills the pod if still running, reaps it, removes its cgroups, closes fds. NULL is fine. */
void am_sbx_free(am_sbx *s);

#endif
