/*
 * tests/unit/review_test.c — runner/worktree/review.c (the review of a pod's branch) and
 * am_wt_set_continue_branch against real repositories made with the git CLI.
 *
 * What: a source repo (main: a.txt, c.txt), a runner data dir with the mirror of it made the way
 * am_wt_create makes it (upstream branches under refs/remotes/origin/NAME), and a pod-like branch
 * "feat" in the mirror's refs/heads with two commits (a.txt changed, b.txt added, c.txt deleted).
 * The review's commits, patch and counts are compared with what `git` itself says about the
 * same mirror. Then: the merge base is used when main moved on, the cut at max_bytes, clear
 * errors for unknown branches, a push without credentials is read-only, a push with a matching
 * credentials line reaches the remote, and a pod continues an existing branch.
 *
 * Ownership: the temp dir is removed by the group teardown. Threads: single-threaded. Runs
 * `local` (am_wt_remove's fetch-back uses the sandbox).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/worktree/worktree.h"

static char g_tmp[1024], g_src[1100], g_data[1100], g_mirror[4096], g_bare[1100], g_bmirror[4096];

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
    while (len > 0 && out[len - 1] == '\n')
        out[--len] = '\0';
    int st = pclose(f);
    return (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : -1;
}

static int setup_group(void **state) {
    (void)state;
    const char *base = getenv("TEST_TMPDIR");
    snprintf(g_tmp, sizeof g_tmp, "%s/rvXXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(g_tmp))
        return -1;
    snprintf(g_src, sizeof g_src, "%s/src", g_tmp);
    snprintf(g_data, sizeof g_data, "%s/data", g_tmp);
    snprintf(g_bare, sizeof g_bare, "%s/remote.git", g_tmp);
    setenv("HOME", g_tmp, 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_AUTHOR_NAME", "Ann", 1);
    setenv("GIT_AUTHOR_EMAIL", "ann@example.invalid", 1);
    setenv("GIT_COMMITTER_NAME", "Ann", 1);
    setenv("GIT_COMMITTER_EMAIL", "ann@example.invalid", 1);
    if (am_wt_init(g_data) != 0 ||
        am_wt_mirror_path(g_data, g_src, g_mirror, sizeof g_mirror) != 0 ||
        am_wt_mirror_path(g_data, g_bare, g_bmirror, sizeof g_bmirror) != 0)
        return -1;
    /* main, then feat (two commits) in the source; the mirror gets main as origin/main and feat
     * as a pod branch in refs/heads, the layout a fetched-back pod leaves. */
    if (sh("set -e; git init -q -b main %s; cd %s; printf 'one\\ntwo\\nthree\\n' > a.txt; "
           "echo gone > c.txt; git add -A; git commit -qm base; git checkout -qb feat; "
           "printf 'one\\nTWO\\nthree\\n' > a.txt; git commit -qam 'change a'; "
           "echo 'added line' > b.txt; git rm -q c.txt; git add -A; git commit -qm 'add b'; "
           "git checkout -q main; git init -q --bare %s; "
           "git --git-dir %s fetch -q %s '+refs/heads/main:refs/remotes/origin/main' "
           "'+refs/heads/feat:refs/heads/feat'",
           g_src, g_src, g_mirror, g_mirror, g_src) != 0)
        return -1;
    return 0;
}

static int teardown_group(void **state) {
    (void)state;
    sh("for m in %s/pods/*/workspace; do mountpoint -q \"$m\" && umount -l \"$m\"; done; true",
       g_data);
    am_wt_shutdown();
    sh("rm -rf %s", g_tmp);
    return 0;
}

static void test_diff_lists_the_branch_commits_oldest_first_and_git_s_patch(void **state) {
    (void)state;
    am_wt_review r;
    int rc = am_wt_review_diff(g_data, g_src, "main", "feat", 0, &r);
    if (rc)
        fail_msg("review: %s", am_err_last());
    assert_int_equal(r.n_commits, 2);
    assert_string_equal(r.commits[0].summary, "change a");
    assert_string_equal(r.commits[1].summary, "add b");
    assert_string_equal(r.commits[0].author, "Ann <ann@example.invalid>");
    assert_true(r.commits[0].time_ms > 1600000000000ull);
    char want[256];
    assert_int_equal(sh_out(want, sizeof want, "git -C %s rev-parse main", g_src), 0);
    assert_string_equal(r.base_commit, want);
    assert_int_equal(sh_out(want, sizeof want, "git -C %s rev-parse feat", g_src), 0);
    assert_string_equal(r.head_commit, want);
    assert_string_equal(r.commits[1].id, want);
    /* The patch is git's: same text as `git diff` of the same two commits (renames on). */
    static char gd[65536];
    assert_int_equal(sh_out(gd, sizeof gd, "git --git-dir %s diff -M %s %s", g_mirror,
                            r.base_commit, r.head_commit),
                     0);
    assert_int_equal(r.diff_len, strlen(r.diff));
    if (r.diff_len && r.diff[r.diff_len - 1] == '\n')
        r.diff[r.diff_len - 1] = '\0'; /* sh_out trims the last newline */
    assert_string_equal(gd, r.diff);
    r.diff[r.diff_len - 1] = '\n';
    assert_non_null(strstr(r.diff, "+TWO\n"));
    assert_non_null(strstr(r.diff, "-two\n"));
    assert_non_null(strstr(r.diff, "+added line\n"));
    assert_non_null(strstr(r.diff, "deleted file mode"));
    assert_int_equal(r.files, 3);
    assert_int_equal(r.additions, 2); /* TWO, added line */
    assert_int_equal(r.deletions, 2); /* two, gone */
    assert_int_equal(r.truncated, 0);
    am_wt_review_free(&r);
}

static void test_the_patch_is_cut_at_max_bytes_on_a_line_boundary(void **state) {
    (void)state;
    am_wt_review r;
    assert_int_equal(am_wt_review_diff(g_data, g_src, "main", "feat", 60, &r), 0);
    assert_int_equal(r.truncated, 1);
    assert_true(r.diff_len <= 60 && r.diff_len > 0);
    assert_int_equal(r.diff[r.diff_len - 1], '\n');
    assert_int_equal(r.files, 3); /* the counts are of the whole diff */
    am_wt_review_free(&r);
}

static void test_the_merge_base_is_the_base_when_main_moved_on(void **state) {
    (void)state;
    assert_int_equal(sh("set -e; cd %s; echo later > d.txt; git add -A; git commit -qm later; "
                        "git --git-dir %s fetch -q %s '+refs/heads/main:refs/remotes/origin/main'",
                        g_src, g_mirror, g_src),
                     0);
    am_wt_review r;
    assert_int_equal(am_wt_review_diff(g_data, g_src, "main", "feat", 0, &r), 0);
    assert_int_equal(r.n_commits, 2);
    assert_null(strstr(r.diff, "d.txt")); /* main's later change is not the branch's */
    char mb[64];
    assert_int_equal(sh_out(mb, sizeof mb, "git -C %s merge-base main feat", g_src), 0);
    assert_string_equal(r.base_commit, mb);
    am_wt_review_free(&r);
}

static void test_an_unknown_branch_or_base_is_not_found_and_a_bad_name_invalid(void **state) {
    (void)state;
    am_wt_review r;
    assert_int_equal(am_wt_review_diff(g_data, g_src, "main", "nope", 0, &r), -AM_ENOTFOUND);
    assert_non_null(strstr(am_err_last(), "'nope' is not in this runner's mirror"));
    assert_int_equal(am_wt_review_diff(g_data, g_src, "mian", "feat", 0, &r), -AM_ENOTFOUND);
    assert_non_null(strstr(am_err_last(), "base ref 'mian' not found"));
    assert_int_equal(am_wt_review_diff(g_data, g_src, "main", "a..b", 0, &r), -AM_EINVAL);
    assert_int_equal(am_wt_review_diff(g_data, "/no/such/repo", "main", "feat", 0, &r),
                     -AM_ENOTFOUND);
    assert_null(r.diff);
}

static void test_a_push_without_credentials_is_read_only_and_pushes_nothing(void **state) {
    (void)state;
    char to[1024], commit[41];
    int ro = 0;
    assert_int_equal(am_wt_set_credentials_file(NULL), 0);
    assert_int_equal(am_wt_push(g_data, g_src, "feat", to, sizeof to, commit, &ro), 0);
    assert_int_equal(ro, 1);
    assert_string_equal(to, g_src);
    assert_string_equal(commit, "");
}

static void test_a_push_with_a_matching_credentials_line_reaches_the_remote(void **state) {
    (void)state;
    /* A bare remote (a server's repository) and its mirror with a branch only the mirror has
     * (as after a pod's fetch-back). */
    char tip[64], creds[1200], pw[1200], to[1024], commit[41];
    assert_int_equal(sh_out(tip, sizeof tip,
                            "set -e; git clone -q --bare %s %s; git init -q --bare %s; "
                            "git --git-dir %s fetch -q %s '+refs/heads/feat:refs/heads/feat'; "
                            "t=$(git --git-dir %s rev-parse feat^{tree}); "
                            "c=$(echo more | git --git-dir %s commit-tree $t -p feat); "
                            "git --git-dir %s update-ref refs/heads/feat2 $c; echo $c",
                            g_src, g_bare, g_bmirror, g_bmirror, g_src, g_bmirror, g_bmirror,
                            g_bmirror),
                     0);
    snprintf(creds, sizeof creds, "%s/creds", g_tmp);
    snprintf(pw, sizeof pw, "%s/pw", g_tmp);
    assert_int_equal(sh("printf 'secret-pw\\n' > %s; printf '# test\\n\\n/nowhere u x\\n%s pusher "
                        "%s\\n' > %s",
                        pw, g_bare, pw, creds),
                     0);
    assert_int_equal(am_wt_set_credentials_file(creds), 0);
    int ro = 1;
    int rc = am_wt_push(g_data, g_bare, "feat2", to, sizeof to, commit, &ro);
    if (rc)
        fail_msg("push: %s", am_err_last());
    assert_int_equal(ro, 0);
    assert_string_equal(commit, tip);
    char there[64];
    assert_int_equal(sh_out(there, sizeof there, "git --git-dir %s rev-parse feat2", g_bare), 0);
    assert_string_equal(there, tip);
    /* A malformed line is named by its number, never its content. */
    assert_int_equal(sh("printf '%s only-two-fields\\n' > %s", g_src, creds), 0);
    assert_int_equal(am_wt_push(g_data, g_bare, "feat2", to, sizeof to, commit, &ro), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "line 1"));
    assert_null(strstr(am_err_last(), "only-two-fields"));
    assert_int_equal(am_wt_set_credentials_file("/no/such/file"), -AM_EINVAL);
    am_wt_set_credentials_file(NULL);
}

static void test_a_pod_continues_an_existing_branch_only_when_asked(void **state) {
    (void)state;
    am_wt_info info;
    am_wt_set_mode(AM_WT_MODE_FULL);
    assert_int_equal(am_wt_create(g_data, g_src, "main", "feat", "pc1", &info), -AM_EEXISTS);
    am_wt_set_continue_branch(1);
    assert_int_equal(am_wt_create(g_data, g_src, "main", "nope", "pc2", &info), -AM_ENOTFOUND);
    int rc = am_wt_create(g_data, g_src, "main", "feat", "pc3", &info);
    am_wt_set_continue_branch(0);
    am_wt_set_mode(AM_WT_MODE_AUTO);
    if (rc)
        fail_msg("continue: %s", am_err_last());
    char tip[64], path[5000];
    assert_int_equal(sh_out(tip, sizeof tip, "git -C %s rev-parse feat", g_src), 0);
    assert_string_equal(info.commit, tip);
    snprintf(path, sizeof path, "%s/b.txt", info.path); /* the branch's files, not main's */
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(am_wt_remove(g_data, g_src, "pc3", 0), 0);
    /* the branch is still there, unchanged */
    char now[64];
    assert_int_equal(sh_out(now, sizeof now, "git --git-dir %s rev-parse feat", g_mirror), 0);
    assert_string_equal(now, tip);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diff_lists_the_branch_commits_oldest_first_and_git_s_patch),
        cmocka_unit_test(test_the_patch_is_cut_at_max_bytes_on_a_line_boundary),
        cmocka_unit_test(test_the_merge_base_is_the_base_when_main_moved_on),
        cmocka_unit_test(test_an_unknown_branch_or_base_is_not_found_and_a_bad_name_invalid),
        cmocka_unit_test(test_a_push_without_credentials_is_read_only_and_pushes_nothing),
        cmocka_unit_test(test_a_push_with_a_matching_credentials_line_reaches_the_remote),
        cmocka_unit_test(test_a_pod_continues_an_existing_branch_only_when_asked),
    };
    return cmocka_run_group_tests(tests, setup_group, teardown_group);
}
