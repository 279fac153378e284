/*
 * runner/worktree/worktree.c — am_wt_create / am_wt_remove: a pod's worktree, read top to bottom.
 *
 * Create (each step's failure is reported as "worktree: <step> <what>: <why>"):
 *   1. validate pod id ([A-Za-z0-9-], 1..64), URL, base_ref, branch (git_branch_name_is_valid);
 *      every path below is built from DATA + hashes/ids, so none can escape DATA; a local URL
 *      inside DATA is refused (the runner would open a pod's git dir as a repository)
 *   2. flock the mirror; open or create it; fetch (ms_fetch)
 *   3. resolve base_ref to a commit; refuse an existing branch or pod
 *   4. claim the pod: mkdir DATA/pods/<pod> (O_EXCL-like)
 *   5. create refs/heads/<branch> at the commit in the mirror; unlock; write the pod's git dir
 *      DATA/pods/<pod>/git (HEAD, config, refs/heads/<branch>, objects/ with info/alternates =
 *      the mirror's objects) and DATA/pods/<pod>/branch
 *   6. overlay: make sure the shared checkout of the commit exists; copy its index template into
 *      the pod's git dir; mount overlay(lower = checkout, upper/work per pod) on the workspace
 *   7. if mounting fails (or mode FULL): a plain libgit2 checkout of the branch into the
 *      workspace, which also writes the index (what git_worktree_add does)
 *   8. write the workspace's ".git" file ("gitdir: DATA/pods/<pod>/git")
 *   On failure after step 4 everything made so far is undone (mount, dirs, branch).
 *
 * Why a private git dir and not a linked worktree of the mirror: a worktree's git dir lives in
 * the mirror, so `git commit` inside needs the whole mirror writable, and with it every other
 * pod's branch and the mirror's objects. The pod's git dir holds only what the pod may change;
 * the mirror is bound read-only and reached through objects/info/alternates. The files are the
 * documented layout (gitrepository-layout(5)), written by hand because git_repository_init_ext
 * and git_worktree_add do more (templates, a checkout that would walk and hash the overlay).
 *
 * Remove: bring the pod's branch back into the mirror as data (fetchback.c: a helper in a
 * sandbox packs it, the runner checks and indexes the pack and moves the ref), then (keep = 0)
 * unmount the overlay (lazily if busy) and delete DATA/pods/<pod> without following symlinks or
 * crossing mounts (wt_rm_rf). The branch and its commits stay in the mirror.
 *
 * Ownership: the caller owns am_wt_info. Threads: see worktree.h — different pods concurrently,
 * the same pod from one thread at a time; am_wt_set_mode at startup only.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
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
static __thread int t_continue; /* am_wt_set_continue_branch, for this thread's creates */

void am_wt_set_mode(int mode) {
    g_mode = mode;
}

void am_wt_set_continue_branch(int on) {
    t_continue = on;
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
    char mirror[PATH_MAX];  /* DATA/mirrors/<h>.git */
    char lock[PATH_MAX];    /* DATA/mirrors/<h>.lock */
    char objects[PATH_MAX]; /* DATA/mirrors/<h>.git/objects (the pod's alternate) */
    char reg[PATH_MAX];     /* DATA/mirrors/<h>.git/worktrees/<pod>: the old layout's
                               registration, only ever deleted (pods left by an older runner) */
    char pod[PATH_MAX];     /* DATA/pods/<pod> */
    char git[PATH_MAX];     /* DATA/pods/<pod>/git: the pod's private git dir */
    char brfile[PATH_MAX];  /* DATA/pods/<pod>/branch: the branch, as the runner recorded it */
    char ws[PATH_MAX];      /* DATA/pods/<pod>/workspace */
    char staging[PATH_MAX]; /* DATA/mirrors/<h>.in-<pod>: a fetch-back's pack before it is
                               checked */
    char fbdir[PATH_MAX];   /* DATA/mirrors/<h>.fb-<pod>: the fetch-back helper's workspace */
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
        (rc = wt_path(p->objects, sizeof p->objects, "%s/objects", p->mirror)) < 0 ||
        (rc = wt_path(p->reg, sizeof p->reg, "%s/worktrees/%s", p->mirror, pod_id)) < 0 ||
        (rc = wt_path(p->pod, sizeof p->pod, "%s/pods/%s", p->data, pod_id)) < 0 ||
        (rc = wt_path(p->git, sizeof p->git, "%s/git", p->pod)) < 0 ||
        (rc = wt_path(p->brfile, sizeof p->brfile, "%s/branch", p->pod)) < 0 ||
        (rc = wt_path(p->ws, sizeof p->ws, "%s/workspace", p->pod)) < 0 ||
        (rc = wt_path(p->staging, sizeof p->staging, "%s.in-%s", base, pod_id)) < 0 ||
        (rc = wt_path(p->fbdir, sizeof p->fbdir, "%s.fb-%s", base, pod_id)) < 0)
        return rc;
    return 0;
}

static int is_mount_point(const char *path, const char *parent) {
    struct stat a, b;
    return stat(path, &a) == 0 && stat(parent, &b) == 0 && a.st_dev != b.st_dev;
}

static const char k_pod_config[] = "[core]\n"
                                   "\trepositoryformatversion = 0\n"
                                   "\tfilemode = true\n"
                                   "\tbare = false\n"
                                   "\tlogallrefupdates = true\n";

/* DATA/pods/<pod>/git: HEAD, config, objects/{info/alternates,pack}, refs/{heads/<branch>,tags},
 * plus DATA/pods/<pod>/branch (outside the git dir, so the agent cannot change which branch
 * am_wt_remove brings back). */
static int write_pod_git(const wt_paths *p, const char *branch, const char *hex) {
    static const char *const dirs[] = {"",      "/objects",    "/objects/info", "/objects/pack",
                                       "/refs", "/refs/heads", "/refs/tags"};
    char f[PATH_MAX], s[PATH_MAX + 64];
    int rc;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if ((rc = wt_path(f, sizeof f, "%s%s", p->git, dirs[i])) < 0)
            return rc;
        if (mkdir(f, 0755) != 0)
            return wt_sys_fail("mkdir", f);
    }
    if ((rc = wt_path(f, sizeof f, "%s/objects/info/alternates", p->git)) < 0 ||
        (rc = wt_path(s, sizeof s, "%s\n", p->objects)) < 0 || (rc = wt_write_str(f, s)) < 0)
        return rc;
    if ((rc = wt_path(f, sizeof f, "%s/config", p->git)) < 0 ||
        (rc = wt_write_str(f, k_pod_config)) < 0)
        return rc;
    /* refs/heads/<branch>, with the directories of a branch like "feature/x". */
    if ((rc = wt_path(f, sizeof f, "%s/refs/heads/%s", p->git, branch)) < 0)
        return rc;
    for (char *sl = f + strlen(p->git) + strlen("/refs/heads/"); (sl = strchr(sl, '/')); sl++) {
        *sl = '\0';
        int e = mkdir(f, 0755) != 0 && errno != EEXIST;
        *sl = '/';
        if (e)
            return wt_sys_fail("mkdir", f);
    }
    if ((rc = wt_path(s, sizeof s, "%s\n", hex)) < 0 || (rc = wt_write_str(f, s)) < 0)
        return rc;
    if ((rc = wt_path(f, sizeof f, "%s/HEAD", p->git)) < 0 ||
        (rc = wt_path(s, sizeof s, "ref: refs/heads/%s\n", branch)) < 0 ||
        (rc = wt_write_str(f, s)) < 0)
        return rc;
    return wt_write_str(p->brfile, branch);
}

static int write_dotgit(const wt_paths *p) {
    char f[PATH_MAX], s[PATH_MAX + 16];
    int rc;
    if ((rc = wt_path(f, sizeof f, "%s/.git", p->ws)) < 0 ||
        (rc = wt_path(s, sizeof s, "gitdir: %s\n", p->git)) < 0)
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
        (rc = wt_path(upper, sizeof upper, "%s/index", p->git)) < 0 ||
        (rc = wt_copy_file(f, upper)) < 0)
        return rc;
    if ((rc = wt_path(f, sizeof f, "%s/tree", lower)) < 0 ||
        (rc = wt_path(upper, sizeof upper, "%s/upper", p->pod)) < 0 ||
        (rc = wt_path(work, sizeof work, "%s/work", p->pod)) < 0 ||
        (rc = wt_owner_layers(p->pod, upper, f, lower, sizeof lower)) < 0 || /* owner.c */
        (rc = wt_path(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper,
                      work)) < 0)
        return rc;
    int mounted = mount("overlay", p->ws, "overlay", MS_NOSUID | MS_NODEV, opts) == 0;
    int e = errno;
    wt_owner_layers_done(p->pod);
    if (!mounted) {
        snprintf(out->note, sizeof out->note, "overlay: mount failed: %s", strerror(e));
        if ((rc = wt_path(f, sizeof f, "%s/index", p->git)) < 0)
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

/* Undo a half-made pod: unmount, delete its dirs (git dir included), delete the branch we made. */
static void rollback(const wt_paths *p, const char *branch, int made_branch) {
    if (is_mount_point(p->ws, p->pod))
        (void)umount2(p->ws, MNT_DETACH);
    (void)wt_owner_release(p->pod);
    (void)wt_rm_rf(p->pod);
    int fd = wt_lock(p->lock);
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

/* 1 if `path` (lexically, made absolute) lies in `dir` or is `dir`. */
static int lexically_under(const char *path, const char *dir) {
    char abs[PATH_MAX * 2], *parts[PATH_MAX / 2];
    size_t n = 0, dl = strlen(dir);
    if (path[0] == '/')
        snprintf(abs, sizeof abs, "%s", path);
    else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return 0;
        snprintf(abs, sizeof abs, "%s/%s", cwd, path);
    }
    for (char *save = NULL, *c = strtok_r(abs, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        if (strcmp(c, ".") == 0)
            continue;
        if (strcmp(c, "..") == 0) {
            n -= n > 0;
            continue;
        }
        if (n < sizeof parts / sizeof parts[0])
            parts[n++] = c;
    }
    char norm[PATH_MAX * 2] = "";
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof norm - 2; i++)
        o += (size_t)snprintf(norm + o, sizeof norm - o, "/%s", parts[i]);
    if (!o)
        snprintf(norm, sizeof norm, "/");
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    return strncmp(norm, dir, dl) == 0 && (norm[dl] == '\0' || norm[dl] == '/');
}

/* A local upstream (a path or file:// URL) inside the runner's data dir is refused: its mirrors
 * and, above all, the pods' git dirs (agent-written) would be opened by the runner's libgit2 as
 * a repository, following their commondir, alternates, symlinked refs and config includes with
 * the runner's privileges. Checked on the path as given (lexically) and as resolved. */
static int refuse_data_dir_upstream(const char *data_dir, const char *url) {
    const char *path = url;
    if (strncmp(url, "file://", 7) == 0)
        path = url + 7;
    else if (strstr(url, "://"))
        return 0; /* https, ssh, git: not a local path */
    char data_real[PATH_MAX], real[PATH_MAX];
    if (!realpath(data_dir, data_real))
        snprintf(data_real, sizeof data_real, "%s", data_dir);
    if (lexically_under(path, data_real) || lexically_under(path, data_dir) ||
        (realpath(path, real) && lexically_under(real, data_real)))
        return am_err_set(AM_EINVAL,
                          "worktree: repo %s is inside the runner's data dir (its mirrors and the "
                          "pods' git dirs are never a pod's upstream)",
                          url);
    return 0;
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
    if ((rc = refuse_data_dir_upstream(data_dir, repo_url)) < 0)
        return rc;

    /* 2. lock, open/create, fetch */
    if ((lockfd = wt_lock(p.lock)) < 0)
        return lockfd;
    if ((rc = wt_mirror_open_fetch(p.mirror, repo_url, &repo)) < 0)
        goto fail;
    out->ms_fetch = wt_ms_since(t0);

    /* 3. resolve, refuse existing branch (or, continuing one, take its tip) */
    int have = git_branch_lookup(&ref, repo, br, GIT_BRANCH_LOCAL) == 0;
    int tip_rc = have ? git_reference_name_to_id(&commit, repo, git_reference_name(ref)) : 0;
    git_reference_free(ref);
    ref = NULL;
    git_error_clear();
    if (t_continue && !have) {
        rc =
            am_err_set(AM_ENOTFOUND, "worktree: branch '%s' to continue is not in the mirror of %s",
                       br, repo_url);
        goto fail;
    }
    if (t_continue && tip_rc < 0) {
        rc = wt_git_fail(AM_EIO, "read branch", br);
        goto fail;
    }
    if (!t_continue && (rc = wt_resolve(repo, repo_url, base_ref, &commit)) < 0)
        goto fail;
    if (!t_continue && have) {
        rc = am_err_set(AM_EEXISTS, "worktree: branch '%s' already exists in the mirror of %s", br,
                        repo_url);
        goto fail;
    }

    /* 4. claim the pod id */
    if (mkdir(p.pod, 0755) != 0) {
        rc = errno == EEXIST ? am_err_set(AM_EEXISTS, "worktree: pod %s already exists", pod_id)
                             : wt_sys_fail("mkdir", p.pod);
        goto fail;
    }
    claimed = 1;
    if ((rc = wt_owner_claim(p.pod)) < 0) /* the workspace quota (owner.c) */
        goto fail;
    /* "home": the agent's HOME (/home/agent in the pod), inside the quota, gone with the pod. */
    static const char *const sub[] = {"upper", "work", "workspace", "home"};
    for (size_t i = 0; i < 4; i++) {
        char d[PATH_MAX];
        if ((rc = wt_path(d, sizeof d, "%s/%s", p.pod, sub[i])) < 0)
            goto fail;
        if (mkdir(d, i == 3 ? 0700 : 0755) != 0) {
            rc = wt_sys_fail("mkdir", d);
            goto fail;
        }
    }

    /* 5. branch in the mirror (unless continued), then the pod's own git dir */
    git_commit *c = NULL;
    if (t_continue)
        goto have_branch;
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
have_branch:
    wt_unlock(lockfd);
    lockfd = -1;
    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, &commit);
    if ((rc = write_pod_git(&p, br, hex)) < 0)
        goto fail;

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
    char home[PATH_MAX];
    if ((rc = wt_path(home, sizeof home, "%s/home", p.pod)) < 0)
        goto fail;
    if ((rc = wt_owner_finish(p.git, p.ws, home, out->overlay)) < 0) /* to its owner (owner.c) */
        goto fail;
    snprintf(out->home, sizeof out->home, "%s", home);

    snprintf(out->path, sizeof out->path, "%s", p.ws);
    snprintf(out->gitdir, sizeof out->gitdir, "%s", p.git);
    snprintf(out->mirror, sizeof out->mirror, "%s", p.mirror);
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

/* The branch recorded at create (DATA/pods/<pod>/branch, outside the agent's reach). */
static int read_branch(const wt_paths *p, char *out, size_t cap) {
    FILE *f = fopen(p->brfile, "re");
    if (!f)
        return wt_sys_fail("read", p->brfile);
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    out[n] = '\0';
    int valid = 0;
    if (n == 0 || n == cap - 1 || git_branch_name_is_valid(&valid, out) < 0 || !valid)
        return am_err_set(AM_ECORRUPT, "worktree: bad branch in %s", p->brfile);
    return 0;
}

/* The pod's branch back into the mirror, as data (fetchback.c): the runner never opens the
 * pod's git dir, it reads a pack and a ref value a sandboxed helper made from it. */
static int bring_back(const wt_paths *p, const char *pod_id) {
    char br[256];
    int rc = read_branch(p, br, sizeof br);
    if (rc < 0)
        return rc;
    wt_fb_paths f = {.mirror = p->mirror,
                     .lock = p->lock,
                     .staging = p->staging,
                     .helper = p->fbdir,
                     .git = p->git,
                     .branch = br};
    return wt_fetch_back(&f, pod_id);
}

void am_wt_set_fetch_back_max(uint64_t bytes) {
    wt_set_fetch_back_max(bytes);
}

int am_wt_receive(const char *data_dir, const char *repo_url, const char *pod_id, int fd) {
    wt_paths p;
    char br[256];
    int rc = make_paths(data_dir, repo_url, pod_id, &p);
    if (rc < 0 || (rc = read_branch(&p, br, sizeof br)) < 0)
        return rc;
    wt_fb_paths f = {.mirror = p.mirror,
                     .lock = p.lock,
                     .staging = p.staging,
                     .helper = p.fbdir,
                     .git = p.git,
                     .branch = br};
    return wt_receive_fd(&f, fd);
}

int am_wt_remove(const char *data_dir, const char *repo_url, const char *pod_id, int keep) {
    wt_paths p;
    char saved[512] = "";
    int rc = make_paths(data_dir, repo_url, pod_id, &p);
    if (rc < 0)
        return rc;
    if (access(p.pod, F_OK) != 0 && access(p.reg, F_OK) != 0)
        return am_err_set(AM_ENOTFOUND, "worktree: no worktree for pod %s", pod_id);
    /* The branch goes back into the mirror in both cases (again at a later keep = 0, which picks
     * up anything committed during review). A pod dir without a git dir is one the create
     * rolled back half-way, or one of the old layout (its commits are in the mirror already). */
    int back = 0;
    if (access(p.git, F_OK) == 0 && (back = bring_back(&p, pod_id)) < 0)
        snprintf(saved, sizeof saved, "%s", am_err_last());
    if (keep)
        return back; /* left mounted for review */

    /* Cleanup goes on even if bringing the branch back failed (the error is returned). */
    if (is_mount_point(p.ws, p.pod) && umount2(p.ws, 0) != 0) {
        if (errno != EBUSY || umount2(p.ws, MNT_DETACH) != 0)
            return wt_sys_fail("unmount", p.ws);
    }
    if ((rc = wt_owner_release(p.pod)) < 0 || (rc = wt_rm_rf(p.pod)) < 0)
        return rc;
    if (access(p.reg, F_OK) == 0) { /* a registration of the old layout */
        int fd = wt_lock(p.lock);
        if (fd < 0)
            return fd;
        rc = wt_rm_rf(p.reg);
        wt_unlock(fd);
        if (rc < 0)
            return rc;
    }
    if (back < 0)
        return am_err_set(-back, "%s", saved);
    return 0;
}
