/*
 * tests/unit/store_crash_test.c — a writer killed with SIGKILL mid-batch loses no committed
 * transaction and leaves no half-applied one.
 *
 * How: run store_crash_writer (argv[1], from the BUILD `args`; else found next to this binary or
 * under $TEST_SRCDIR) on a store under $TEST_TMPDIR, read its "committed N" lines, kill it with
 * SIGKILL a random 50-450 ms after its first commit, and reopen the store in this process. Every
 * batch it reported is complete (50 records with the right bytes, plus its marker); the batch after
 * the last report may be complete (committed, killed before printing) or absent; nothing later
 * exists. Repeated for several runs on the same store, re-checking every earlier run each time.
 * Single-threaded; the writer is a child process we started and reap.
 */
/* cmocka.h needs these first, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/store/store.h"
#include "common/err.h"

#define RUNS 5
#define CRASH_BATCH 50 /* must match store_crash_writer.c */
#define VALUE_LEN 2048

static char g_writer[PATH_MAX];

static void find_writer(int argc, char **argv) {
    const char *srcdir = getenv("TEST_SRCDIR");
    if (argc > 1 && access(argv[1], X_OK) == 0) {
        snprintf(g_writer, sizeof g_writer, "%s", argv[1]);
        return;
    }
    if (srcdir) {
        snprintf(g_writer, sizeof g_writer, "%s/airmesh/tests/unit/store_crash_writer", srcdir);
        if (access(g_writer, X_OK) == 0)
            return;
    }
    char self[PATH_MAX];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(g_writer, sizeof g_writer, "%s/store_crash_writer", dirname(self));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Start the writer; returns its pid and the read end of its stdout. */
static pid_t start_writer(const char *dir, int run, int *fd) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    char runs[16];
    snprintf(runs, sizeof runs, "%d", run);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl(g_writer, g_writer, dir, runs, (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", g_writer, strerror(errno));
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* Append what is readable on fd (waiting up to timeout_ms for something) to buf: 1 when data came,
 * 0 at EOF, -1 on timeout. */
static int read_some(int fd, char *buf, size_t cap, size_t *len, int timeout_ms) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int pr = poll(&pfd, 1, timeout_ms);
    if (pr <= 0)
        return -1;
    assert_true(*len + 1 < cap);
    ssize_t n = read(fd, buf + *len, cap - 1 - *len);
    assert_true(n >= 0);
    *len += (size_t)n;
    buf[*len] = '\0';
    return n > 0;
}

/* The last batch number in consecutive "committed N" lines (-1 when none); checks the order. */
static int last_committed(const char *out) {
    int last = -1, n;
    const char *p = out;
    while (sscanf(p, "committed %d\n", &n) == 1) {
        const char *nl = strchr(p, '\n');
        if (!nl)
            break; /* a partial line: the kill hit mid-printf */
        assert_int_equal(n, last + 1);
        last = n;
        p = nl + 1;
    }
    return last;
}

typedef struct {
    int count;
} count_ctx;

static int count_rec(void *ud, const char *id, const ProtobufCMessage *msg) {
    count_ctx *c = ud;
    const Airmesh__V1__KV *kv = (const Airmesh__V1__KV *)msg;
    int i = -1;
    assert_int_equal(sscanf(id, "rec-%d", &i), 1);
    assert_true(i >= 0 && i < CRASH_BATCH);
    assert_string_equal(kv->id, id);
    assert_int_equal(kv->value.len, VALUE_LEN);
    for (size_t j = 0; j < kv->value.len; j++)
        assert_int_equal(kv->value.data[j], 'a' + i % 26);
    c->count++;
    return 0;
}

/* Records of batch b in run r (0..50) and whether its marker exists. */
static void inspect(am_store *s, int r, int b, int *count, int *marker) {
    char org[64];
    snprintf(org, sizeof org, "r%d-b%d", r, b);
    am_txn *t;
    assert_int_equal(am_store_begin(s, 0, &t), 0);
    count_ctx c = {0};
    int rc = am_txn_list(t, AM_DB_MESSAGES, org, &airmesh__v1__kv__descriptor, count_rec, &c);
    if (rc)
        fail_msg("list %s: %s", org, am_err_last());
    ProtobufCMessage *m = NULL;
    rc = am_txn_get(t, AM_DB_TICKETS, "crash", org, &airmesh__v1__kv__descriptor, &m);
    assert_true(rc == 0 || rc == -AM_ENOTFOUND);
    if (m) {
        assert_int_equal(((Airmesh__V1__KV *)m)->updated_ms, CRASH_BATCH);
        protobuf_c_message_free_unpacked(m, NULL);
    }
    am_txn_abort(t);
    *count = c.count;
    *marker = rc == 0;
}

static void test_sigkill_mid_batch_loses_no_committed_txn(void **state) {
    (void)state;
    const char *base = getenv("TEST_TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/store_crash.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    printf("# writer %s, seed %u\n", g_writer, seed);

    int reported[RUNS];
    static char out[1 << 20];
    for (int run = 0; run < RUNS; run++) {
        int fd;
        size_t len = 0;
        out[0] = '\0';
        pid_t pid = start_writer(dir, run, &fd);

        /* Wait for the first commit (the store is open and writing), then kill at random. */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (!strstr(out, "\n")) {
            if (read_some(fd, out, sizeof out, &len, 100) <= 0) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - t0.tv_sec > 30) {
                    kill(pid, SIGKILL);
                    waitpid(pid, NULL, 0);
                    fail_msg("writer produced no commit in 30 s (output: %s)", out);
                }
                int st;
                if (waitpid(pid, &st, WNOHANG) == pid)
                    fail_msg("writer exited early (status %d, output: %s)", st, out);
            }
        }
        long delay_ms = 50 + rand() % 400;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (;;) { /* keep draining so the writer never blocks on a full pipe */
            clock_gettime(CLOCK_MONOTONIC, &now);
            long el = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            if (el >= delay_ms)
                break;
            read_some(fd, out, sizeof out, &len, (int)(delay_ms - el));
        }
        assert_int_equal(kill(pid, SIGKILL), 0);
        while (read_some(fd, out, sizeof out, &len, 5000) == 1)
            ;
        close(fd);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        reported[run] = last_committed(out);
        assert_true(reported[run] >= 0);

        /* Reopen: opens cleanly, every run so far is whole. */
        am_store *s;
        int created = -1;
        if (am_store_open(dir, &s, &created) != 0)
            fail_msg("reopen after kill %d: %s", run, am_err_last());
        assert_int_equal(created, 0);
        int torn_free = 0;
        for (int r = 0; r <= run; r++) {
            for (int b = 0; b <= reported[r] + 3; b++) {
                int count, marker;
                inspect(s, r, b, &count, &marker);
                if (b <= reported[r] && (count != CRASH_BATCH || !marker))
                    fail_msg("run %d batch %d reported committed but has %d records, marker %d", r,
                             b, count, marker);
                if (count != 0 && count != CRASH_BATCH)
                    fail_msg("run %d batch %d half-applied: %d records", r, b, count);
                if (marker != (count == CRASH_BATCH))
                    fail_msg("run %d batch %d: marker %d with %d records", r, b, marker, count);
                if (b > reported[r] + 1 && count != 0)
                    fail_msg("run %d batch %d exists beyond the last commit", r, b);
                torn_free += count == CRASH_BATCH;
            }
        }
        /* And it takes writes. */
        Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
        if (am_store_put(s, AM_DB_TICKETS, "check", "after-kill", &kv.base) != 0)
            fail_msg("write after kill %d: %s", run, am_err_last());
        am_store_close(s);
        printf("# run %d: killed after %ld ms, %d batches reported, %d complete in all\n", run,
               delay_ms, reported[run] + 1, torn_free);
    }
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* While this process holds the store open with the initial 64 MiB map, the writer (another
 * process) grows it past that; our next transaction gets MDB_MAP_RESIZED and must adopt the new
 * size instead of failing. */
static void test_map_grown_by_another_process_is_adopted(void **state) {
    (void)state;
    const char *base = getenv("TEST_TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/store_grow.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(dir));
    am_store *s;
    if (am_store_open(dir, &s, NULL) != 0)
        fail_msg("open: %s", am_err_last());

    /* ~100 KiB per batch: 800 batches is 80 MiB, past the 64 MiB map this process mapped. */
    const int want = 800;
    static char out[1 << 20];
    size_t len = 0;
    out[0] = '\0';
    int fd;
    pid_t pid = start_writer(dir, 99, &fd);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (last_committed(out) < want) {
        int r = read_some(fd, out, sizeof out, &len, 1000);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (r == 0 || now.tv_sec - t0.tv_sec > 120) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("writer stopped or too slow at batch %d", last_committed(out));
        }
    }
    kill(pid, SIGKILL);
    while (read_some(fd, out, sizeof out, &len, 5000) == 1)
        ;
    close(fd);
    waitpid(pid, NULL, 0);

    int count, marker;
    inspect(s, 99, want, &count, &marker); /* a read transaction: adopts the map */
    assert_int_equal(count, CRASH_BATCH);
    assert_true(marker);
    Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
    if (am_store_put(s, AM_DB_TICKETS, "check", "after-growth", &kv.base) != 0)
        fail_msg("write after another process grew the map: %s", am_err_last());
    am_store_close(s);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv) {
    find_writer(argc, argv);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sigkill_mid_batch_loses_no_committed_txn),
        cmocka_unit_test(test_map_grown_by_another_process_is_adopted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
