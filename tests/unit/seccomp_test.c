/*
 * tests/unit/seccomp_test.c — proves the pod's seccomp filter itself, not the sandbox around it:
 * runner/sandbox builds the filter with libseccomp and exports it as classic BPF; this test runs
 * that exact BPF program through a small evaluator (the subset of BPF seccomp filters use) for
 * every syscall it cares about and checks the action: ALLOW, ERRNO(EPERM), ERRNO(ENOSYS) or
 * KILL_PROCESS. The expectations below are written out independently of the implementation's
 * list (a name added to the allow list by mistake fails here), and every name the
 * implementation allows is checked to evaluate to ALLOW (the list and the BPF agree).
 * x86_64 only (the syscall numbers come from this build's <sys/syscall.h>). Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "common/err.h"
#include "runner/sandbox/internal.h"

static struct sock_fprog g_prog;

/* ---- a classic-BPF evaluator for seccomp programs ------------------------------------------ */

static uint32_t load_data(const struct seccomp_data *d, uint32_t off) {
    uint32_t v = 0;
    assert_true(off + 4 <= sizeof *d);
    memcpy(&v, (const uint8_t *)d + off, 4);
    return v;
}

static uint32_t run_bpf(const struct sock_fprog *p, const struct seccomp_data *d) {
    uint32_t A = 0, X = 0, M[BPF_MEMWORDS] = {0};
    for (unsigned pc = 0; pc < p->len; pc++) {
        const struct sock_filter *f = &p->filter[pc];
        uint32_t k = f->k;
        switch (f->code) {
        case BPF_LD | BPF_W | BPF_ABS:
            A = load_data(d, k);
            break;
        case BPF_LD | BPF_W | BPF_LEN:
            A = sizeof *d;
            break;
        case BPF_LDX | BPF_W | BPF_LEN:
            X = sizeof *d;
            break;
        case BPF_LD | BPF_IMM:
            A = k;
            break;
        case BPF_LDX | BPF_IMM:
            X = k;
            break;
        case BPF_LD | BPF_MEM:
            A = M[k];
            break;
        case BPF_LDX | BPF_MEM:
            X = M[k];
            break;
        case BPF_ST:
            M[k] = A;
            break;
        case BPF_STX:
            M[k] = X;
            break;
        case BPF_ALU | BPF_AND | BPF_K:
            A &= k;
            break;
        case BPF_ALU | BPF_AND | BPF_X:
            A &= X;
            break;
        case BPF_ALU | BPF_OR | BPF_K:
            A |= k;
            break;
        case BPF_ALU | BPF_ADD | BPF_K:
            A += k;
            break;
        case BPF_ALU | BPF_SUB | BPF_K:
            A -= k;
            break;
        case BPF_ALU | BPF_LSH | BPF_K:
            A <<= k;
            break;
        case BPF_ALU | BPF_RSH | BPF_K:
            A >>= k;
            break;
        case BPF_ALU | BPF_NEG:
            A = -A;
            break;
        case BPF_MISC | BPF_TAX:
            X = A;
            break;
        case BPF_MISC | BPF_TXA:
            A = X;
            break;
        case BPF_JMP | BPF_JA:
            pc += k;
            break;
        case BPF_JMP | BPF_JEQ | BPF_K:
            pc += (A == k) ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JGT | BPF_K:
            pc += (A > k) ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JGE | BPF_K:
            pc += (A >= k) ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JSET | BPF_K:
            pc += (A & k) ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JEQ | BPF_X:
            pc += (A == X) ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JGT | BPF_X:
            pc += (A > X) ? f->jt : f->jf;
            break;
        case BPF_JMP | BPF_JGE | BPF_X:
            pc += (A >= X) ? f->jt : f->jf;
            break;
        case BPF_RET | BPF_K:
            return k;
        case BPF_RET | BPF_A:
            return A;
        default:
            fail_msg("BPF opcode 0x%x at %u not handled by the evaluator", f->code, pc);
        }
    }
    fail_msg("BPF program fell off its end");
    return 0;
}

#define ACT_ALLOW SECCOMP_RET_ALLOW
#define ACT_EPERM (SECCOMP_RET_ERRNO | EPERM)
#define ACT_ENOSYS (SECCOMP_RET_ERRNO | ENOSYS)
#define ACT_KILL SECCOMP_RET_KILL_PROCESS

static uint32_t eval(uint32_t arch, int nr, uint64_t a0, uint64_t a1) {
    struct seccomp_data d;
    memset(&d, 0, sizeof d);
    d.nr = nr;
    d.arch = arch;
    d.args[0] = a0;
    d.args[1] = a1;
    return run_bpf(&g_prog, &d);
}

static uint32_t eval_name(const char *name, uint64_t a0, uint64_t a1) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        fail_msg("libseccomp does not know '%s'", name);
    return eval(AUDIT_ARCH_X86_64, nr, a0, a1);
}

static const char *act_name(uint32_t a) {
    return a == ACT_ALLOW    ? "ALLOW"
           : a == ACT_EPERM  ? "ERRNO(EPERM)"
           : a == ACT_ENOSYS ? "ERRNO(ENOSYS)"
           : a == ACT_KILL   ? "KILL_PROCESS"
                             : "other";
}

static void expect(const char *name, uint64_t a0, uint64_t a1, uint32_t want) {
    uint32_t got = eval_name(name, a0, a1);
    if (got != want)
        fail_msg("%s(0x%llx, 0x%llx): filter says %s (0x%x), expected %s", name,
                 (unsigned long long)a0, (unsigned long long)a1, act_name(got), got,
                 act_name(want));
}

/* ---- expectations (independent of runner/sandbox/seccomp.c's list) --------------------------- */

/* Denied with EPERM: the notable ones of issue 9 and moby's capability-gated groups. */
static const char *const k_must_deny[] = {
    /* io_uring */ "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    /* keyring */ "keyctl",
    "add_key",
    "request_key",
    /* modules */ "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    /* mounts */ "mount",
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
    /* namespaces */ "unshare",
    "setns",
    /* time */ "settimeofday",
    "clock_settime",
    /* other processes */ "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    /* kernel administration */ "kexec_load",
    "kexec_file_load",
    "reboot",
    "swapon",
    "swapoff",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "acct",
    "quotactl",
    "syslog",
    "iopl",
    "ioperm",
    "sethostname",
    "setdomainname",
    "vhangup",
    "lookup_dcookie",
    "uselib",
    "nfsservctl",
    "fanotify_init",
    "open_by_handle_at",
    "_sysctl",
    "ustat",
    "sysfs",
    "vm86",
    "vm86old",
    "mbind",
    "set_mempolicy",
    "get_mempolicy",
    "move_pages",
    "migrate_pages",
    NULL};

/* Allowed: what ordinary programs (shells, git, compilers, node, python) need. */
static const char *const k_must_allow[] = {"read",
                                           "write",
                                           "openat",
                                           "close",
                                           "mmap",
                                           "munmap",
                                           "mprotect",
                                           "brk",
                                           "futex",
                                           "execve",
                                           "exit_group",
                                           "wait4",
                                           "rt_sigaction",
                                           "rt_sigprocmask",
                                           "rt_sigreturn",
                                           "fstat",
                                           "newfstatat",
                                           "statx",
                                           "faccessat2",
                                           "close_range",
                                           "getrandom",
                                           "rseq",
                                           "set_robust_list",
                                           "set_tid_address",
                                           "prlimit64",
                                           "arch_prctl",
                                           "epoll_pwait2",
                                           "pidfd_open",
                                           "pidfd_send_signal",
                                           "memfd_create",
                                           "pipe2",
                                           "dup3",
                                           "getdents64",
                                           "renameat2",
                                           "unlinkat",
                                           "mkdirat",
                                           "fchmodat",
                                           "fchownat",
                                           "utimensat",
                                           "sendmsg",
                                           "recvmsg",
                                           "connect",
                                           "bind",
                                           "listen",
                                           "accept4",
                                           "setsockopt",
                                           "sched_getaffinity",
                                           "prctl",
                                           "seccomp",
                                           "capset",
                                           "landlock_create_ruleset",
                                           "madvise",
                                           "mremap",
                                           "clock_nanosleep",
                                           "gettid",
                                           "tgkill",
                                           "vfork",
                                           "fork",
                                           "inotify_init1",
                                           "timerfd_create",
                                           "eventfd2",
                                           "signalfd4",
                                           "copy_file_range",
                                           "sendfile",
                                           NULL};

static void test_notable_syscalls_are_denied_with_eperm(void **state) {
    (void)state;
    int checked = 0;
    for (const char *const *n = k_must_deny; *n; n++) {
        int nr = seccomp_syscall_resolve_name(*n);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not a syscall on x86_64 (vm86: a negative pseudo number) */
        expect(*n, 0, 0, ACT_EPERM);
        checked++;
    }
    print_message("%d denied syscalls checked\n", checked);
    assert_true(checked >= 60);
}

static void test_everyday_syscalls_are_allowed(void **state) {
    (void)state;
    for (const char *const *n = k_must_allow; *n; n++)
        expect(*n, 0, 0, ACT_ALLOW);
}

static void test_every_listed_name_evaluates_to_allow(void **state) {
    (void)state;
    int n = 0;
    for (const char *const *a = sbx_seccomp_allowed; *a; a++) {
        int nr = seccomp_syscall_resolve_name(*a);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue; /* not on x86_64 (e.g. the *32 and *_time64 names) */
        for (const char *const *d = k_must_deny; *d; d++)
            if (strcmp(*a, *d) == 0)
                fail_msg("'%s' is on the allow list but must be denied", *a);
        expect(*a, 0, 0, ACT_ALLOW);
        n++;
    }
    print_message("%d allowed syscalls checked\n", n);
    assert_true(n >= 250);
}

static void test_unknown_syscall_numbers_are_denied(void **state) {
    (void)state;
    assert_int_equal(eval(AUDIT_ARCH_X86_64, 1000, 0, 0), ACT_EPERM);
    assert_int_equal(eval(AUDIT_ARCH_X86_64, 335, 0, 0), ACT_EPERM); /* unassigned */
}

static void test_clone_only_without_namespace_flags(void **state) {
    (void)state;
    expect("clone", SIGCHLD, 0, ACT_ALLOW);
    expect("clone", CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD, 0, ACT_ALLOW);
    const uint64_t ns[] = {CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,   CLONE_NEWUSER,
                           CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        expect("clone", ns[i] | SIGCHLD, 0, ACT_EPERM);
    expect("clone3", 0, 0, ACT_ENOSYS); /* libc falls back to clone() */
}

static void test_tiocsti_and_tioclinux_denied_other_ioctls_allowed(void **state) {
    (void)state;
    expect("ioctl", 0, TIOCSTI, ACT_EPERM);
    expect("ioctl", 0, TIOCLINUX, ACT_EPERM);
    /* The kernel takes cmd as unsigned int: high bits must not dodge the rule. */
    expect("ioctl", 0, 0xffffffff00000000ull | TIOCSTI, ACT_EPERM);
    expect("ioctl", 0, 0x100000000ull | TIOCSTI, ACT_EPERM);
    expect("ioctl", 0, TCGETS, ACT_ALLOW);
    expect("ioctl", 0, TIOCSWINSZ, ACT_ALLOW);
    expect("ioctl", 0, TIOCSCTTY, ACT_ALLOW);
    expect("ioctl", 0, FIONREAD, ACT_ALLOW);
    /* Every other request is allowed: all 16-bit values, and each with high bits set. */
    for (uint64_t req = 0; req <= 0xffff; req++) {
        uint32_t want = (req == TIOCSTI || req == TIOCLINUX) ? ACT_EPERM : ACT_ALLOW;
        if (eval_name("ioctl", 0, req) != want || eval_name("ioctl", 0, req | (7ull << 40)) != want)
            fail_msg("ioctl request 0x%llx: expected %s", (unsigned long long)req, act_name(want));
    }
    expect("ioctl", 0, 0x80045430 /* TIOCGPTN */, ACT_ALLOW);
    expect("ioctl", 0, 0xc0185879 /* a 32-bit request with the top bit set */, ACT_ALLOW);
}

static void test_personality_only_moby_values(void **state) {
    (void)state;
    expect("personality", 0xffffffff, 0, ACT_ALLOW); /* query */
    expect("personality", 0, 0, ACT_ALLOW);
    expect("personality", 0x0008, 0, ACT_ALLOW);    /* PER_LINUX32 */
    expect("personality", 0x0040000, 0, ACT_EPERM); /* ADDR_NO_RANDOMIZE */
    expect("personality", 0x0400000, 0, ACT_EPERM); /* READ_IMPLIES_EXEC */
    expect("personality", 0x0000006, 0, ACT_EPERM); /* PER_BSD */
}

static void test_socket_families(void **state) {
    (void)state;
    expect("socket", AF_INET, 0, ACT_ALLOW);
    expect("socket", AF_UNIX, 0, ACT_ALLOW);
    expect("socket", AF_NETLINK, 0, ACT_ALLOW);
    expect("socket", AF_VSOCK, 0, ACT_EPERM);
    /* The kernel takes family as an int: high bits must not dodge the rule. */
    expect("socket", 0x100000000ull | AF_VSOCK, 0, ACT_EPERM);
    expect("socket", 0xffffffff00000000ull | AF_VSOCK, 0, ACT_EPERM);
    expect("socket", 0x100000000ull | AF_INET, 0, ACT_ALLOW);
    for (uint64_t fam = 0; fam <= 64; fam++)
        if (eval_name("socket", fam, 0) != (fam == AF_VSOCK ? ACT_EPERM : ACT_ALLOW))
            fail_msg("socket family %llu", (unsigned long long)fam);
}

static void test_other_abis_are_killed(void **state) {
    (void)state;
    /* i386 (int 0x80): any syscall, even an allowed one such as write (4 there). */
    assert_int_equal(eval(AUDIT_ARCH_I386, 4, 0, 0), ACT_KILL);
    /* x32: x86_64's arch with the x32 bit in the number. */
    assert_int_equal(eval(AUDIT_ARCH_X86_64, 0x40000000 | SYS_write, 0, 0), ACT_KILL);
    assert_int_equal(eval(AUDIT_ARCH_X86_64, 0x40000000 | 512, 0, 0), ACT_KILL);
    /* An architecture the filter does not know at all. */
    assert_int_equal(eval(AUDIT_ARCH_AARCH64, SYS_write, 0, 0), ACT_KILL);
    /* Control: the same write on x86_64 is allowed. */
    assert_int_equal(eval(AUDIT_ARCH_X86_64, SYS_write, 0, 0), ACT_ALLOW);
}

static int group_setup(void **state) {
    (void)state;
    if (sbx_seccomp_build(&g_prog) != 0) {
        fprintf(stderr, "sbx_seccomp_build: %s\n", am_err_last());
        return -1;
    }
    print_message("filter: %u BPF instructions\n", g_prog.len);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    free(g_prog.filter);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notable_syscalls_are_denied_with_eperm),
        cmocka_unit_test(test_everyday_syscalls_are_allowed),
        cmocka_unit_test(test_every_listed_name_evaluates_to_allow),
        cmocka_unit_test(test_unknown_syscall_numbers_are_denied),
        cmocka_unit_test(test_clone_only_without_namespace_flags),
        cmocka_unit_test(test_tiocsti_and_tioclinux_denied_other_ioctls_allowed),
        cmocka_unit_test(test_personality_only_moby_values),
        cmocka_unit_test(test_socket_families),
        cmocka_unit_test(test_other_abis_are_killed),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
