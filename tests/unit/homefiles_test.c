/*
 * tests/unit/homefiles_test.c — unit tests for runner/pod/homefiles (cmocka): the runner writes
 * CreatePod.home_files into a pod's HOME only under it, whatever the appliance sent. Each attack
 * is preceded by its positive control: a good path writes the file (with the home dir's owner,
 * mode 0600) so the refusals below are refusals, not a writer that writes nothing.
 * Attacks: "..", absolute paths, "." and empty parts, control characters, too many files or
 * bytes, and links planted in HOME (a dir link and a file link pointing outside) which must not
 * be followed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/pod/homefiles.h"

static char base[256], home[300], outside[300];

static void rm_rf(const char *p) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **st) {
    (void)st;
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(base, sizeof base, "%s/homefiles-%d", tmp ? tmp : "/tmp", (int)getpid());
    rm_rf(base);
    snprintf(home, sizeof home, "%s/home", base);
    snprintf(outside, sizeof outside, "%s/outside", base);
    assert_int_equal(mkdir(base, 0700), 0);
    assert_int_equal(mkdir(home, 0700), 0);
    assert_int_equal(mkdir(outside, 0700), 0);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    rm_rf(base);
    return 0;
}

/* One file entry (static storage: the tests are sequential). */
static am_pod_home_file *entry(int i, const char *path, const char *content) {
    static am_pod_home_file e[80];
    airmesh__v1__create_pod__home_files_entry__init(&e[i]);
    e[i].key = (char *)path;
    e[i].value.data = (uint8_t *)content;
    e[i].value.len = strlen(content);
    return &e[i];
}

static int write1(const char *path, const char *content) {
    am_pod_home_file *f[1] = {entry(0, path, content)};
    return am_pod_home_files_write(home, f, 1);
}

static int exists_in(const char *dir, const char *name) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static void test_a_good_path_is_written_with_the_home_owner_and_0600(void **st) {
    (void)st;
    /* Another owner where the sandbox allows it (root with ids mapped); else our own. */
    if (chown(home, 4242, 4343) != 0)
        assert_true(errno == EPERM || errno == EINVAL);
    struct stat hs;
    assert_int_equal(stat(home, &hs), 0);
    assert_int_equal(write1(".claude/settings.json", "{\"a\":1}\n"), 0);
    char p[700];
    snprintf(p, sizeof p, "%s/.claude/settings.json", home);
    struct stat s;
    assert_int_equal(stat(p, &s), 0);
    assert_int_equal(s.st_uid, hs.st_uid);
    assert_int_equal(s.st_gid, hs.st_gid);
    assert_int_equal(s.st_mode & 0777, 0600);
    assert_int_equal(s.st_size, 8);
    snprintf(p, sizeof p, "%s/.claude", home);
    assert_int_equal(stat(p, &s), 0);
    assert_int_equal(s.st_uid, hs.st_uid);
    assert_int_equal(s.st_mode & 0777, 0700);
}

static void test_dotdot_absolute_dot_empty_and_control_paths_are_refused(void **st) {
    (void)st;
    assert_int_equal(write1("ok.txt", "x"), 0); /* positive control */
    assert_true(exists_in(home, "ok.txt"));
    static const char *const bad[] = {"../outside/x", "a/../../outside/x",
                                      "..",           "/etc/passwd",
                                      "./x",          "a//b",
                                      "a/",           "",
                                      "a/./b",        "new\nline",
                                      "esc\x1b[1m",   "a/b/c/d/e/f/g/h/i"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = write1(bad[i], "pwned");
        if (rc != -AM_EINVAL)
            fail_msg("'%s' was not refused (rc %d)", bad[i], rc);
    }
    assert_false(exists_in(outside, "x"));
    assert_false(exists_in(home, "x"));
}

static void test_too_many_files_or_bytes_are_refused_and_nothing_is_written(void **st) {
    (void)st;
    static char names[AM_POD_HOME_FILES_MAX + 1][16];
    am_pod_home_file *f[AM_POD_HOME_FILES_MAX + 1];
    for (int i = 0; i <= AM_POD_HOME_FILES_MAX; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i);
        f[i] = entry(i, names[i], "x");
    }
    assert_int_equal(am_pod_home_files_check(f, AM_POD_HOME_FILES_MAX), 0); /* control */
    assert_int_equal(am_pod_home_files_write(home, f, AM_POD_HOME_FILES_MAX + 1), -AM_EINVAL);
    assert_false(exists_in(home, "f0"));
    char *big = malloc(AM_POD_HOME_BYTES_MAX + 2);
    memset(big, 'a', AM_POD_HOME_BYTES_MAX + 1);
    big[AM_POD_HOME_BYTES_MAX + 1] = '\0';
    assert_int_equal(write1("big", big), -AM_EINVAL);
    big[AM_POD_HOME_BYTES_MAX] = '\0';
    assert_int_equal(write1("big", big), 0); /* exactly the limit is fine */
    free(big);
}

static void test_links_planted_in_home_are_not_followed(void **st) {
    (void)st;
    char link[700], target[700];
    /* a dir link: HOME/.codex -> outside */
    snprintf(link, sizeof link, "%s/.codex", home);
    assert_int_equal(symlink(outside, link), 0);
    assert_int_equal(write1(".codex/config.toml", "pwned"), -AM_EIO);
    assert_false(exists_in(outside, "config.toml"));
    assert_non_null(strstr(am_err_last(), "link"));
    /* a file link: HOME/.claude.json -> outside/victim */
    snprintf(target, sizeof target, "%s/victim", outside);
    int fd = open(target, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "orig", 4), 4);
    close(fd);
    snprintf(link, sizeof link, "%s/.claude.json", home);
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(write1(".claude.json", "pwned"), -AM_EIO);
    struct stat s;
    assert_int_equal(stat(target, &s), 0);
    assert_int_equal(s.st_size, 4); /* untouched */
    /* and HOME itself a link: refused */
    char hl[700];
    snprintf(hl, sizeof hl, "%s/homelink", base);
    assert_int_equal(symlink(outside, hl), 0);
    am_pod_home_file *f[1] = {entry(0, "y", "pwned")};
    assert_int_not_equal(am_pod_home_files_write(hl, f, 1), 0);
    assert_false(exists_in(outside, "y"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_a_good_path_is_written_with_the_home_owner_and_0600,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_dotdot_absolute_dot_empty_and_control_paths_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_too_many_files_or_bytes_are_refused_and_nothing_is_written, setup, teardown),
        cmocka_unit_test_setup_teardown(test_links_planted_in_home_are_not_followed, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
