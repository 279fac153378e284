/*
 * runner/sandbox/idmap.c — which host uids/gids a pod's uids/gids map to, and writing those maps.
 *
 * Why: with the old map "0 <euid> 1" a root runner made pod root host root, and procfs gates
 * /proc/sys writes and file ownership on the host uid, not on capabilities. Pod root must be an
 * unprivileged host uid. Two setups:
 *
 *   root runner:        pod ids 0..count-1 -> host base..base+count-1 (a subordinate range,
 *                       default 100000:65536, `airmesh-runner run --uid-range BASE:COUNT`); the
 *                       runner writes /proc/<pid>/{uid,gid}_map itself and gives the pod's
 *                       writable dirs to host uid `base` (runner/worktree/owner.c).
 *   unprivileged runner: pod 0 -> the runner's own uid (it already owns the worktree), pod
 *                       1..count -> the runner user's range in /etc/subuid and /etc/subgid,
 *                       written by the setuid helpers newuidmap/newgidmap (Debian: `uidmap`).
 *                       Without a range there, only "0 <euid> 1" (pod root = the runner's uid).
 *
 * The agent user (pod uid/gid 1000, AM_SBX_AGENT_UID) exists on a root runner whose range holds
 * it: host base+1000 (101000 by default) then owns the pods' writable dirs, and a second user
 * namespace ("0 <that uid> 1") lets the shared checkout appear as the agent's through an idmapped
 * mount. An unprivileged runner has no agent user (it cannot chown to its subordinate ids), so
 * its pods run their commands as pod root.
 *
 * Either way host uid 0 is never mapped into a pod. am_sbx_idmap_setup() runs once at startup
 * (before threads); without it the first spawn uses the defaults above. The user namespace fd
 * (root runner only) lets runner/worktree idmap the shared read-only checkout so that its files
 * belong to pod root inside (open_tree + mount_setattr(MOUNT_ATTR_IDMAP)).
 *
 * Threads: setup once, then read-only; am_sbx_idmap_write() may run from any thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/sandbox/internal.h"
#include "runner/sandbox/sandbox.h"

extern char **environ;

static am_sbx_idmap g_map;

static int g_ready;
static int g_userns_fd = -1;
static int g_agent_userns_fd = -1; /* "0 <agent host uid> 1": the agent's idmapped mounts */
static char g_unusable[300];       /* why pods cannot start with this mapping, "" = fine */

int sbx_write_file(const char *path, const char *val) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return am_err_set(AM_EIO, "sandbox: open %s: %s", path, strerror(errno));
    ssize_t n = write(fd, val, strlen(val));
    int e = errno;
    close(fd);
    if (n != (ssize_t)strlen(val))
        return am_err_set(AM_EIO, "sandbox: write %s: %s", path, strerror(n < 0 ? e : EIO));
    return 0;
}

/* "NAME:START:COUNT" lines of /etc/subuid or /etc/subgid for user (name or numeric uid). */
static int subid_lookup(const char *file, const char *name, uid_t uid, uint32_t *start,
                        uint32_t *count) {
    FILE *f = fopen(file, "re");
    if (!f)
        return -1;
    char line[512], num[32];
    snprintf(num, sizeof num, "%u", (unsigned)uid);
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = '\0';
        if (strcmp(line, name) && strcmp(line, num))
            continue;
        char *end;
        unsigned long s = strtoul(c1 + 1, &end, 10), n = strtoul(c2 + 1, NULL, 10);
        if (end != c2 || s == 0 || n < 2 || s > 0xfffffffful - n)
            continue;
        *start = (uint32_t)s;
        *count = n > 65536 ? 65536 : (uint32_t)n;
        found = 0;
        break;
    }
    fclose(f);
    return found;
}

static int parse_range(const char *spec, uint32_t *base, uint32_t *count) {
    char *end;
    unsigned long b = strtoul(spec, &end, 10);
    if (end == spec || *end != ':')
        return -1;
    const char *c = end + 1;
    unsigned long n = strtoul(c, &end, 10);
    if (end == c || *end || b == 0 || n < 1 || n > 65536 || b > 0xfffffffful - n)
        return -1;
    *base = (uint32_t)b;
    *count = (uint32_t)n;
    return 0;
}

/* A user namespace mapping 0..count-1 to host uid..uid+count-1 (gid alike), kept alive by an
 * fd (for idmapped mounts). */
static int make_userns(uint32_t uid, uint32_t gid, uint32_t count) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t c = fork();
    if (c < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (c == 0) {
        char x = unshare(CLONE_NEWUSER) == 0 ? 'u' : 'e';
        if (write(p[1], &x, 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    close(p[1]);
    char x = 0, path[64], map[64];
    int fd = -1;
    if (read(p[0], &x, 1) == 1 && x == 'u') {
        snprintf(map, sizeof map, "0 %u %u\n", uid, count);
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)c);
        int ok = sbx_write_file(path, map) == 0;
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)c);
        ok = ok && sbx_write_file(path, "deny") == 0;
        snprintf(map, sizeof map, "0 %u %u\n", gid, count);
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)c);
        ok = ok && sbx_write_file(path, map) == 0;
        snprintf(path, sizeof path, "/proc/%d/ns/user", (int)c);
        if (ok)
            fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    close(p[0]);
    kill(c, SIGKILL);
    while (waitpid(c, NULL, 0) < 0 && errno == EINTR) {
    }
    return fd;
}

int am_sbx_idmap_setup(const char *spec) {
    am_sbx_idmap m;
    memset(&m, 0, sizeof m);
    uid_t euid = geteuid();
    if (euid == 0) {
        m.uid = m.gid = 100000;
        m.count = 65536;
        if (spec && *spec && strcmp(spec, "auto") && parse_range(spec, &m.uid, &m.count) != 0)
            return am_err_set(AM_EINVAL,
                              "uid range '%s': expected BASE:COUNT with BASE >= 1 and "
                              "COUNT 1..65536 (e.g. 100000:65536)",
                              spec);
        m.gid = m.uid;
        m.pod_root_uid = m.uid;
        m.pod_root_gid = m.gid;
        if (m.count > AM_SBX_AGENT_UID) {
            m.agent_uid = m.uid + AM_SBX_AGENT_UID;
            m.agent_gid = m.gid + AM_SBX_AGENT_GID;
        }
        snprintf(m.desc, sizeof m.desc, "pod 0..%u -> host %u..%u", m.count - 1, m.uid,
                 m.uid + m.count - 1);
    } else {
        if (spec && *spec && strcmp(spec, "auto"))
            return am_err_set(AM_EINVAL, "uid range: only a root runner takes --uid-range; an "
                                         "unprivileged one uses its range in /etc/subuid");
        struct passwd pw, *res = NULL;
        char buf[2048];
        const char *name =
            getpwuid_r(euid, &pw, buf, sizeof buf, &res) == 0 && res ? res->pw_name : "";
        m.pod_root_uid = euid;
        m.pod_root_gid = getegid();
        uint32_t gs = 0, gn = 0;
        if (subid_lookup("/etc/subuid", name, euid, &m.uid, &m.count) == 0 &&
            subid_lookup("/etc/subgid", name, euid, &gs, &gn) == 0) {
            m.gid = gs;
            m.count = m.count < gn ? m.count : gn;
            m.helpers = 1;
            snprintf(m.desc, sizeof m.desc,
                     "pod 0 -> host %u, pod 1..%u -> host %u..%u (newuidmap)", (unsigned)euid,
                     m.count - 1, m.uid, m.uid + m.count - 2);
        } else {
            snprintf(m.desc, sizeof m.desc,
                     "pod 0 -> host %u only (no range for '%s' in "
                     "/etc/subuid and /etc/subgid)",
                     (unsigned)euid, name);
        }
    }
    if (g_userns_fd >= 0)
        close(g_userns_fd);
    if (g_agent_userns_fd >= 0)
        close(g_agent_userns_fd);
    g_userns_fd = g_agent_userns_fd = -1;
    g_map = m;
    g_ready = 1;
    g_unusable[0] = '\0';
    if (euid == 0 && g_map.agent_uid)
        g_agent_userns_fd = make_userns(g_map.agent_uid, g_map.agent_gid, 1);
    if (euid == 0 && ((g_userns_fd = make_userns(g_map.uid, g_map.gid, g_map.count)) < 0 ||
                      (g_map.agent_uid && g_agent_userns_fd < 0))) {
        /* e.g. inside another user namespace where the range does not exist */
        snprintf(g_unusable, sizeof g_unusable,
                 "the pod uid mapping (%s) cannot be set up on this host: %s", g_map.desc,
                 strerror(errno ? errno : EPERM));
        return am_err_set(AM_EIO, "%s", g_unusable);
    }
    return 0;
}

const am_sbx_idmap *am_sbx_idmap_current(void) {
    if (!g_ready && am_sbx_idmap_setup(NULL) < 0)
        g_ready = 1; /* the mapping is set even when only the userns fd failed */
    return &g_map;
}

const char *am_sbx_idmap_unusable(void) {
    am_sbx_idmap_current();
    return g_unusable;
}

int am_sbx_idmap_userns_fd(void) {
    am_sbx_idmap_current();
    return g_userns_fd;
}

int am_sbx_idmap_agent_userns_fd(void) {
    am_sbx_idmap_current();
    return g_agent_userns_fd;
}

/* newuidmap PID 0 EUID 1 1 START COUNT-1 (and newgidmap alike). */
static int run_helper(const char *prog, pid_t pid, unsigned own, unsigned start, unsigned n) {
    char a[5][16];
    snprintf(a[0], sizeof a[0], "%d", (int)pid);
    snprintf(a[1], sizeof a[1], "%u", own);
    snprintf(a[2], sizeof a[2], "%u", start);
    snprintf(a[3], sizeof a[3], "%u", n);
    char *argv[] = {(char *)prog, a[0], "0", a[1], "1", "1", a[2], a[3], NULL};
    pid_t h;
    int rc = posix_spawnp(&h, prog, NULL, NULL, argv, environ);
    if (rc != 0)
        return am_err_set(AM_EIO, "sandbox: run %s: %s (install the uidmap package)", prog,
                          strerror(rc));
    int st = 0;
    while (waitpid(h, &st, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return am_err_set(AM_EIO, "sandbox: %s %d failed (status %d)", prog, (int)pid, st);
    return 0;
}

int sbx_idmap_write(pid_t pid) {
    const am_sbx_idmap *m = am_sbx_idmap_current();
    if (g_unusable[0])
        return am_err_set(AM_EIO, "sandbox: %s", g_unusable);
    char path[64], map[64];
    int rc;
    if (m->helpers) {
        if ((rc = run_helper("newuidmap", pid, m->pod_root_uid, m->uid, m->count - 1)) < 0)
            return rc;
        return run_helper("newgidmap", pid, m->pod_root_gid, m->gid, m->count - 1);
    }
    if (!m->count) {
        /* An unprivileged writer of gid_map must deny setgroups first. A root runner leaves it
         * allowed so that the pod's init can drop the runner's supplementary groups. */
        snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
        if ((rc = sbx_write_file(path, "deny")) < 0)
            return rc;
    }
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
    snprintf(map, sizeof map, "0 %u %u\n", m->count ? m->uid : m->pod_root_uid,
             m->count ? m->count : 1);
    if ((rc = sbx_write_file(path, map)) < 0)
        return rc;
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
    snprintf(map, sizeof map, "0 %u %u\n", m->count ? m->gid : m->pod_root_gid,
             m->count ? m->count : 1);
    return sbx_write_file(path, map);
}
