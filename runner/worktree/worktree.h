/*
 * runner/worktree — the runner's git layer for pods: one bare mirror per repo URL, one shared
 * read-only checkout per base commit, and per pod a registered git worktree on a new branch whose
 * working directory is an overlayfs (shared checkout below, per-pod upper layer above).
 *
 * On-disk layout under DATA (the runner's data dir, made absolute with realpath):
 *
 *   DATA/mirrors/<16 hex of sha256(url)>.git   bare mirror; remote "origin" = url with
 *                                                +refs/heads/<name>:refs/remotes/origin/<name> and
 *                                                +refs/tags/<name>:refs/tags/<name>, fetched (with
 * prune) at every am_wt_create DATA/mirrors/<h>.lock                       flock: one
 * fetch/branch/registration at a time per mirror DATA/mirrors/<h>.git/refs/heads/<branch>    the
 * pods' branches (upstream never writes here) DATA/mirrors/<h>.git/worktrees/<pod>/       the pod's
 * git worktree registration: HEAD
 *                                                ("ref: refs/heads/<branch>"), commondir, gitdir,
 *                                                index, locked
 *   DATA/checkouts/<commit>/tree/               the commit's files, written once (temp dir +
 *                                                rename, so concurrent creators never collide)
 *   DATA/checkouts/<commit>/index               index of that tree with the stat data of those
 *                                                files (copied into each pod's registration)
 *   DATA/pods/<pod>/{upper,work}/               overlayfs upper and work dirs of the pod
 *   DATA/pods/<pod>/workspace/                  overlay mount (lower = checkouts/<c>/tree);
 *                                                contains the ".git" file; bind it at /workspace
 *
 * Why this shape: writing ~5,000 files is what makes `git worktree add` slow (≈ 0.5–0.7 s here).
 * With the overlay, pod start costs a fetch, a branch, a few small files, an index copy and one
 * mount(2), independent of the number of files; only the first pod on a given commit pays for the
 * checkout. Because overlayfs reports the lower files' own inode numbers and times, the copied
 * index's stat data matches the workspace and `git status` inside is clean without re-hashing
 * (st_dev differs, which git does not compare by default).
 *
 * Refinement over "+refs/heads/<name>:refs/heads/<name>": upstream branches are fetched into
 * refs/remotes/origin/<name>, so a fetch (with prune) never moves or deletes a pod's branch, even
 * if the upstream has a branch of the same name. base_ref is resolved as refs/remotes/origin/<x>,
 * then refs/tags/<x>, then anything git_revparse_single accepts in the mirror (a commit id, a full
 * ref name, a branch left by an earlier pod).
 *
 * Fallback: if mount(2) of the overlay fails (EPERM without CAP_SYS_ADMIN, an upper filesystem
 * overlay refuses, ...) or am_wt_set_mode(AM_WT_MODE_FULL) was called, the workspace is a plain
 * full checkout made with libgit2 into the same registered worktree (what git_worktree_add does),
 * and am_wt_info.overlay is 0 with the reason in .note.
 *
 * Sandbox integration: the workspace's ".git" names the registration by its absolute host path,
 * so the sandbox must bind DATA/mirrors/<h>.git read-write at the same path for `git commit` to
 * work inside. That gives the agent write access to the whole mirror (other pods' branches too).
 * Hardening left for later: a per-pod gitdir with objects/info/alternates pointing at the mirror
 * (read-only bind), and the pod's branch fetched back into the mirror by am_wt_remove.
 *
 * Threads: am_wt_init/am_wt_set_mode once at startup, before other threads call in. After that
 * am_wt_create/am_wt_remove may run concurrently from any threads or processes for different pods
 * (same or different repos): the per-mirror flock serialises fetch/branch/registration, shared
 * checkouts are published by rename. Calls for the same pod id must not overlap.
 * Errors: 0 or -AM_E*, with am_err_last() naming the step: "worktree: fetch <url>: <message>".
 * Ownership: nothing is returned that needs freeing; am_wt_info is the caller's.
 */
#ifndef AM_RUNNER_WORKTREE_H
#define AM_RUNNER_WORKTREE_H

#include <limits.h>
#include <stddef.h>

enum { AM_WT_MODE_AUTO = 0, AM_WT_MODE_FULL = 1 };

typedef struct {
    char path[PATH_MAX];   /* the workspace dir (bind it read-write at /workspace) */
    char gitdir[PATH_MAX]; /* the mirror (bind it read-write at the same path in the sandbox) */
    char branch[256];      /* the pod's branch, short name ("airmesh/pod-<id>") */
    char commit[41];       /* base commit the branch was created at */
    int overlay;           /* 1 overlay over a shared checkout, 0 full checkout */
    int checkout_reused;   /* 1 if the shared checkout already existed (overlay only) */
    char note[256];        /* why the full checkout was used, "" otherwise */
    double ms_fetch;       /* open/create mirror + fetch */
    double ms_checkout;    /* shared checkout (0-ish when reused) or the full checkout */
    double ms_total;       /* the whole am_wt_create */
} am_wt_info;

/* Initialise libgit2 (once per process) and create DATA/{mirrors,checkouts,pods}. */
int am_wt_init(const char *data_dir);

/* Release libgit2 (matches am_wt_init; for tests and clean exits). */
void am_wt_shutdown(void);

/* AM_WT_MODE_AUTO (overlay, full checkout if mounting fails) or AM_WT_MODE_FULL (always full).
 * Process-wide; call at startup. */
void am_wt_set_mode(int mode);

/* Fetch the mirror of repo_url (creating it on first use), resolve base_ref, create `branch`
 * (NULL or "" = "airmesh/pod-<pod_id>") at that commit and a worktree for pod_id on it.
 * Fails with -AM_EEXISTS if the branch or the pod already exists, -AM_ENOTFOUND if base_ref does
 * not resolve ("worktree: base_ref 'x' not found in <url>"), -AM_EINVAL for bad names. */
int am_wt_create(const char *data_dir, const char *repo_url, const char *base_ref,
                 const char *branch, const char *pod_id, am_wt_info *out);

/* keep = 0: unmount the overlay, delete DATA/pods/<pod> and the worktree registration.
 * keep = 1: leave the workspace (still mounted) and its registration for review; call again with
 * keep = 0 to clean up. In both cases the branch (and the commits on it) stays in the mirror. */
int am_wt_remove(const char *data_dir, const char *repo_url, const char *pod_id, int keep);

/* DATA/mirrors/<h>.git for repo_url (whether or not it exists yet). */
int am_wt_mirror_path(const char *data_dir, const char *repo_url, char *out, size_t cap);

#endif
