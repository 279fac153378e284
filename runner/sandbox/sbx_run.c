/*
 * runner/sandbox/sbx_run.c — `sbx-run`: run one command in a sandbox and relay its PTY to our
 * stdout (and our stdin to it). For manual testing and for measuring spawn latency:
 *
 *   sbx-run [-n] [-w DIR] [-m BYTES] [-p PIDS] -- CMD [ARGS...]   run CMD, exit with its code
 *   sbx-run -b N [-w DIR]                                         median time to first output
 *                                                                 byte of `echo x`, sandbox vs
 *                                                                 `unshare -Urpfmn --mount-proc`
 * -n: network none (default: host). -w: workspace (default: current directory); it must be
 * writable by pod root's host uid (a root runner: 100000 by default, see idmap.c).
 * Single-threaded.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "runner/sandbox/sandbox.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Time from spawn to the first byte the command prints, in microseconds. */
static int one_sandbox(const char *ws, uint64_t *us) {
    static const char *const argv[] = {"echo", "x", NULL};
    am_sbx_opts o = {.argv = argv, .workspace = ws, .network_none = 1, .cols = 80, .rows = 24};
    am_sbx *s;
    uint64_t t0 = am_mono_ns();
    if (am_sbx_spawn(&o, &s) < 0)
        return -1;
    struct pollfd pfd = {am_sbx_pty_fd(s), POLLIN, 0};
    char c;
    while (poll(&pfd, 1, 5000) == 1 && read(pfd.fd, &c, 1) != 1) {
    }
    *us = (am_mono_ns() - t0) / 1000;
    am_sbx_wait(s, 5000, NULL, NULL);
    am_sbx_free(s);
    return 0;
}

static int one_unshare(uint64_t *us) {
    int p[2];
    if (pipe(p) != 0)
        return -1;
    uint64_t t0 = am_mono_ns();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execlp("unshare", "unshare", "-Urpfmn", "--mount-proc", "/bin/echo", "x", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char c;
    ssize_t n = read(p[0], &c, 1);
    *us = (am_mono_ns() - t0) / 1000;
    close(p[0]);
    waitpid(pid, NULL, 0);
    return n == 1 ? 0 : -1;
}

static int bench(int n, const char *ws) {
    uint64_t *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
    if (!a || !b)
        return 1;
    for (int i = 0; i < n; i++) { /* interleaved so both see the same machine load */
        if (one_sandbox(ws, &a[i]) < 0) {
            fprintf(stderr, "sbx-run: %s\n", am_err_last());
            return 1;
        }
        if (one_unshare(&b[i]) < 0) {
            fprintf(stderr, "sbx-run: unshare failed\n");
            return 1;
        }
    }
    qsort(a, (size_t)n, sizeof *a, cmp_u64);
    qsort(b, (size_t)n, sizeof *b, cmp_u64);
    printf("runs=%d sandbox_median_us=%llu unshare_median_us=%llu ratio=%.2f\n", n,
           (unsigned long long)a[n / 2], (unsigned long long)b[n / 2],
           (double)a[n / 2] / (double)(b[n / 2] ? b[n / 2] : 1));
    free(a);
    free(b);
    return 0;
}

int main(int argc, char **argv) {
    am_sbx_opts o = {.cols = 80, .rows = 24, .hostname = "sbx-run"};
    char cwd[4096];
    o.workspace = getcwd(cwd, sizeof cwd);
    int opt, bench_n = 0;
    while ((opt = getopt(argc, argv, "nw:m:p:b:")) != -1) {
        switch (opt) {
        case 'n':
            o.network_none = 1;
            break;
        case 'w':
            o.workspace = optarg;
            break;
        case 'm':
            o.memory_bytes = strtoull(optarg, NULL, 10);
            break;
        case 'p':
            o.pids_max = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'b':
            bench_n = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: sbx-run [-n] [-w DIR] [-m BYTES] [-p PIDS] -- CMD [ARGS...]\n"
                            "       sbx-run -b N [-w DIR]\n");
            return 2;
        }
    }
    if (bench_n > 0)
        return bench(bench_n, o.workspace);
    if (optind >= argc) {
        fprintf(stderr, "sbx-run: no command\n");
        return 2;
    }
    o.argv = (const char *const *)&argv[optind];
    am_sbx *s;
    if (am_sbx_spawn(&o, &s) < 0) {
        fprintf(stderr, "sbx-run: %s\n", am_err_last());
        return 125;
    }
    if (am_sbx_limits_note(s)[0])
        fprintf(stderr, "sbx-run: %s\n", am_sbx_limits_note(s));
    int m = am_sbx_pty_fd(s), in_open = 1;
    char buf[4096];
    for (;;) {
        struct pollfd p[2] = {{m, POLLIN, 0}, {0, POLLIN, 0}};
        if (poll(p, in_open ? 2 : 1, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents) {
            ssize_t n = read(m, buf, sizeof buf);
            if (n <= 0 && !(n < 0 && errno == EAGAIN))
                break; /* EIO: every slave fd closed */
            if (n > 0 && write(1, buf, (size_t)n) != n)
                break;
        }
        if (in_open && p[1].revents) {
            ssize_t n = read(0, buf, sizeof buf);
            if (n <= 0)
                in_open = 0;
            else if (write(m, buf, (size_t)n) != n)
                in_open = 0;
        }
    }
    int code = 0, sig = 0;
    am_sbx_wait(s, -1, &code, &sig);
    am_sbx_free(s);
    return code;
}
