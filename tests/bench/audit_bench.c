/*
 * tests/bench/audit_bench.c — throughput and size of the audit log against a naive baseline.
 *
 * What: appends N (default 200,000) realistic, deterministic events (varied actors, orgs,
 * actions, targets, results, sources and a small JSON details object with a random request id)
 * from 2 threads through am_audit_event at the default options (50 ms group commit, 512-record
 * blocks, zstd 3, one fsync per batch), then am_audit_flush, and reports events/s and on-disk
 * bytes per event. Baseline in the same run: the same events as JSON lines from 2 threads
 * through one mutex into a gzip stream (zlib gzwrite, level 6), with a sync flush + fsync every
 * 512 lines (the audit log's block size). Prints one summary line with the ratios.
 *
 * Usage: audit_bench [DIR [N]]  (DIR defaults to a fresh mkdtemp under $TMPDIR or /tmp; the files
 * are left there for inspection). Threads: main + 2 producer threads per run; the audit log adds
 * its writer thread. Ownership: everything is freed before exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <zlib.h>

#include "appliance/audit/audit.h"
#include "common/err.h"
#include "common/util.h"

#define PRODUCERS 2
#define BATCH 512

typedef struct {
    char actor[32], org[16], target[40], source[24], details[128];
    const char *action, *result;
} event;

static uint64_t splitmix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Event i, the same in both runs. */
static void gen_event(uint64_t i, event *e) {
    static const char *const actions[] = {"auth.login",   "auth.logout",   "session.create",
                                          "pod.start",    "pod.stop",      "pod.exec",
                                          "runner.hello", "runner.enroll", "user.create",
                                          "org.update",   "file.upload",   "terminal.open"};
    uint64_t r = splitmix(i), r2 = splitmix(r);
    unsigned a = (unsigned)(r % 12), who = (unsigned)((r >> 8) % 100);
    e->action = actions[a];
    if (who < 85)
        snprintf(e->actor, sizeof e->actor, "user:u-%04u", (unsigned)((r >> 16) % 300));
    else if (who < 95)
        snprintf(e->actor, sizeof e->actor, "runner:r-%03u", (unsigned)((r >> 16) % 40));
    else
        snprintf(e->actor, sizeof e->actor, "system");
    snprintf(e->org, sizeof e->org, "org-%02u", (unsigned)((r >> 28) % 20));
    unsigned tv = (unsigned)((r >> 33) % 100000);
    if (a <= 2)
        snprintf(e->target, sizeof e->target, "session:%08x", (unsigned)r2);
    else if (a <= 5)
        snprintf(e->target, sizeof e->target, "pod:p-%05u", tv);
    else if (a <= 7)
        snprintf(e->target, sizeof e->target, "runner:r-%03u", tv % 40);
    else if (a <= 9)
        snprintf(e->target, sizeof e->target, "user:u-%04u", tv % 300);
    else
        snprintf(e->target, sizeof e->target, "pod:p-%05u/ws", tv);
    unsigned res = (unsigned)((r >> 50) % 100);
    e->result = res < 90 ? "ok" : res < 97 ? "denied" : "error";
    snprintf(e->source, sizeof e->source, "10.%u.%u.%u", (unsigned)(r2 >> 8) % 4,
             (unsigned)(r2 >> 16) % 256, (unsigned)(r2 >> 24) % 256);
    snprintf(e->details, sizeof e->details,
             "{\"request_id\":\"%016llx\",\"latency_ms\":%u,\"client\":\"airmeshctl/1.0\"}",
             (unsigned long long)splitmix(r2), (unsigned)(r2 >> 40) % 900 + 1);
}

typedef struct {
    uint64_t n;
    int id;
    am_audit *a;
    /* baseline */
    pthread_mutex_t *mu;
    gzFile gz;
    int fd;
    uint64_t *lines;
    int failed;
} worker;

static void *audit_worker(void *arg) {
    worker *w = arg;
    event e;
    for (uint64_t i = (uint64_t)w->id; i < w->n; i += PRODUCERS) {
        gen_event(i, &e);
        if (am_audit_event(w->a, e.actor, e.org, e.action, e.target, e.result, e.source,
                           e.details) != 0) {
            fprintf(stderr, "audit_bench: append: %s\n", am_err_last());
            w->failed = 1;
            break;
        }
    }
    return NULL;
}

static void *baseline_worker(void *arg) {
    worker *w = arg;
    event e;
    char line[512];
    for (uint64_t i = (uint64_t)w->id; i < w->n; i += PRODUCERS) {
        gen_event(i, &e);
        pthread_mutex_lock(w->mu);
        uint64_t seq = ++*w->lines;
        int n = snprintf(line, sizeof line,
                         "{\"seq\":%llu,\"time_ms\":%llu,\"actor\":\"%s\",\"org_id\":\"%s\","
                         "\"action\":\"%s\",\"target\":\"%s\",\"result\":\"%s\",\"source\":\"%s\","
                         "\"details\":%s}\n",
                         (unsigned long long)seq, (unsigned long long)am_now_ms(), e.actor, e.org,
                         e.action, e.target, e.result, e.source, e.details);
        int ok = n > 0 && (size_t)n < sizeof line && gzwrite(w->gz, line, (unsigned)n) == n;
        if (ok && seq % BATCH == 0)
            ok = gzflush(w->gz, Z_SYNC_FLUSH) == Z_OK && fsync(w->fd) == 0;
        pthread_mutex_unlock(w->mu);
        if (!ok) {
            fprintf(stderr, "audit_bench: baseline write failed\n");
            w->failed = 1;
            break;
        }
    }
    return NULL;
}

static int run_threads(worker *ws, void *(*fn)(void *)) {
    pthread_t th[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        if (pthread_create(&th[i], NULL, fn, &ws[i]) != 0)
            return -1;
    int failed = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        pthread_join(th[i], NULL);
        failed |= ws[i].failed;
    }
    return failed ? -1 : 0;
}

static uint64_t dir_bytes(const char *dir) {
    uint64_t total = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char p[8192];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (strncmp(e->d_name, "seg-", 4) == 0 && stat(p, &st) == 0)
            total += (uint64_t)st.st_size;
    }
    if (d)
        closedir(d);
    return total;
}

int main(int argc, char **argv) {
    char tmpl[4096];
    const char *dir = argc > 1 ? argv[1] : NULL;
    uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 200000;
    if (!dir) {
        const char *t = getenv("TMPDIR");
        snprintf(tmpl, sizeof tmpl, "%s/audit-bench-XXXXXX", t && *t ? t : "/tmp");
        if (!(dir = mkdtemp(tmpl))) {
            fprintf(stderr, "audit_bench: mkdtemp %s: %s\n", tmpl, strerror(errno));
            return 1;
        }
    }
    if (n == 0 || am_mkdir_p(dir, 0700) != 0) {
        fprintf(stderr, "audit_bench: bad arguments or directory: %s\n", am_err_last());
        return 1;
    }
    char adir[4200], gzpath[4200];
    snprintf(adir, sizeof adir, "%s/audit", dir);
    snprintf(gzpath, sizeof gzpath, "%s/baseline.jsonl.gz", dir);

    /* 1. the audit log at default durability */
    am_audit *a = NULL;
    if (am_audit_open(adir, NULL, &a) != 0) {
        fprintf(stderr, "audit_bench: %s\n", am_err_last());
        return 1;
    }
    worker ws[PRODUCERS];
    memset(ws, 0, sizeof ws);
    for (int i = 0; i < PRODUCERS; i++)
        ws[i] = (worker){.n = n, .id = i, .a = a};
    uint64_t t0 = am_mono_ns();
    int rc = run_threads(ws, audit_worker);
    if (!rc && am_audit_flush(a) != 0) {
        fprintf(stderr, "audit_bench: flush: %s\n", am_err_last());
        rc = -1;
    }
    uint64_t t1 = am_mono_ns();
    am_audit_close(a);
    if (rc)
        return 1;
    double audit_s = (double)(t1 - t0) / 1e9;
    double audit_bpe = (double)dir_bytes(adir) / (double)n;
    am_audit_report rep;
    if (am_audit_verify(adir, &rep) != 0 || rep.records < n) {
        fprintf(stderr, "audit_bench: verify failed: %s\n", rep.first_error);
        return 1;
    }

    /* 2. baseline: JSON lines, gzip, fsync per 512 lines */
    int fd = open(gzpath, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    gzFile gz = fd >= 0 ? gzdopen(fd, "wb") : NULL;
    if (!gz) {
        fprintf(stderr, "audit_bench: open %s: %s\n", gzpath, strerror(errno));
        return 1;
    }
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    uint64_t lines = 0;
    for (int i = 0; i < PRODUCERS; i++)
        ws[i] = (worker){.n = n, .id = i, .mu = &mu, .gz = gz, .fd = fd, .lines = &lines};
    t0 = am_mono_ns();
    rc = run_threads(ws, baseline_worker);
    if (!rc && (gzflush(gz, Z_FINISH) != Z_OK || fsync(fd) != 0))
        rc = -1;
    t1 = am_mono_ns();
    gzclose(gz); /* closes fd */
    if (rc)
        return 1;
    struct stat st;
    if (stat(gzpath, &st) != 0)
        return 1;
    double base_s = (double)(t1 - t0) / 1e9;
    double base_bpe = (double)st.st_size / (double)n;

    double audit_eps = (double)n / audit_s, base_eps = (double)n / base_s;
    printf("audit_bench: %llu events, %d threads, dir %s\n", (unsigned long long)n, PRODUCERS, dir);
    printf("audit_append: %.0f events/s, %.1f B/event | baseline jsonl+gzip+fsync: %.0f events/s, "
           "%.1f B/event | ratio speed %.2fx, size %.2fx\n",
           audit_eps, audit_bpe, base_eps, base_bpe, audit_eps / base_eps, audit_bpe / base_bpe);
    return 0;
}
