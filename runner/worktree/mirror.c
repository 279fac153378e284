/*
 * runner/worktree/mirror.c — one bare mirror per repo URL: naming, creation, fetch, base_ref
 * resolution and the per-mirror lock.
 *
 * The mirror is DATA/mirrors/<first 16 hex of sha256(url)>.git, made like a libgit2 clone without
 * checkout: git_repository_init_ext(bare) + remote "origin" + fetch. Upstream branches land in
 * refs/remotes/origin/<name> and tags in refs/tags/<name> (both force-updated and pruned);
 * refs/heads/<name> is left to the pods' branches so that no fetch can move or delete a pod's work.
 * The URL is hashed as given (no normalisation): "/srv/r" and "file:///srv/r" are two mirrors. The
 * origin URL stored in the mirror is compared on every open, so a hash-prefix collision is an
 * error, not a mix-up. Local paths and file:// use libgit2's local transport; https/ssh go through
 * libgit2 as is (no credential callback yet).
 *
 * Lock: DATA/mirrors/<h>.lock, flock(LOCK_EX), held by the caller across fetch, branch creation
 * and (at removal) the publication of a pod's pack and branch (fetchback.c). flock locks belong to
 * an open file description, so two threads of one process exclude each other as two processes do.
 *
 * Ownership: the caller frees the git_repository it gets. Threads: thread-safe; a git_repository
 * is used by one thread at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "runner/worktree/internal.h"

#define UPSTREAM_HEADS "+refs/heads/*:refs/remotes/origin/*"
#define UPSTREAM_TAGS "+refs/tags/*:refs/tags/*"

int wt_mirror_base(const char *data, const char *url, char *out, size_t cap) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(url, strlen(url), md, &mdlen, EVP_sha256(), NULL) || mdlen < 8)
        return am_err_set(AM_EIO, "worktree: sha256 of url failed");
    char hex[17];
    am_hex(md, 8, hex);
    return wt_path(out, cap, "%s/mirrors/%s", data, hex);
}

int wt_lock(const char *lock_path) {
    int fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return wt_sys_fail("open lock", lock_path);
    while (flock(fd, LOCK_EX) != 0) {
        if (errno == EINTR)
            continue;
        int rc = wt_sys_fail("lock", lock_path);
        close(fd);
        return rc;
    }
    return fd;
}

void wt_unlock(int fd) {
    if (fd >= 0)
        close(fd); /* closing the last fd of the description releases the flock */
}

static int create_mirror(const char *path, git_repository **out) {
    git_repository_init_options io;
    git_repository_init_options_init(&io, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
    io.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH;
    if (git_repository_init_ext(out, path, &io) < 0)
        return wt_git_fail(AM_EIO, "create mirror", path);
    return 0;
}

/* Make sure the mirror's config names url as remote "origin" (for `git fetch` by hand and for the
 * collision check). Written with plain config sets: libgit2 1.5.1 leaks pcre2 match data (about
 * 20 KB per config entry) in every regex walk of the config, which git_remote_lookup and
 * git_remote_add_fetch do, so this file never calls them. */
static int ensure_origin(git_repository *repo, const char *path, const char *url) {
    git_config *cfg = NULL;
    git_config_entry *e = NULL;
    int rc = 0;
    if (git_repository_config(&cfg, repo) < 0)
        return wt_git_fail(AM_EIO, "open config of mirror", path);
    int got = git_config_get_entry(&e, cfg, "remote.origin.url");
    if (got == GIT_ENOTFOUND) {
        git_error_clear();
        if (git_config_set_string(cfg, "remote.origin.url", url) < 0 ||
            git_config_set_string(cfg, "remote.origin.fetch", UPSTREAM_HEADS) < 0 ||
            git_config_set_string(cfg, "remote.origin.tagopt", "--tags") < 0 ||
            git_config_set_string(cfg, "remote.origin.prune", "true") < 0)
            rc = wt_git_fail(AM_EIO, "write config of mirror", path);
    } else if (got < 0) {
        rc = wt_git_fail(AM_EIO, "read config of mirror", path);
    } else if (strcmp(e->value, url) != 0) {
        rc = am_err_set(AM_ECORRUPT, "worktree: mirror %s belongs to '%s', not '%s'", path,
                        e->value, url);
    }
    git_config_entry_free(e);
    git_config_free(cfg);
    return rc;
}

/* A failed fetch, in words a user can act on, with libgit2's own text kept in parentheses at
 * the end ("unsupported URL protocol" alone is what libgit2 says for a path that does not
 * exist). A local path (or file://) is looked at to say which of the usual mistakes it is. */
static int fetch_fail(const char *url) {
    const git_error *e = git_error_last();
    char why[512];
    snprintf(why, sizeof why, "%s", e && e->message ? e->message : "unknown libgit2 error");
    const char *path = strncmp(url, "file://", 7) == 0 ? url + 7 : url[0] == '/' ? url : NULL;
    if (!path)
        return am_err_set(AM_EIO,
                          "repository %s: fetch failed; check the URL and that this runner can "
                          "reach it (%s)",
                          url, why);
    struct stat st;
    if (stat(path, &st) != 0)
        return am_err_set(AM_ENOTFOUND,
                          "repository %s: %s on this runner; give the path of a git repository "
                          "on the runner (%s)",
                          url, errno == ENOENT ? "no such directory" : strerror(errno), why);
    if (!S_ISDIR(st.st_mode))
        return am_err_set(AM_EINVAL, "repository %s: not a directory (%s)", url, why);
    return am_err_set(AM_EINVAL,
                      "repository %s: not a git repository the runner can read; give the path "
                      "of a git repository (bare or not) (%s)",
                      url, why);
}

int wt_mirror_open(const char *path, git_repository **out) {
    *out = NULL;
    if (git_repository_open_bare(out, path) < 0)
        return wt_git_fail(git_error_last() ? AM_ENOTFOUND : AM_EIO, "open mirror", path);
    return 0;
}

int wt_mirror_open_fetch(const char *path, const char *url, git_repository **out) {
    *out = NULL;
    git_repository *repo = NULL;
    git_remote *remote = NULL;
    int rc = git_repository_open_bare(&repo, path);
    if (rc == GIT_ENOTFOUND) {
        git_error_clear();
        rc = create_mirror(path, &repo);
    } else if (rc < 0) {
        rc = wt_git_fail(AM_EIO, "open mirror", path);
    }
    if (rc < 0)
        goto out;
    if ((rc = ensure_origin(repo, path, url)) < 0)
        goto out;

    /* An in-memory remote with our refspecs, without insteadOf rewriting (see ensure_origin). */
    git_remote_create_options ro;
    git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ro.repository = repo;
    ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(&remote, url, &ro) < 0) {
        rc = wt_git_fail(AM_EIO, "fetch", url);
        goto out;
    }
    char *specs[] = {UPSTREAM_HEADS, UPSTREAM_TAGS};
    git_strarray refspecs = {specs, 2};
    git_fetch_options fo;
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    fo.prune = GIT_FETCH_PRUNE;                       /* only prunes origin/... and tags */
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE; /* tags come from the explicit refspec */
    fo.update_fetchhead = 0;
    if (git_remote_fetch(remote, &refspecs, &fo, "airmesh: fetch") < 0) {
        rc = fetch_fail(url);
        goto out;
    }
    *out = repo;
    repo = NULL;
    rc = 0;
out:
    git_remote_free(remote);
    git_repository_free(repo);
    return rc;
}

/* Peel a reference name to a commit; 1 found, 0 not found, <0 error. */
static int try_ref(git_repository *repo, const char *name, git_oid *out) {
    git_object *obj = NULL;
    int valid = 0;
    if (git_reference_name_is_valid(&valid, name) < 0 || !valid)
        return 0;
    git_reference *ref = NULL;
    int rc = git_reference_lookup(&ref, repo, name);
    if (rc == GIT_ENOTFOUND) {
        git_error_clear();
        return 0;
    }
    if (rc < 0)
        return -1;
    rc = git_reference_peel(&obj, ref, GIT_OBJECT_COMMIT);
    git_reference_free(ref);
    if (rc < 0)
        return -1;
    git_oid_cpy(out, git_object_id(obj));
    git_object_free(obj);
    return 1;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "base ref 'mian' not found in /srv/git/app.git (branches: dev, main)": the upstream's branches
 * (refs/remotes/origin/<name>), sorted, the first few, so that a typo is obvious; "(no branches:
 * the repository is empty)" when there are none. */
static int not_found(git_repository *repo, const char *url, const char *base_ref) {
    enum { MAX_LISTED = 12 };
    char *names[MAX_LISTED], list[400] = "";
    size_t n = 0, used = 0;
    int more = 0;
    git_reference_iterator *it = NULL;
    git_reference *ref = NULL;
    if (git_reference_iterator_glob_new(&it, repo, "refs/remotes/origin/*") == 0) {
        while (git_reference_next(&ref, it) == 0) {
            const char *name = git_reference_name(ref) + strlen("refs/remotes/origin/");
            if (strcmp(name, "HEAD") != 0) {
                if (n < MAX_LISTED && (names[n] = strdup(name)))
                    n++;
                else
                    more = 1;
            }
            git_reference_free(ref);
        }
        git_reference_iterator_free(it);
    }
    git_error_clear();
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (used + strlen(names[i]) + 8 < sizeof list)
            used +=
                (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
        else
            more = 1;
        free(names[i]);
    }
    if (n == 0)
        return am_err_set(AM_ENOTFOUND,
                          "base ref '%s' not found in %s (no branches: the repository is empty)",
                          base_ref, url);
    return am_err_set(AM_ENOTFOUND, "base ref '%s' not found in %s (branches: %s%s)", base_ref, url,
                      list, more ? ", ..." : "");
}

int wt_resolve(git_repository *repo, const char *url, const char *base_ref, git_oid *out) {
    char name[512];
    int rc;
    const char *shortname = base_ref;
    if (strncmp(base_ref, "refs/heads/", 11) == 0)
        shortname = base_ref + 11; /* an upstream branch given by its full name */
    if (wt_path(name, sizeof name, "refs/remotes/origin/%s", shortname) == 0 &&
        (rc = try_ref(repo, name, out)) != 0)
        goto done;
    if (strcmp(base_ref, "HEAD") == 0) {
        /* The upstream's default branch: the mirror fetches branches only, so guess it the
         * way most servers name it; a single-branch repo has only one answer. */
        static const char *defaults[] = {"refs/remotes/origin/main", "refs/remotes/origin/master",
                                         "refs/remotes/origin/trunk", NULL};
        for (const char **d = defaults; *d; d++)
            if ((rc = try_ref(repo, *d, out)) != 0)
                goto done;
        git_reference_iterator *it = NULL;
        git_reference *ref = NULL;
        int n = 0;
        git_oid only;
        if (git_reference_iterator_glob_new(&it, repo, "refs/remotes/origin/*") == 0) {
            while (git_reference_next(&ref, it) == 0) {
                if (git_reference_type(ref) == GIT_REFERENCE_DIRECT && n++ == 0)
                    git_oid_cpy(&only, git_reference_target(ref));
                git_reference_free(ref);
            }
            git_reference_iterator_free(it);
        }
        if (n == 1) {
            git_oid_cpy(out, &only);
            return 0;
        }
    }
    if (wt_path(name, sizeof name, "refs/tags/%s", base_ref) == 0 &&
        (rc = try_ref(repo, name, out)) != 0)
        goto done;

    git_object *obj = NULL;
    rc = git_revparse_single(&obj, repo, base_ref);
    if (rc == 0) {
        git_object *commit = NULL;
        rc = git_object_peel(&commit, obj, GIT_OBJECT_COMMIT);
        git_object_free(obj);
        if (rc == 0) {
            git_oid_cpy(out, git_object_id(commit));
            git_object_free(commit);
            return 0;
        }
    }
    git_error_clear();
    return not_found(repo, url, base_ref);
done:
    if (rc < 0)
        return wt_git_fail(AM_EIO, "resolve base_ref", base_ref);
    return 0;
}
