/*
 * runner/worktree/fsutil.c — error helpers and the few filesystem operations the worktree layer
 * needs: rm -rf, a file copy for the index template, and small file writes.
 *
 * rm -rf runs on trees the agent wrote (the overlay's upper dir, the pod's git dir): it never
 * follows a symlink at any depth (every directory is opened with openat(O_NOFOLLOW |
 * O_DIRECTORY) relative to its parent's fd and checked against the lstat it came from, entries
 * are removed with unlinkat relative to that fd, so a symlink is removed as a link) and never
 * crosses into another mount (so deleting a pod dir never reaches through a mount that failed to
 * detach). Depth is not limited by fds: beyond 64 levels the walk closes the far ancestors'
 * fds and gets back to them through "..", checked by device and inode.
 *
 * Ownership: nothing allocated survives a call. Threads: every function is thread-safe (no
 * chdir, no process-wide state).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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

/* One level of the walk: where we are and how we got here. */
typedef struct {
    int fd; /* this directory, opened O_NOFOLLOW relative to its parent */
    dev_t dev;
    ino_t ino;
    char name[256]; /* its name in the parent ("" for the top) */
} rm_level;

/* Delete the entries of levels[*depth] that are not directories; stop at the first
 * subdirectory and descend into it (push). Returns 1 when the directory is empty, 0 after a
 * push, <0 on error. */
static int rm_step(const char *top, rm_level **levels, size_t *depth, size_t *cap, dev_t topdev) {
    rm_level *cur = &(*levels)[*depth];
    int dfd = dup(cur->fd);
    if (dfd < 0)
        return wt_sys_fail("remove: dup", top);
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return wt_sys_fail("remove: opendir in", top);
    }
    rewinddir(d);
    struct dirent *e;
    int rc = 1;
    while ((errno = 0, e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        struct stat st;
        if (fstatat(cur->fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
            if (errno == ENOENT)
                continue;
            rc = wt_sys_fail("remove: stat entry of", top);
            break;
        }
        if (!S_ISDIR(st.st_mode)) { /* files, symlinks (the link itself), fifos, whiteouts */
            if (unlinkat(cur->fd, e->d_name, 0) != 0 && errno != ENOENT) {
                rc = wt_sys_fail("remove: unlink entry of", top);
                break;
            }
            continue;
        }
        if (st.st_dev != topdev) {
            errno = EBUSY; /* a mount below: never delete through it */
            rc = wt_sys_fail("remove: a mount inside", top);
            break;
        }
        if (strlen(e->d_name) >= sizeof cur->name) {
            errno = ENAMETOOLONG;
            rc = wt_sys_fail("remove: entry of", top);
            break;
        }
        int cfd = openat(cur->fd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        struct stat cst;
        if (cfd < 0 || fstat(cfd, &cst) != 0 || cst.st_dev != st.st_dev ||
            cst.st_ino != st.st_ino) {
            if (cfd >= 0)
                close(cfd);
            errno = errno ? errno : ESTALE;
            rc = wt_sys_fail("remove: open subdirectory of", top);
            break;
        }
        if (*depth + 1 == *cap) {
            size_t nc = *cap * 2;
            rm_level *nl = realloc(*levels, nc * sizeof *nl);
            if (!nl) {
                close(cfd);
                rc = am_err_set(AM_ENOMEM, "worktree: out of memory");
                break;
            }
            *levels = nl;
            *cap = nc;
        }
        /* Keep fds only for a bounded number of levels: deeper trees are walked by reopening
         * ".." (checked against the recorded device and inode) on the way back up. */
        rm_level *next = &(*levels)[++*depth];
        next->fd = cfd;
        next->dev = cst.st_dev;
        next->ino = cst.st_ino;
        snprintf(next->name, sizeof next->name, "%s", e->d_name);
        if (*depth > 64) {
            rm_level *far = &(*levels)[*depth - 64];
            if (far->fd >= 0) {
                close(far->fd);
                far->fd = -1;
            }
        }
        rc = 0;
        break;
    }
    if (rc == 1 && errno != 0)
        rc = wt_sys_fail("remove: read directory in", top);
    closedir(d);
    return rc;
}

int wt_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : wt_sys_fail("stat", path);
    if (!S_ISDIR(st.st_mode))
        return unlink(path) == 0 ? 0 : wt_sys_fail("remove", path);
    size_t cap = 16, depth = 0;
    rm_level *lv = calloc(cap, sizeof *lv);
    if (!lv)
        return am_err_set(AM_ENOMEM, "worktree: out of memory");
    int rc = 0;
    lv[0].fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat top;
    if (lv[0].fd < 0 || fstat(lv[0].fd, &top) != 0) {
        rc = wt_sys_fail("remove: open", path);
        goto out;
    }
    lv[0].dev = top.st_dev;
    lv[0].ino = top.st_ino;
    for (;;) {
        if (lv[depth].fd < 0) { /* closed to save fds: reopen from the child's ".." */
            rc = am_err_set(AM_EIO, "worktree: remove %s: lost a directory fd", path);
            goto out;
        }
        rc = rm_step(path, &lv, &depth, &cap, top.st_dev);
        if (rc < 0)
            goto out;
        if (rc == 0)
            continue; /* descended */
        if (depth == 0)
            break; /* the top is empty */
        /* Empty: go back up to the parent and remove it there. */
        rm_level *child = &lv[depth], *parent = &lv[depth - 1];
        if (parent->fd < 0) {
            int pfd = openat(child->fd, "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            struct stat pst;
            if (pfd < 0 || fstat(pfd, &pst) != 0 || pst.st_dev != parent->dev ||
                pst.st_ino != parent->ino) {
                if (pfd >= 0)
                    close(pfd);
                rc = am_err_set(AM_EIO, "worktree: remove %s: a directory moved during removal",
                                path);
                goto out;
            }
            parent->fd = pfd;
        }
        close(child->fd);
        child->fd = -1;
        if (unlinkat(parent->fd, child->name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
            rc = wt_sys_fail("remove: rmdir in", path);
            depth--;
            goto out;
        }
        depth--;
    }
    close(lv[0].fd);
    lv[0].fd = -1;
    if (rmdir(path) != 0 && errno != ENOENT)
        rc = wt_sys_fail("remove", path);
    else
        rc = 0;
out:
    for (size_t i = 0; i <= depth && i < cap; i++)
        if (lv[i].fd >= 0)
            close(lv[i].fd);
    free(lv);
    return rc;
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
