/*
 * runner/worktree/internal.h — helpers shared by the files of runner/worktree (not public).
 *
 * mirror.c: mirror paths, create/open, fetch, base_ref resolution, the per-mirror flock.
 * checkout.c: the shared per-commit checkout and its index template.
 * fetchback.c: the pod's branch back into the mirror as data (helper sandbox + receiver).
 * fsutil.c: small filesystem helpers (rm -rf that follows no symlink and stays on one mount,
 * file copy, tiny writes).
 * All are thread-safe (no globals); libgit2 objects passed in belong to the calling thread.
 */
#ifndef AM_RUNNER_WORKTREE_INTERNAL_H
#define AM_RUNNER_WORKTREE_INTERNAL_H

#include <git2.h>
#include <stddef.h>
#include <stdint.h>

/* Record "worktree: <step> <arg>: <libgit2 message>" and return -code. */
int wt_git_fail(int code, const char *step, const char *arg);

/* Record "worktree: <step> <arg>: <strerror(errno)>" and return -AM_EIO. */
int wt_sys_fail(const char *step, const char *arg);

/* snprintf into out, failing with -AM_EINVAL ("worktree: path too long") on truncation. */
int wt_path(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

double wt_ms_since(unsigned long long t0_ns);
unsigned long long wt_now_ns(void);

/* ---- mirror.c ---- */

/* DATA/mirrors/<h> without suffix; callers add ".git" / ".lock". */
int wt_mirror_base(const char *data, const char *url, char *out, size_t cap);

/* Take the mirror's flock (blocking). Returns an fd >= 0 or -AM_E*. Release with wt_unlock. */
int wt_lock(const char *lock_path);
void wt_unlock(int fd);

/* Open the bare mirror at path, creating it (with remote "origin" = url) if absent; refuses a
 * mirror whose origin is another URL. Then fetch. Caller holds the lock and frees *out. */
int wt_mirror_open_fetch(const char *path, const char *url, git_repository **out);

/* Open an existing mirror (no fetch). */
int wt_mirror_open(const char *path, git_repository **out);

/* Resolve base_ref in the mirror to a commit. -AM_ENOTFOUND with a clear message if absent. */
int wt_resolve(git_repository *repo, const char *url, const char *base_ref, git_oid *out);

/* ---- checkout.c ---- */

/* Make sure DATA/checkouts/<commit>/{tree,index} exist (building them if not) and write the
 * directory into dir. *reused = 1 if it already existed. */
int wt_checkout_ensure(const char *data, git_repository *repo, const git_oid *commit, char *dir,
                       size_t cap, int *reused);

/* ---- fetchback.c ---- */

/* What a fetch-back needs; every path is the runner's (built from DATA, hashes and ids). */
typedef struct {
    const char *mirror;  /* DATA/mirrors/<h>.git */
    const char *lock;    /* DATA/mirrors/<h>.lock */
    const char *staging; /* DATA/mirrors/<h>.in-<pod>: the pack is indexed here first */
    const char *helper;  /* DATA/mirrors/<h>.fb-<pod>: the helper's /workspace, with the FIFO
                            (outside the pod dir: a pod that filled its quota still comes back) */
    const char *git;     /* DATA/pods/<pod>/git, bound read-only into the helper's sandbox */
    const char *branch;  /* as recorded at create */
} wt_fb_paths;

/* Run the helper in a sandbox and take its pack + ref into the mirror (see fetchback.c).
 * Refusals: "worktree: fetch-back of <branch> refused: <why>", the mirror unchanged. */
int wt_fetch_back(const wt_fb_paths *f, const char *pod_id);

/* The runner half alone: read the helper's protocol from fd to EOF and apply it. */
int wt_receive_fd(const wt_fb_paths *f, int fd);

void wt_set_fetch_back_max(uint64_t bytes);
uint64_t wt_fetch_back_max(void);

/* The receiver, step by step (wt_fetch_back and wt_receive_fd drive it). */
typedef struct wt_rx wt_rx;
int wt_rx_begin(const char *mirror, const char *lock, const char *staging, const char *branch,
                wt_rx **out);
void wt_rx_known(const wt_rx *rx, char hex[GIT_OID_HEXSZ + 1]);
int wt_rx_feed(wt_rx *rx, const void *data, size_t n); /* <0 once refused */
int wt_rx_refused(const wt_rx *rx);                    /* 0 or the -AM_E* of the refusal */
const char *wt_rx_why(const wt_rx *rx);
int wt_rx_finish(wt_rx *rx, const char *log_message);
void wt_rx_free(wt_rx *rx);
/* ---- owner.c (see there) ---- */

/* Mount the workspace quota tmpfs (am_wt_set_quota) on the just-claimed pod dir. */
int wt_owner_claim(const char *pod_dir);
/* Before the overlay mount: upper to pod root; *lower = the path to use as lowerdir (an
 * idmapped view of tree at pod_dir/lower, or tree itself). */
int wt_owner_layers(const char *pod_dir, const char *upper, const char *tree, char *lower,
                    size_t cap);
/* After the overlay mount (or its failure): detach pod_dir/lower. */
void wt_owner_layers_done(const char *pod_dir);
/* The pod's git dir (and a full checkout's workspace) to pod root. */
int wt_owner_finish(const char *git, const char *workspace, const char *home, int overlay);
/* 1 when the pods' files belong to the agent user (fetch-back then runs as the agent too). */
int wt_owner_is_agent(void);
/* Unmount the quota tmpfs of pod_dir, if any (before deleting the pod dir). */
int wt_owner_release(const char *pod_dir);

/* ---- fsutil.c ---- */

/* rm -rf that never follows a symlink (openat/unlinkat relative to directory fds opened with
 * O_NOFOLLOW) and never crosses into another mount. Missing path = success. */
int wt_rm_rf(const char *path);

/* Copy a regular file (mode 0644), replacing dst. */
int wt_copy_file(const char *src, const char *dst);

/* Create/replace a small file with the given contents. */
int wt_write_str(const char *path, const char *s);

#endif
