/*
 * runner/worktree/checkout.c — the shared, read-only checkout of one commit, made once and used
 * as the overlayfs lower layer by every pod based on that commit.
 *
 *   DATA/checkouts/<commit>/tree    the commit's files (libgit2 checkout with target_directory)
 *   DATA/checkouts/<commit>/index   the commit's tree as an index, with the stat data (ctime,
 *                                   mtime, ino, uid, gid, size) of the files in tree/
 *
 * Each pod's git dir gets a copy of index/. overlayfs reports a lower file's own inode number
 * and times (only st_dev is the overlay's, and git does not compare st_dev unless built with
 * USE_STDEV), so git sees every unchanged file as up to date and `git status` in a fresh pod
 * does not re-hash the tree.
 *
 * Concurrency: built in DATA/checkouts/.tmp-<commit>-XXXXXX and published with rename(2); if two
 * creators race (two pods, or two mirrors holding the same commit), the loser's rename fails with
 * EEXIST/ENOTEMPTY and it deletes its copy. A published checkout is never written again: overlayfs
 * never writes to a lower layer, pods see it only through their overlay, and nothing here changes
 * it. File modes are kept as git wrote them (0644/0755): overlayfs copy-up preserves modes, and a
 * sandboxed agent without CAP_DAC_OVERRIDE must be able to edit its files. Deleting checkouts no
 * pod uses any more is left to a later GC (it must not happen while an overlay is mounted on it).
 *
 * Ownership: nothing returned needs freeing. Threads: thread-safe; `repo` is the caller's.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/sandbox/sandbox.h"
#include "runner/worktree/internal.h"

/* Copy the stat data of tree/<path> into every entry of idx (gitlinks keep zeros). */
static int fill_stat(git_index *idx, const char *tree_dir) {
    size_t n = git_index_entrycount(idx);
    char path[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        const git_index_entry *e = git_index_get_byindex(idx, i);
        if (!e || e->mode == GIT_FILEMODE_COMMIT)
            continue;
        int rc = wt_path(path, sizeof path, "%s/%s", tree_dir, e->path);
        if (rc < 0)
            return rc;
        struct stat st;
        if (lstat(path, &st) != 0)
            return wt_sys_fail("stat checked-out file", path);
        git_index_entry ne = *e;
        ne.ctime.seconds = (int32_t)st.st_ctim.tv_sec;
        ne.ctime.nanoseconds = (uint32_t)st.st_ctim.tv_nsec;
        ne.mtime.seconds = (int32_t)st.st_mtim.tv_sec;
        ne.mtime.nanoseconds = (uint32_t)st.st_mtim.tv_nsec;
        ne.dev = (uint32_t)st.st_dev;
        ne.ino = (uint32_t)st.st_ino;
        /* The owner git will see in the pod: the agent (the tree is idmapped to it) or the
         * file's own (pod root through the pod-root idmap). git compares these. */
        ne.uid = wt_owner_is_agent() ? AM_SBX_AGENT_UID : (uint32_t)st.st_uid;
        ne.gid = wt_owner_is_agent() ? AM_SBX_AGENT_GID : (uint32_t)st.st_gid;
        ne.file_size = (uint32_t)st.st_size;
        if (git_index_add(idx, &ne) < 0)
            return wt_git_fail(AM_EIO, "index add", e->path);
    }
    return 0;
}

/* Check the commit out into tmp/tree and write tmp/index. */
static int build(git_repository *repo, const git_oid *commit_id, const char *tmp) {
    char tree_dir[PATH_MAX], index_path[PATH_MAX];
    git_commit *commit = NULL;
    git_tree *tree = NULL;
    git_index *empty = NULL, *idx = NULL;
    int rc;
    if ((rc = wt_path(tree_dir, sizeof tree_dir, "%s/tree", tmp)) < 0 ||
        (rc = wt_path(index_path, sizeof index_path, "%s/index", tmp)) < 0)
        return rc;
    if (mkdir(tree_dir, 0755) != 0)
        return wt_sys_fail("mkdir", tree_dir);

    char hex[GIT_OID_HEXSZ + 1];
    git_oid_tostr(hex, sizeof hex, commit_id);
    if (git_commit_lookup(&commit, repo, commit_id) < 0 || git_commit_tree(&tree, commit) < 0) {
        rc = wt_git_fail(AM_EIO, "look up commit", hex);
        goto out;
    }
    /* Empty baseline: never let the mirror's HEAD make checkout think files already exist. */
    if (git_index_new(&empty) < 0) {
        rc = wt_git_fail(AM_EIO, "new index", NULL);
        goto out;
    }
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy =
        GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX | GIT_CHECKOUT_NO_REFRESH;
    co.target_directory = tree_dir;
    co.baseline_index = empty;
    if (git_checkout_tree(repo, (const git_object *)tree, &co) < 0) {
        rc = wt_git_fail(AM_EIO, "checkout", hex);
        goto out;
    }

    if (git_index_open(&idx, index_path) < 0 || git_index_read_tree(idx, tree) < 0) {
        rc = wt_git_fail(AM_EIO, "index of", hex);
        goto out;
    }
    if ((rc = fill_stat(idx, tree_dir)) < 0)
        goto out;
    if (git_index_write(idx) < 0) {
        rc = wt_git_fail(AM_EIO, "write index", index_path);
        goto out;
    }
    rc = 0;
out:
    git_index_free(idx);
    git_index_free(empty);
    git_tree_free(tree);
    git_commit_free(commit);
    return rc;
}

int wt_checkout_ensure(const char *data, git_repository *repo, const git_oid *commit, char *dir,
                       size_t cap, int *reused) {
    char hex[GIT_OID_HEXSZ + 1], tmp[PATH_MAX], probe[PATH_MAX];
    int rc;
    git_oid_tostr(hex, sizeof hex, commit);
    *reused = 0;
    if ((rc = wt_path(dir, cap, "%s/checkouts/%s", data, hex)) < 0 ||
        (rc = wt_path(probe, sizeof probe, "%s/index", dir)) < 0 ||
        (rc = wt_path(tmp, sizeof tmp, "%s/checkouts/.tmp-%s-XXXXXX", data, hex)) < 0)
        return rc;
    if (access(probe, F_OK) == 0) {
        *reused = 1;
        return 0;
    }
    if (!mkdtemp(tmp))
        return wt_sys_fail("mkdtemp", tmp);
    if (chmod(tmp, 0755) != 0) {
        rc = wt_sys_fail("chmod", tmp);
        goto fail;
    }
    if ((rc = build(repo, commit, tmp)) < 0)
        goto fail;
    if (rename(tmp, dir) != 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) {
            rc = wt_sys_fail("publish checkout", dir);
            goto fail;
        }
        *reused = 1; /* another creator won the race; use theirs */
        (void)wt_rm_rf(tmp);
    }
    return 0;
fail:
    (void)wt_rm_rf(tmp);
    return rc;
}
