/*
 * runner/sandbox/seccomp.c — the pod's seccomp filter, built with libseccomp in the parent and
 * exported as raw BPF so the child only has to call prctl(PR_SET_SECCOMP) (no allocation there).
 *
 * Policy: an allow list modelled on moby's default profile (profiles/seccomp/default.json, the
 * entries a container without extra capabilities gets); everything else fails with EPERM, the
 * profile's default action. Differences from moby, all stricter: io_uring_setup/enter/register
 * are not allowed (io_uring bypasses syscall filtering for the operations it runs); ptrace,
 * process_vm_readv/writev (moby allows them on kernels >= 4.8) are not allowed; ioctl is
 * allowed except TIOCSTI and TIOCLINUX (typing into a terminal). Like moby: clone() only without
 * namespace flags (CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET), clone3 fails with
 * ENOSYS (its flags sit behind a pointer seccomp cannot read; libc then falls back to clone()),
 * personality() only with 0, PER_LINUX32, UNAME26, both, or the 0xffffffff query; socket() not
 * for AF_VSOCK. Not on the list, so denied: mount & the new mount API, umount, pivot_root,
 * chroot, unshare, setns, keyctl/add_key/request_key, *_module, kexec_*, reboot, swapon/off,
 * bpf, perf_event_open, userfaultfd, kcmp, pidfd_getfd, process_madvise, fanotify_init,
 * open_by_handle_at, quotactl, acct, syslog, iopl/ioperm, settimeofday/clock_settime (the
 * time-setting calls), sethostname/setdomainname, vhangup, mbind & co, lookup_dcookie, uselib,
 * nfsservctl, … Syscalls of other ABIs (i386, x32 on x86_64) kill the process.
 *
 * Names unknown to this libseccomp are skipped (they stay denied). sbx_seccomp_allowed lists
 * the allowed names for tests/unit/seccomp_test.c, which evaluates the exported BPF itself.
 *
 * Ownership: sbx_seccomp_build() returns a malloc'd filter in out->filter; the caller frees it.
 * Thread-safe (no shared state).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/sandbox/internal.h"

/* moby's unconditional allow list (minus io_uring_*), plus fchmodat2; the conditional ones
 * (clone, personality, socket, ioctl) are added with their argument checks below. */
const char *const sbx_seccomp_allowed[] = {"accept",
                                           "accept4",
                                           "access",
                                           "adjtimex",
                                           "alarm",
                                           "bind",
                                           "brk",
                                           "capget",
                                           "capset",
                                           "chdir",
                                           "chmod",
                                           "chown",
                                           "chown32",
                                           "clock_adjtime",
                                           "clock_adjtime64",
                                           "clock_getres",
                                           "clock_getres_time64",
                                           "clock_gettime",
                                           "clock_gettime64",
                                           "clock_nanosleep",
                                           "clock_nanosleep_time64",
                                           "close",
                                           "close_range",
                                           "connect",
                                           "copy_file_range",
                                           "creat",
                                           "dup",
                                           "dup2",
                                           "dup3",
                                           "epoll_create",
                                           "epoll_create1",
                                           "epoll_ctl",
                                           "epoll_ctl_old",
                                           "epoll_pwait",
                                           "epoll_pwait2",
                                           "epoll_wait",
                                           "epoll_wait_old",
                                           "eventfd",
                                           "eventfd2",
                                           "execve",
                                           "execveat",
                                           "exit",
                                           "exit_group",
                                           "faccessat",
                                           "faccessat2",
                                           "fadvise64",
                                           "fadvise64_64",
                                           "fallocate",
                                           "fanotify_mark",
                                           "fchdir",
                                           "fchmod",
                                           "fchmodat",
                                           "fchmodat2",
                                           "fchown",
                                           "fchown32",
                                           "fchownat",
                                           "fcntl",
                                           "fcntl64",
                                           "fdatasync",
                                           "fgetxattr",
                                           "flistxattr",
                                           "flock",
                                           "fork",
                                           "fremovexattr",
                                           "fsetxattr",
                                           "fstat",
                                           "fstat64",
                                           "fstatat64",
                                           "fstatfs",
                                           "fstatfs64",
                                           "fsync",
                                           "ftruncate",
                                           "ftruncate64",
                                           "futex",
                                           "futex_time64",
                                           "futex_waitv",
                                           "futimesat",
                                           "getcpu",
                                           "getcwd",
                                           "getdents",
                                           "getdents64",
                                           "getegid",
                                           "getegid32",
                                           "geteuid",
                                           "geteuid32",
                                           "getgid",
                                           "getgid32",
                                           "getgroups",
                                           "getgroups32",
                                           "getitimer",
                                           "getpeername",
                                           "getpgid",
                                           "getpgrp",
                                           "getpid",
                                           "getppid",
                                           "getpriority",
                                           "getrandom",
                                           "getresgid",
                                           "getresgid32",
                                           "getresuid",
                                           "getresuid32",
                                           "getrlimit",
                                           "get_robust_list",
                                           "getrusage",
                                           "getsid",
                                           "getsockname",
                                           "getsockopt",
                                           "get_thread_area",
                                           "gettid",
                                           "gettimeofday",
                                           "getuid",
                                           "getuid32",
                                           "getxattr",
                                           "inotify_add_watch",
                                           "inotify_init",
                                           "inotify_init1",
                                           "inotify_rm_watch",
                                           "io_cancel",
                                           "io_destroy",
                                           "io_getevents",
                                           "io_pgetevents",
                                           "io_pgetevents_time64",
                                           "ioprio_get",
                                           "ioprio_set",
                                           "io_setup",
                                           "io_submit",
                                           "ipc",
                                           "kill",
                                           "landlock_add_rule",
                                           "landlock_create_ruleset",
                                           "landlock_restrict_self",
                                           "lchown",
                                           "lchown32",
                                           "lgetxattr",
                                           "link",
                                           "linkat",
                                           "listen",
                                           "listxattr",
                                           "llistxattr",
                                           "_llseek",
                                           "lremovexattr",
                                           "lseek",
                                           "lsetxattr",
                                           "lstat",
                                           "lstat64",
                                           "madvise",
                                           "membarrier",
                                           "memfd_create",
                                           "memfd_secret",
                                           "mincore",
                                           "mkdir",
                                           "mkdirat",
                                           "mknod",
                                           "mknodat",
                                           "mlock",
                                           "mlock2",
                                           "mlockall",
                                           "mmap",
                                           "mmap2",
                                           "mprotect",
                                           "mq_getsetattr",
                                           "mq_notify",
                                           "mq_open",
                                           "mq_timedreceive",
                                           "mq_timedreceive_time64",
                                           "mq_timedsend",
                                           "mq_timedsend_time64",
                                           "mq_unlink",
                                           "mremap",
                                           "msgctl",
                                           "msgget",
                                           "msgrcv",
                                           "msgsnd",
                                           "msync",
                                           "munlock",
                                           "munlockall",
                                           "munmap",
                                           "name_to_handle_at",
                                           "nanosleep",
                                           "newfstatat",
                                           "_newselect",
                                           "open",
                                           "openat",
                                           "openat2",
                                           "pause",
                                           "pidfd_open",
                                           "pidfd_send_signal",
                                           "pipe",
                                           "pipe2",
                                           "pkey_alloc",
                                           "pkey_free",
                                           "pkey_mprotect",
                                           "poll",
                                           "ppoll",
                                           "ppoll_time64",
                                           "prctl",
                                           "pread64",
                                           "preadv",
                                           "preadv2",
                                           "prlimit64",
                                           "process_mrelease",
                                           "pselect6",
                                           "pselect6_time64",
                                           "pwrite64",
                                           "pwritev",
                                           "pwritev2",
                                           "read",
                                           "readahead",
                                           "readlink",
                                           "readlinkat",
                                           "readv",
                                           "recv",
                                           "recvfrom",
                                           "recvmmsg",
                                           "recvmmsg_time64",
                                           "recvmsg",
                                           "remap_file_pages",
                                           "removexattr",
                                           "rename",
                                           "renameat",
                                           "renameat2",
                                           "restart_syscall",
                                           "rmdir",
                                           "rseq",
                                           "rt_sigaction",
                                           "rt_sigpending",
                                           "rt_sigprocmask",
                                           "rt_sigqueueinfo",
                                           "rt_sigreturn",
                                           "rt_sigsuspend",
                                           "rt_sigtimedwait",
                                           "rt_sigtimedwait_time64",
                                           "rt_tgsigqueueinfo",
                                           "sched_getaffinity",
                                           "sched_getattr",
                                           "sched_getparam",
                                           "sched_get_priority_max",
                                           "sched_get_priority_min",
                                           "sched_getscheduler",
                                           "sched_rr_get_interval",
                                           "sched_rr_get_interval_time64",
                                           "sched_setaffinity",
                                           "sched_setattr",
                                           "sched_setparam",
                                           "sched_setscheduler",
                                           "sched_yield",
                                           "seccomp",
                                           "select",
                                           "semctl",
                                           "semget",
                                           "semop",
                                           "semtimedop",
                                           "semtimedop_time64",
                                           "send",
                                           "sendfile",
                                           "sendfile64",
                                           "sendmmsg",
                                           "sendmsg",
                                           "sendto",
                                           "setfsgid",
                                           "setfsgid32",
                                           "setfsuid",
                                           "setfsuid32",
                                           "setgid",
                                           "setgid32",
                                           "setgroups",
                                           "setgroups32",
                                           "setitimer",
                                           "setpgid",
                                           "setpriority",
                                           "setregid",
                                           "setregid32",
                                           "setresgid",
                                           "setresgid32",
                                           "setresuid",
                                           "setresuid32",
                                           "setreuid",
                                           "setreuid32",
                                           "setrlimit",
                                           "set_robust_list",
                                           "setsid",
                                           "setsockopt",
                                           "set_thread_area",
                                           "set_tid_address",
                                           "setuid",
                                           "setuid32",
                                           "setxattr",
                                           "shmat",
                                           "shmctl",
                                           "shmdt",
                                           "shmget",
                                           "shutdown",
                                           "sigaltstack",
                                           "signalfd",
                                           "signalfd4",
                                           "sigprocmask",
                                           "sigreturn",
                                           "socketcall",
                                           "socketpair",
                                           "splice",
                                           "stat",
                                           "stat64",
                                           "statfs",
                                           "statfs64",
                                           "statx",
                                           "symlink",
                                           "symlinkat",
                                           "sync",
                                           "sync_file_range",
                                           "syncfs",
                                           "sysinfo",
                                           "tee",
                                           "tgkill",
                                           "time",
                                           "timer_create",
                                           "timer_delete",
                                           "timer_getoverrun",
                                           "timer_gettime",
                                           "timer_gettime64",
                                           "timer_settime",
                                           "timer_settime64",
                                           "timerfd_create",
                                           "timerfd_gettime",
                                           "timerfd_gettime64",
                                           "timerfd_settime",
                                           "timerfd_settime64",
                                           "times",
                                           "tkill",
                                           "truncate",
                                           "truncate64",
                                           "ugetrlimit",
                                           "umask",
                                           "uname",
                                           "unlink",
                                           "unlinkat",
                                           "utime",
                                           "utimensat",
                                           "utimensat_time64",
                                           "utimes",
                                           "vfork",
                                           "vmsplice",
                                           "wait4",
                                           "waitid",
                                           "waitpid",
                                           "write",
                                           "writev",
                                           "arch_prctl",
                                           "modify_ldt",
                                           NULL};

/* clone() flags that create namespaces: moby's mask 0x7E020000. */
#define SBX_CLONE_NS_MASK                                                                          \
    (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |  \
     CLONE_NEWNET)

/* personality() values moby allows: PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32 and
 * the query 0xffffffff. */
static const scmp_datum_t k_personality[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

/* Allow syscall nr unless the low 32 bits of argument `arg` are one of deny[0..n-1] (the kernel
 * reads ioctl's request as an unsigned int, so high garbage bits must not dodge the check).
 * libseccomp refuses an exception to an unconditional rule and compares an argument once per
 * rule, so the complement of the set is spelled as masked-equality rules, ORed: for every bit
 * on which all denied values agree, "this bit is the other value" is allowed; the values that
 * agree with them on all those bits but are not denied are allowed one by one. */
static int allow_arg_except(scmp_filter_ctx ctx, int nr, unsigned arg, const uint32_t *deny,
                            size_t n) {
    uint32_t same = 0xffffffffu;
    for (size_t i = 1; i < n; i++)
        same &= ~(deny[i] ^ deny[0]);
    int rc;
    for (int bit = 0; bit < 32; bit++) {
        uint32_t m = 1u << bit;
        if (!(same & m))
            continue;
        struct scmp_arg_cmp c = {arg, SCMP_CMP_MASKED_EQ, m, (~deny[0]) & m};
        if ((rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &c)) < 0)
            return rc;
    }
    uint32_t free_bits[32], nfree = 0;
    for (int bit = 0; bit < 32; bit++)
        if (!(same & (1u << bit)))
            free_bits[nfree++] = 1u << bit;
    if (nfree > 8)
        return -E2BIG; /* not needed for the values used here */
    for (uint32_t combo = 0; combo < (1u << nfree); combo++) {
        uint32_t v = deny[0] & same;
        for (uint32_t j = 0; j < nfree; j++)
            if (combo & (1u << j))
                v |= free_bits[j];
        int denied = 0;
        for (size_t i = 0; i < n; i++)
            denied |= v == deny[i];
        if (denied)
            continue;
        struct scmp_arg_cmp c = {arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, v};
        if ((rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &c)) < 0)
            return rc;
    }
    return 0;
}

static int fail(scmp_filter_ctx ctx, int rc, const char *what) {
    seccomp_release(ctx);
    return am_err_set(AM_EIO, "sandbox: seccomp %s: %s", what, strerror(rc < 0 ? -rc : rc));
}

int sbx_seccomp_build(struct sock_fprog *out) {
    memset(out, 0, sizeof *out);
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (!ctx)
        return am_err_set(AM_ENOMEM, "sandbox: seccomp_init failed");
    int rc;
    /* Another ABI (i386 via int 0x80, x32's syscall bit) kills the whole process. */
    if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0)
        return fail(ctx, rc, "bad-arch action");
    for (const char *const *name = sbx_seccomp_allowed; *name; name++) {
        int nr = seccomp_syscall_resolve_name(*name);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to this libseccomp: stays denied */
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0)) < 0)
            return fail(ctx, rc, *name);
    }
    /* clone(flags, ...): flags is argument 0 on x86_64 and aarch64. */
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, SBX_CLONE_NS_MASK, 0))) < 0)
        return fail(ctx, rc, "clone rule");
    int clone3 = seccomp_syscall_resolve_name("clone3");
    if (clone3 != __NR_SCMP_ERROR &&
        (rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), clone3, 0)) < 0)
        return fail(ctx, rc, "clone3 rule");
    for (size_t i = 0; i < sizeof k_personality / sizeof k_personality[0]; i++)
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                                   SCMP_A0(SCMP_CMP_EQ, k_personality[i]))) < 0)
            return fail(ctx, rc, "personality rule");
    /* socket(family, ...): every family but AF_VSOCK. The kernel takes family as an int, so
     * (like ioctl's request) only its low 32 bits may count: a 64-bit "!= AF_VSOCK" let
     * socket(AF_VSOCK | 1 << 32, ...) through. */
    static const uint32_t k_denied_families[] = {AF_VSOCK};
    if ((rc = allow_arg_except(ctx, SCMP_SYS(socket), 0, k_denied_families, 1)) < 0)
        return fail(ctx, rc, "socket rules");
    /* ioctl: everything but TIOCSTI and TIOCLINUX. */
    static const uint32_t k_denied_ioctls[] = {TIOCSTI, TIOCLINUX};
    if ((rc = allow_arg_except(ctx, SCMP_SYS(ioctl), 1, k_denied_ioctls, 2)) < 0)
        return fail(ctx, rc, "ioctl rules");

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

/* The filter never changes within a process and libseccomp takes ~4 ms to build it: build it
 * once and share the (never freed, read-only) program. */
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct sock_fprog g_prog;
static int g_rc;
static char g_err[256];

static void build_once(void) {
    g_rc = sbx_seccomp_build(&g_prog);
    if (g_rc < 0)
        snprintf(g_err, sizeof g_err, "%s", am_err_last());
}

int sbx_seccomp_get(struct sock_fprog *out) {
    pthread_once(&g_once, build_once);
    if (g_rc < 0)
        return am_err_set(-g_rc, "%s", g_err);
    *out = g_prog;
    return 0;
}
