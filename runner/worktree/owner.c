/*
 * runner/worktree/owner.c — who owns a pod's files on the host, and how much the pod may write.
 *
 * Why: pod root is an unprivileged host uid (runner/sandbox/idmap.c, e.g. 100000), so the
 * pod's writable dirs must belong to that uid, and nothing the pod writes may land as host root
 * (a setuid-root file left in a kept worktree). Three pieces, each called once from
 * am_wt_create / am_wt_remove:
 *
 *   wt_owner_claim(pod):   the workspace quota: a tmpfs of the quota's size mounted on
 *                          DATA/pods/<pod> right after the pod dir is claimed, so the overlay's
 *                          upper/work dirs and the pod's git dir (everything the pod can write
 *                          outside its own tmpfs /tmp) live inside it. A full quota is ENOSPC in
 *                          the pod; the runner's disk is never touched. Trade-off: the pod's
 *                          changes live in RAM (counted in the pod's memory cgroup, like /tmp)
 *                          and are lost if the host reboots before the pod ends; ext4/xfs
 *                          project quotas would keep them on disk but need a filesystem mounted
 *                          with prjquota, which a runner cannot count on (and loop devices are
 *                          not an option in containers).
 *   wt_owner_layers(...):  before the overlay is mounted: the upper dir goes to pod root, and
 *                          the shared read-only checkout is used through an idmapped mount
 *                          (host 0 -> pod root's host uid), so its files belong to pod root in
 *                          the pod (editable after copy-up; the index's stat data still matches,
 *                          so `git status` stays fast) while on disk they stay root's.
 *   wt_owner_finish(...):  at the end of a create: the pod's git dir, the workspace's ".git"
 *                          file (or a full checkout's whole workspace) and the pod's home dir
 *                          chowned to the owner, without following symlinks.
 *
 * The owner is whoever the pod's command runs as: the agent user (pod uid 1000, host 101000 by
 * default; runner/pod passes its ids and am_sbx_idmap_agent_userns_fd()) or, on a runner without
 * one, pod root. "Pod root" below means that owner.
 *   wt_owner_release(pod): before the pod dir is deleted: unmount the quota tmpfs.
 *
 * Settings: am_wt_set_owner() once at startup (process-wide); am_wt_set_quota() per thread (a
 * pod thread sets its pod's quota before am_wt_create). Without am_wt_set_owner nothing is
 * chowned (tests of the worktree alone). Errors: 0 or -AM_E*, am_err_last() names the step.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/mount.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/sandbox/sandbox.h"
#include "runner/worktree/internal.h"
#include "runner/worktree/worktree.h"

static int g_owner_set;
static uid_t g_uid;
static gid_t g_gid;
static int g_userns_fd = -1;
static _Thread_local uint64_t t_quota;

void am_wt_set_owner(uid_t uid, gid_t gid, int userns_fd) {
    /* libgit2 refuses to open a repository its process does not own (CVE-2022-24765's
     * safe.directory rule), and the pod's git dir now belongs to pod root. The rule guards
     * against a planted repository's config; the runner treats the pod's git dir as hostile
     * anyway (it fetches exactly one ref from it, through the indexer), so ownership says
     * nothing here. */
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    g_owner_set = 1;
    g_uid = uid;
    g_gid = gid;
    g_userns_fd = userns_fd;
}

void am_wt_set_quota(uint64_t bytes) {
    t_quota = bytes;
}

static int is_mounted_here(const char *dir) {
    char parent[PATH_MAX];
    struct stat a, b;
    if (snprintf(parent, sizeof parent, "%s/..", dir) >= (int)sizeof parent)
        return 0;
    return stat(dir, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

int wt_owner_claim(const char *pod_dir) {
    if (!t_quota)
        return 0;
    char opts[96];
    snprintf(opts, sizeof opts, "size=%" PRIu64 ",mode=0755", t_quota);
    if (mount("tmpfs", pod_dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) != 0)
        return wt_sys_fail("mount the workspace quota tmpfs on", pod_dir);
    return 0;
}

int wt_owner_release(const char *pod_dir) {
    char lower[PATH_MAX];
    if (snprintf(lower, sizeof lower, "%s/lower", pod_dir) < (int)sizeof lower &&
        umount2(lower, MNT_DETACH) == 0) /* left by a create that failed half-way */
        (void)rmdir(lower);
    if (!is_mounted_here(pod_dir))
        return 0;
    if (umount2(pod_dir, 0) != 0 && (errno != EBUSY || umount2(pod_dir, MNT_DETACH) != 0))
        return wt_sys_fail("unmount the workspace quota tmpfs", pod_dir);
    return 0;
}

int wt_owner_layers(const char *pod_dir, const char *upper, const char *tree, char *lower,
                    size_t cap) {
    int rc;
    if ((rc = wt_path(lower, cap, "%s", tree)) < 0)
        return rc;
    if (!g_owner_set)
        return 0;
    if (chown(upper, g_uid, g_gid) != 0)
        return wt_sys_fail("chown to pod root", upper);
    if (g_userns_fd < 0)
        return 0; /* unprivileged runner: pod root is the runner's uid, which owns the tree */
    if ((rc = wt_path(lower, cap, "%s/lower", pod_dir)) < 0)
        return rc;
    if (mkdir(lower, 0755) != 0 && errno != EEXIST)
        return wt_sys_fail("mkdir", lower);
    int fd = (int)syscall(SYS_open_tree, AT_FDCWD, tree,
                          OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (fd < 0)
        return wt_sys_fail("open_tree", tree);
    struct mount_attr a;
    memset(&a, 0, sizeof a);
    a.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    a.userns_fd = (uint64_t)g_userns_fd;
    rc = 0;
    if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &a, sizeof a) != 0)
        rc = wt_sys_fail("idmap the shared checkout", tree);
    else if (syscall(SYS_move_mount, fd, "", AT_FDCWD, lower, MOVE_MOUNT_F_EMPTY_PATH) != 0)
        rc = wt_sys_fail("attach the idmapped checkout at", lower);
    close(fd);
    return rc;
}

void wt_owner_layers_done(const char *pod_dir) {
    char lower[PATH_MAX];
    if (snprintf(lower, sizeof lower, "%s/lower", pod_dir) >= (int)sizeof lower)
        return;
    /* The overlay holds its own private clone of the layer: the attachment can go. */
    if (umount2(lower, MNT_DETACH) == 0)
        (void)rmdir(lower);
}

static int chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return lchown(path, g_uid, g_gid) == 0 ? 0 : wt_sys_fail("chown to pod root", path);
}

static int chown_tree(const char *dir) {
    int rc = nftw(dir, chown_one, 32, FTW_PHYS | FTW_MOUNT);
    if (rc == -1)
        return wt_sys_fail("walk", dir);
    return rc < 0 ? rc : 0;
}

int wt_owner_is_agent(void) {
    const am_sbx_idmap *m = am_sbx_idmap_current();
    return g_owner_set && m->agent_uid && g_uid == m->agent_uid;
}

int wt_owner_finish(const char *git, const char *workspace, const char *home, int overlay) {
    if (!g_owner_set)
        return 0;
    if (lchown(home, g_uid, g_gid) != 0)
        return wt_sys_fail("chown to the pod's user", home);
    int rc = chown_tree(git);
    if (rc == 0 && !overlay)
        rc = chown_tree(workspace);
    if (rc == 0 && overlay) {
        /* The ".git" file the runner wrote through the overlay: git refuses a gitfile that is
         * not owned by the current user ("dubious ownership"). */
        char f[PATH_MAX];
        if ((rc = wt_path(f, sizeof f, "%s/.git", workspace)) == 0 && lchown(f, g_uid, g_gid) != 0)
            rc = wt_sys_fail("chown to pod root", f);
    }
    return rc;
}
