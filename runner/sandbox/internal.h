/*
 * runner/sandbox/internal.h — what the sandbox's files share and nobody else sees: the plan the
 * parent prepares for the child (so the child never allocates), the report the child sends back,
 * and the per-file entry points. Not installed; include only from the .c files of runner/sandbox.
 */
#ifndef AM_RUNNER_SANDBOX_INTERNAL_H
#define AM_RUNNER_SANDBOX_INTERNAL_H

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Everything the child needs, prepared by the parent before clone(). The child reads it from its
 * copy-on-write copy of the parent's memory and must not allocate (the parent may be
 * multi-threaded, so malloc's locks may be held by a thread that does not exist in the child). */
typedef struct {
    char *const *argv;
    char *const *envp;
    const char *workspace; /* absolute host path */
    const char *const *ro_binds;
    const char *const *rw_binds;
    const char *const *ro_binds_to; /* pairs: host path, pod path */
    const char *hostname;
    const char *home; /* host dir for /home/agent, or NULL */
    int as_agent;     /* drop to AM_SBX_AGENT_UID/GID before capset(0) */
    int network_none;
    uint64_t rlimit_as;            /* RLIMIT_AS, set only when no memory cgroup applies; 0 = none */
    uint64_t tmp_bytes, shm_bytes; /* tmpfs sizes of /tmp and /dev/shm */
    uint32_t pids_max;
    int no_seccomp;            /* tests only (am_sbx_opts.test_no_seccomp) */
    struct sock_fprog seccomp; /* exported by sbx_seccomp_build() */
    const char *pty_name;      /* host path of the PTY slave, bound at /dev/console */
    int slave_fd;              /* PTY slave: becomes 0, 1, 2 */
    int report_fd;             /* write end of the report pipe (CLOEXEC): becomes 3 */
    int go_fd;                 /* read end of the "go" pipe */
    int listener_fd;           /* child end of the listener socketpair (becomes 4; always) */
    int egress_gateway;        /* 1: also the model gateway listener (network "models"/"allow") */
    int egress_proxy;          /* 1: also the CONNECT proxy listener (network "allow") */
} sbx_plan;

/* What the child writes to the report pipe when a step fails (one write, < PIPE_BUF). */
typedef struct {
    int err;        /* errno of the failing call */
    char what[500]; /* the step, e.g. "pivot_root /newroot" */
} sbx_report;

#define SBX_REPORT_FD 3
#define SBX_LISTENER_FD 4 /* the listener socketpair (MCP socket, egress), while setup runs */

/* idmap.c: write the pod's uid/gid maps (directly as root, else newuidmap/newgidmap). */
int sbx_idmap_write(pid_t pid);
/* Write val to an existing file (procfs, cgroupfs); -AM_EIO with the path named. */
int sbx_write_file(const char *path, const char *val);

/* setup.c: the child side; never returns. */
__attribute__((noreturn)) void sbx_child_main(const sbx_plan *p);

/* seccomp.c: build the filter and export it as BPF into *out (out->filter malloc'd). */
int sbx_seccomp_build(struct sock_fprog *out);
/* The same filter, built once per process and shared (do not free out->filter). */
int sbx_seccomp_get(struct sock_fprog *out);
/* The names the filter allows without argument checks (NULL-terminated; for tests). */
extern const char *const sbx_seccomp_allowed[];

/* pty.c */
int sbx_pty_open(uint16_t cols, uint16_t rows, int *master, int *slave, char *name, size_t cap);
int sbx_pty_resize(int master, uint16_t cols, uint16_t rows);

/* cgroup.c: limits for one pod. */
typedef struct {
    char dirs[3][600]; /* created cgroup dirs (v2: one; v1: one per controller), "" = unused */
    char note[512];    /* what could not be applied */
    int mem_slot;      /* index in dirs of the memory cgroup, -1 = memory limit not applied */
    int mem_v2;        /* that dir is cgroup v2 (memory.events) rather than v1 (oom_control) */
} sbx_cgroup;
void sbx_cgroup_create(sbx_cgroup *cg, uint64_t memory_bytes, uint32_t pids_max,
                       uint32_t cpu_millis);
int sbx_cgroup_attach(sbx_cgroup *cg, pid_t pid);
/* How many processes the kernel's OOM killer killed in the pod's memory cgroup (0 if none or
 * no memory cgroup). Call before sbx_cgroup_destroy. */
uint64_t sbx_cgroup_oom_kills(const sbx_cgroup *cg);
void sbx_cgroup_destroy(sbx_cgroup *cg);

#endif
