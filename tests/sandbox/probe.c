/*
 * tests/sandbox/probe.c — runs INSIDE a sandbox (started by tests/unit/sandbox_test.c) and checks
 * from the inside what runner/sandbox promises. One line per check: "<name> ok", "syscall <name>
 * EPERM by-seccomp" for the calls only the seccomp filter stops ("syscall <name> reached-kernel
 * …" in the control run without the filter), "syscall <name> EPERM also-without-seccomp" for
 * calls that capabilities or sysctls stop as well, or "… FAIL <detail>". Exits 0 only when every
 * check passed. Env: PROBE_HOSTNAME (expected hostname; "p-*" = a prefix), PROBE_HIDDEN (a host
 * path, e.g. the repo, that must not be visible), PROBE_NO_SECCOMP (the control run: the sandbox
 * was built without the filter), PROBE_TMP_BYTES / PROBE_SHM_BYTES (expected tmpfs sizes),
 * PROBE_UID (the uid and gid the command must run as, e.g. 1000 = the agent; default 0).
 * Single-threaded; never touches anything outside the pod.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/perf_event.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int failures;
static int g_no_seccomp; /* PROBE_NO_SECCOMP: the control run */

static void check(const char *name, int ok, const char *detail) {
    if (ok) {
        printf("%s ok\n", name);
    } else {
        printf("%s FAIL %s\n", name, detail ? detail : "");
        failures++;
    }
}

static int write_fails(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        close(fd);
        unlink(path);
        return 0;
    }
    return errno == EROFS || errno == EACCES || errno == EPERM;
}

static int has_opt(const char *opts, const char *opt) {
    size_t n = strlen(opt);
    for (const char *p = opts; (p = strstr(p, opt)); p += n)
        if ((p == opts || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static int write_works(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return 0;
    int ok = write(fd, "x", 1) == 1;
    close(fd);
    return unlink(path) == 0 && ok;
}

static int status_field(const char *key, char *out, size_t cap) {
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    int found = 0;
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':') {
            snprintf(out, cap, "%s",
                     line + strlen(key) + 1 + strspn(line + strlen(key) + 1, "\t "));
            out[strcspn(out, "\n")] = '\0';
            found = 1;
        }
    }
    if (f)
        fclose(f);
    return found;
}

static void check_pid_ns(void) {
    check("pid1", getppid() == 1 && getpid() == 2, "expected ppid 1 and pid 2");
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] >= '0' && e->d_name[0] <= '9';
    if (d)
        closedir(d);
    check("pid_ns_isolated", n == 2, "more processes than init and probe visible");
}

static void check_net(void) {
    struct if_nameindex *ifs = if_nameindex();
    int only_lo = ifs != NULL;
    for (struct if_nameindex *i = ifs; i && i->if_index; i++)
        only_lo &= strcmp(i->if_name, "lo") == 0;
    if (ifs)
        if_freenameindex(ifs);
    check("only_lo", only_lo, "interfaces other than lo");
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    check("lo_up", s >= 0 && ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP), NULL);
    if (s >= 0)
        close(s);
}

static void check_fs(void) {
    struct stat st;
    const char *hidden[] = {"/root", "/oldroot", "/newroot", "/sys", getenv("PROBE_HIDDEN"), NULL};
    int ok = 1;
    for (int i = 0; hidden[i]; i++)
        if (hidden[i][0] && stat(hidden[i], &st) == 0) {
            printf("# visible: %s\n", hidden[i]);
            ok = 0;
        }
    /* /home: absent, or only the pod's own /home/agent (never the host's users). */
    DIR *hd = opendir("/home");
    struct dirent *he;
    while (hd && (he = readdir(hd)))
        if (he->d_name[0] != '.' && strcmp(he->d_name, "agent") != 0) {
            printf("# visible: /home/%s\n", he->d_name);
            ok = 0;
        }
    if (hd)
        closedir(hd);
    check("host_paths_hidden", ok, NULL);
    check("ro_root",
          write_fails("/usr/probe-x") && write_fails("/etc/probe-x") && write_fails("/probe-x"),
          "could write under /usr, /etc or /");
    char cwd[256];
    check("workspace_rw",
          getcwd(cwd, sizeof cwd) && strcmp(cwd, "/workspace") == 0 &&
              write_works("/workspace/probe-x"),
          NULL);
    check("tmp_rw", write_works("/tmp/probe-x"), NULL);
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    check("dev_null", fd >= 0 && write(fd, "x", 1) == 1, NULL);
    if (fd >= 0)
        close(fd);
}

static void check_identity(void) {
    char host[256] = "";
    const char *want = getenv("PROBE_HOSTNAME");
    gethostname(host, sizeof host);
    /* PROBE_HOSTNAME ending in '*' is a prefix (a pod's hostname is its id, unknown in advance). */
    size_t wl = want ? strlen(want) : 0;
    int match = want && (wl && want[wl - 1] == '*' ? strncmp(host, want, wl - 1) == 0
                                                   : strcmp(host, want) == 0);
    check("hostname", match, host);
    const char *term = getenv("TERM");
    check("term", term && strcmp(term, "xterm-256color") == 0, term);
    extern char **environ;
    int clean = 1;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "TERM=", 5) && strncmp(*e, "HOME=", 5) && strncmp(*e, "PATH=", 5) &&
            strncmp(*e, "PROBE_", 6) && strncmp(*e, "ASAN_OPTIONS=", 13) &&
            strncmp(*e, "USER=", 5) && strncmp(*e, "LOGNAME=", 8) &&
            strncmp(*e, "UBSAN_OPTIONS=", 14) &&
            strncmp(*e, "AIRMESH_MCP_SOCKET=", 19)) { /* set by the runner (common/mcp.h) */
            printf("# inherited: %s\n", *e);
            clean = 0;
        }
    check("env_clean", clean, NULL);
    /* Every pod has its MCP socket (made by the sandbox, served by the runner): a socket that
     * anyone in the pod may connect to, in a dir only pod root owns. */
    struct stat mst, mdir;
    int mcp_ok = lstat("/run/airmesh/mcp.sock", &mst) == 0 && S_ISSOCK(mst.st_mode) &&
                 (mst.st_mode & 07777) == 0666 && stat("/run/airmesh", &mdir) == 0 &&
                 (mdir.st_mode & 07777) == 0755 && mdir.st_uid == 0;
    check("mcp_socket", mcp_ok, "/run/airmesh/mcp.sock missing or with other modes");
    check("ctty", isatty(0) && getsid(0) == getpid() && tcgetpgrp(0) == getpgrp(),
          "not session leader on the pty");
    check("ttyname", ttyname(0) != NULL, "ttyname(0) failed");
}

static void check_privileges(void) {
    check("no_new_privs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, NULL);
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0xff, sizeof d);
    int caps0 = syscall(SYS_capget, &h, d) == 0 && !d[0].effective && !d[1].effective &&
                !d[0].permitted && !d[1].permitted && !d[0].inheritable && !d[1].inheritable;
    check("caps", caps0, "capabilities left");
    char v[64] = "";
    check("cap_bounding_empty",
          status_field("CapBnd", v, sizeof v) && strcmp(v, "0000000000000000") == 0, v);
    check("seccomp_filter",
          status_field("Seccomp", v, sizeof v) && strcmp(v, g_no_seccomp ? "0" : "2") == 0, v);
    struct rlimit rl;
    check("rlimit_core", getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_max == 0, NULL);
    check("rlimit_nproc", getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_max != RLIM_INFINITY, NULL);
}

/* ---- calls only seccomp stops --------------------------------------------------------------
 * Each is harmless and, without the filter, reaches the kernel and succeeds (or gets the
 * kernel's own error for a bad fd): the control run (PROBE_NO_SECCOMP=1, a sandbox built
 * without the filter) proves exactly that, so these lines prove the filter, not the rest of the
 * sandbox. Output: "syscall <name> EPERM by-seccomp" (ENOSYS for clone3) with the filter,
 * "syscall <name> reached-kernel rc=… errno=…" in the control run.
 * A call that a sysctl of this host disables anyway moves to the next group. */

static void only_seccomp(const char *name, long rc, int e, int want_errno, int ok_without) {
    int filtered = rc == -1 && e == want_errno;
    if (!g_no_seccomp) {
        if (filtered) {
            printf("syscall %s %s by-seccomp\n", name, want_errno == EPERM ? "EPERM" : "ENOSYS");
            return;
        }
    } else if (ok_without) {
        printf("syscall %s reached-kernel rc=%ld errno=%s\n", name, rc, rc < 0 ? strerror(e) : "0");
        return;
    }
    printf("syscall %s FAIL rc=%ld errno=%s\n", name, rc, strerror(e));
    failures++;
}

static int sysctl_int(const char *path, int dflt) {
    FILE *f = fopen(path, "re");
    int v = dflt;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = dflt;
        fclose(f);
    }
    return v;
}

/* Run fn in a forked child (for calls that change the caller: unshare, personality). The
 * child exits 0 when the call succeeded, 100 + errno when it failed. */
static void in_child(const char *name, long (*fn)(void)) {
    pid_t pid = fork();
    if (pid == 0) {
        errno = 0;
        long rc = fn();
        _exit(rc < 0 ? 100 + (errno & 0x7f) : 0);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st)) {
        printf("syscall %s FAIL child did not exit\n", name);
        failures++;
        return;
    }
    int code = WEXITSTATUS(st);
    only_seccomp(name, code ? -1 : 0, code ? code - 100 : 0, EPERM, code == 0);
}

static long do_unshare_user(void) {
    return syscall(SYS_unshare, CLONE_NEWUSER);
}
static long do_personality(void) {
    return syscall(SYS_personality, 0x0040000 /* ADDR_NO_RANDOMIZE */);
}

static void check_seccomp_only(void) {
    long rc;
    int e;
#define CALL(expr) (errno = 0, rc = (long)(expr), e = errno)

    /* io_uring: a one-entry ring. */
    if (sysctl_int("/proc/sys/kernel/io_uring_disabled", 0) == 0) {
        uint8_t params[120];
        memset(params, 0, sizeof params);
        CALL(syscall(SYS_io_uring_setup, 1, params));
        only_seccomp("io_uring_setup", rc, e, EPERM, rc >= 0);
        if (rc >= 0)
            close((int)rc);
    }
    CALL(syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0));
    only_seccomp("io_uring_enter", rc, e, EPERM, rc == -1 && e == EBADF);
    CALL(syscall(SYS_io_uring_register, -1, 0, NULL, 0));
    only_seccomp("io_uring_register", rc, e, EPERM, rc == -1 && (e == EBADF || e == EINVAL));

    /* The keyring, on the probe's own process keyring. */
    CALL(syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -2 /* process */, 1));
    only_seccomp("keyctl", rc, e, EPERM, rc >= 0);
    CALL(syscall(SYS_add_key, "user", "airmesh-probe", "x", 1, -2));
    only_seccomp("add_key", rc, e, EPERM, rc >= 0);
    CALL(syscall(SYS_request_key, "user", "airmesh-probe-none", NULL, -2));
    only_seccomp("request_key", rc, e, EPERM, rc == -1 && e == ENOKEY);

    /* Other processes' memory and files: our own child or ourselves. */
    pid_t child = fork();
    if (child == 0) {
        pause();
        _exit(0);
    }
    CALL(syscall(SYS_ptrace, 0x4206 /* PTRACE_SEIZE */, child, 0, 0));
    only_seccomp("ptrace", rc, e, EPERM, rc == 0);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    char src[8] = "secret", dst[8] = "";
    struct iovec liov = {dst, sizeof dst}, riov = {src, sizeof src};
    CALL(syscall(SYS_process_vm_readv, getpid(), &liov, 1, &riov, 1, 0));
    only_seccomp("process_vm_readv", rc, e, EPERM, rc == (long)sizeof src);
    struct iovec wl = {src, sizeof src}, wr = {dst, sizeof dst};
    CALL(syscall(SYS_process_vm_writev, getpid(), &wl, 1, &wr, 1, 0));
    only_seccomp("process_vm_writev", rc, e, EPERM, rc == (long)sizeof src);
    CALL(syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0, 0));
    only_seccomp("kcmp", rc, e, EPERM, rc == 0);
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    CALL(syscall(SYS_pidfd_getfd, pidfd, 0, 0));
    only_seccomp("pidfd_getfd", rc, e, EPERM, rc >= 0);
    if (rc >= 0)
        close((int)rc);
    if (pidfd >= 0)
        close(pidfd);

    /* userfaultfd in user-mode-only form (allowed to anyone by vm.unprivileged_userfaultfd=0). */
    CALL(syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */));
    only_seccomp("userfaultfd", rc, e, EPERM, rc >= 0);
    if (rc >= 0)
        close((int)rc);

    /* perf_event_open: counting our own user-space task clock (perf_event_paranoid <= 2). */
    if (sysctl_int("/proc/sys/kernel/perf_event_paranoid", 3) <= 2) {
        struct perf_event_attr pa;
        memset(&pa, 0, sizeof pa);
        pa.type = PERF_TYPE_SOFTWARE;
        pa.size = sizeof pa;
        pa.config = PERF_COUNT_SW_TASK_CLOCK;
        pa.exclude_kernel = 1;
        pa.exclude_hv = 1;
        CALL(syscall(SYS_perf_event_open, &pa, 0, -1, -1, 0));
        only_seccomp("perf_event_open", rc, e, EPERM, rc >= 0);
        if (rc >= 0)
            close((int)rc);
    }

    /* Namespaces: a nested user namespace needs no capability. */
    in_child("unshare", do_unshare_user); /* unshare(CLONE_NEWUSER) */
    CALL(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0));
    if (rc == 0)
        _exit(0); /* the child of a clone that went through */
    only_seccomp("clone_newuser", rc, e, EPERM, rc > 0);
    if (rc > 0)
        waitpid((pid_t)rc, NULL, 0);
    CALL(syscall(SYS_setns, -1, 0));
    only_seccomp("setns", rc, e, EPERM, rc == -1 && e == EBADF);
    CALL(syscall(SYS_clone3, NULL, 0));
    only_seccomp("clone3", rc, e, ENOSYS, rc == -1 && e == EINVAL);

    /* personality tricks: turning off address randomisation. */
    in_child("personality_no_aslr", do_personality);

    /* Typing into the terminal (a newline, which is harmless here). */
    if (sysctl_int("/proc/sys/dev/tty/legacy_tiocsti", 1) == 1) {
        char nl = '\n';
        CALL(ioctl(0, TIOCSTI, &nl));
        only_seccomp("tiocsti", rc, e, EPERM, rc == 0);
    }
#undef CALL
}

/* ---- denied by capabilities or sysctls as well ------------------------------------------------
 * These fail with the filter and without it (no capabilities; kernel.unprivileged_bpf_disabled,
 * kernel.dmesg_restrict): they say nothing about the filter, only that the sandbox holds.
 * Output: "syscall <name> EPERM also-without-seccomp". */
static void denied_anyway(const char *name, long rc) {
    int e = errno;
    if (rc == -1) {
        printf("syscall %s %s also-without-seccomp\n", name, e == EPERM ? "EPERM" : strerror(e));
        return;
    }
    printf("syscall %s FAIL rc=%ld (expected to fail)\n", name, rc);
    failures++;
}

static void check_denied_anyway(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
#define ANYWAY(name, ...) (errno = 0, denied_anyway(#name, syscall(SYS_##name, __VA_ARGS__)))
    ANYWAY(mount, "none", "/tmp", "tmpfs", 0, 0);
    ANYWAY(umount2, "/tmp", 0);
    ANYWAY(pivot_root, "/tmp", "/tmp");
    ANYWAY(chroot, "/tmp");
    ANYWAY(kexec_load, 0, 0, 0, 0);
    ANYWAY(kexec_file_load, -1, -1, 0, 0, 0);
    ANYWAY(init_module, 0, 0, 0);
    ANYWAY(finit_module, -1, 0, 0);
    ANYWAY(delete_module, "probe_none", 0);
    ANYWAY(reboot, 0, 0, 0, 0);
    ANYWAY(swapon, "/none", 0);
    ANYWAY(swapoff, "/none");
    ANYWAY(open_by_handle_at, -1, 0, 0);
    ANYWAY(bpf, 0, 0, 0);
    ANYWAY(syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, 0, 0);
    ANYWAY(acct, NULL);
    ANYWAY(clock_settime, CLOCK_REALTIME, &now);
    ANYWAY(sethostname, "x", 1);
    ANYWAY(iopl, 3);
    ANYWAY(ioperm, 0, 8, 1);
    ANYWAY(vhangup, 0);
    errno = 0;
    denied_anyway("clone_newns", syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0));
    errno = 0;
    denied_anyway("clone_newnet", syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0));
    errno = 0;
    denied_anyway("unshare_newns", syscall(SYS_unshare, CLONE_NEWNS)); /* no CAP_SYS_ADMIN */
#undef ANYWAY
    /* A plain fork (clone without namespace flags) still works. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int st = 0;
    check("plain_fork", pid > 0 && waitpid(pid, &st, 0) == pid && WEXITSTATUS(st) == 7, NULL);
}

/* ---- /proc, mounts, sizes, uid map --------------------------------------------------------- */

static void check_proc_and_mounts(void) {
    /* Positive control first: the sysctl is there and readable, then it is not writable. */
    const char *burst = "/proc/sys/kernel/printk_ratelimit_burst";
    int rfd = open(burst, O_RDONLY | O_CLOEXEC);
    char v[32] = "";
    check("proc_sys_readable", rfd >= 0 && read(rfd, v, sizeof v - 1) > 0, burst);
    if (rfd >= 0)
        close(rfd);
    int wfd = open(burst, O_WRONLY | O_CLOEXEC);
    check("proc_sys_not_writable", wfd < 0 && (errno == EROFS || errno == EACCES), burst);
    if (wfd >= 0)
        close(wfd);
    const char *ro[] = {"/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger", NULL};
    for (int i = 0; ro[i]; i++) {
        struct stat rst;
        if (stat(ro[i], &rst) != 0) {
            printf("# absent on this kernel: %s\n", ro[i]);
            continue;
        }
        int fd = open(ro[i], O_WRONLY | O_CLOEXEC);
        char nm[80], why[64];
        snprintf(nm, sizeof nm, "not_writable %s", ro[i]);
        snprintf(why, sizeof why, "open for writing: %s", fd < 0 ? strerror(errno) : "ok");
        check(nm, fd < 0 && (errno == EROFS || errno == EACCES), why);
        if (fd >= 0)
            close(fd);
    }
    /* Masked: present (the kernel has them) but empty. */
    const char *masked[] = {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug",
                            NULL};
    for (int i = 0; masked[i]; i++) {
        struct stat st;
        if (stat(masked[i], &st) != 0)
            continue;
        int fd = open(masked[i], O_RDONLY | O_CLOEXEC);
        char c;
        char nm[64];
        snprintf(nm, sizeof nm, "masked %s", masked[i]);
        check(nm, fd >= 0 && read(fd, &c, 1) == 0, "readable content");
        if (fd >= 0)
            close(fd);
    }
    struct stat st;
    if (stat("/proc/acpi", &st) == 0) {
        DIR *d = opendir("/proc/acpi");
        int n = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
            n += e->d_name[0] != '.';
        if (d)
            closedir(d);
        check("masked /proc/acpi", n == 0, "entries visible");
    }
    check("dev_read_only", write_fails("/dev/probe-x"), NULL);

    /* Every mount the pod can write is nosuid,nodev (devpts and device-node binds aside). */
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[2048];
    int ok = f != NULL, n = 0;
    while (f && fgets(line, sizeof line, f)) {
        char mnt[512], opts[512], *dash = strstr(line, " - ");
        char fstype[64] = "";
        if (!dash || sscanf(line, "%*s %*s %*s %*s %511s %511s", mnt, opts) != 2 ||
            sscanf(dash + 3, "%63s", fstype) != 1)
            continue;
        if (strncmp(opts, "rw", 2) != 0 || strcmp(fstype, "devpts") == 0)
            continue;
        if (strncmp(mnt, "/dev/", 5) == 0 && strcmp(mnt, "/dev/shm") != 0)
            continue; /* /dev/null & co: device nodes bound from the host */
        n++;
        if (!has_opt(opts, "nosuid") || !has_opt(opts, "nodev")) {
            printf("# writable mount without nosuid,nodev: %s %s\n", mnt, opts);
            ok = 0;
        }
    }
    if (f)
        fclose(f);
    check("writable_mounts_nosuid_nodev", ok && n >= 3, NULL);

    /* tmpfs sizes the caller asked for. */
    const char *want_tmp = getenv("PROBE_TMP_BYTES"), *want_shm = getenv("PROBE_SHM_BYTES");
    struct statvfs sv;
    if (want_tmp)
        check("tmp_size",
              statvfs("/tmp", &sv) == 0 &&
                  (unsigned long long)sv.f_blocks * sv.f_frsize == strtoull(want_tmp, NULL, 10),
              want_tmp);
    if (want_shm)
        check("shm_size",
              statvfs("/dev/shm", &sv) == 0 &&
                  (unsigned long long)sv.f_blocks * sv.f_frsize == strtoull(want_shm, NULL, 10),
              want_shm);

    /* Pod root is not host root: no line of our uid map reaches host uid 0. */
    FILE *m = fopen("/proc/self/uid_map", "re");
    unsigned long in, out, cnt;
    int mapped_root = 0, lines = 0;
    while (m && fscanf(m, "%lu %lu %lu", &in, &out, &cnt) == 3) {
        lines++;
        mapped_root |= out == 0;
    }
    if (m)
        fclose(m);
    check("uid_map_not_host_root", m && lines > 0 && !mapped_root, NULL);
    /* Who the command runs as: pod root, or PROBE_UID (the agent user, 1000) with the same gid,
     * every id (real, effective, saved) switched so that nothing can switch back. */
    const char *want_uid = getenv("PROBE_UID");
    unsigned want = want_uid ? (unsigned)strtoul(want_uid, NULL, 10) : 0;
    uid_t ru, eu, su;
    gid_t rg, eg, sg;
    char idname[32], iddetail[96];
    snprintf(idname, sizeof idname, want ? "runs_as_uid_%u" : "is_pod_root", want);
    int ids_ok = getresuid(&ru, &eu, &su) == 0 && getresgid(&rg, &eg, &sg) == 0;
    snprintf(iddetail, sizeof iddetail, "uid %u/%u/%u gid %u/%u/%u", (unsigned)ru, (unsigned)eu,
             (unsigned)su, (unsigned)rg, (unsigned)eg, (unsigned)sg);
    check(idname,
          ids_ok && ru == want && eu == want && su == want && rg == want && eg == want &&
              sg == want,
          iddetail);
    if (want) {
        /* init switched too (it forwards signals to the command), and no way back to root. */
        char st[4096] = "", uidline[64];
        int sfd = open("/proc/1/status", O_RDONLY | O_CLOEXEC);
        ssize_t sn = sfd >= 0 ? read(sfd, st, sizeof st - 1) : -1;
        if (sfd >= 0)
            close(sfd);
        st[sn > 0 ? sn : 0] = '\0';
        snprintf(uidline, sizeof uidline, "\nUid:\t%u\t%u\t%u", want, want, want);
        check("init_runs_as_uid", strstr(st, uidline) != NULL, "see /proc/1/status");
        check("cannot_setuid_0", setuid(0) != 0, "setuid(0) worked");
        /* Same uid as init, yet init's memory (a copy of the runner's, clone without exec) stays
         * closed: init is not dumpable. Positive control: our own memory opens. */
        int self = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
        int init = open("/proc/1/mem", O_RDONLY | O_CLOEXEC);
        check("init_memory_closed", self >= 0 && init < 0, init >= 0 ? "opened" : "control");
        if (self >= 0)
            close(self);
        if (init >= 0)
            close(init);
    }
    gid_t groups[8];
    check("no_supplementary_groups", getgroups(8, groups) == 0, "runner's groups inherited");
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    check_pid_ns();
    check_net();
    check_fs();
    check_identity();
    g_no_seccomp = getenv("PROBE_NO_SECCOMP") != NULL;
    check_privileges();
    check_proc_and_mounts();
    check_seccomp_only();
    check_denied_anyway();
    printf("probe %s (%d failures)\n", failures ? "FAIL" : "done", failures);
    return failures ? 1 : 0;
}
