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
    const char *hostname;
    int network_none;
    uint64_t memory_bytes;
    uint32_t pids_max;
    struct sock_fprog seccomp; /* exported by sbx_seccomp_build() */
    const char *pty_name;      /* host path of the PTY slave, bound at /dev/console */
    int slave_fd;              /* PTY slave: becomes 0, 1, 2 */
    int report_fd;             /* write end of the report pipe (CLOEXEC): becomes 3 */
    int go_fd;                 /* read end of the "go" pipe */
} sbx_plan;

/* What the child writes to the report pipe when a step fails (one write, < PIPE_BUF). */
typedef struct {
    int err;        /* errno of the failing call */
    char what[500]; /* the step, e.g. "pivot_root /newroot" */
} sbx_report;

#define SBX_REPORT_FD 3

/* setup.c: the child side; never returns. */
__attribute__((noreturn)) void sbx_child_main(const sbx_plan *p);

/* seccomp.c: build the filter and export it as BPF into *out (out->filter malloc'd). */
int sbx_seccomp_build(struct sock_fprog *out);

/* pty.c */
int sbx_pty_open(uint16_t cols, uint16_t rows, int *master, int *slave, char *name, size_t cap);
int sbx_pty_resize(int master, uint16_t cols, uint16_t rows);

/* cgroup.c: limits for one pod. */
typedef struct {
    char dirs[3][600]; /* created cgroup dirs (v2: one; v1: one per controller), "" = unused */
    char note[512];    /* what could not be applied */
} sbx_cgroup;
void sbx_cgroup_create(sbx_cgroup *cg, uint64_t memory_bytes, uint32_t pids_max,
                       uint32_t cpu_millis);
int sbx_cgroup_attach(sbx_cgroup *cg, pid_t pid);
void sbx_cgroup_destroy(sbx_cgroup *cg);

#endif
