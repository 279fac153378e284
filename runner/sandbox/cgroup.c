/*
 * runner/sandbox/cgroup.c — memory, pids and cpu limits for one pod, best effort.
 *
 * Order of preference for each controller: a delegated cgroup v2 hierarchy (the controller is
 * listed in our own cgroup's cgroup.subtree_control and we may mkdir below it); else a writable
 * cgroup v1 hierarchy for that controller (typical when the runner is root on a v1 host); else
 * the limit is not applied and sbx_cgroup.note says so ("memory: not applied (no delegated cgroup
 * v2 hierarchy, cgroup v1 memory not writable)"). rlimits in setup.c apply regardless.
 *
 * Ownership: the directories are created by sbx_cgroup_create(), the pod's init is moved in by
 * sbx_cgroup_attach() before it runs anything, and sbx_cgroup_destroy() removes them after init
 * has been reaped. Called from the thread that owns the am_sbx. Failures never fail the spawn.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runner/sandbox/internal.h"

enum { CG_MEMORY, CG_PIDS, CG_CPU, CG_N };
static const char *const k_ctrl[CG_N] = {"memory", "pids", "cpu"};
static atomic_uint g_seq;

static int write_str(const char *dir, const char *file, const char *val) {
    char path[600];
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path)
        return -ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, val, strlen(val));
    int e = errno;
    close(fd);
    return n == (ssize_t)strlen(val) ? 0 : -(n < 0 ? e : EIO);
}

/* 1 if the comma/space separated list `s` contains the token `tok`. */
static int has_token(const char *s, const char *tok, const char *seps) {
    size_t lt = strlen(tok);
    for (const char *p = s; *p;) {
        size_t n = strcspn(p, seps);
        if (n == lt && memcmp(p, tok, lt) == 0)
            return 1;
        p += n;
        p += strspn(p, seps);
    }
    return 0;
}

/* Mount point of the cgroup hierarchy: v2 when ctrl is NULL, else the v1 one carrying ctrl. */
static int find_mount(const char *ctrl, char *out, size_t cap) {
    FILE *f = fopen("/proc/self/mounts", "re");
    if (!f)
        return -1;
    char line[1024], dev[256], mnt[512], type[64], opts[512];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%255s %511s %63s %511s", dev, mnt, type, opts) != 4)
            continue;
        if ((!ctrl && strcmp(type, "cgroup2") == 0) ||
            (ctrl && strcmp(type, "cgroup") == 0 && has_token(opts, ctrl, ","))) {
            snprintf(out, cap, "%s", mnt);
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

/* Our own cgroup path in the hierarchy: v2 ("0::/x") when ctrl is NULL, else the v1 line. */
static int own_path(const char *ctrl, char *out, size_t cap) {
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -1;
    char line[1024];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        if ((!ctrl && strcmp(line, "0") == 0 && c1[1] == '\0') ||
            (ctrl && has_token(c1 + 1, ctrl, ","))) {
            snprintf(out, cap, "%s", strcmp(c2 + 1, "/") == 0 ? "" : c2 + 1);
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

static void limit_value(int c, uint64_t mem, uint32_t pids, uint32_t cpu, int v2, char *file,
                        char *val, size_t cap) {
    switch (c) {
    case CG_MEMORY:
        strcpy(file, v2 ? "memory.max" : "memory.limit_in_bytes");
        snprintf(val, cap, "%" PRIu64, mem);
        break;
    case CG_PIDS:
        strcpy(file, "pids.max");
        snprintf(val, cap, "%" PRIu32, pids);
        break;
    default: /* cpu: quota per 100 ms period */
        strcpy(file, v2 ? "cpu.max" : "cpu.cfs_quota_us");
        snprintf(val, cap, v2 ? "%" PRIu64 " 100000" : "%" PRIu64, (uint64_t)cpu * 100);
        break;
    }
}

static void note_add(sbx_cgroup *cg, const char *what, const char *why) {
    size_t n = strlen(cg->note);
    snprintf(cg->note + n, sizeof cg->note - n, "%s%s: not applied (%s)", n ? "; " : "", what, why);
}

void sbx_cgroup_create(sbx_cgroup *cg, uint64_t memory_bytes, uint32_t pids_max,
                       uint32_t cpu_millis) {
    memset(cg, 0, sizeof *cg);
    cg->mem_slot = -1;
    int want[CG_N] = {memory_bytes != 0, 1, cpu_millis != 0};
    int done[CG_N] = {0, 0, 0};
    char name[64], mnt[512], own[512], dir[512], file[64], val[64];
    snprintf(name, sizeof name, "airmesh-sbx-%d-%u", (int)getpid(), atomic_fetch_add(&g_seq, 1));

    /* cgroup v2: only controllers already delegated to our cgroup's children. */
    int v2_ok = 0;
    if (find_mount(NULL, mnt, sizeof mnt) == 0 && own_path(NULL, own, sizeof own) == 0 &&
        snprintf(dir, sizeof dir, "%s%s", mnt, own) < (int)sizeof dir) {
        char sub[256] = "", path[600];
        snprintf(path, sizeof path, "%s/cgroup.subtree_control", dir);
        FILE *f = fopen(path, "re");
        if (f) {
            if (!fgets(sub, sizeof sub, f))
                sub[0] = '\0';
            fclose(f);
        }
        int any = 0;
        for (int c = 0; c < CG_N; c++)
            any |= want[c] && has_token(sub, k_ctrl[c], " \n");
        if (any && snprintf(path, sizeof path, "%s/%s", dir, name) < (int)sizeof cg->dirs[0] &&
            mkdir(path, 0755) == 0) {
            snprintf(cg->dirs[0], sizeof cg->dirs[0], "%s", path);
            v2_ok = 1;
            for (int c = 0; c < CG_N; c++) {
                if (!want[c] || !has_token(sub, k_ctrl[c], " \n"))
                    continue;
                limit_value(c, memory_bytes, pids_max, cpu_millis, 1, file, val, sizeof val);
                done[c] = write_str(cg->dirs[0], file, val) == 0;
                if (c == CG_MEMORY && done[c]) {
                    cg->mem_slot = 0;
                    cg->mem_v2 = 1;
                }
            }
        }
    }

    /* cgroup v1: one directory per controller, where the hierarchy is writable. */
    int slot = v2_ok ? 1 : 0;
    for (int c = 0; c < CG_N; c++) {
        if (!want[c] || done[c])
            continue;
        char path[600];
        if (slot < 3 && find_mount(k_ctrl[c], mnt, sizeof mnt) == 0 &&
            own_path(k_ctrl[c], own, sizeof own) == 0 &&
            snprintf(path, sizeof path, "%s%s/%s", mnt, own, name) < (int)sizeof cg->dirs[0] &&
            mkdir(path, 0755) == 0) {
            snprintf(cg->dirs[slot++], sizeof cg->dirs[0], "%s", path);
            if (c == CG_CPU)
                write_str(path, "cpu.cfs_period_us", "100000");
            limit_value(c, memory_bytes, pids_max, cpu_millis, 0, file, val, sizeof val);
            done[c] = write_str(path, file, val) == 0;
            if (c == CG_MEMORY && done[c])
                cg->mem_slot = slot - 1;
        }
        if (!done[c])
            note_add(cg, k_ctrl[c],
                     v2_ok ? "controller not delegated in cgroup v2, cgroup v1 not writable"
                           : "no delegated cgroup v2 hierarchy, cgroup v1 not writable");
    }
}

int sbx_cgroup_attach(sbx_cgroup *cg, pid_t pid) {
    char val[32];
    snprintf(val, sizeof val, "%d", (int)pid);
    for (int i = 0; i < 3; i++) {
        if (!cg->dirs[i][0])
            continue;
        int rc = write_str(cg->dirs[i], "cgroup.procs", val);
        if (rc < 0) {
            char why[600];
            snprintf(why, sizeof why, "cannot join %s: %s", cg->dirs[i], strerror(-rc));
            note_add(cg, "cgroup", why);
        }
    }
    return 0;
}

uint64_t sbx_cgroup_oom_kills(const sbx_cgroup *cg) {
    if (cg->mem_slot < 0 || !cg->dirs[cg->mem_slot][0])
        return 0;
    char path[700], line[128];
    snprintf(path, sizeof path, "%s/%s", cg->dirs[cg->mem_slot],
             cg->mem_v2 ? "memory.events" : "memory.oom_control");
    FILE *f = fopen(path, "re");
    uint64_t n = 0;
    while (f && fgets(line, sizeof line, f)) {
        unsigned long long v;
        if (sscanf(line, "oom_kill %llu", &v) == 1)
            n = v;
    }
    if (f)
        fclose(f);
    return n;
}

void sbx_cgroup_destroy(sbx_cgroup *cg) {
    for (int i = 0; i < 3; i++) {
        if (!cg->dirs[i][0])
            continue;
        /* The pod's tasks are gone once init is reaped, but the kernel may release the cgroup a
         * moment later: retry briefly on EBUSY. */
        for (int tries = 0; tries < 50; tries++) {
            if (rmdir(cg->dirs[i]) == 0 || errno != EBUSY)
                break;
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        cg->dirs[i][0] = '\0';
    }
}
