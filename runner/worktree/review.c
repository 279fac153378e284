/*
 * runner/worktree/review.c — what a reviewer sees of a pod's branch, computed in the runner's
 * mirror with libgit2 (am_wt_review_diff), and the push of an approved branch to the
 * repository's remote with credentials only the runner holds (am_wt_push).
 *
 * Diff: base = the merge base of refs/heads/<branch> and base_ref (resolved as at create:
 * refs/remotes/origin/<x>, tags, then anything git_revparse_single accepts); the commits are
 * those reachable from the branch tip and not from the merge base, oldest first (at most
 * AM_WT_REVIEW_COMMITS_MAX); the patch is `git diff <merge base> <tip>` in git's format with
 * rename detection, cut at max_bytes (whole lines only, truncated = 1); files/additions/deletions
 * count the whole diff, cut or not. Everything read is in the mirror, whose objects the runner
 * indexed and checked at fetch-back: the pod's own git dir is never opened here.
 *
 * Push: refs/heads/<branch> of the mirror to refs/heads/<branch> of repo_url (a fast-forward
 * only: a remote branch that moved elsewhere is refused by the remote and reported). The
 * credentials come from the file given to am_wt_set_credentials_file (runner option
 * --git-credentials), read at every push so a rotated password needs no restart. Each line:
 *
 *     URL-PREFIX USER PASSWORD-FILE        ('#' starts a comment; blank lines ignored)
 *
 * the longest URL-PREFIX that repo_url starts with wins; the password is the first line of
 * PASSWORD-FILE. No matching line (or no file): nothing is pushed, *read_only = 1. The password
 * lives only in this function's buffers (wiped before return) and in libgit2's credential
 * object for the one push; it is never logged, never put in an environment, never in a message:
 * the URL reported (pushed_to) is repo_url without any user:password@ part.
 *
 * Threads: any; each call opens its own git_repository. Ownership: am_wt_review_free frees what
 * am_wt_review_diff filled.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "runner/worktree/internal.h"
#include "runner/worktree/worktree.h"

static char g_creds_path[PATH_MAX];

/* ---- diff ---- */

typedef struct {
    char *buf;
    size_t len, cap, max;
    int truncated;
} patch_buf;

/* Append n bytes, growing the buffer (the caller checked max). */
static int put(patch_buf *p, const char *s, size_t n) {
    if (p->len + n + 1 > p->cap) {
        size_t nc = p->cap ? p->cap : 64 << 10;
        while (nc < p->len + n + 1)
            nc *= 2;
        char *nb = realloc(p->buf, nc);
        if (!nb)
            return -1;
        p->buf = nb;
        p->cap = nc;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
    return 0;
}

static int on_line(const git_diff_delta *d, const git_diff_hunk *h, const git_diff_line *l,
                   void *ud) {
    (void)d;
    (void)h;
    patch_buf *p = ud;
    char origin = l->origin;
    int prefix = origin == GIT_DIFF_LINE_CONTEXT || origin == GIT_DIFF_LINE_ADDITION ||
                 origin == GIT_DIFF_LINE_DELETION;
    size_t need = (size_t)prefix + l->content_len;
    if (p->truncated)
        return 0;
    if (p->len + need > p->max) {
        /* Cut on a line boundary: a file header is several lines in one piece. */
        p->truncated = 1;
        size_t room = p->max - p->len, keep = 0;
        if (prefix)
            return 0; /* one line: it does not fit */
        for (size_t i = 0; i < l->content_len && i < room; i++)
            if (l->content[i] == '\n')
                keep = i + 1;
        return keep ? put(p, l->content, keep) : 0;
    }
    if (prefix && put(p, &origin, 1) != 0)
        return -1;
    return put(p, l->content, l->content_len);
}

static void copy_sig(char *out, size_t cap, const git_signature *s) {
    if (!s) {
        out[0] = '\0';
        return;
    }
    snprintf(out, cap, "%s <%s>", s->name ? s->name : "", s->email ? s->email : "");
}

static int list_commits(git_repository *repo, const git_oid *tip, const git_oid *base,
                        am_wt_review *out) {
    git_revwalk *w = NULL;
    git_oid id;
    int rc = 0;
    if (git_revwalk_new(&w, repo) < 0 ||
        git_revwalk_sorting(w, GIT_SORT_TOPOLOGICAL | GIT_SORT_REVERSE) < 0 ||
        git_revwalk_push(w, tip) < 0 || (base && git_revwalk_hide(w, base) < 0)) {
        rc = wt_git_fail(AM_EIO, "review: walk", "commits");
        goto out;
    }
    size_t cap = 0;
    while (git_revwalk_next(&id, w) == 0) {
        if (out->n_commits == AM_WT_REVIEW_COMMITS_MAX) {
            out->commits_truncated = 1;
            break;
        }
        if (out->n_commits == cap) {
            cap = cap ? cap * 2 : 16;
            am_wt_commit *nc = realloc(out->commits, cap * sizeof *nc);
            if (!nc) {
                rc = am_err_set(AM_ENOMEM, "review: out of memory");
                goto out;
            }
            out->commits = nc;
        }
        git_commit *c = NULL;
        if (git_commit_lookup(&c, repo, &id) < 0) {
            rc = wt_git_fail(AM_EIO, "review: look up", "commit");
            goto out;
        }
        am_wt_commit *e = &out->commits[out->n_commits++];
        memset(e, 0, sizeof *e);
        git_oid_tostr(e->id, sizeof e->id, &id);
        copy_sig(e->author, sizeof e->author, git_commit_author(c));
        e->time_ms = (uint64_t)git_commit_time(c) * 1000u;
        const char *sum = git_commit_summary(c);
        snprintf(e->summary, sizeof e->summary, "%s", sum ? sum : "");
        git_commit_free(c);
    }
    git_error_clear();
out:
    git_revwalk_free(w);
    return rc;
}

int am_wt_review_diff(const char *data_dir, const char *repo_url, const char *base_ref,
                      const char *branch, size_t max_bytes, am_wt_review *out) {
    char mirror[PATH_MAX], refname[512];
    git_repository *repo = NULL;
    git_reference *ref = NULL;
    git_commit *head = NULL, *basec = NULL;
    git_tree *ht = NULL, *bt = NULL;
    git_diff *diff = NULL;
    git_diff_stats *st = NULL;
    git_oid tip, base, mb;
    int rc, valid = 0;
    memset(out, 0, sizeof *out);
    if (!max_bytes)
        max_bytes = AM_WT_REVIEW_MAX_DEFAULT;
    if (!base_ref || !*base_ref || !branch || !*branch)
        return am_err_set(AM_EINVAL, "review: base_ref and branch are required");
    if (git_branch_name_is_valid(&valid, branch) < 0 || !valid || branch[0] == '-')
        return am_err_set(AM_EINVAL, "review: invalid branch name '%s'", branch);
    if ((rc = am_wt_mirror_path(data_dir, repo_url, mirror, sizeof mirror)) < 0)
        return rc;
    if (wt_mirror_open(mirror, &repo) < 0)
        return am_err_set(AM_ENOTFOUND,
                          "review: this runner has no mirror of %s (no pod of it ran here)",
                          repo_url);
    if ((rc = wt_path(refname, sizeof refname, "refs/heads/%s", branch)) < 0)
        goto out;
    if (git_reference_lookup(&ref, repo, refname) < 0 ||
        git_reference_name_to_id(&tip, repo, refname) < 0) {
        git_error_clear();
        rc = am_err_set(AM_ENOTFOUND, "review: branch '%s' is not in this runner's mirror of %s",
                        branch, repo_url);
        goto out;
    }
    if ((rc = wt_resolve(repo, repo_url, base_ref, &base)) < 0)
        goto out;
    if (git_merge_base(&mb, repo, &tip, &base) < 0) {
        rc = wt_git_fail(AM_ENOTFOUND, "review: merge base of", branch);
        goto out;
    }
    git_oid_tostr(out->base_commit, sizeof out->base_commit, &mb);
    git_oid_tostr(out->head_commit, sizeof out->head_commit, &tip);
    if ((rc = list_commits(repo, &tip, &mb, out)) < 0)
        goto out;
    if (git_commit_lookup(&head, repo, &tip) < 0 || git_commit_lookup(&basec, repo, &mb) < 0 ||
        git_commit_tree(&ht, head) < 0 || git_commit_tree(&bt, basec) < 0) {
        rc = wt_git_fail(AM_EIO, "review: read trees of", branch);
        goto out;
    }
    git_diff_options dopt;
    git_diff_options_init(&dopt, GIT_DIFF_OPTIONS_VERSION);
    if (git_diff_tree_to_tree(&diff, repo, bt, ht, &dopt) < 0) {
        rc = wt_git_fail(AM_EIO, "review: diff", branch);
        goto out;
    }
    git_diff_find_options fopt;
    git_diff_find_options_init(&fopt, GIT_DIFF_FIND_OPTIONS_VERSION);
    fopt.flags = GIT_DIFF_FIND_RENAMES;
    if (git_diff_find_similar(diff, &fopt) < 0 || git_diff_get_stats(&st, diff) < 0) {
        rc = wt_git_fail(AM_EIO, "review: diff stats", branch);
        goto out;
    }
    out->files = (uint32_t)git_diff_stats_files_changed(st);
    out->additions = (uint32_t)git_diff_stats_insertions(st);
    out->deletions = (uint32_t)git_diff_stats_deletions(st);
    patch_buf pb = {.max = max_bytes};
    if (git_diff_print(diff, GIT_DIFF_FORMAT_PATCH, on_line, &pb) < 0) {
        free(pb.buf);
        rc = wt_git_fail(AM_EIO, "review: print diff", branch);
        goto out;
    }
    out->diff = pb.buf ? pb.buf : strdup("");
    out->diff_len = pb.len;
    out->truncated = pb.truncated;
    if (!out->diff)
        rc = am_err_set(AM_ENOMEM, "review: out of memory");
out:
    git_diff_stats_free(st);
    git_diff_free(diff);
    git_tree_free(ht);
    git_tree_free(bt);
    git_commit_free(head);
    git_commit_free(basec);
    git_reference_free(ref);
    git_repository_free(repo);
    if (rc < 0)
        am_wt_review_free(out);
    return rc;
}

void am_wt_review_free(am_wt_review *r) {
    if (!r)
        return;
    free(r->commits);
    free(r->diff);
    r->commits = NULL;
    r->diff = NULL;
    r->n_commits = 0;
    r->diff_len = 0;
}

/* ---- credentials ---- */

int am_wt_set_credentials_file(const char *path) {
    if (!path || !*path) {
        g_creds_path[0] = '\0';
        return 0;
    }
    FILE *f = fopen(path, "re");
    if (!f)
        return am_err_set(AM_EINVAL, "%s: %s", path, strerror(errno));
    fclose(f);
    if (!realpath(path, g_creds_path))
        return am_err_set(AM_EINVAL, "%s: %s", path, strerror(errno));
    return 0;
}

/* repo_url without "user[:password]@" after the scheme, into out. */
static void url_public(const char *url, char *out, size_t cap) {
    const char *s = strstr(url, "://");
    const char *at = s ? strchr(s + 3, '@') : NULL;
    const char *slash = s ? strchr(s + 3, '/') : NULL;
    if (s && at && (!slash || at < slash))
        snprintf(out, cap, "%.*s%s", (int)(s + 3 - url), url, at + 1);
    else
        snprintf(out, cap, "%s", url);
}

typedef struct {
    char user[256];
    char password[1024];
    int tries;
    char status[256]; /* the remote's refusal of the ref, if any */
} creds;

/* Find the credentials for url: 1 found (c filled), 0 none, <0 error (file unreadable or a
 * malformed line: named by its number, never its content). */
static int creds_find(const char *url, creds *c) {
    if (!g_creds_path[0])
        return 0;
    FILE *f = fopen(g_creds_path, "re");
    if (!f)
        return am_err_set(AM_EIO, "push: credentials file %s: %s", g_creds_path, strerror(errno));
    char line[PATH_MAX + 1024], best_file[PATH_MAX] = "";
    size_t best = 0;
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *save = NULL, *p = strtok_r(line, " \t\r\n", &save);
        if (!p || p[0] == '#')
            continue;
        char *user = strtok_r(NULL, " \t\r\n", &save);
        char *pwfile = strtok_r(NULL, " \t\r\n", &save);
        if (!user || !pwfile || strtok_r(NULL, " \t\r\n", &save)) {
            rc = am_err_set(AM_EINVAL,
                            "push: credentials file %s line %d: want URL-PREFIX USER "
                            "PASSWORD-FILE",
                            g_creds_path, lineno);
            break;
        }
        size_t n = strlen(p);
        if (strncmp(url, p, n) == 0 && n > best) {
            best = n;
            snprintf(c->user, sizeof c->user, "%s", user);
            snprintf(best_file, sizeof best_file, "%s", pwfile);
        }
    }
    am_wipe(line, sizeof line);
    fclose(f);
    if (rc < 0 || !best)
        return rc;
    FILE *pf = fopen(best_file, "re");
    if (!pf)
        return am_err_set(AM_EIO, "push: password file %s: %s", best_file, strerror(errno));
    if (!fgets(c->password, sizeof c->password, pf))
        c->password[0] = '\0';
    fclose(pf);
    c->password[strcspn(c->password, "\r\n")] = '\0';
    return 1;
}

static int cred_cb(git_credential **out, const char *url, const char *user_from_url,
                   unsigned int allowed, void *payload) {
    (void)url;
    (void)user_from_url;
    creds *c = payload;
    if (!(allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) || c->tries++ > 0)
        return GIT_EAUTH; /* refused once: do not loop */
    return git_credential_userpass_plaintext_new(out, c->user, c->password);
}

static int on_update(const char *refname, const char *status, void *data) {
    creds *c = data;
    if (status)
        snprintf(c->status, sizeof c->status, "%s: %s", refname, status);
    return 0;
}

int am_wt_push(const char *data_dir, const char *repo_url, const char *branch, char *pushed_to,
               size_t cap, char commit[41], int *read_only) {
    char mirror[PATH_MAX], spec[600], refname[512];
    git_repository *repo = NULL;
    git_remote *remote = NULL;
    git_oid tip;
    creds c;
    int rc, valid = 0;
    memset(&c, 0, sizeof c);
    *read_only = 0;
    commit[0] = '\0';
    url_public(repo_url ? repo_url : "", pushed_to, cap);
    if (!branch || git_branch_name_is_valid(&valid, branch) < 0 || !valid || branch[0] == '-')
        return am_err_set(AM_EINVAL, "push: invalid branch name '%s'", branch ? branch : "");
    if ((rc = am_wt_mirror_path(data_dir, repo_url, mirror, sizeof mirror)) < 0)
        return rc;
    if ((rc = creds_find(repo_url, &c)) <= 0) {
        if (rc == 0)
            *read_only = 1;
        goto out;
    }
    if (wt_mirror_open(mirror, &repo) < 0) {
        rc = am_err_set(AM_ENOTFOUND, "push: this runner has no mirror of %s", pushed_to);
        goto out;
    }
    if ((rc = wt_path(refname, sizeof refname, "refs/heads/%s", branch)) < 0 ||
        (rc = wt_path(spec, sizeof spec, "%s:%s", refname, refname)) < 0)
        goto out;
    if (git_reference_name_to_id(&tip, repo, refname) < 0) {
        git_error_clear();
        rc = am_err_set(AM_ENOTFOUND, "push: branch '%s' is not in this runner's mirror of %s",
                        branch, pushed_to);
        goto out;
    }
    git_oid_tostr(commit, 41, &tip);
    git_remote_create_options ro;
    git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
    ro.repository = repo;
    ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
    if (git_remote_create_with_opts(&remote, repo_url, &ro) < 0) {
        rc = am_err_set(AM_EIO, "push to %s failed: bad remote", pushed_to);
        goto out;
    }
    char *specs[] = {spec};
    git_strarray refspecs = {specs, 1};
    git_push_options po;
    git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
    po.callbacks.credentials = cred_cb;
    po.callbacks.push_update_reference = on_update;
    po.callbacks.payload = &c;
    if (git_remote_push(remote, &refspecs, &po) < 0) {
        const git_error *e = git_error_last();
        rc = am_err_set(AM_EIO, "push of %s to %s failed: %s", branch, pushed_to,
                        c.tries > 1       ? "the remote refused the runner's credentials"
                        : e && e->message ? e->message
                                          : "unknown error");
        goto out;
    }
    if (c.status[0]) { /* e.g. "refs/heads/x: non-fast-forward" */
        rc = am_err_set(AM_ESTATE, "push of %s to %s refused by the remote (%s)", branch, pushed_to,
                        c.status);
        goto out;
    }
    rc = 0;
out:
    am_wipe(&c, sizeof c);
    git_remote_free(remote);
    git_repository_free(repo);
    return rc;
}
