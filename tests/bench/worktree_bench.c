/*
 * tests/bench/worktree_bench.c — pod start latency of runner/worktree on a ~5,000-file repo,
 * beside `git worktree add -b` of the same repo measured in the same run, as a ratio.
 *
 * What: builds a repo of 5,000 files (~48 MB of pseudo-random words in 50 nested dirs, like
 * git/git) with the git CLI in argv[1], runs the baseline `git worktree add -b` 3 times (before
 * anything is deleted: creating a tree right after deleting one is slower on this disk), then 10
 * am_wt_create calls for pods on the same commit. The first pays for the shared checkout; the rest
 * are the steady state. Also times the first `git status` inside a pod and inside the baseline
 * worktree, and am_wt_remove. Prints one summary line with the ratio.
 *
 * Ownership: everything lives under argv[1] (scripts/bench.sh deletes it); pods are removed (and
 * unmounted) before exit. Threads: single-threaded.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/err.h"
#include "runner/worktree/worktree.h"

#define NFILES 5000
#define NDIRS 50
#define FILE_BYTES 9600
#define NPODS 10
#define NBASE 3

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

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

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double p) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

/* 5,000 files of pseudo-random words in NDIRS dirs two levels deep. */
static int make_files(const char *src) {
    static const char *const words[] = {"alpha",  "beta",   "gamma", "delta", "static", "int",
                                        "return", "struct", "char",  "void",  "while",  "if",
                                        "buffer", "commit", "tree",  "index", "mirror", "pod"};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char path[PATH_MAX + 64], *buf = malloc(FILE_BYTES + 64);
    if (!buf)
        return -1;
    for (int i = 0; i < NFILES; i++) {
        int d = i % NDIRS;
        snprintf(path, sizeof path, "%s/mod%02d/sub%d", src, d, d % 5);
        if (i < NDIRS && sh("mkdir -p %s", path) != 0)
            goto fail;
        snprintf(path, sizeof path, "%s/mod%02d/sub%d/file%04d.c", src, d, d % 5, i);
        size_t len = 0;
        while (len < FILE_BYTES) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            const char *w = words[x % (sizeof words / sizeof words[0])];
            len += (size_t)snprintf(buf + len, 64, "%s%s%llu", w, (x >> 20) % 9 ? " " : "\n",
                                    (unsigned long long)(x >> 40) % 1000);
        }
        FILE *f = fopen(path, "w");
        if (!f || fwrite(buf, 1, len, f) != len) {
            if (f)
                fclose(f);
            goto fail;
        }
        fclose(f);
    }
    free(buf);
    return 0;
fail:
    free(buf);
    return -1;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s TMPDIR\n", argv[0]);
        return 2;
    }
    char src[PATH_MAX], data[PATH_MAX], wt[PATH_MAX + 32];
    snprintf(src, sizeof src, "%s/src", argv[1]);
    snprintf(data, sizeof data, "%s/data", argv[1]);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("HOME", argv[1], 1);
    setenv("GIT_AUTHOR_NAME", "b", 1);
    setenv("GIT_AUTHOR_EMAIL", "b@example.invalid", 1);
    setenv("GIT_COMMITTER_NAME", "b", 1);
    setenv("GIT_COMMITTER_EMAIL", "b@example.invalid", 1);

    double t = now_ms();
    if (sh("git init -q -b main %s", src) != 0 || make_files(src) != 0 ||
        sh("cd %s && git add -A && git commit -qm base", src) != 0) {
        fprintf(stderr, "worktree_bench: building the repo failed\n");
        return 1;
    }
    printf("repo: %d files, %.0f MB, built in %.0f ms\n", NFILES, (double)NFILES * FILE_BYTES / 1e6,
           now_ms() - t);

    /* Baseline first, before any deletion. */
    double base[NBASE];
    for (int i = 0; i < NBASE; i++) {
        snprintf(wt, sizeof wt, "%s/base%d", argv[1], i);
        t = now_ms();
        if (sh("git -C %s worktree add -q -b base-%d %s main", src, i, wt) != 0) {
            fprintf(stderr, "worktree_bench: git worktree add failed\n");
            return 1;
        }
        base[i] = now_ms() - t;
    }
    snprintf(wt, sizeof wt, "%s/base0", argv[1]);
    t = now_ms();
    sh("git -C %s status --porcelain >/dev/null", wt);
    double base_status = now_ms() - t;

    if (am_wt_init(data) != 0) {
        fprintf(stderr, "%s\n", am_err_last());
        return 1;
    }
    double ms[NPODS], fetch[NPODS], status_first = 0, status_second = 0, status_again = 0;
    double first_fetch = 0, first_checkout = 0;
    am_wt_info info;
    int overlay = 0;
    char note[256] = "";
    for (int i = 0; i < NPODS; i++) {
        char id[32];
        snprintf(id, sizeof id, "bench-%d", i);
        t = now_ms();
        if (am_wt_create(data, src, "main", NULL, id, &info) != 0) {
            fprintf(stderr, "%s\n", am_err_last());
            return 1;
        }
        ms[i] = now_ms() - t;
        fetch[i] = info.ms_fetch;
        overlay = info.overlay;
        snprintf(note, sizeof note, "%s", info.note);
        if (i == 0) {
            first_fetch = info.ms_fetch;
            first_checkout = info.ms_checkout;
        }
        if (i <= 1) {
            t = now_ms();
            sh("git -C %s status --porcelain >/dev/null", info.path);
            *(i == 0 ? &status_first : &status_second) = now_ms() - t;
        }
        if (i == 0) {
            t = now_ms();
            sh("git -C %s status --porcelain >/dev/null", info.path);
            status_again = now_ms() - t;
        }
    }
    double rm[NPODS];
    for (int i = 0; i < NPODS; i++) {
        char id[32];
        snprintf(id, sizeof id, "bench-%d", i);
        t = now_ms();
        if (am_wt_remove(data, src, id, 0) != 0) {
            fprintf(stderr, "%s\n", am_err_last());
            return 1;
        }
        rm[i] = now_ms() - t;
    }
    am_wt_shutdown();

    double first = ms[0];
    double steady50 = pct(ms + 1, NPODS - 1, 0.5), steady99 = pct(ms + 1, NPODS - 1, 0.99);
    double b50 = pct(base, NBASE, 0.5);
    printf("path: %s%s%s\n", overlay ? "overlay over shared checkout" : "full checkout",
           note[0] ? " — " : "", note);
    printf("first create: mirror clone %.0f ms + shared checkout %.0f ms | later fetch p50 %.1f ms "
           "| remove p50 %.1f ms\n",
           first_fetch, first_checkout, pct(fetch + 1, NPODS - 1, 0.5), pct(rm, NPODS, 0.5));
    printf("git status in a new pod: %.0f ms (again %.0f ms, another new pod %.0f ms) | in the "
           "baseline worktree %.0f ms\n",
           status_first, status_again, status_second, base_status);
    printf("worktree create p50 %.1f ms p99 %.1f ms (first %.0f ms) | baseline git worktree add: "
           "%.0f ms | ratio %.0fx\n",
           steady50, steady99, first, b50, b50 / steady50);
    return 0;
}
