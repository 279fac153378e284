/*
 * runner/worktree — the runner's git layer for pods: one bare mirror per repo URL, one shared
 * read-only checkout per base commit, and per pod a private git dir on a new branch, borrowing
 * the mirror's objects, whose working directory is an overlayfs (shared checkout below, per-pod
 * upper layer above).
 *
 * On-disk layout under DATA (the runner's data dir, made absolute with realpath):
 *
 *   DATA/mirrors/<16 hex of sha256(url)>.git   bare mirror; remote "origin" = url with
 *                                                +refs/heads/<name>:refs/remotes/origin/<name> and
 *                                                +refs/tags/<name>:refs/tags/<name>, fetched (with
 *                                                prune) at every am_wt_create
 *   DATA/mirrors/<h>.lock                        flock: one fetch/branch/fetch-back at a time per
 *                                                mirror
 *   DATA/mirrors/<h>.git/refs/heads/<branch>     the pods' branches (upstream never writes here):
 *                                                made at create, moved by am_wt_remove only
 *   DATA/mirrors/<h>.in-<pod>/                   during a fetch-back: the pod's pack being
 *                                                indexed and checked (then moved into the mirror)
 *   DATA/mirrors/<h>.fb-<pod>/pack.fifo          during a fetch-back: the helper's /workspace and
 *                                                the FIFO it writes the ref value + pack into
 *   DATA/checkouts/<commit>/tree/               the commit's files, written once (temp dir +
 *                                                rename, so concurrent creators never collide)
 *   DATA/checkouts/<commit>/index               index of that tree with the stat data of those
 *                                                files (copied into each pod's git dir)
 *   DATA/pods/<pod>/git/                        the pod's private git dir: HEAD ("ref:
 *                                                refs/heads/<branch>"), config, index,
 *                                                refs/heads/<branch>, objects/ (its new objects)
 *                                                with objects/info/alternates = the mirror's
 *                                                objects dir (absolute path)
 *   DATA/pods/<pod>/branch                      the branch name as the runner recorded it (outside
 *                                                the git dir: the agent cannot change which
 *                                                branch comes back)
 *   DATA/pods/<pod>/{upper,work}/               overlayfs upper and work dirs of the pod
 *   DATA/pods/<pod>/home/                       the pod user's HOME (bind it read-write at
 *                                                /home/agent); inside the quota, kept and removed
 *                                                with the workspace
 *   DATA/pods/<pod>/workspace/                  overlay mount (lower = checkouts/<c>/tree);
 *                                                contains the ".git" file ("gitdir:
 *                                                DATA/pods/<pod>/git"); bind it at /workspace
 *
 * Why this shape: writing ~5,000 files is what makes `git worktree add` slow (≈ 0.5–0.7 s here).
 * With the overlay, pod start costs a fetch, a branch, a few small files, an index copy and one
 * mount(2), independent of the number of files; only the first pod on a given commit pays for the
 * checkout. Because overlayfs reports the lower files' own inode numbers and times, the copied
 * index's stat data matches the workspace and `git status` inside is clean without re-hashing
 * (st_dev differs, which git does not compare by default). The ".git" file names a plain
 * (non-worktree) git dir, so git takes the directory holding it as the work tree: `git status`,
 * `git commit` and `git log` work at /workspace inside the sandbox and at the host path.
 *
 * Refinement over "+refs/heads/<name>:refs/heads/<name>": upstream branches are fetched into
 * refs/remotes/origin/<name>, so a fetch (with prune) never moves or deletes a pod's branch, even
 * if the upstream has a branch of the same name. base_ref is resolved as refs/remotes/origin/<x>,
 * then refs/tags/<x>, then anything git_revparse_single accepts in the mirror (a commit id, a full
 * ref name, a branch left by an earlier pod).
 *
 * Fallback: if mount(2) of the overlay fails (EPERM without CAP_SYS_ADMIN, an upper filesystem
 * overlay refuses, ...) or am_wt_set_mode(AM_WT_MODE_FULL) was called, the workspace is a plain
 * full checkout made with libgit2 through the same ".git" file and pod git dir, and
 * am_wt_info.overlay is 0 with the reason in .note.
 *
 * Sandbox integration: bind am_wt_info.gitdir (the pod's git dir) read-write and
 * am_wt_info.mirror read-only, both at their host paths (the ".git" file and the alternates file
 * hold absolute paths). The agent can then change only its own git dir: commits, refs, config,
 * even its alternates or a commondir file.
 *
 * Fetch-back (am_wt_remove, keep = 0 or 1): the branch comes back AS DATA, never by opening the
 * pod's git dir with the runner's privileges (runner/worktree/fetchback.c). A helper runs in a
 * new sandbox (runner/sandbox: same namespaces, seccomp, no network) that binds only the pod's
 * git dir and this repo's mirror read-only, and the host's git (sanitized environment, no
 * system/global config) packs the objects of refs/heads/<branch> the mirror lacks and writes the
 * pack and the ref value into a FIFO the runner opened. The branch is the one recorded at
 * create in DATA/pods/<pod>/branch (outside the git dir). The runner refuses any other ref name,
 * more than am_wt_set_fetch_back_max bytes, a pack libgit2's indexer rejects, or a value that is
 * not a commit whose objects are all in the pack or the mirror; then it moves the pack into the
 * mirror and the ref (compare-and-swap) under the mirror lock. A refusal leaves the mirror
 * unchanged and is returned as "worktree: fetch-back of <branch> refused: <why>"; keep = 0 still
 * unmounts and deletes the pod (no symlink is followed) and returns that error. Pods of the old
 * layout (a registration in DATA/mirrors/<h>.git/worktrees/<pod>) are still removed.
 *
 * Threads: am_wt_init/am_wt_set_mode once at startup, before other threads call in. After that
 * am_wt_create/am_wt_remove may run concurrently from any threads or processes for different pods
 * (same or different repos): the per-mirror flock serialises fetch/branch/fetch-back, shared
 * checkouts are published by rename. Calls for the same pod id must not overlap.
 * Errors: 0 or -AM_E*, with am_err_last() naming the step ("worktree: <step> <what>: <message>"),
 * except the two a user causes, which say what is wrong in the user's terms with libgit2's text in
 * parentheses: "repository <url>: no such directory on this runner; ... (<libgit2>)" (or "not a
 * git repository ...", "fetch failed; ...") and "base ref 'x' not found in <url> (branches: a, b)".
 * Ownership: nothing is returned that needs freeing; am_wt_info is the caller's.
 */
#ifndef AM_RUNNER_WORKTREE_H
#define AM_RUNNER_WORKTREE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum { AM_WT_MODE_AUTO = 0, AM_WT_MODE_FULL = 1 };

typedef struct {
    char path[PATH_MAX];   /* the workspace dir (bind it read-write at /workspace) */
    char gitdir[PATH_MAX]; /* the pod's own git dir (bind it read-write at the same path) */
    char mirror[PATH_MAX]; /* the mirror it borrows objects from (bind it read-only, same path) */
    char home[PATH_MAX];   /* the pod user's home dir (bind it read-write at /home/agent) */
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
 * not resolve ("base ref 'x' not found in <url> (branches: main, dev)"), -AM_EINVAL for bad names.
 */
int am_wt_create(const char *data_dir, const char *repo_url, const char *base_ref,
                 const char *branch, const char *pod_id, am_wt_info *out);

/* First, in both cases, bring the pod's branch (only that ref) back into the mirror as data.
 * keep = 0: then unmount the overlay and delete DATA/pods/<pod> (also when the fetch failed; its
 * error is returned after the cleanup). keep = 1: leave the workspace (still mounted) and its git
 * dir for review; call again with keep = 0 to clean up (which fetches again). The branch (and the
 * commits on it) stays in the mirror. */
int am_wt_remove(const char *data_dir, const char *repo_url, const char *pod_id, int keep);

/* Largest fetch-back accepted (header + pack), in bytes; default 256 MiB. Process-wide; call at
 * startup. */
void am_wt_set_fetch_back_max(uint64_t bytes);

/* The runner half of the fetch-back alone, for tests and tools: read the helper's output
 * ("airmesh-fetchback 1 refs/heads/<branch> <hex>\n" + pack) from fd to EOF and apply it to the
 * pod's branch in the mirror, with every check of am_wt_remove's fetch-back. */
int am_wt_receive(const char *data_dir, const char *repo_url, const char *pod_id, int fd);
/* owner.c. Process-wide, at startup: the pods' writable dirs (the overlay's upper dir, the pod's
 * git dir, a full checkout) are chowned to uid:gid (pod root's host ids), and with userns_fd >= 0
 * (a user namespace carrying the pods' id map) the shared checkout is mounted idmapped below the
 * overlay so that its files belong to pod root inside. Not called: nothing is chowned. */
void am_wt_set_owner(uid_t uid, gid_t gid, int userns_fd);
/* For am_wt_create calls from this thread: bytes > 0 puts DATA/pods/<pod> (upper/work dirs and
 * git dir) on a tmpfs of that size, the pod's workspace quota; 0 = no quota. */
void am_wt_set_quota(uint64_t bytes);

/* DATA/mirrors/<h>.git for repo_url (whether or not it exists yet). */
int am_wt_mirror_path(const char *data_dir, const char *repo_url, char *out, size_t cap);

/* ---- review (review.c) ---- */

/* For am_wt_create calls from this thread: on = 1 makes the pod continue `branch` where an
 * earlier pod left it (the branch must exist in the mirror: -AM_ENOTFOUND otherwise; its tip is
 * the pod's base commit, base_ref is only checked for being non-empty); 0 (default) = a new
 * branch, an existing one is -AM_EEXISTS. */
void am_wt_set_continue_branch(int on);

#define AM_WT_REVIEW_MAX_DEFAULT (3u << 20) /* patch bytes (the stream's messages are <= 4 MiB) */
#define AM_WT_REVIEW_COMMITS_MAX 500
typedef struct {
    char id[41];
    char author[160]; /* "name <email>" */
    uint64_t time_ms;
    char summary[256];
} am_wt_commit;
typedef struct {
    char base_commit[41]; /* merge base of the branch and base_ref */
    char head_commit[41]; /* the branch's tip in the mirror */
    am_wt_commit *commits; /* oldest first */
    size_t n_commits;
    int commits_truncated; /* more than AM_WT_REVIEW_COMMITS_MAX */
    char *diff;            /* NUL-terminated unified patch (git's format) */
    size_t diff_len;
    int truncated; /* the patch was cut at max_bytes (whole lines) */
    uint32_t files, additions, deletions; /* of the whole diff */
} am_wt_review;
/* The commits and the patch of refs/heads/<branch> against its merge base with base_ref, from
 * the mirror of repo_url (what was brought back: see review.c). max_bytes 0 = the default.
 * -AM_ENOTFOUND no mirror / no such branch / base_ref not found / no merge base. */
int am_wt_review_diff(const char *data_dir, const char *repo_url, const char *base_ref,
                      const char *branch, size_t max_bytes, am_wt_review *out);
void am_wt_review_free(am_wt_review *r);
/* Process-wide, at startup: the runner's git credentials file (lines "URL-PREFIX USER
 * PASSWORD-FILE"); NULL = none. -AM_EINVAL when it cannot be read. */
int am_wt_set_credentials_file(const char *path);
/* Push refs/heads/<branch> of the mirror to repo_url with the credentials held for it. No
 * credentials: 0 with *read_only = 1 (nothing pushed). pushed_to: repo_url without userinfo;
 * commit: the tip pushed. Errors name the remote's answer (never the credentials). */
int am_wt_push(const char *data_dir, const char *repo_url, const char *branch, char *pushed_to,
               size_t cap, char commit[41], int *read_only);

#endif
