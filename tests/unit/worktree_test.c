/*
 * tests/unit/worktree_test.c — runner/worktree against a real repository built with the git CLI.
 *
 * What: a source repo in a temp dir (a few files incl. a nested dir and an executable, two commits
 * on main, tag v1 on the first), then pods created from it through am_wt_create, inspected and
 * driven with the git CLI (`git status`, `git commit`) as an agent would inside /workspace.
 * Overlay-specific assertions (mount point, shared checkout reused) run only when the overlay
 * could be mounted; otherwise the full-checkout fallback and its note are asserted instead. One
 * test forces the full checkout so both paths are covered on every machine.
 *
 * Ownership: the temp dir is removed by the group teardown (pods are removed first, unmounting any
 * overlay). Threads: single-threaded. Runs `local` (outside Bazel's sandbox) because it mounts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/worktree/worktree.h"

#define BIG 8192
static char g_tmp[1024], g_src[2048], g_data[2048];

/* Run a shell command built with printf; returns its exit status. */
__attribute__((format(printf, 1, 2))) static int sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd)
        return -1;
    int st = system(cmd);
    return (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

/* Run a command and capture its stdout (trailing newline trimmed). */
__attribute__((format(printf, 3, 4))) static int sh_out(char *out, size_t cap, const char *fmt,
                                                        ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd)
        return -1;
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t len = fread(out, 1, cap - 1, f);
    out[len] = '\0';
    while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
        out[--len] = '\0';
    int st = pclose(f);
    return (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static int read_small(const char *path, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    fclose(f);
    return 0;
}

static int exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static int setup_group(void **state) {
    (void)state;
    const char *base = getenv("TEST_TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/wtXXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_tmp))
        return -1;
    snprintf(g_src, sizeof g_src, "%s/src", g_tmp);
    snprintf(g_data, sizeof g_data, "%s/data", g_tmp);
    setenv("HOME", g_tmp, 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_AUTHOR_NAME", "t", 1);
    setenv("GIT_AUTHOR_EMAIL", "t@example.invalid", 1);
    setenv("GIT_COMMITTER_NAME", "t", 1);
    setenv("GIT_COMMITTER_EMAIL", "t@example.invalid", 1);
    if (sh("set -e; git init -q -b main %s; cd %s; echo one > a.txt; mkdir -p d/e; "
           "echo deep > d/e/b.txt; printf '#!/bin/sh\\necho hi\\n' > run.sh; chmod +x run.sh; "
           "git add -A; git commit -qm first; git tag v1; echo two > a.txt; "
           "git commit -qam second",
           g_src, g_src) != 0)
        return -1;
    return am_wt_init(g_data) == 0 ? 0 : -1;
}

static int teardown_group(void **state) {
    (void)state;
    /* Unmount whatever a failed test left behind before deleting. */
    sh("for m in %s/pods/*/workspace; do mountpoint -q \"$m\" && umount -l \"$m\"; done; true",
       g_data);
    am_wt_shutdown();
    sh("rm -rf %s", g_tmp);
    return 0;
}

static void create_ok(const char *base, const char *branch, const char *pod, am_wt_info *info) {
    int rc = am_wt_create(g_data, g_src, base, branch, pod, info);
    if (rc != 0)
        fail_msg("am_wt_create %s: %s", pod, am_err_last());
    if (!info->overlay)
        assert_true(info->note[0] != '\0'); /* the fallback always says why */
}

/* Can an overlay be mounted here at all (root, kernel, the data dir's filesystem)? Probed
 * once, with a throwaway overlay below the data dir; *why says why not. */
static int overlay_mountable(const char **why) {
    static int probed, ok;
    static char reason[256];
    if (!probed) {
        char d[2400], opts[8000];
        snprintf(d, sizeof d, "%s/ovl-probe", g_data);
        sh("rm -rf %s && mkdir -p %s/l %s/u %s/w %s/m", d, d, d, d, d);
        snprintf(opts, sizeof opts, "lowerdir=%s/l,upperdir=%s/u,workdir=%s/w", d, d, d);
        char m[2500];
        snprintf(m, sizeof m, "%s/m", d);
        if (mount("overlay", m, "overlay", 0, opts) == 0) {
            ok = 1;
            umount2(m, 0);
        } else {
            snprintf(reason, sizeof reason, "overlayfs cannot be mounted here: %s",
                     strerror(errno));
        }
        sh("rm -rf %s", d);
        probed = 1;
    }
    *why = reason;
    return ok;
}

/* Overlay-only checks: they run wherever an overlay can be mounted, and there the pod must
 * have got one (a silent fallback fails); elsewhere the test is reported skipped, with why. */
static int need_overlay(const am_wt_info *info) {
    const char *why;
    if (info->overlay)
        return 1;
    if (overlay_mountable(&why))
        fail_msg("an overlay can be mounted here, but the pod got a full checkout: %s", info->note);
    print_message("skip reason: %s (pod note: %s)\n", why, info->note);
    skip();
    return 0;
}

static void remove_ok(const char *pod, int keep) {
    int rc = am_wt_remove(g_data, g_src, pod, keep);
    if (rc != 0)
        fail_msg("am_wt_remove %s: %s", pod, am_err_last());
}

static void test_worktree_on_new_branch_at_base_ref(void **state) {
    (void)state;
    am_wt_info info;
    char want[64], got[BIG], f[BIG];
    create_ok("main", NULL, "p1", &info);
    assert_int_equal(sh_out(want, sizeof want, "git -C %s rev-parse main", g_src), 0);
    assert_string_equal(info.commit, want);
    assert_string_equal(info.branch, "airmesh/pod-p1");
    assert_int_equal(sh_out(got, sizeof got, "git -C %s symbolic-ref HEAD", info.path), 0);
    assert_string_equal(got, "refs/heads/airmesh/pod-p1");
    assert_int_equal(sh_out(got, sizeof got, "git -C %s rev-parse HEAD", info.path), 0);
    assert_string_equal(got, want);
    snprintf(f, sizeof f, "%s/a.txt", info.path);
    assert_int_equal(read_small(f, got, sizeof got), 0);
    assert_string_equal(got, "two\n");
    snprintf(f, sizeof f, "%s/run.sh", info.path);
    struct stat st;
    assert_int_equal(stat(f, &st), 0);
    assert_true(st.st_mode & S_IXUSR);
    if (need_overlay(&info)) {
        struct stat a, b;
        snprintf(f, sizeof f, "%s/..", info.path);
        assert_int_equal(stat(info.path, &a), 0);
        assert_int_equal(stat(f, &b), 0);
        assert_true(a.st_dev != b.st_dev); /* a mount point */
    }
    /* The pod has its own git dir, borrowing the mirror's objects; nothing is registered in the
     * mirror, which has the branch. */
    snprintf(f, sizeof f, "%s/pods/p1/git", g_data);
    char real[PATH_MAX];
    assert_non_null(realpath(f, real));
    assert_string_equal(info.gitdir, real);
    assert_int_equal(sh_out(got, sizeof got, "git -C %s rev-parse --absolute-git-dir", info.path),
                     0);
    assert_string_equal(got, info.gitdir);
    snprintf(f, sizeof f, "%s/objects/info/alternates", info.gitdir);
    assert_int_equal(read_small(f, got, sizeof got), 0);
    snprintf(f, sizeof f, "%s/objects\n", info.mirror);
    assert_string_equal(got, f);
    snprintf(f, sizeof f, "%s/worktrees/p1", info.mirror);
    assert_false(exists(f));
    assert_int_equal(
        sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-p1", info.mirror), 0);
    assert_string_equal(got, want);
    remove_ok("p1", 0);

    /* A tag as base_ref, and an explicit branch name. */
    create_ok("v1", "review/tagged", "p1b", &info);
    assert_int_equal(sh_out(want, sizeof want, "git -C %s rev-parse v1^{commit}", g_src), 0);
    assert_string_equal(info.commit, want);
    assert_string_equal(info.branch, "review/tagged");
    snprintf(f, sizeof f, "%s/a.txt", info.path);
    assert_int_equal(read_small(f, got, sizeof got), 0);
    assert_string_equal(got, "one\n");
    remove_ok("p1b", 0);
}

static void test_commit_inside_lands_in_mirror_after_remove(void **state) {
    (void)state;
    am_wt_info info;
    char sha[64], got[BIG], ws[PATH_MAX], mirror[PATH_MAX];
    create_ok("main", "feature/x", "p2", &info);
    snprintf(ws, sizeof ws, "%s", info.path);
    snprintf(mirror, sizeof mirror, "%s", info.mirror);
    assert_int_equal(sh("echo change >> %s/a.txt && echo new > %s/d/new.txt && "
                        "git -C %s add -A && git -C %s commit -qam 'pod work'",
                        ws, ws, ws, ws),
                     0);
    assert_int_equal(sh_out(sha, sizeof sha, "git -C %s rev-parse HEAD", ws), 0);
    remove_ok("p2", 0);
    assert_false(exists(ws));
    snprintf(got, sizeof got, "%s/worktrees/p2", mirror);
    assert_false(exists(got));
    assert_int_equal(
        sh_out(got, sizeof got, "git --git-dir=%s rev-parse refs/heads/feature/x", mirror), 0);
    assert_string_equal(got, sha);
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse feature/x^", mirror), 0);
    assert_string_equal(got, info.commit);
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s show feature/x:d/new.txt", mirror),
                     0);
    assert_string_equal(got, "new");
    assert_int_equal(sh("git --git-dir=%s fsck --no-dangling --no-progress >/dev/null", mirror), 0);
}

static void test_git_status_inside_is_clean(void **state) {
    (void)state;
    am_wt_info info;
    char got[1024];
    create_ok("main", NULL, "p3", &info);
    assert_int_equal(sh_out(got, sizeof got, "git -C %s status --porcelain", info.path), 0);
    assert_string_equal(got, "");
    /* Changes show up as changes. */
    assert_int_equal(sh("echo x >> %s/d/e/b.txt && echo u > %s/untracked.txt && rm %s/run.sh",
                        info.path, info.path, info.path),
                     0);
    assert_int_equal(sh_out(got, sizeof got, "git -C %s status --porcelain", info.path), 0);
    assert_string_equal(got, " M d/e/b.txt\n D run.sh\n?? untracked.txt");
    remove_ok("p3", 0);
}

static void test_fetch_at_each_create_sees_new_commits(void **state) {
    (void)state;
    am_wt_info a, b, c;
    char want[64], url[BIG];
    create_ok("main", NULL, "p4", &a);
    assert_int_equal(
        sh("cd %s && echo three > a.txt && git commit -qam third && git branch upstream-new",
           g_src),
        0);
    create_ok("main", NULL, "p5", &b);
    assert_int_equal(sh_out(want, sizeof want, "git -C %s rev-parse main", g_src), 0);
    assert_string_equal(b.commit, want);
    assert_string_not_equal(a.commit, b.commit);
    create_ok("upstream-new", NULL, "p6", &c);
    assert_string_equal(c.commit, want);
    remove_ok("p4", 0);
    remove_ok("p5", 0);
    remove_ok("p6", 0);

    /* file:// URLs work too (a separate mirror: URLs are not normalised). */
    snprintf(url, sizeof url, "file://%s", g_src);
    int rc = am_wt_create(g_data, url, "v1", NULL, "p7", &a);
    if (rc != 0)
        fail_msg("file url: %s", am_err_last());
    assert_int_equal(am_wt_remove(g_data, url, "p7", 0), 0);
}

static void test_bad_base_ref_is_a_clear_error(void **state) {
    (void)state;
    am_wt_info info;
    char want[BIG], p[BIG];
    int rc = am_wt_create(g_data, g_src, "no-such-ref", NULL, "p8", &info);
    assert_int_equal(rc, -AM_ENOTFOUND);
    snprintf(want, sizeof want, "base ref 'no-such-ref' not found in %s (branches: ", g_src);
    assert_int_equal(strncmp(am_err_last(), want, strlen(want)), 0); /* then g_src's branches */
    assert_non_null(strstr(am_err_last(), "main"));
    snprintf(p, sizeof p, "%s/pods/p8", g_data);
    assert_false(exists(p));

    /* An unreachable URL names the fetch step. */
    rc = am_wt_create(g_data, "/nonexistent/repo", "main", NULL, "p8", &info);
    assert_true(rc < 0);
    assert_non_null(strstr(am_err_last(),
                           "repository /nonexistent/repo: no such directory on this runner; "));
    assert_non_null(strstr(am_err_last(), " (")); /* libgit2's own text, at the end */
    /* Nothing was claimed: the same pod id works. */
    create_ok("main", NULL, "p8", &info);
    remove_ok("p8", 0);
}

static void test_bad_branch_name_is_refused(void **state) {
    (void)state;
    am_wt_info info;
    static const char *const bad[] = {"bad..name", "with space", "-dash", "end.lock",
                                      "a~b",       "x:y",        "HEAD",  "a/.hidden"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = am_wt_create(g_data, g_src, "main", bad[i], "p9", &info);
        if (rc != -AM_EINVAL)
            fail_msg("branch '%s' accepted (rc %d)", bad[i], rc);
        assert_non_null(strstr(am_err_last(), "invalid branch name"));
    }
    /* Bad pod ids and URLs. */
    assert_int_equal(am_wt_create(g_data, g_src, "main", NULL, "../x", &info), -AM_EINVAL);
    assert_int_equal(am_wt_create(g_data, g_src, "main", NULL, "a/b", &info), -AM_EINVAL);
    assert_int_equal(am_wt_create(g_data, g_src, "main", NULL, "", &info), -AM_EINVAL);
    assert_int_equal(am_wt_create(g_data, "", "main", NULL, "p9", &info), -AM_EINVAL);
    /* An existing branch is refused, and so is an existing pod. */
    create_ok("main", "taken", "p9", &info);
    assert_int_equal(am_wt_create(g_data, g_src, "main", "taken", "p10", &info), -AM_EEXISTS);
    assert_non_null(strstr(am_err_last(), "branch 'taken' already exists"));
    assert_int_equal(am_wt_create(g_data, g_src, "main", "other", "p9", &info), -AM_EEXISTS);
    remove_ok("p9", 0);
}

static void test_two_pods_share_one_checkout_and_do_not_see_each_others_writes(void **state) {
    (void)state;
    am_wt_info a, b;
    char f[BIG], got[BIG];
    create_ok("v1", NULL, "pa", &a);
    create_ok("v1", NULL, "pb", &b);
    assert_string_equal(a.commit, b.commit);
    if (need_overlay(&a) && need_overlay(&b)) {
        assert_int_equal(b.checkout_reused, 1);
        snprintf(f, sizeof f, "%s/checkouts/%s/tree/a.txt", g_data, a.commit);
        assert_true(exists(f));
    }
    assert_int_equal(sh("echo mine > %s/a.txt && echo only-a > %s/d/only-a.txt", a.path, a.path),
                     0);
    snprintf(f, sizeof f, "%s/a.txt", b.path);
    assert_int_equal(read_small(f, got, sizeof got), 0);
    assert_string_equal(got, "one\n");
    snprintf(f, sizeof f, "%s/d/only-a.txt", b.path);
    assert_false(exists(f));
    if (need_overlay(&a)) { /* the shared layer is untouched */
        snprintf(f, sizeof f, "%s/checkouts/%s/tree/a.txt", g_data, a.commit);
        assert_int_equal(read_small(f, got, sizeof got), 0);
        assert_string_equal(got, "one\n");
        snprintf(f, sizeof f, "%s/checkouts/%s/tree/d/only-a.txt", g_data, a.commit);
        assert_false(exists(f));
    }
    assert_int_equal(sh_out(got, sizeof got, "git -C %s status --porcelain", b.path), 0);
    assert_string_equal(got, "");
    remove_ok("pa", 0);
    remove_ok("pb", 0);
}

static void test_keep_worktree_keeps_files(void **state) {
    (void)state;
    am_wt_info info;
    char f[BIG], got[BIG];
    create_ok("main", "keep/me", "pk", &info);
    assert_int_equal(sh("echo work > %s/notes.txt", info.path), 0);
    assert_int_equal(sh("echo k >> %s/a.txt && git -C %s commit -qam kept", info.path, info.path),
                     0);
    char sha[64];
    assert_int_equal(sh_out(sha, sizeof sha, "git -C %s rev-parse HEAD", info.path), 0);
    remove_ok("pk", 1);
    /* keep = 1 brings the branch back too; the workspace stays. */
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse keep/me", info.mirror), 0);
    assert_string_equal(got, sha);
    snprintf(f, sizeof f, "%s/notes.txt", info.path);
    assert_int_equal(read_small(f, got, sizeof got), 0);
    assert_string_equal(got, "work\n");
    assert_int_equal(sh_out(got, sizeof got, "git -C %s status --porcelain", info.path), 0);
    assert_string_equal(got, "?? notes.txt");
    remove_ok("pk", 0); /* later cleanup */
    assert_false(exists(info.path));
    assert_int_equal(
        sh("git --git-dir=%s rev-parse -q --verify refs/heads/keep/me >/dev/null", info.mirror), 0);
    assert_int_equal(am_wt_remove(g_data, g_src, "pk", 0), -AM_ENOTFOUND);
}

static void test_full_checkout_mode_works_like_overlay(void **state) {
    (void)state;
    am_wt_info info;
    char got[BIG], sha[64];
    am_wt_set_mode(AM_WT_MODE_FULL);
    create_ok("main", NULL, "pf", &info);
    am_wt_set_mode(AM_WT_MODE_AUTO);
    assert_int_equal(info.overlay, 0);
    assert_non_null(strstr(info.note, "full"));
    assert_int_equal(sh_out(got, sizeof got, "git -C %s status --porcelain", info.path), 0);
    assert_string_equal(got, "");
    assert_int_equal(sh("echo f >> %s/a.txt && git -C %s commit -qam full", info.path, info.path),
                     0);
    assert_int_equal(sh_out(sha, sizeof sha, "git -C %s rev-parse HEAD", info.path), 0);
    remove_ok("pf", 0);
    assert_false(exists(info.path));
    assert_int_equal(
        sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-pf", info.mirror), 0);
    assert_string_equal(got, sha);
}

/* An agent in a pod-like process (own mount namespace; the mirror bound read-only over itself,
 * as the sandbox does; the pod's git dir writable) cannot change the mirror, and nothing but the
 * pod's own branch comes back from its git dir. */
static void test_pod_cannot_touch_the_mirror(void **state) {
    (void)state;
    am_wt_info victim, info;
    char got[BIG], vsha[64], sha[64], f[BIG];
    create_ok("main", "victim/b", "pv", &victim);
    assert_int_equal(
        sh_out(vsha, sizeof vsha, "git --git-dir=%s rev-parse victim/b", victim.mirror), 0);
    create_ok("main", NULL, "pe", &info);
    const char *m = info.mirror, *ws = info.path, *g = info.gitdir;
    int rc = sh("unshare -m --propagation private sh -c '"
                "mount --bind %s %s && mount -o remount,bind,ro %s %s || exit 90; "
                "cd %s || exit 91; "
                "echo agent > agent.txt && git add agent.txt && git commit -qm agent || exit 92; "
                "git rev-parse HEAD > %s/../agent-sha || exit 93; "
                "touch %s/x 2>/dev/null && exit 94; "
                "touch %s/objects/x 2>/dev/null && exit 95; "
                "git --git-dir=%s update-ref refs/heads/victim/b HEAD 2>/dev/null && exit 96; "
                "git --git-dir=%s update-ref refs/heads/evil HEAD 2>/dev/null && exit 97; "
                /* what it can do: refs in its own git dir, its alternates */
                "git update-ref refs/heads/other HEAD || exit 98; "
                "git update-ref refs/heads/victim/b HEAD || exit 99; "
                "git tag evil-tag HEAD || exit 100; "
                "echo /nonexistent > %s/objects/info/alternates || exit 101; "
                "exit 0'",
                m, m, m, m, ws, g, m, m, m, m, g);
    assert_int_equal(rc, 0);
    snprintf(f, sizeof f, "%s/../agent-sha", g);
    assert_int_equal(read_small(f, sha, sizeof sha), 0);
    sha[40] = '\0';
    /* Nothing reached the mirror while the pod ran. */
    assert_int_not_equal(
        sh("git --git-dir=%s rev-parse -q --verify %s^{commit} >/dev/null", m, sha), 0);
    remove_ok("pe", 0);
    /* After: the pod's branch (only) is in the mirror, with its commit; the mirror is sound. */
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-pe", m), 0);
    assert_string_equal(got, sha);
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse victim/b", m), 0);
    assert_string_equal(got, vsha);
    assert_int_not_equal(
        sh("git --git-dir=%s rev-parse -q --verify refs/heads/other >/dev/null", m), 0);
    assert_int_not_equal(sh("git --git-dir=%s rev-parse -q --verify refs/heads/evil >/dev/null", m),
                         0);
    assert_int_not_equal(sh("git --git-dir=%s rev-parse -q --verify refs/tags/evil-tag "
                            ">/dev/null",
                            m),
                         0);
    snprintf(f, sizeof f, "%s/x", m);
    assert_false(exists(f));
    assert_int_equal(sh("git --git-dir=%s fsck --no-dangling --no-progress >/dev/null", m), 0);
    remove_ok("pv", 0);

    /* A git dir whose refs dir was swapped for a symlink to the mirror's: the runner never reads
     * it; the helper, in its sandbox, sees only the (read-only) mirror's own value, so the
     * branch stays where it was; cleanup still happens. */
    create_ok("main", NULL, "ps", &info);
    assert_int_equal(sh("rm -rf %s/refs/heads && ln -s %s/refs/heads %s/refs/heads", info.gitdir,
                        info.mirror, info.gitdir),
                     0);
    assert_int_equal(am_wt_remove(g_data, g_src, "ps", 0), 0);
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-ps", m), 0);
    assert_string_equal(got, info.commit);
    assert_false(exists(info.path));
    snprintf(f, sizeof f, "%s/pods/ps", g_data);
    assert_false(exists(f));
}

/* ---- fetch-back as data (runner/worktree/fetchback.c) ---- */

/* What a refusal must not change: every ref and every object file of the mirror. */
static void mirror_snapshot(const char *m, char *out, size_t cap) {
    assert_int_equal(sh_out(out, cap,
                            "git --git-dir=%s for-each-ref --format='%%(refname) %%(objectname)';"
                            " cd %s/objects && find . -type f | sort",
                            m, m),
                     0);
}

/* Feed the stream in file `name` (under g_tmp) to am_wt_receive for pod. */
static int receive_file(const char *pod, const char *name) {
    char f[BIG];
    snprintf(f, sizeof f, "%s/%s", g_tmp, name);
    int fd = open(f, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    int rc = am_wt_receive(g_data, g_src, pod, fd);
    close(fd);
    return rc;
}

static void expect_refused(const char *pod, const char *name, int code, const char *why,
                           const char *m) {
    char before[BIG], after[BIG];
    mirror_snapshot(m, before, sizeof before);
    int rc = receive_file(pod, name);
    if (rc != -code || !strstr(am_err_last(), why) || !strstr(am_err_last(), "refused"))
        fail_msg("%s: rc %d, want %d with '%s': %s", name, rc, -code, why, am_err_last());
    mirror_snapshot(m, after, sizeof after);
    assert_string_equal(before, after);
}

static void test_fetch_back_stream_is_checked_before_the_mirror_changes(void **state) {
    (void)state;
    am_wt_info info;
    char got[BIG], tip[64], tree[64], m[PATH_MAX], ws[PATH_MAX];
    create_ok("main", NULL, "rx", &info);
    snprintf(m, sizeof m, "%s", info.mirror);
    snprintf(ws, sizeof ws, "%s", info.path);
    const char *T = g_tmp, *B = info.commit;
    /* Two commits made in the pod; streams built from them with the git CLI. */
    assert_int_equal(sh("set -e; cd %s; echo rx1 > rx.txt; git add rx.txt; git commit -qm rx1;"
                        " head -c 3000 /dev/urandom > big.bin; git add big.bin;"
                        " git commit -qm rx2",
                        ws),
                     0);
    assert_int_equal(sh_out(tip, sizeof tip, "git -C %s rev-parse HEAD", ws), 0);
    assert_int_equal(sh_out(tree, sizeof tree, "git -C %s rev-parse %s^{tree}", ws, B), 0);
    const char *H = "airmesh-fetchback 1";
    assert_int_equal(
        sh("set -e; cd %s; P='git -C %s pack-objects --revs --stdout -q';"
           " printf '%s refs/heads/airmesh/pod-rx %s\\n' > %s/good;"
           " printf '%%s\\n^%%s\\n' %s %s | $P >> %s/good;"
           " printf '%s refs/heads/main %s\\n' > %s/wrongref;"
           " tail -c +$(( $(head -1 %s/good | wc -c) + 1 )) %s/good >> %s/wrongref;"
           " printf '%s refs/heads/airmesh/pod-rx 0123456789abcdef0123456789abcdef01234567\\n'"
           " > %s/missing;"
           " printf '%s refs/heads/airmesh/pod-rx %s\\n' > %s/tree;"
           " printf '%s refs/heads/airmesh/pod-rx %s\\n' > %s/upper;"
           " printf 'GET / HTTP/1.1\\r\\n\\r\\n' > %s/garbage;"
           /* only the tip commit, without its tree and parent: disconnected */
           " printf '%s refs/heads/airmesh/pod-rx %s\\n' > %s/disconnected;"
           " echo %s | git -C %s pack-objects --stdout -q >> %s/disconnected;"
           /* the good stream with one byte of the pack flipped */
           " cp %s/good %s/corrupt; printf 'X' | dd of=%s/corrupt bs=1 seek=200 conv=notrunc"
           " 2>/dev/null",
           T, ws, H, tip, T, tip, B, T, H, tip, T, T, T, T, H, T, H, tree, T, H,
           "0123456789ABCDEF0123456789ABCDEF01234567", T, T, H, tip, T, tip, ws, T, T, T, T),
        0);
    expect_refused("rx", "wrongref", AM_EINVAL, "ref name 'refs/heads/main' is not the pod's", m);
    expect_refused("rx", "missing", AM_ECORRUPT, "no such object", m);
    expect_refused("rx", "tree", AM_EINVAL, "is a tree, not a commit", m);
    expect_refused("rx", "upper", AM_EINVAL, "40 lowercase hex", m);
    expect_refused("rx", "garbage", AM_ECORRUPT, "does not start with", m);
    expect_refused("rx", "disconnected", AM_ECORRUPT, "is missing", m);
    expect_refused("rx", "corrupt", AM_ECORRUPT, "bad pack", m);
    am_wt_set_fetch_back_max(2000);
    expect_refused("rx", "good", AM_EFULL, "larger than the limit of 2000 bytes", m);
    am_wt_set_fetch_back_max(256ull << 20);
    /* Positive control: the same stream, within the limit, is taken. */
    if (receive_file("rx", "good") != 0)
        fail_msg("good stream: %s", am_err_last());
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-rx", m), 0);
    assert_string_equal(got, tip);
    assert_int_equal(sh("git --git-dir=%s fsck --no-dangling --no-progress >/dev/null", m), 0);
    /* No staging dir left behind. */
    assert_int_equal(
        sh("ls -d %s/mirrors/*.in-* %s/mirrors/*.fb-* 2>/dev/null | grep -q .", g_data, g_data), 1);
    remove_ok("rx", 0);
}

static void test_fetch_back_runs_the_pods_git_dir_only_inside_a_sandbox(void **state) {
    (void)state;
    am_wt_info victim, info;
    char got[BIG], sha[64], vsha[64], m[PATH_MAX], before[BIG], after[BIG], f[BIG];
    /* Another repository's mirror on this runner, with a commit of its own. */
    char other[BIG];
    snprintf(other, sizeof other, "%s/other-src", g_tmp);
    assert_int_equal(sh("set -e; git init -q -b main %s; cd %s; echo secret > s.txt;"
                        " git add -A; git commit -qm secret",
                        other, other),
                     0);
    assert_int_equal(am_wt_create(g_data, other, "main", NULL, "ov", &victim), 0);
    assert_int_equal(sh_out(vsha, sizeof vsha, "git -C %s rev-parse HEAD", other), 0);

    /* commondir pointing at the other mirror: on the host, git would read that mirror's refs
     * and objects through this git dir (shown first); the helper, in its sandbox, cannot. */
    create_ok("main", "airmesh/pod-ov", "cd", &info);
    snprintf(m, sizeof m, "%s", info.mirror);
    assert_int_equal(sh("echo %s > %s/commondir", victim.mirror, info.gitdir), 0);
    assert_int_equal(
        sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-ov^{commit}", info.gitdir),
        0);
    assert_string_equal(got, vsha); /* the attack is live on the host */
    mirror_snapshot(m, before, sizeof before);
    int rc = am_wt_remove(g_data, g_src, "cd", 0);
    assert_int_not_equal(rc, 0);
    print_message("commondir: %s\n", am_err_last());
    assert_non_null(strstr(am_err_last(), "refused"));
    mirror_snapshot(m, after, sizeof after);
    assert_string_equal(before, after);
    assert_int_not_equal(sh("git --git-dir=%s cat-file -e %s 2>/dev/null", m, vsha), 0);

    /* alternates + a symlinked ref into the other mirror. */
    create_ok("main", NULL, "al", &info);
    assert_int_equal(sh("set -e; echo %s/objects > %s/objects/info/alternates;"
                        " rm %s/refs/heads/airmesh/pod-al;"
                        " ln -s %s/refs/heads/airmesh/pod-ov %s/refs/heads/airmesh/pod-al",
                        victim.mirror, info.gitdir, info.gitdir, victim.mirror, info.gitdir),
                     0);
    assert_int_equal(
        sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-al^{commit}", info.gitdir),
        0);
    assert_string_equal(got, vsha);
    mirror_snapshot(m, before, sizeof before);
    assert_int_not_equal(am_wt_remove(g_data, g_src, "al", 0), 0);
    print_message("alternates + symlinked ref: %s\n", am_err_last());
    assert_non_null(strstr(am_err_last(), "refused"));
    mirror_snapshot(m, after, sizeof after);
    assert_string_equal(before, after);
    assert_int_not_equal(sh("git --git-dir=%s cat-file -e %s 2>/dev/null", m, vsha), 0);

    /* [include] path = a FIFO on the host: the runner never opens it (it would block), and
     * the pod's branch still comes back. */
    create_ok("main", NULL, "in", &info);
    snprintf(f, sizeof f, "%s/bait.fifo", g_tmp);
    assert_int_equal(mkfifo(f, 0600), 0);
    assert_int_equal(sh_out(sha, sizeof sha,
                            "set -e; cd %s; echo inc > inc.txt; git add inc.txt;"
                            " git commit -qm inc; git rev-parse HEAD;"
                            " printf '[include]\\n\\tpath = %s\\n' >> %s/config",
                            info.path, f, info.gitdir),
                     0);
    remove_ok("in", 1); /* would hang here if the runner parsed the config */
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-in", m), 0);
    assert_string_equal(got, sha);
    /* Nobody holds the FIFO open for reading: a non-blocking writer gets ENXIO. */
    int w = open(f, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    assert_int_equal(w, -1);
    assert_int_equal(errno, ENXIO);
    /* Positive control: git on the host, reading that git dir, blocks on the FIFO. */
    assert_int_equal(sh("timeout 3 git --git-dir=%s config --list >/dev/null 2>&1", info.gitdir),
                     124);
    remove_ok("in", 0);
    unlink(f);
    assert_int_equal(am_wt_remove(g_data, other, "ov", 0), 0);
}

static void test_removal_never_follows_symlinks(void **state) {
    (void)state;
    am_wt_info info;
    char victim[PATH_MAX], f[BIG], pod[BIG];
    snprintf(victim, sizeof victim, "%s/victim", g_tmp);
    assert_int_equal(sh("mkdir -p %s/sub && echo keep > %s/keep.txt && echo keep > "
                        "%s/sub/keep.txt",
                        victim, victim, victim),
                     0);
    create_ok("main", NULL, "sl", &info);
    snprintf(pod, sizeof pod, "%s/pods/sl", g_data);
    /* Links to the host dir in the workspace (the overlay's upper dir), in the git dir, at
     * depth 100 (beyond the walk's 64 open fds), and a directory replaced by a link. */
    assert_int_equal(sh("set -e; cd %s; ln -s %s evil; ln -s %s/keep.txt evil-file;"
                        " d=deep; for i in $(seq 100); do d=$d/x; done; mkdir -p $d;"
                        " ln -s %s $d/evil; echo f > $d/file; rm -rf d; ln -s %s d;"
                        " ln -s %s %s/evil; ln -s %s %s/objects/evil",
                        info.path, victim, victim, victim, victim, victim, info.gitdir, victim,
                        info.gitdir),
                     0);
    snprintf(f, sizeof f, "%s/evil/keep.txt", info.path);
    assert_true(exists(f)); /* the links reach the host dir */
    remove_ok("sl", 0);
    assert_false(exists(pod));
    snprintf(f, sizeof f, "%s/keep.txt", victim);
    assert_true(exists(f));
    snprintf(f, sizeof f, "%s/sub/keep.txt", victim);
    assert_true(exists(f));
}

static void test_fetch_back_with_the_longest_pod_id(void **state) {
    (void)state;
    am_wt_info info;
    char id[65], sha[64], got[BIG];
    memset(id, 'q', 64);
    id[64] = '\0';
    create_ok("main", "long/id", id, &info);
    assert_int_equal(sh_out(sha, sizeof sha,
                            "cd %s && echo l > l.txt && git add l.txt && git commit -qm l &&"
                            " git rev-parse HEAD",
                            info.path),
                     0);
    remove_ok(id, 0);
    assert_int_equal(sh_out(got, sizeof got, "git --git-dir=%s rev-parse long/id", info.mirror), 0);
    assert_string_equal(got, sha);
}

static void test_fetch_back_of_a_branch_moved_back_to_an_older_commit(void **state) {
    (void)state;
    am_wt_info info;
    char want[64], got[BIG];
    create_ok("main", NULL, "rb", &info);
    /* Nothing new to send: the helper's pack is empty (or absent), the ref still moves. */
    assert_int_equal(sh("git -C %s reset -q --hard HEAD^", info.path), 0);
    assert_int_equal(sh_out(want, sizeof want, "git -C %s rev-parse main^", g_src), 0);
    remove_ok("rb", 0);
    assert_int_equal(
        sh_out(got, sizeof got, "git --git-dir=%s rev-parse airmesh/pod-rb", info.mirror), 0);
    assert_string_equal(got, want);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worktree_on_new_branch_at_base_ref),
        cmocka_unit_test(test_commit_inside_lands_in_mirror_after_remove),
        cmocka_unit_test(test_git_status_inside_is_clean),
        cmocka_unit_test(test_fetch_at_each_create_sees_new_commits),
        cmocka_unit_test(test_bad_base_ref_is_a_clear_error),
        cmocka_unit_test(test_bad_branch_name_is_refused),
        cmocka_unit_test(test_two_pods_share_one_checkout_and_do_not_see_each_others_writes),
        cmocka_unit_test(test_keep_worktree_keeps_files),
        cmocka_unit_test(test_full_checkout_mode_works_like_overlay),
        cmocka_unit_test(test_pod_cannot_touch_the_mirror),
        cmocka_unit_test(test_fetch_back_stream_is_checked_before_the_mirror_changes),
        cmocka_unit_test(test_fetch_back_runs_the_pods_git_dir_only_inside_a_sandbox),
        cmocka_unit_test(test_removal_never_follows_symlinks),
        cmocka_unit_test(test_fetch_back_with_the_longest_pod_id),
        cmocka_unit_test(test_fetch_back_of_a_branch_moved_back_to_an_older_commit),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
