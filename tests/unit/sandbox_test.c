/*
 * tests/unit/sandbox_test.c — unit tests for runner/sandbox: a probe binary checks the sandbox
 * from the inside (namespaces, mounts, privileges, seccomp), and small shell commands check the
 * PTY, resize, stop, the pids limit and error reporting from the outside.
 * argv[1] is the probe (tests/sandbox:probe). Each test works in its own mkdtemp workspace under
 * $TEST_TMPDIR (or /tmp). Single-threaded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "runner/sandbox/sandbox.h"

static const char *g_probe;

/* ---- helpers ------------------------------------------------------------------------------- */

typedef struct {
    char ws[512];
    char out[65536];
    size_t len;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("TEST_TMPDIR");
    snprintf(f->ws, sizeof f->ws, "%s/sbx-XXXXXX", tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->ws));
    /* The caller's contract: the pod's writable dirs belong to pod root's host uid. */
    const am_sbx_idmap *m = am_sbx_idmap_current();
    assert_int_equal(chown(f->ws, m->pod_root_uid, m->pod_root_gid), 0);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->ws);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static am_sbx_opts opts_for(fixture *f, const char *const *argv, const char *const *env) {
    am_sbx_opts o = {.argv = argv,
                     .env = env,
                     .workspace = f->ws,
                     .network_none = 1,
                     .pids_max = 128,
                     .cols = 80,
                     .rows = 24,
                     .hostname = "pod-test"};
    return o;
}

/* Append PTY output to f->out until `needle` shows up (NULL: until EOF/EIO) or timeout_ms. */
static int read_pty(fixture *f, am_sbx *s, const char *needle, int timeout_ms) {
    uint64_t end = am_mono_ns() / 1000000 + (uint64_t)timeout_ms;
    for (;;) {
        if (needle && strstr(f->out, needle))
            return 1;
        uint64_t now = am_mono_ns() / 1000000;
        if (now >= end)
            return 0;
        struct pollfd p = {am_sbx_pty_fd(s), POLLIN, 0};
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t n = read(p.fd, f->out + f->len, sizeof f->out - 1 - f->len);
        if (n < 0 && errno == EAGAIN)
            continue;
        if (n <= 0)
            return needle ? 0 : 1; /* EIO: every slave fd is closed */
        f->len += (size_t)n;
        f->out[f->len] = '\0';
    }
}

/* Spawn, read everything, wait; returns the exit code. */
static int run(fixture *f, const am_sbx_opts *o) {
    am_sbx *s = NULL;
    int rc = am_sbx_spawn(o, &s);
    if (rc < 0)
        fail_msg("spawn: %s", am_err_last());
    assert_true(read_pty(f, s, NULL, 20000));
    int code = -1, sig = -1;
    assert_int_equal(am_sbx_wait(s, 10000, &code, &sig), 0);
    assert_int_equal(sig, 0);
    am_sbx_free(s);
    return code;
}

/* Host pids of every process in the same pid namespace as `init`. */
static int pids_in_ns(pid_t init, pid_t *out, int cap) {
    char path[300], want[64], got[64];
    snprintf(path, sizeof path, "/proc/%d/ns/pid", (int)init);
    ssize_t n = readlink(path, want, sizeof want - 1);
    if (n <= 0)
        return 0;
    want[n] = '\0';
    int k = 0;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) && k < cap) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/ns/pid", e->d_name);
        n = readlink(path, got, sizeof got - 1);
        if (n <= 0)
            continue;
        got[n] = '\0';
        if (strcmp(got, want) == 0)
            out[k++] = (pid_t)atoi(e->d_name);
    }
    if (d)
        closedir(d);
    return k;
}

static void copy_file(const char *from, const char *to) {
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(am_read_file(from, 64 << 20, &data, &len), 0);
    int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    free(data);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Run the probe in a sandbox (with or without the seccomp filter, as pod root or as the agent
 * user); fills f->out. */
static int run_probe_as(fixture *f, int no_seccomp, int as_agent) {
    char dst[600], hidden[600], cwd[512];
    snprintf(dst, sizeof dst, "%s/probe", f->ws);
    copy_file(g_probe, dst);
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(hidden, sizeof hidden, "PROBE_HIDDEN=%s", cwd);
    /* LeakSanitizer needs ptrace, which the sandbox denies: the (ASan-built) probe skips it. */
    const char *env[] = {"PROBE_HOSTNAME=pod-test",
                         hidden,
                         "ASAN_OPTIONS=detect_leaks=0",
                         "PROBE_TMP_BYTES=8388608",
                         "PROBE_SHM_BYTES=4194304",
                         as_agent ? "PROBE_UID=1000" : "PROBE_UID=0",
                         no_seccomp ? "PROBE_NO_SECCOMP=1" : NULL,
                         NULL};
    const char *argv[] = {"/workspace/probe", NULL};
    am_sbx_opts o = opts_for(f, argv, env);
    o.tmp_bytes = 8u << 20;
    o.shm_bytes = 4u << 20;
    o.test_no_seccomp = no_seccomp;
    o.as_agent = as_agent;
    if (as_agent) {
        const am_sbx_idmap *m = am_sbx_idmap_current();
        assert_int_equal(chown(f->ws, m->agent_uid, m->agent_gid), 0);
        assert_int_equal(chown(dst, m->agent_uid, m->agent_gid), 0);
    }
    int code = run(f, &o);
    fwrite(f->out, 1, f->len, stdout); /* whole (print_message truncates) */
    fflush(stdout);
    return code;
}

static int run_probe(fixture *f, int no_seccomp) {
    return run_probe_as(f, no_seccomp, 0);
}

/* Names of the "syscall <name> <result> [<group>]" lines whose result or group is `word`
 * ("by-seccomp", "reached-kernel"), as " a b c " (at most cap). */
static int seccomp_lines(const char *out, const char *word, char *names, size_t cap) {
    int n = 0;
    names[0] = '\0';
    char *copy = strdup(out), *save = NULL;
    for (char *line = strtok_r(copy, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        char name[64], w[32], g[32] = "";
        if (sscanf(line, "syscall %63s %31s %31s", name, w, g) >= 2 &&
            (strcmp(w, word) == 0 || strcmp(g, word) == 0)) {
            size_t l = strlen(names);
            snprintf(names + l, cap - l, "%s%s ", l ? "" : " ", name);
            n++;
        }
    }
    free(copy);
    return n;
}

static void test_probe_passes_every_check_inside(void **state) {
    fixture *f = *state;
    int code = run_probe(f, 0);
    int lines = 0;
    char *copy = strdup(f->out), *save = NULL;
    for (char *line = strtok_r(copy, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
        if (line[0] == '#' || strncmp(line, "probe ", 6) == 0)
            continue;
        lines++;
        if (strstr(line, " FAIL"))
            fail_msg("probe check failed: %s", line);
    }
    free(copy);
    char names[1024];
    int denied = seccomp_lines(f->out, "by-seccomp", names, sizeof names);
    print_message("denied only by seccomp (%d):%s\n", denied, names);
    assert_true(lines >= 60);
    /* io_uring, keyctl, add_key, ptrace, TIOCSTI & co: at least these on any kernel here. */
    assert_true(denied >= 12);
    assert_non_null(strstr(names, " io_uring_enter "));
    assert_non_null(strstr(names, " keyctl "));
    assert_non_null(strstr(names, " ptrace "));
    assert_int_equal(code, 0);
}

/* The control run: the same probe in a sandbox built WITHOUT the filter. Every call the first
 * run saw denied by seccomp reaches the kernel here, so those denials are the filter's doing. */
static void test_probe_control_run_without_seccomp_reaches_the_kernel(void **state) {
    fixture *f = *state;
    assert_int_equal(run_probe(f, 0), 0);
    char denied[1024], reached[1024];
    int nd = seccomp_lines(f->out, "by-seccomp", denied, sizeof denied);
    f->len = 0;
    f->out[0] = '\0';
    int code = run_probe(f, 1);
    int nr = seccomp_lines(f->out, "reached-kernel", reached, sizeof reached);
    print_message("with the filter denied:%s\nwithout it reached:%s\n", denied, reached);
    assert_true(nd >= 12);
    assert_int_equal(nr, nd);
    assert_string_equal(reached, denied);
    assert_null(strstr(f->out, " FAIL"));
    assert_int_equal(code, 0);
}

/* The same probe as the agent user: every check still passes (seccomp, masks, read-only
 * mounts), the ids are 1000 everywhere incl. init's, setuid(0) fails and init's memory (a copy
 * of the runner's) cannot be opened although it is the same uid. */
static void test_probe_passes_as_the_agent_user(void **state) {
    fixture *f = *state;
    int code = run_probe_as(f, 0, 1);
    assert_null(strstr(f->out, " FAIL"));
    assert_non_null(strstr(f->out, "runs_as_uid_1000 ok"));
    assert_non_null(strstr(f->out, "init_runs_as_uid ok"));
    assert_non_null(strstr(f->out, "init_memory_closed ok"));
    assert_non_null(strstr(f->out, "syscall ptrace EPERM"));
    assert_int_equal(code, 0);
}

/* The agent user's world: its name in the pod's own /etc/passwd (not the host's), HOME bound
 * from the caller's dir and writable, /workspace writable, files land as the agent's host uid,
 * and init (also the agent now) still forwards SIGTERM to the command. */
static void test_agent_user_has_home_passwd_and_signals(void **state) {
    fixture *f = *state;
    const am_sbx_idmap *m = am_sbx_idmap_current();
    assert_true(m->agent_uid > 0);
    assert_int_equal(m->agent_uid, m->pod_root_uid + 1000);
    char home[600], hf[640], wf[640];
    snprintf(home, sizeof home, "%s.home", f->ws);
    assert_int_equal(mkdir(home, 0700), 0);
    assert_int_equal(chown(home, m->agent_uid, m->agent_gid), 0);
    assert_int_equal(chown(f->ws, m->agent_uid, m->agent_gid), 0);
    const char *argv[] = {"sh", "-c",
                          "echo ids=$(id -u):$(id -g):$(id -un):$(id -gn); "
                          "echo env=$HOME:$USER:$LOGNAME; cd; echo pwd=$(pwd); "
                          "echo h > $HOME/h && echo w > /workspace/w && echo WROTE; "
                          "echo users=$(cut -d: -f1 /etc/passwd | tr '\\n' ,); "
                          "touch /etc/x 2>/dev/null || echo ETC-RO; "
                          "trap 'exit 3' TERM; echo ready; while :; do sleep 0.1; done",
                          NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    o.as_agent = 1;
    o.home = home;
    am_sbx *s;
    if (am_sbx_spawn(&o, &s) != 0)
        fail_msg("spawn: %s", am_err_last());
    assert_true(read_pty(f, s, "ready", 10000));
    assert_int_equal(am_sbx_stop(s, 10000), 0);
    int code = -1;
    assert_int_equal(am_sbx_wait(s, 0, &code, NULL), 0);
    am_sbx_free(s);
    print_message("%s\n", f->out);
    assert_non_null(strstr(f->out, "ids=1000:1000:agent:agent"));
    assert_non_null(strstr(f->out, "env=/home/agent:agent:agent"));
    assert_non_null(strstr(f->out, "pwd=/home/agent"));
    assert_non_null(strstr(f->out, "WROTE"));
    assert_non_null(strstr(f->out, "users=root,agent,nobody,"));
    assert_non_null(strstr(f->out, "ETC-RO"));
    assert_int_equal(code, 3); /* SIGTERM reached the command through init */
    struct stat st;
    snprintf(hf, sizeof hf, "%s/h", home);
    snprintf(wf, sizeof wf, "%s/w", f->ws);
    assert_int_equal(stat(hf, &st), 0);
    assert_int_equal(st.st_uid, m->agent_uid);
    assert_int_equal(stat(wf, &st), 0);
    assert_int_equal(st.st_uid, m->agent_uid);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", home);
    assert_int_equal(system(cmd), 0);
}

static void test_echo_hello_on_pty(void **state) {
    fixture *f = *state;
    const char *argv[] = {"sh", "-c", "echo hello; echo term=$TERM", NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    assert_int_equal(run(f, &o), 0);
    assert_non_null(strstr(f->out, "hello\r\n"));
    assert_non_null(strstr(f->out, "term=xterm-256color"));
}

static void test_exit_code_is_the_commands(void **state) {
    fixture *f = *state;
    const char *argv[] = {"sh", "-c", "exit 42", NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    assert_int_equal(run(f, &o), 42);
}

static void test_resize_reaches_the_pty(void **state) {
    fixture *f = *state;
    const char *argv[] = {"sh", "-c", "stty size; read x; stty size", NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    am_sbx *s;
    assert_int_equal(am_sbx_spawn(&o, &s), 0);
    assert_true(read_pty(f, s, "24 80", 10000));
    assert_int_equal(am_sbx_resize(s, 100, 40), 0);
    assert_int_equal(write(am_sbx_pty_fd(s), "\n", 1), 1);
    assert_true(read_pty(f, s, "40 100", 10000));
    int code = -1;
    assert_int_equal(am_sbx_wait(s, 10000, &code, NULL), 0);
    assert_int_equal(code, 0);
    am_sbx_free(s);
}

static void test_sigterm_is_forwarded_to_the_command(void **state) {
    fixture *f = *state;
    const char *argv[] = {"sh", "-c", "trap 'exit 3' TERM; echo ready; while :; do sleep 0.1; done",
                          NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    am_sbx *s;
    assert_int_equal(am_sbx_spawn(&o, &s), 0);
    assert_true(read_pty(f, s, "ready", 10000));
    assert_int_equal(am_sbx_stop(s, 10000), 0);
    int code = -1, sig = -1;
    assert_int_equal(am_sbx_wait(s, 0, &code, &sig), 0);
    assert_int_equal(code, 3);
    assert_int_equal(sig, 0);
    am_sbx_free(s);
}

static void test_stop_kills_the_whole_pid_namespace(void **state) {
    fixture *f = *state;
    const char *argv[] = {
        "sh", "-c", "trap '' TERM; sleep 1000 & sleep 1000 & (sleep 1000 &); echo started; wait",
        NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    am_sbx *s;
    assert_int_equal(am_sbx_spawn(&o, &s), 0);
    assert_true(read_pty(f, s, "started", 10000));
    pid_t pids[64];
    int n = 0;
    for (int i = 0; i < 100 && n < 5; i++) { /* init, sh, three sleepers */
        n = pids_in_ns(am_sbx_pid(s), pids, 64);
        usleep(10000);
    }
    assert_true(n >= 5);
    uint64_t t0 = am_mono_ns();
    assert_int_equal(am_sbx_stop(s, 300), 0);
    uint64_t ms = (am_mono_ns() - t0) / 1000000;
    assert_true(ms >= 250); /* SIGTERM was ignored: the grace period ran out */
    int code = -1, sig = -1;
    assert_int_equal(am_sbx_wait(s, 0, &code, &sig), 0);
    assert_int_equal(sig, SIGKILL);
    for (int i = 0; i < n; i++)
        assert_true(kill(pids[i], 0) == -1 && errno == ESRCH);
    am_sbx_free(s);
}

static void test_fork_bomb_is_contained(void **state) {
    fixture *f = *state;
    const char *argv[] = {
        "sh", "-c", "i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i+1)); done; echo all-forked",
        NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    o.pids_max = 64;
    am_sbx *s;
    assert_int_equal(am_sbx_spawn(&o, &s), 0);
    /* No skip: with a pids cgroup the cgroup bounds the pod, without one RLIMIT_NPROC does
     * (pod root is an unprivileged host uid, which RLIMIT_NPROC binds). */
    print_message("limits note: \"%s\"\n", am_sbx_limits_note(s));
    pid_t pids[512];
    int peak = 0;
    for (int i = 0; i < 30; i++) {
        int n = pids_in_ns(am_sbx_pid(s), pids, 512);
        peak = n > peak ? n : peak;
        if (read_pty(f, s, "all-forked", 50) || strstr(f->out, "fork"))
            break;
    }
    assert_null(strstr(f->out, "all-forked"));
    assert_non_null(strstr(f->out, "fork")); /* "Cannot fork" from sh */
    assert_true(peak <= 64);
    assert_int_equal(am_sbx_stop(s, 0), 0);
    pid_t p = fork(); /* the host is unharmed */
    if (p == 0)
        _exit(0);
    assert_true(p > 0);
    assert_int_equal(waitpid(p, NULL, 0), p);
    am_sbx_free(s);
}

typedef struct {
    fixture *f;
    am_sbx *s;
    int rc;
} spawn_arg;

static void *spawn_and_leave(void *arg) {
    spawn_arg *a = arg;
    static const char *const argv[] = {"sleep", "1000", NULL};
    am_sbx_opts o = opts_for(a->f, argv, NULL);
    a->rc = am_sbx_spawn(&o, &a->s);
    return NULL;
}

/* sandbox.h: the pod dies with the thread that spawned it (PR_SET_PDEATHSIG), even though init
 * changes its credentials (which clears the parent-death signal) after setting it. */
static void test_pod_dies_with_the_thread_that_spawned_it(void **state) {
    spawn_arg a = {*state, NULL, -1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, spawn_and_leave, &a), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(a.rc, 0);
    int code = -1, sig = -1;
    assert_int_equal(am_sbx_wait(a.s, 10000, &code, &sig), 0); /* not still running */
    assert_int_equal(sig, SIGKILL);
    am_sbx_free(a.s);
}

static void test_setup_failure_names_the_step(void **state) {
    fixture *f = *state;
    const char *argv[] = {"true", NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    o.workspace = "/nonexistent/airmesh-ws";
    am_sbx *s = (am_sbx *)1;
    assert_int_equal(am_sbx_spawn(&o, &s), -AM_EIO);
    assert_null(s);
    assert_string_equal(am_err_last(),
                        "sandbox: stat /nonexistent/airmesh-ws: No such file or directory");
    const char *bad[] = {"/no/such/command", NULL};
    o = opts_for(f, bad, NULL);
    assert_int_equal(am_sbx_spawn(&o, &s), -AM_ENOTFOUND);
    assert_string_equal(am_err_last(), "command '/no/such/command' not found in the pod (no such "
                                       "file, or its #! interpreter is missing)");
}

static void test_ro_binds_are_visible_and_read_only(void **state) {
    fixture *f = *state;
    char dir[600], file[700], script[1600];
    snprintf(dir, sizeof dir, "%s-ro", f->ws);
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(file, sizeof file, "%s/data", dir);
    copy_file("/etc/hostname", file);
    snprintf(script, sizeof script, "test -s %s/data && ! touch %s/new 2>/dev/null && echo ro-ok",
             dir, dir);
    const char *argv[] = {"sh", "-c", script, NULL};
    const char *binds[] = {dir, NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    o.ro_binds = binds;
    assert_int_equal(run(f, &o), 0);
    assert_non_null(strstr(f->out, "ro-ok"));
    unlink(file);
    rmdir(dir);
}

static void test_network_host_keeps_host_interfaces(void **state) {
    fixture *f = *state;
    FILE *dev = fopen("/proc/net/dev", "re"); /* /proc files have st_size 0: read by line */
    assert_non_null(dev);
    char line[512];
    int host_lines = 0;
    while (fgets(line, sizeof line, dev))
        host_lines++;
    fclose(dev);
    const char *argv[] = {"sh", "-c", "echo lines=$(wc -l < /proc/net/dev)", NULL};
    am_sbx_opts o = opts_for(f, argv, NULL);
    o.network_none = 0;
    assert_int_equal(run(f, &o), 0);
    char want[32];
    snprintf(want, sizeof want, "lines=%d", host_lines);
    print_message("host: %s, pod: %s\n", want, f->out);
    assert_non_null(strstr(f->out, want));
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sandbox_test PROBE\n");
        return 2;
    }
    static char probe[4096];
    if (!realpath(argv[1], probe)) {
        perror(argv[1]);
        return 2;
    }
    g_probe = probe;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_probe_passes_every_check_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_control_run_without_seccomp_reaches_the_kernel,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_passes_as_the_agent_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_agent_user_has_home_passwd_and_signals, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_echo_hello_on_pty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_code_is_the_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize_reaches_the_pty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_is_forwarded_to_the_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_kills_the_whole_pid_namespace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fork_bomb_is_contained, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pod_dies_with_the_thread_that_spawned_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_setup_failure_names_the_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ro_binds_are_visible_and_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_network_host_keeps_host_interfaces, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
