/*
 * tests/sandbox/probe.c — runs INSIDE a sandbox (started by tests/unit/sandbox_test.c) and checks
 * from the inside what runner/sandbox promises. One line per check: "<name> ok", or for denied
 * syscalls "syscall <name> EPERM" (clone3: ENOSYS), or "<name> FAIL <detail>". Exits 0 only when
 * every check passed. Env: PROBE_HOSTNAME (expected hostname; "p-*" = a prefix), PROBE_HIDDEN (a host path, e.g.
 * the repo, that must not be visible). Single-threaded; never touches anything outside the pod.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int failures;

static void check(const char *name, int ok, const char *detail) {
    if (ok) {
        printf("%s ok\n", name);
    } else {
        printf("%s FAIL %s\n", name, detail ? detail : "");
        failures++;
    }
}

static void expect_errno(const char *name, long rc, int want) {
    int e = errno;
    if (rc == -1 && e == want) {
        printf("syscall %s %s\n", name, want == EPERM ? "EPERM" : "ENOSYS");
        return;
    }
    printf("syscall %s FAIL rc=%ld errno=%s\n", name, rc, strerror(e));
    failures++;
    if (rc == 0 && (strcmp(name, "clone_newuser") == 0 || strcmp(name, "clone3") == 0))
        _exit(0); /* we are the unexpected child */
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
    const char *hidden[] = {
        "/root", "/home", "/oldroot", "/newroot", "/sys", getenv("PROBE_HIDDEN"), NULL};
    int ok = 1;
    for (int i = 0; hidden[i]; i++)
        if (hidden[i][0] && stat(hidden[i], &st) == 0) {
            printf("# visible: %s\n", hidden[i]);
            ok = 0;
        }
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
            strncmp(*e, "UBSAN_OPTIONS=", 14)) {
            printf("# inherited: %s\n", *e);
            clean = 0;
        }
    check("env_clean", clean, NULL);
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
    check("seccomp_filter", status_field("Seccomp", v, sizeof v) && strcmp(v, "2") == 0, v);
    struct rlimit rl;
    check("rlimit_core", getrlimit(RLIMIT_CORE, &rl) == 0 && rl.rlim_max == 0, NULL);
    check("rlimit_nproc", getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_max != RLIM_INFINITY, NULL);
}

static void check_seccomp(void) {
    /* Harmless arguments everywhere: the filter must answer before the kernel looks at them. */
#define DENY(name, ...) (errno = 0, expect_errno(#name, syscall(SYS_##name, __VA_ARGS__), EPERM))
    DENY(mount, 0, 0, 0, 0, 0);
    DENY(umount2, "/tmp", 0);
    DENY(pivot_root, "/tmp", "/tmp");
    DENY(ptrace, 0 /* PTRACE_TRACEME */, 0, 0, 0);
    DENY(process_vm_readv, getpid(), 0, 0, 0, 0, 0);
    DENY(process_vm_writev, getpid(), 0, 0, 0, 0, 0);
    DENY(bpf, 0, 0, 0);
    DENY(perf_event_open, 0, 0, -1, -1, 0);
    DENY(kexec_load, 0, 0, 0, 0);
    DENY(kexec_file_load, -1, -1, 0, 0, 0);
    DENY(init_module, 0, 0, 0);
    DENY(finit_module, -1, 0, 0);
    DENY(delete_module, "probe_none", 0);
    DENY(keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3 /* session */, 0, 0, 0);
    DENY(add_key, "user", "probe", "x", 1, -3);
    DENY(request_key, "user", "probe", 0, 0);
    DENY(userfaultfd, 0);
    DENY(unshare, CLONE_NEWUSER);
    DENY(setns, -1, 0);
    DENY(reboot, 0, 0, 0, 0);
    DENY(swapon, "/none", 0);
    DENY(swapoff, "/none");
    DENY(open_by_handle_at, -1, 0, 0);
    errno = 0;
    expect_errno("clone_newuser", syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0), EPERM);
    errno = 0;
    expect_errno("clone_newns", syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0), EPERM);
    errno = 0;
    expect_errno("clone_newnet", syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0), EPERM);
    errno = 0;
    expect_errno("clone3", syscall(SYS_clone3, 0, 0), ENOSYS);
    errno = 0;
    char c = 'x';
    long rc = ioctl(0, TIOCSTI, &c);
    if (rc == -1 && errno == EPERM) {
        printf("tiocsti EPERM\n");
    } else {
        printf("tiocsti FAIL rc=%ld errno=%s\n", rc, strerror(errno));
        failures++;
    }
    /* A plain fork (clone without namespace flags) still works. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(7);
    int st = 0;
    check("plain_fork", pid > 0 && waitpid(pid, &st, 0) == pid && WEXITSTATUS(st) == 7, NULL);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    check_pid_ns();
    check_net();
    check_fs();
    check_identity();
    check_privileges();
    check_seccomp();
    printf("probe %s (%d failures)\n", failures ? "FAIL" : "done", failures);
    return failures ? 1 : 0;
}
