/*
 * runner/sandbox/seccomp.c — the pod's seccomp filter, built with libseccomp in the parent and
 * exported as raw BPF so the child only has to call prctl(PR_SET_SECCOMP) (no allocation there).
 *
 * Policy: default allow; EPERM for syscalls that administer the kernel, mounts, namespaces,
 * other processes' memory, keys and modules (list below); EPERM for clone() with any CLONE_NEW*
 * flag; ENOSYS for clone3() (its flags sit behind a pointer seccomp cannot read, so libc falls
 * back to clone()); EPERM for ioctl TIOCSTI/TIOCLINUX (typing into a terminal). Syscalls of
 * other ABIs (i386, x32) kill the process (libseccomp's bad-arch default).
 *
 * Ownership: sbx_seccomp_build() returns a malloc'd filter in out->filter; the caller frees it.
 * Thread-safe (no shared state).
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/sandbox/internal.h"

static const char *const k_denied[] = {"mount",
                                       "umount2",
                                       "pivot_root",
                                       "chroot",
                                       "fsopen",
                                       "fsconfig",
                                       "fsmount",
                                       "fspick",
                                       "move_mount",
                                       "open_tree",
                                       "mount_setattr",
                                       "ptrace",
                                       "process_vm_readv",
                                       "process_vm_writev",
                                       "bpf",
                                       "perf_event_open",
                                       "kexec_load",
                                       "kexec_file_load",
                                       "init_module",
                                       "finit_module",
                                       "delete_module",
                                       "keyctl",
                                       "add_key",
                                       "request_key",
                                       "userfaultfd",
                                       "unshare",
                                       "setns",
                                       "reboot",
                                       "swapon",
                                       "swapoff",
                                       "open_by_handle_at",
                                       "name_to_handle_at",
                                       "acct",
                                       "quotactl",
                                       "syslog",
                                       "lookup_dcookie",
                                       "iopl",
                                       "ioperm",
                                       "personality",
                                       "uselib",
                                       "settimeofday",
                                       "clock_settime",
                                       "clock_adjtime",
                                       "adjtimex",
                                       "vhangup",
                                       "nfsservctl",
                                       "pidfd_getfd",
                                       NULL};

static const unsigned long k_clone_ns_flags[] = {CLONE_NEWNS,     CLONE_NEWUTS, CLONE_NEWIPC,
                                                 CLONE_NEWUSER,   CLONE_NEWPID, CLONE_NEWNET,
                                                 CLONE_NEWCGROUP, CLONE_NEWTIME};

static int fail(scmp_filter_ctx ctx, int rc, const char *what) {
    seccomp_release(ctx);
    return am_err_set(AM_EIO, "sandbox: seccomp %s: %s", what, strerror(rc < 0 ? -rc : rc));
}

int sbx_seccomp_build(struct sock_fprog *out) {
    memset(out, 0, sizeof *out);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return am_err_set(AM_ENOMEM, "sandbox: seccomp_init failed");
    int rc;
    for (const char *const *name = k_denied; *name; name++) {
        int nr = seccomp_syscall_resolve_name(*name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to this libseccomp or arch */
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0)
            return fail(ctx, rc, *name);
    }
    /* clone(flags, ...): flags is argument 0 on x86_64 and aarch64. One rule per flag. */
    for (size_t i = 0; i < sizeof k_clone_ns_flags / sizeof k_clone_ns_flags[0]; i++) {
        scmp_datum_t f = k_clone_ns_flags[i];
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                   SCMP_A0(SCMP_CMP_MASKED_EQ, f, f))) < 0)
            return fail(ctx, rc, "clone rule");
    }
    int clone3 = seccomp_syscall_resolve_name("clone3");
    if (clone3 != __NR_SCMP_ERROR &&
        (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 0)) < 0)
        return fail(ctx, rc, "clone3 rule");
    /* ioctl's request is an int in userspace: compare the low 32 bits only. */
    const scmp_datum_t reqs[] = {TIOCSTI, TIOCLINUX};
    for (size_t i = 0; i < 2; i++)
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                   SCMP_A1(SCMP_CMP_MASKED_EQ, 0xFFFFFFFFu, reqs[i]))) < 0)
            return fail(ctx, rc, "ioctl rule");

    /* Export to a memfd and read it back: libseccomp 2.5 only exports to an fd. */
    int fd = memfd_create("am-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return fail(ctx, errno, "memfd_create");
    if ((rc = seccomp_export_bpf(ctx, fd)) < 0) {
        close(fd);
        return fail(ctx, rc, "export");
    }
    seccomp_release(ctx);
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size % sizeof(struct sock_filter)) {
        close(fd);
        return am_err_set(AM_EIO, "sandbox: seccomp export: bad size");
    }
    struct sock_filter *f = malloc((size_t)st.st_size);
    if (!f) {
        close(fd);
        return am_err_set(AM_ENOMEM, "sandbox: seccomp: out of memory");
    }
    ssize_t n = pread(fd, f, (size_t)st.st_size, 0);
    close(fd);
    if (n != st.st_size) {
        free(f);
        return am_err_set(AM_EIO, "sandbox: seccomp export: short read");
    }
    out->filter = f;
    out->len = (unsigned short)(st.st_size / sizeof(struct sock_filter));
    return 0;
}
