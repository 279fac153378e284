/*
 * runner/worktree/worktree.c — am_wt_create / am_wt_remove: a pod's worktree, read top to bottom.
 *
 * Create (each step's failure is reported as "worktree: <step> <what>: <why>"):
 *   1. validate pod id ([A-Za-z0-9-], 1..64), URL, base_ref, branch (git_branch_name_is_valid);
 *      every path below is built from DATA + hashes/ids, so none can escape DATA
 *   2. flock the mirror; open or create it; fetch (ms_fetch)
 *   3. resolve base_ref to a commit; refuse an existing branch or pod
 *   4. claim the pod: mkdir DATA/pods/<pod> and mirror/worktrees/<pod> (both O_EXCL-like)
 *   5. create refs/heads/<branch> at the commit; write the registration (HEAD, commondir, gitdir,
 *      locked) exactly as `git worktree add` lays it out; unlock
 *   6. overlay: make sure the shared checkout of the commit exists; copy its index template into
 *      the registration; mount overlay(lower = checkout, upper/work per pod) on the workspace
 *   7. if mounting fails (or mode FULL): a plain libgit2 checkout of the branch into the
 *      workspace, which also writes the index (what git_worktree_add does)
 *   8. write the workspace's ".git" file ("gitdir: <mirror>/worktrees/<pod>")
 *   On failure after step 4 everything made so far is undone (mount, dirs, registration, branch).
 *
 * Why the registration is written by hand and not with git_worktree_add: libgit2's version
 * insists on creating the directory itself and always runs a checkout over it, which would walk
 * (and hash) the whole overlay. The files are the documented git layout (gitrepository-layout(5)),
 * so `git status`, `git commit`, `git worktree list` and libgit2 all see a normal linked worktree.
 * "locked" keeps `git worktree prune` (run by anyone in the mirror) from dropping a registration
 * whose overlay is not mounted at the moment, e.g. a kept worktree after a reboot.
 *
 * Remove: unmount the overlay (lazily if busy), delete DATA/pods/<pod> without crossing mounts,
 * delete the registration under the mirror lock. The branch and its commits stay in the mirror.
 *
 * Ownership: the caller owns am_wt_info. Threads: see worktree.h — different pods concurrently,
 * the same pod from one thread at a time; am_wt_set_mode at startup only.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/worktree/internal.h"
#include "runner/worktree/worktree.h"

static int g_mode = AM_WT_MODE_AUTO;

void am_wt_set_mode(int mode) {
    g_mode = mode;
}

/* Make DATA absolute and canonical (the .git files hold absolute paths). */
static int data_real(const char *data_dir, char out[PATH_MAX]) {
    if (!data_dir || !*data_dir)
        return am_err_set(AM_EINVAL, "worktree: empty data dir");
    if (!realpath(data_dir, out))
        return wt_sys_fail("resolve data dir", data_dir);
    return 0;
}

int am_wt_init(const char *data_dir) {
    char data[PATH_MAX], p[PATH_MAX];
    static const char *const subdirs[] = {"mirrors", "checkouts", "pods"};
    if (git_libgit2_init() < 0)
        return wt_git_fail(AM_EIO, "init libgit2", NULL);
    if (!data_dir || !*data_dir)
        return am_err_set(AM_EINVAL, "worktree: empty data dir");
    if (mkdir(data_dir, 0755) != 0 && errno != EEXIST)
        return wt_sys_fail("mkdir", data_dir);
    int rc = data_real(data_dir, data);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof subdirs / sizeof subdirs[0]; i++) {
        if ((rc = wt_path(p, sizeof p, "%s/%s", data, subdirs[i])) < 0)
            return rc;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return wt_sys_fail("mkdir", p);
    }
    return 0;
}

void am_wt_shutdown(void) {
    git_libgit2_shutdown();
}

int am_wt_mirror_path(const char *data_dir, const char *repo_url, char *out, size_t cap) {
    char data[PATH_MAX], base[PATH_MAX];
    if (!repo_url || !*repo_url)
        return am_err_set(AM_EINVAL, "worktree: empty repo url");
    int rc = data_real(data_dir, data);
    if (rc == 0)
        rc = wt_mirror_base(data, repo_url, base, sizeof base);
    if (rc == 0)
        rc = wt_path(out, cap, "%s.git", base);
    return rc;
}

static int valid_pod_id(const char *id) {
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > 64 || id[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
    }
    return 1;
}

/* Paths of one pod; all derived from DATA, the URL hash and the (validated) pod id. */
typedef struct {
    char data[PATH_MAX];
    char mirror[PATH_MAX]; /* DATA/mirrors/<h>.git */
    char lock[PATH_MAX];   /* DATA/mirrors/<h>.lock */
    char reg[PATH_MAX];    /* DATA/mirrors/<h>.git/worktrees/<pod> */
    char pod[PATH_MAX];    /* DATA/pods/<pod> */
    char ws[PATH_MAX];     /* DATA/pods/<pod>/workspace */
} wt_paths;

static int make_paths(const char *data_dir, const char *url, const char *pod_id, wt_paths *p) {
    char base[PATH_MAX];
    int rc;
    if (!url || !*url || strchr(url, '\n'))
        return am_err_set(AM_EINVAL, "worktree: bad repo url");
    if (!valid_pod_id(pod_id))
        return am_err_set(AM_EINVAL, "worktree: bad pod id '%s' (want [A-Za-z0-9-], 1..64)",
                          pod_id ? pod_id : "");
    if ((rc = data_real(data_dir, p->data)) < 0 ||
        (rc = wt_mirror_base(p->data, url, base, sizeof base)) < 0 ||
        (rc = wt_path(p->mirror, sizeof p->mirror, "%s.git", base)) < 0 ||
        (rc = wt_path(p->lock, sizeof p->lock, "%s.lock", base)) < 0 ||
        (rc = wt_path(p->reg, sizeof p->reg, "%s/worktrees/%s", p->mirror, pod_id)) < 0 ||
        (rc = wt_path(p->pod, sizeof p->pod, "%s/pods/%s", p->data, pod_id)) < 0 ||
        (rc = wt_path(p->ws, sizeof p->ws, "%s/workspace", p->pod)) < 0)
        return rc;
    return 0;
}

static int is_mount_point(const char *path, const char *parent) {
    struct stat a, b;
    return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

/* mirror/worktrees/<pod>/{HEAD,commondir,gitdir,locked}. */
static int write_registration(const wt_paths *p, const char *branch, const char *pod_id) {
    char f[PATH_MAX], s[PATH_MAX + 64];
    int rc;
    if ((rc = wt_path(f, sizeof f, "%s/HEAD", p->reg)) < 0 ||
        (rc = wt_path(s, sizeof s, "ref: refs/heads/%s\n", branch)) < 0 ||
        (rc = wt_write_str(f, s)) < 0)
        return rc;
    if ((rc = wt_path(f, sizeof f, "%s/commondir", p->reg)) < 0 ||
        (rc = wt_write_str(f, "../..\n")) < 0)
        return rc;
    if ((rc = wt_path(f, sizeof f, "%s/gitdir", p->reg)) < 0 ||
        (rc = wt_path(s, sizeof s, "%s/.git\n", p->ws)) < 0 || (rc = wt_write_str(f, s)) < 0)
        return rc;
    if ((rc = wt_path(f, sizeof f, "%s/locked", p->reg)) < 0 ||
        (rc = wt_path(s, sizeof s, "airmesh pod %s", pod_id)) < 0 || (rc = wt_write_str(f, s)) < 0)
        return rc;
    return 0;
}

static int write_dotgit(const wt_paths *p) {
    char f[PATH_MAX], s[PATH_MAX + 16];
    int rc;
    if ((rc = wt_path(f, sizeof f, "%s/.git", p->ws)) < 0 ||
        (rc = wt_path(s, sizeof s, "gitdir: %s\n", p->reg)) < 0)
        return rc;
    return wt_write_str(f, s);
}

/* Step 6. Returns 0 mounted, 1 "could not mount, fall back" (reason in note), <0 error. */
static int mount_overlay(const wt_paths *p, git_repository *repo, const git_oid *commit,
                         am_wt_info *out) {
    char lower[PATH_MAX], f[PATH_MAX], upper[PATH_MAX], work[PATH_MAX], opts[3 * PATH_MAX + 64];
    int rc;
    unsigned long long t = wt_now_ns();
    if (strpbrk(p->data, ",:\\")) {
        snprintf(out->note, sizeof out->note, "overlay: data dir has ',', ':' or '\\'");
        return 1;
    }
    if ((rc = wt_checkout_ensure(p->data, repo, commit, lower, sizeof lower,
                                 &out->checkout_reused)) < 0)
        return rc;
    out->ms_checkout = wt_ms_since(t);
    if ((rc = wt_path(f, sizeof f, "%s/index", lower)) < 0 ||
        (rc = wt_path(upper, sizeof upper, "%s/index", p->reg)) < 0 ||
        (rc = wt_copy_file(f, upper)) < 0)
        return rc;
    if ((rc = wt_path(f, sizeof f, "%s/tree", lower)) < 0 ||
        (rc = wt_path(upper, sizeof upper, "%s/upper", p->pod)) < 0 ||
        (rc = wt_path(work, sizeof work, "%s/work", p->pod)) < 0 ||
        (rc = wt_path(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", f, upper, work)) < 0)
        return rc;
    if (mount("overlay", p->ws, "overlay", MS_NOSUID | MS_NODEV, opts) != 0) {
        int e = errno;
        snprintf(out->note, sizeof out->note, "overlay: mount failed: %s", strerror(e));
        if ((rc = wt_path(f, sizeof f, "%s/index", p->reg)) < 0)
            return rc;
        unlink(f); /* the full checkout writes its own index */
        return 1;
    }
    return 0;
}

/* Step 7: what git_worktree_add does, into the registered worktree. */
static int full_checkout(const wt_paths *p, am_wt_info *out) {
    git_repository *wt = NULL;
    git_index *empty = NULL;
    int rc = 0;
    unsigned long long t = wt_now_ns();
    if ((rc = write_dotgit(p)) < 0)
        return rc;
    if (git_repository_open(&wt, p->ws) < 0)
        return wt_git_fail(AM_EIO, "open worktree", p->ws);
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_RECREATE_MISSING;
    if (git_index_new(&empty) < 0) {
        rc = wt_git_fail(AM_EIO, "new index", NULL);
        goto out;
    }
    co.baseline_index = empty;
    if (git_checkout_head(wt, &co) < 0)
        rc = wt_git_fail(AM_EIO, "checkout into", p->ws);
    out->ms_checkout = wt_ms_since(t);
out:
    git_index_free(empty);
    git_repository_free(wt);
    return rc;
}

/* Undo a half-made pod: unmount, delete dirs and registration, delete the branch we made. */
static void rollback(const wt_paths *p, const char *branch, int made_branch) {
    if (is_mount_point(p->ws, p->pod))
        (void)umount2(p->ws, MNT_DETACH);
    (void)wt_rm_rf(p->pod);
    int fd = wt_lock(p->lock);
    (void)wt_rm_rf(p->reg);
    if (made_branch) {
        git_repository *repo = NULL;
        git_reference *ref = NULL;
        if (wt_mirror_open(p->mirror, &repo) == 0 &&
            git_branch_lookup(&ref, repo, branch, GIT_BRANCH_LOCAL) == 0)
            (void)git_branch_delete(ref);
        git_reference_free(ref);
        git_repository_free(repo);
    }
    wt_unlock(fd);
}

int am_wt_create(const char *data_dir, const char *repo_url, const char *base_ref,
                 const char *branch, const char *pod_id, am_wt_info *out) {
    unsigned long long t0 = wt_now_ns();
    wt_paths p;
    char br[256];
    git_repository *repo = NULL;
    git_reference *ref = NULL;
    git_oid commit;
    int rc, lockfd = -1, claimed = 0, made_branch = 0, valid = 0;

    /* 1. validate */
    memset(out, 0, sizeof *out);
    if ((rc = make_paths(data_dir, repo_url, pod_id, &p)) < 0)
        return rc;
    if (!base_ref || !*base_ref)
        return am_err_set(AM_EINVAL, "worktree: empty base_ref");
    if (branch && *branch)
        rc = wt_path(br, sizeof br, "%s", branch);
    else
        rc = wt_path(br, sizeof br, "airmesh/pod-%s", pod_id);
    if (rc < 0)
        return rc;
    if (git_branch_name_is_valid(&valid, br) < 0 || !valid || br[0] == '-')
        return am_err_set(AM_EINVAL, "worktree: invalid branch name '%s'", br);
    if (access(p.pod, F_OK) == 0)
        return am_err_set(AM_EEXISTS, "worktree: pod %s already exists", pod_id);

    /* 2. lock, open/create, fetch */
    if ((lockfd = wt_lock(p.lock)) < 0)
        return lockfd;
    if ((rc = wt_mirror_open_fetch(p.mirror, repo_url, &repo)) < 0)
        goto fail;
    out->ms_fetch = wt_ms_since(t0);

    /* 3. resolve, refuse existing branch */
    if ((rc = wt_resolve(repo, repo_url, base_ref, &commit)) < 0)
        goto fail;
    rc = git_branch_lookup(&ref, repo, br, GIT_BRANCH_LOCAL);
    git_reference_free(ref);
    ref = NULL;
    if (rc == 0) {
        rc = am_err_set(AM_EEXISTS, "worktree: branch '%s' already exists in the mirror of %s", br,
                        repo_url);
        goto fail;
    }
    git_error_clear();

    /* 4. claim the pod id */
    char wtdir[PATH_MAX];
    if ((rc = wt_path(wtdir, sizeof wtdir, "%s/worktrees", p.mirror)) < 0)
        goto fail;
    if (mkdir(wtdir, 0755) != 0 && errno != EEXIST) {
        rc = wt_sys_fail("mkdir", wtdir);
        goto fail;
    }
    if (mkdir(p.pod, 0755) != 0) {
        rc = errno == EEXIST ? am_err_set(AM_EEXISTS, "worktree: pod %s already exists", pod_id)
                             : wt_sys_fail("mkdir", p.pod);
        goto fail;
    }
    if (mkdir(p.reg, 0755) != 0) {
        rc = errno == EEXIST
                 ? am_err_set(AM_EEXISTS, "worktree: worktree %s already registered in %s", pod_id,
                              p.mirror)
                 : wt_sys_fail("mkdir", p.reg);
        (void)rmdir(p.pod);
        goto fail;
    }
    claimed = 1;
    static const char *const sub[] = {"upper", "work", "workspace"};
    for (size_t i = 0; i < 3; i++) {
        char d[PATH_MAX];
        if ((rc = wt_path(d, sizeof d, "%s/%s", p.pod, sub[i])) < 0)
            goto fail;
        if (mkdir(d, 0755) != 0) {
            rc = wt_sys_fail("mkdir", d);
            goto fail;
        }
    }

    /* 5. branch + registration */
    git_commit *c = NULL;
    if (git_commit_lookup(&c, repo, &commit) < 0) {
        rc = wt_git_fail(AM_EIO, "look up commit of", base_ref);
        goto fail;
    }
    rc = git_branch_create(&ref, repo, br, c, 0);
    git_commit_free(c);
    git_reference_free(ref);
    ref = NULL;
    if (rc < 0) {
        rc = wt_git_fail(AM_EIO, "create branch", br);
        goto fail;
    }
    made_branch = 1;
    if ((rc = write_registration(&p, br, pod_id)) < 0)
        goto fail;
    wt_unlock(lockfd);
    lockfd = -1;

    /* 6./7./8. workspace */
    rc = 1;
    if (g_mode == AM_WT_MODE_AUTO) {
        if ((rc = mount_overlay(&p, repo, &commit, out)) < 0)
            goto fail;
        if (rc == 0 && (rc = write_dotgit(&p)) < 0)
            goto fail;
        out->overlay = (rc == 0);
    } else {
        snprintf(out->note, sizeof out->note, "full checkout requested (mode FULL)");
    }
    if (!out->overlay && (rc = full_checkout(&p, out)) < 0)
        goto fail;

    snprintf(out->path, sizeof out->path, "%s", p.ws);
    snprintf(out->gitdir, sizeof out->gitdir, "%s", p.mirror);
    snprintf(out->branch, sizeof out->branch, "%s", br);
    git_oid_tostr(out->commit, sizeof out->commit, &commit);
    git_repository_free(repo);
    out->ms_total = wt_ms_since(t0);
    return 0;

fail:
    wt_unlock(lockfd);
    git_repository_free(repo);
    if (claimed) {
        char saved[512];
        snprintf(saved, sizeof saved, "%s", am_err_last());
        rollback(&p, br, made_branch);
        am_err_set(-rc, "%s", saved); /* keep the original step's message */
    }
    return rc;
}

int am_wt_remove(const char *data_dir, const char *repo_url, const char *pod_id, int keep) {
    wt_paths p;
    int rc = make_paths(data_dir, repo_url, pod_id, &p);
    if (rc < 0)
        return rc;
    if (access(p.pod, F_OK) != 0 && access(p.reg, F_OK) != 0)
        return am_err_set(AM_ENOTFOUND, "worktree: no worktree for pod %s", pod_id);
    if (keep)
        return 0; /* left mounted and registered for review */

    if (is_mount_point(p.ws, p.pod) && umount2(p.ws, 0) != 0) {
        if (errno != EBUSY || umount2(p.ws, MNT_DETACH) != 0)
            return wt_sys_fail("unmount", p.ws);
    }
    if ((rc = wt_rm_rf(p.pod)) < 0)
        return rc;
    int fd = wt_lock(p.lock);
    if (fd < 0)
        return fd;
    rc = wt_rm_rf(p.reg);
    wt_unlock(fd);
    return rc;
}
