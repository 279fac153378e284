/*
 * runner/worktree/fsutil.c — error helpers and the few filesystem operations the worktree layer
 * needs: rm -rf that stays on one mount (so deleting a pod dir never reaches through a mount that
 * failed to detach), a file copy for the index template, and small file writes.
 *
 * Ownership: nothing allocated survives a call. Threads: every function is thread-safe (nftw
 * without FTW_CHDIR keeps no process-wide state).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/worktree/internal.h"

int wt_git_fail(int code, const char *step, const char *arg) {
    const git_error *e = git_error_last();
    return am_err_set(code, "worktree: %s%s%s: %s", step, arg ? " " : "", arg ? arg : "",
                      e && e->message ? e->message : "unknown libgit2 error");
}

int wt_sys_fail(const char *step, const char *arg) {
    int saved = errno;
    return am_err_set(AM_EIO, "worktree: %s%s%s: %s", step, arg ? " " : "", arg ? arg : "",
                      strerror(saved));
}

int wt_path(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return am_err_set(AM_EINVAL, "worktree: path too long (%d bytes)", n);
    return 0;
}

unsigned long long wt_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec;
}

double wt_ms_since(unsigned long long t0_ns) {
    return (double)(wt_now_ns() - t0_ns) / 1e6;
}

static int rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)ftw;
    int rc = (type == FTW_DP) ? rmdir(path) : unlink(path);
    if (rc != 0 && errno != ENOENT)
        return wt_sys_fail("remove", path);
    return 0;
}

int wt_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : wt_sys_fail("stat", path);
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : wt_sys_fail("remove", path);
    int rc = nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (rc == -1)
        return wt_sys_fail("walk", path);
    return rc < 0 ? rc : 0;
}

int wt_copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return wt_sys_fail("open", src);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
        int rc = wt_sys_fail("create", dst);
        close(in);
        return rc;
    }
    int rc = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = wt_sys_fail("read", src);
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = wt_sys_fail("write", dst);
                goto out;
            }
            off += w;
        }
    }
out:
    close(in);
    if (close(out) != 0 && rc == 0)
        rc = wt_sys_fail("close", dst);
    return rc;
}

int wt_write_str(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return wt_sys_fail("create", path);
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t w = write(fd, s + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int rc = wt_sys_fail("write", path);
            close(fd);
            return rc;
        }
        off += (size_t)w;
    }
    if (close(fd) != 0)
        return wt_sys_fail("close", path);
    return 0;
}
