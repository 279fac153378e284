/*
 * runner/sandbox/setup.c — the child side of a sandbox: one linear, commented sequence of
 * syscalls from "just cloned into new namespaces" to "the command is exec'd and init reaps".
 *
 * Why this shape: like bubblewrap, every step is a plain syscall followed by die("step") on
 * failure, so the caller reads "sandbox: pivot_root /newroot: Operation not permitted" instead of
 * a silent exit. The report goes back through a CLOEXEC pipe (fd 3) as a sbx_report.
 *
 * Rules for this file: it runs in a raw clone() of a possibly multi-threaded (and possibly
 * ASan-instrumented) parent, so it does not allocate, does not use stdio and touches only data
 * prepared in the sbx_plan. Paths are built in stack buffers. The process that runs it becomes
 * pid 1 of the pod (init) and stays until the command exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/egress.h"
#include "common/mcp.h"
#include "runner/sandbox/internal.h"
#include "runner/sandbox/sandbox.h"

extern char **environ;

/* ---- reporting ------------------------------------------------------------------------------ */

static void append(char *dst, size_t cap, const char *s) {
    size_t n = strlen(dst);
    while (*s && n + 1 < cap)
        dst[n++] = *s++;
    dst[n] = '\0';
}

/* Send "step [arg]" + errno to the parent and exit. Async-signal-safe. */
__attribute__((noreturn)) static void die2(const char *step, const char *arg) {
    sbx_report r;
    memset(&r, 0, sizeof r);
    r.err = errno;
    append(r.what, sizeof r.what, step);
    if (arg) {
        append(r.what, sizeof r.what, " ");
        append(r.what, sizeof r.what, arg);
    }
    ssize_t n = write(SBX_REPORT_FD, &r, sizeof r);
    (void)n;
    _exit(125);
}
__attribute__((noreturn)) static void die(const char *step) {
    die2(step, NULL);
}

/* ---- small path helpers (stack buffers, no allocation) --------------------------------------- */

#define SBX_PATH 4096

/* dst = a + b; dies when it does not fit. */
static void join(char *dst, const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb + 1 > SBX_PATH) {
        errno = ENAMETOOLONG;
        die2("path", b);
    }
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb + 1);
}

/* mkdir -p for a path inside our own tmpfs. */
static void mkdir_p(const char *path, mode_t mode) {
    char buf[SBX_PATH];
    join(buf, path, "");
    for (char *q = buf + 1;; q++) {
        if (*q == '/' || *q == '\0') {
            char c = *q;
            *q = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                die2("mkdir", buf);
            if (c == '\0')
                break;
            *q = c;
        }
    }
}

/* Create the mount point `to` as a directory or an empty file, matching the source. */
static void make_mountpoint(const char *to, int is_dir) {
    struct stat st;
    if (stat(to, &st) == 0)
        return; /* already there (e.g. a bind below /usr): mounting does not write */
    char parent[SBX_PATH];
    join(parent, to, "");
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = '\0';
        mkdir_p(parent, 0755);
    }
    if (is_dir) {
        if (mkdir(to, 0755) != 0 && errno != EEXIST)
            die2("mkdir", to);
    } else {
        int fd = open(to, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            die2("create mount point", to);
        close(fd);
    }
}

/* Change the flags of a mount (recursively): used for read-only, nosuid, nodev. */
static int set_mount_attr(const char *path, uint64_t set, unsigned int flags) {
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = set;
    return (int)syscall(SYS_mount_setattr, AT_FDCWD, path, flags, &a, sizeof a);
}

enum { BIND_RO = 0, BIND_RW = 1, BIND_OPTIONAL = 2, BIND_KEEP_SYMLINK = 4, BIND_DEV = 8 };

/* Bind host path `src` (reached through /oldroot) at /newroot<dst>. */
static void bind_path(const char *src, const char *dst, int flags) {
    char from[SBX_PATH], to[SBX_PATH];
    join(from, "/oldroot", src);
    join(to, "/newroot", dst);
    struct stat st;
    if ((flags & BIND_KEEP_SYMLINK) && lstat(from, &st) == 0 && S_ISLNK(st.st_mode)) {
        /* /bin -> usr/bin on merged-/usr systems: recreate the link, do not bind. */
        char target[SBX_PATH];
        ssize_t n = readlink(from, target, sizeof target - 1);
        if (n < 0)
            die2("readlink", from);
        target[n] = '\0';
        if (symlink(target, to) != 0)
            die2("symlink", to);
        return;
    }
    if (stat(from, &st) != 0) {
        if ((flags & BIND_OPTIONAL) && errno == ENOENT)
            return;
        die2("stat", src);
    }
    make_mountpoint(to, S_ISDIR(st.st_mode));
    if (mount(from, to, NULL, MS_BIND | MS_REC, NULL) != 0)
        die2("bind-mount", src);
    uint64_t attr = (flags & BIND_RW) ? 0 : MOUNT_ATTR_RDONLY;
    if (!(flags & BIND_DEV))
        attr |= MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (attr && set_mount_attr(to, attr, AT_RECURSIVE) != 0)
        die2("mount_setattr", dst);
}

/* The caller's bind sources, opened (O_PATH) while our credentials are still the runner's: pod
 * root is an unprivileged host uid that may not traverse e.g. /root, where a runner's data dir
 * can live. The binds later go through /oldroot/proc/self/fd/N (a magic link: no traversal). */
#define SBX_MAX_CALLER_BINDS 64
typedef struct {
    int fd;
    const char *dst;
    int flags;
} caller_bind;

static void open_caller_bind(caller_bind *b, const char *src, const char *dst, int flags) {
    b->fd = open(src, O_PATH | O_CLOEXEC);
    if (b->fd < 0)
        die2("stat", src);
    b->dst = dst;
    b->flags = flags;
}

static void bind_caller(const caller_bind *b) {
    char from[64] = "/oldroot/proc/self/fd/", num[16], to[SBX_PATH];
    int i = (int)sizeof num - 1, v = b->fd;
    num[i] = '\0';
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    append(from, sizeof from, num + i);
    join(to, "/newroot", b->dst);
    struct stat st;
    if (fstat(b->fd, &st) != 0)
        die2("stat", b->dst);
    make_mountpoint(to, S_ISDIR(st.st_mode));
    if (mount(from, to, NULL, MS_BIND | MS_REC, NULL) != 0)
        die2("bind-mount", b->dst);
    uint64_t attr = (b->flags & BIND_RW) ? 0 : MOUNT_ATTR_RDONLY;
    attr |= MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (set_mount_attr(to, attr, AT_RECURSIVE) != 0)
        die2("mount_setattr", b->dst);
}

/* ---- fixed layout ---------------------------------------------------------------------------- */

static const char *const k_system_dirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib64", NULL};

/* Not /etc/passwd and /etc/group: the pod gets its own (write_identity_files), so that the
 * host's user names stay out and `agent` exists for getpwuid(). */
static const char *const k_etc_files[] = {
    "/etc/hosts",           "/etc/resolv.conf",  "/etc/nsswitch.conf", "/etc/ld.so.cache",
    "/etc/ld.so.conf",      "/etc/ld.so.conf.d", "/etc/localtime",     "/etc/ssl",
    "/etc/ca-certificates", "/etc/alternatives", "/etc/os-release",    "/etc/protocols",
    "/etc/services",        "/etc/mime.types",   "/etc/terminfo",      "/etc/inputrc",
    "/etc/bash.bashrc",     "/etc/profile",      "/etc/gitconfig",     NULL};

/* What runc/moby make read-only and mask in a container's /proc (/sys is not mounted at all, so
 * /sys/firmware and friends are out of reach already). Paths this kernel lacks are skipped. */
static const char *const k_proc_readonly[] = {
    "/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs", NULL};
static const char *const k_proc_masked[] = {
    "/proc/kcore", "/proc/keys",   "/proc/timer_list",    "/proc/timer_stats", "/proc/sched_debug",
    "/proc/acpi",  "/proc/asound", "/proc/latency_stats", "/proc/scsi",        "/proc/interrupts",
    NULL};

static const char *const k_dev_nodes[] = {"/dev/null",    "/dev/zero", "/dev/full", "/dev/random",
                                          "/dev/urandom", "/dev/tty",  NULL};

/* "mode=M,size=N" into a stack buffer (no allocation, no stdio). */
static void tmpfs_opts(char *dst, size_t cap, const char *mode, uint64_t size) {
    char num[24];
    int i = (int)sizeof num - 1;
    num[i] = '\0';
    do {
        num[--i] = (char)('0' + size % 10);
        size /= 10;
    } while (size && i > 0);
    dst[0] = '\0';
    append(dst, cap, "mode=");
    append(dst, cap, mode);
    append(dst, cap, ",size=");
    append(dst, cap, num + i);
}

/* /proc hardening, while our proc is still at /newroot/proc. */
static void harden_proc(void) {
    char at[SBX_PATH];
    struct stat st;
    for (const char *const *r = k_proc_readonly; *r; r++) {
        join(at, "/newroot", *r);
        if (lstat(at, &st) != 0)
            continue;
        if (mount(at, at, NULL, MS_BIND | MS_REC, NULL) != 0)
            die2("bind /proc read-only path", *r);
        if (set_mount_attr(
                at, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                AT_RECURSIVE) != 0)
            die2("make read-only", *r);
    }
    for (const char *const *m = k_proc_masked; *m; m++) {
        join(at, "/newroot", *m);
        if (lstat(at, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            if (mount("tmpfs", at, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "size=0,mode=0555") != 0)
                die2("mask", *m);
        } else {
            if (mount("/newroot/dev/null", at, NULL, MS_BIND, NULL) != 0)
                die2("mask", *m);
            if (set_mount_attr(at, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0) !=
                0)
                die2("make read-only", *m);
        }
    }
}

/* ---- steps ----------------------------------------------------------------------------------- */

/* The pod's /etc/passwd and /etc/group, written into the root tmpfs (read-only later). Agent
 * CLIs call getpwuid() for their home and user name; a uid without an entry makes some of them
 * (and ssh, git's ident) fail. */
static const char k_passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
                               "agent:x:1000:1000:airmesh agent:/home/agent:/bin/bash\n"
                               "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char k_group[] = "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n";

static void write_small_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        die2("create", path);
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n)
        die2("write", path);
    close(fd);
}

static void write_identity_files(void) {
    write_small_file("/newroot/etc/passwd", k_passwd);
    write_small_file("/newroot/etc/group", k_group);
}

/* Keep exactly: 0,1,2 = PTY slave, 3 = report pipe, 4 = the listener socketpair; close
 * everything else the parent had. */
static void arrange_fds(const sbx_plan *p) {
    int slave = fcntl(p->slave_fd, F_DUPFD_CLOEXEC, 10);
    int report = fcntl(p->report_fd, F_DUPFD_CLOEXEC, 10);
    int lsn = fcntl(p->listener_fd, F_DUPFD_CLOEXEC, 10);
    if (slave < 0 || report < 0)
        _exit(125); /* cannot even report */
    if (dup2(report, SBX_REPORT_FD) != SBX_REPORT_FD)
        _exit(125);
    if (fcntl(SBX_REPORT_FD, F_SETFD, FD_CLOEXEC) != 0)
        die("fcntl report pipe");
    for (int fd = 0; fd < 3; fd++)
        if (dup2(slave, fd) != fd)
            die("dup2 pty slave");
    if (lsn < 0 || dup2(lsn, SBX_LISTENER_FD) != SBX_LISTENER_FD ||
        fcntl(SBX_LISTENER_FD, F_SETFD, FD_CLOEXEC) != 0)
        die("dup2 listener socketpair");
    if (close_range(SBX_LISTENER_FD + 1, ~0U, 0) != 0)
        die("close_range");
}

static void bring_lo_up(void) {
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        die("socket for lo");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        die("SIOCGIFFLAGS lo");
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        die("SIOCSIFFLAGS lo up");
    close(s);
}

/* One listening TCP socket on 127.0.0.1:port of the pod's netns (lo is up). */
static int listen_on(uint16_t port, const char *step) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die2("socket", step);
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        die2("setsockopt SO_REUSEADDR", step);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die2("bind", step);
    if (listen(fd, 128) != 0)
        die2("listen", step);
    return fd;
}

/* The pod's MCP socket (common/mcp.h): a listening AF_UNIX socket at AM_MCP_SOCKET in the
 * pod's own root tmpfs (still /newroot here, read-only later: connecting to a socket needs no
 * write access to its file system), in a dir owned by pod root (0755), the socket 0666 so the
 * agent user may connect. It exists only in this pod's mount namespace. */
static int mcp_listener(void) {
    char path[SBX_PATH], dir[SBX_PATH];
    join(path, "/newroot", AM_MCP_SOCKET);
    join(dir, path, "");
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    mkdir_p(dir, 0755);
    if (chmod(dir, 0755) != 0)
        die2("chmod", AM_MCP_SOCKET);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof a.sun_path) {
        errno = ENAMETOOLONG;
        die2("MCP socket path", path);
    }
    memcpy(a.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket for the MCP socket");
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        die2("bind", AM_MCP_SOCKET);
    if (chmod(path, 0666) != 0)
        die2("chmod", AM_MCP_SOCKET);
    if (listen(fd, 64) != 0)
        die2("listen", AM_MCP_SOCKET);
    return fd;
}

/* The listeners, made here (the MCP socket in the pod's root tmpfs; the egress ones, network
 * models / allow, inside the pod's netns) and handed to the runner over fd 4 (SCM_RIGHTS) in
 * that order. The pod keeps no copy: its processes can connect to them but never accept() on
 * them. */
static void hand_over_listeners(const sbx_plan *p) {
    int fds[3];
    int n = 0;
    fds[n++] = mcp_listener();
    if (p->egress_gateway)
        fds[n++] = listen_on(AM_EGRESS_GATEWAY_PORT, "gateway listener 127.0.0.1:4000");
    if (p->egress_gateway && p->egress_proxy)
        fds[n++] = listen_on(AM_EGRESS_PROXY_PORT, "proxy listener 127.0.0.1:3128");
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof(int) * 3)];
    } u;
    memset(&u, 0, sizeof u);
    char byte = (char)n;
    struct iovec iov = {&byte, 1};
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = u.buf;
    mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
    struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    if (sendmsg(SBX_LISTENER_FD, &mh, MSG_NOSIGNAL) != 1)
        die("send the listeners to the runner");
    for (int i = 0; i < n; i++)
        close(fds[i]);
    close(SBX_LISTENER_FD);
}

static void set_rlimit(int res, rlim_t v, const char *name) {
    struct rlimit cur, want;
    if (getrlimit(res, &cur) != 0)
        die2("getrlimit", name);
    want.rlim_max = (cur.rlim_max == RLIM_INFINITY || v < cur.rlim_max) ? v : cur.rlim_max;
    want.rlim_cur = want.rlim_max;
    if (setrlimit(res, &want) != 0)
        die2("setrlimit", name);
}

/* Bounding set, ambient set, securebits (all need CAP_SETPCAP, so first), then with as_agent
 * the switch to the agent's ids (needs CAP_SETUID/CAP_SETGID, so before capset), then no
 * capabilities at all. Runs after no_new_privs and before the seccomp filter, which does not
 * have to allow setres[ug]id/setgroups for this. */
static void drop_capabilities(int as_agent) {
    for (int cap = 0; cap < 64; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0) {
            if (errno == EINVAL)
                break; /* past CAP_LAST_CAP of this kernel */
            die("drop capability bounding set");
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0)
        die("clear ambient capabilities");
    if (prctl(PR_SET_SECUREBITS,
              SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                  SECBIT_NO_SETUID_FIXUP_LOCKED,
              0, 0, 0) != 0)
        die("set securebits");
    if (as_agent) {
        /* Init becomes the agent too: with no capabilities left, pod root could no longer
         * signal (forward SIGTERM to) a command of another uid. Real, effective and saved ids
         * all change, so nothing can switch back. */
        if (setgroups(0, NULL) != 0 && errno != EPERM)
            die("setgroups (agent)");
        if (setresgid(AM_SBX_AGENT_GID, AM_SBX_AGENT_GID, AM_SBX_AGENT_GID) != 0)
            die("setresgid agent (is pod gid 1000 mapped?)");
        if (setresuid(AM_SBX_AGENT_UID, AM_SBX_AGENT_UID, AM_SBX_AGENT_UID) != 0)
            die("setresuid agent (is pod uid 1000 mapped?)");
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) /* cleared by the change */
            die("prctl PR_SET_PDEATHSIG (agent)");
    }
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    memset(d, 0, sizeof d);
    if (syscall(SYS_capset, &h, d) != 0)
        die("capset");
}

static void noop_handler(int sig) {
    (void)sig;
}

static const int k_forwarded[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* In the command's process: become session leader on the PTY and exec. */
__attribute__((noreturn)) static void exec_command(const sbx_plan *p) {
    sigset_t none;
    sigemptyset(&none);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL); /* EINVAL for SIGKILL/SIGSTOP/reserved ones: fine */
    if (sigprocmask(SIG_SETMASK, &none, NULL) != 0)
        die("sigprocmask in command");
    if (setsid() < 0)
        die("setsid");
    if (ioctl(0, TIOCSCTTY, 0) != 0)
        die("ioctl TIOCSCTTY");
    environ = (char **)p->envp; /* execvp searches the PATH of environ */
    execvp(p->argv[0], p->argv);
    die2("execvp", p->argv[0]);
}

/* pid 1: reap everything, forward signals to the command, exit with its code. */
__attribute__((noreturn)) static void run_init(pid_t cmd, const sigset_t *waitset) {
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(waitset, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig != SIGCHLD) {
            if (kill(-cmd, sig) != 0)
                kill(cmd, sig);
            continue;
        }
        int st;
        pid_t w;
        while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
            if (w != cmd)
                continue;
            if (WIFEXITED(st))
                _exit(WEXITSTATUS(st));
            _exit(128 + WTERMSIG(st));
        }
    }
}

/* ---- the sequence ---------------------------------------------------------------------------- */

void sbx_child_main(const sbx_plan *p) {
    /* 0. Die with the spawning thread; take fds 0-3; wait for the parent to write our uid/gid
     *    maps and cgroup membership ("go" byte; EOF means the parent gave up). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        _exit(125);
    char go;
    if (read(p->go_fd, &go, 1) != 1)
        _exit(125);
    arrange_fds(p);
    caller_bind binds[SBX_MAX_CALLER_BINDS];
    size_t nb = 0;
    for (const char *const *b = p->ro_binds; b && *b && nb < SBX_MAX_CALLER_BINDS - 2; b++)
        open_caller_bind(&binds[nb++], *b, *b, BIND_RO);
    for (const char *const *b = p->rw_binds; b && *b && nb < SBX_MAX_CALLER_BINDS - 2; b++)
        open_caller_bind(&binds[nb++], *b, *b, BIND_RW);
    for (const char *const *b = p->ro_binds_to; b && b[0] && b[1] && nb < SBX_MAX_CALLER_BINDS - 2;
         b += 2)
        open_caller_bind(&binds[nb++], b[0], b[1], BIND_RO);
    open_caller_bind(&binds[nb++], p->workspace, "/workspace", BIND_RW);
    if (p->home)
        open_caller_bind(&binds[nb++], p->home, AM_SBX_AGENT_HOME, BIND_RW);

    /* 0b. Become pod root for real: our credentials still hold the runner's host ids, which the
     *     new map does not contain (files we create would fail with EOVERFLOW). Drop the
     *     runner's supplementary groups (EPERM where setgroups is denied: unprivileged runner
     *     without newgidmap, whose groups are its own), then uid/gid 0 = the mapped host range. */
    if (setgroups(0, NULL) != 0 && errno != EPERM)
        die("setgroups (drop the runner's groups)");
    if (setresgid(0, 0, 0) != 0)
        die("setresgid 0");
    if (setresuid(0, 0, 0) != 0)
        die("setresuid 0");
    /* A credential change clears the parent-death signal: set it again. (If the spawning
     * thread died in between, the parent's am_sbx_free/teardown still kills us by pidfd.) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        die("prctl PR_SET_PDEATHSIG");

    /* 1. A cgroup namespace rooted at the pod's own cgroup (we were moved there before "go"). */
    if (unshare(CLONE_NEWCGROUP) != 0)
        die("unshare cgroup namespace");

    /* 2. Nothing we mount may propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        die("make / rprivate");

    /* 3. A scratch tmpfs as the base; pivot into it so the host root sits at /oldroot and the
     *    host's own /tmp stays reachable as /oldroot/tmp for binds. */
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
        die("mount tmpfs on /tmp (base)");
    if (mkdir("/tmp/oldroot", 0755) != 0 || mkdir("/tmp/newroot", 0755) != 0)
        die("mkdir /tmp/oldroot, /tmp/newroot");
    if (syscall(SYS_pivot_root, "/tmp", "/tmp/oldroot") != 0)
        die("pivot_root /tmp");
    if (chdir("/") != 0)
        die("chdir / (base)");

    /* 4. The new root: a tmpfs, made read-only at the very end. */
    if (mount("tmpfs", "/newroot", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0)
        die("mount tmpfs on /newroot");

    /* 5. System directories read-only (symlinks such as /bin -> usr/bin recreated). */
    for (const char *const *d = k_system_dirs; *d; d++)
        bind_path(*d, *d, BIND_RO | BIND_OPTIONAL | BIND_KEEP_SYMLINK);

    /* 6. A few /etc files read-only; missing ones are skipped. */
    mkdir_p("/newroot/etc", 0755);
    for (const char *const *f = k_etc_files; *f; f++)
        bind_path(*f, *f, BIND_RO | BIND_OPTIONAL);
    write_identity_files(); /* the pod's own passwd and group */

    /* 7. A private /tmp, before the caller's binds so that a bind below /tmp (a runner whose
     *    data dir lives in /tmp) lands on top of it instead of being hidden by it. */
    char topts[64];
    mkdir_p("/newroot/tmp", 0755);
    tmpfs_opts(topts, sizeof topts, "1777", p->tmp_bytes);
    if (mount("tmpfs", "/newroot/tmp", "tmpfs", MS_NOSUID | MS_NODEV, topts) != 0)
        die2("mount tmpfs on /tmp", topts);

    /* 8. The caller's extra read-only and read-write paths (these must exist). */
    /* 9. ... and the workspace, read-write, at /workspace, and the home dir, read-write, at
     *    /home/agent (all nosuid,nodev). */
    for (size_t i = 0; i < nb; i++) {
        bind_caller(&binds[i]);
        close(binds[i].fd);
    }

    /* 10. /dev: tmpfs with a handful of host device nodes, a new devpts instance and /dev/shm. */
    mkdir_p("/newroot/dev", 0755);
    /* Small and, once populated, read-only (the device nodes are binds with their own flags). */
    if (mount("tmpfs", "/newroot/dev", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "mode=0755,size=65536,nr_inodes=256") != 0)
        die("mount tmpfs on /dev");
    for (const char *const *n = k_dev_nodes; *n; n++)
        bind_path(*n, *n, BIND_RW | BIND_DEV);
    /* The PTY itself as /dev/console, so ttyname() finds it by device number. */
    bind_path(p->pty_name, "/dev/console", BIND_RW | BIND_DEV | BIND_OPTIONAL);
    mkdir_p("/newroot/dev/pts", 0755);
    if (mount("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=620") != 0)
        die("mount devpts on /dev/pts");
    if (symlink("pts/ptmx", "/newroot/dev/ptmx") != 0)
        die("symlink /dev/ptmx");
    if (symlink("/proc/self/fd", "/newroot/dev/fd") != 0 ||
        symlink("/proc/self/fd/0", "/newroot/dev/stdin") != 0 ||
        symlink("/proc/self/fd/1", "/newroot/dev/stdout") != 0 ||
        symlink("/proc/self/fd/2", "/newroot/dev/stderr") != 0)
        die("symlink /dev/fd, /dev/std*");
    mkdir_p("/newroot/dev/shm", 0755);
    tmpfs_opts(topts, sizeof topts, "1777", p->shm_bytes);
    if (mount("tmpfs", "/newroot/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, topts) != 0)
        die2("mount tmpfs on /dev/shm", topts);

    /* 11. A fresh /proc for our pid namespace; /proc/sys & co read-only, runc's paths masked;
     *     then /dev read-only (the masks bind /dev/null, so this comes after them). */
    mkdir_p("/newroot/proc", 0555);
    if (mount("proc", "/newroot/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0)
        die("mount proc on /proc");
    harden_proc();
    if (set_mount_attr("/newroot/dev",
                       MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                       0) != 0)
        die("make /dev read-only");

    /* 12. Network and hostname. */
    if (p->network_none)
        bring_lo_up();
    hand_over_listeners(p); /* the MCP socket always; the egress listeners when asked */
    const char *hn = p->hostname ? p->hostname : "pod";
    if (sethostname(hn, strlen(hn)) != 0)
        die2("sethostname", hn);

    /* 13. Drop the host root (detached, so nothing of it stays reachable), then pivot into
     *     /newroot and detach the base, as bubblewrap does. */
    if (mount("/oldroot", "/oldroot", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        die("make /oldroot rprivate");
    if (umount2("/oldroot", MNT_DETACH) != 0)
        die("umount /oldroot");
    int basefd = open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (basefd < 0)
        die("open / (base)");
    if (chdir("/newroot") != 0)
        die("chdir /newroot");
    if (syscall(SYS_pivot_root, ".", ".") != 0)
        die("pivot_root /newroot");
    if (fchdir(basefd) != 0)
        die("fchdir base");
    if (umount2(".", MNT_DETACH) != 0)
        die("umount base");
    close(basefd);
    if (chdir("/") != 0)
        die("chdir /");
    if (set_mount_attr("/", MOUNT_ATTR_RDONLY, 0) != 0)
        die("make / read-only");

    /* 14. Work in /workspace. */
    if (chdir("/workspace") != 0)
        die("chdir /workspace (does it belong to pod root's host uid?)");

    /* 15. rlimits; the command inherits them. */
    set_rlimit(RLIMIT_NPROC, p->pids_max, "RLIMIT_NPROC");
    set_rlimit(RLIMIT_NOFILE, 4096, "RLIMIT_NOFILE");
    set_rlimit(RLIMIT_CORE, 0, "RLIMIT_CORE");
    if (p->rlimit_as)
        set_rlimit(RLIMIT_AS, p->rlimit_as, "RLIMIT_AS"); /* only without a memory cgroup */

    /* 16. No privilege gain through exec, no capabilities (and, with as_agent, the agent's
     *     ids instead of pod root's), then the seccomp filter (last: it denies mount and
     *     friends used above). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        die("prctl PR_SET_NO_NEW_PRIVS");
    drop_capabilities(p->as_agent);
    if (!p->no_seccomp && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p->seccomp, 0, 0) != 0)
        die("prctl PR_SET_SECCOMP");

    /* 17. Signals: pid 1 only receives signals it has a handler for, so install no-op handlers,
     *     block them and collect them with sigwaitinfo() in run_init(). */
    sigset_t waitset;
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGCHLD);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop_handler;
    sigaction(SIGCHLD, &sa, NULL);
    for (size_t i = 0; i < sizeof k_forwarded / sizeof k_forwarded[0]; i++) {
        sigaddset(&waitset, k_forwarded[i]);
        sigaction(k_forwarded[i], &sa, NULL);
    }
    if (sigprocmask(SIG_BLOCK, &waitset, NULL) != 0)
        die("sigprocmask in init");

    /* 18. The command. A raw clone (fork semantics) so no atfork handler of the parent runs. */
    pid_t cmd = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (cmd < 0)
        die("fork command");
    if (cmd == 0)
        exec_command(p);

    /* 19. Init keeps no PTY and no report pipe: the parent sees EOF once the command exec'd. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0)
        die("open /dev/null");
    for (int fd = 0; fd < 3; fd++)
        dup2(devnull, fd);
    close(devnull);
    close(SBX_REPORT_FD);
    run_init(cmd, &waitset);
}
