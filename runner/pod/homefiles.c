/*
 * runner/pod/homefiles.c — see homefiles.h: the pod's HOME files, checked, then written under
 * the home dir's fd without ever following a link.
 */
#include "runner/pod/homefiles.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"

#define PATH_MAX_LEN 255
#define DEPTH_MAX 8

static int check_path(const char *p) {
    size_t len = p ? strlen(p) : 0;
    if (len == 0 || len > PATH_MAX_LEN)
        return am_err_set(AM_EINVAL, "home file '%.64s': a path of 1 to %d bytes is required",
                          p ? p : "", PATH_MAX_LEN);
    if (p[0] == '/')
        return am_err_set(AM_EINVAL, "home file '%.64s': absolute paths are refused", p);
    int depth = 0;
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t n = e ? (size_t)(e - c) : strlen(c);
        if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
            return am_err_set(AM_EINVAL,
                              "home file '%.64s': empty, \".\" and \"..\" parts are refused", p);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)c[i] < 0x20 || c[i] == 0x7f)
                return am_err_set(AM_EINVAL, "home file '%.64s': control characters are refused",
                                  p);
        if (++depth > DEPTH_MAX)
            return am_err_set(AM_EINVAL, "home file '%.64s': more than %d levels", p, DEPTH_MAX);
        if (!e)
            break;
        c = e + 1;
        if (!*c)
            return am_err_set(AM_EINVAL, "home file '%.64s': ends with '/'", p);
    }
    return 0;
}

int am_pod_home_files_check(am_pod_home_file *const *f, size_t n) {
    if (n > AM_POD_HOME_FILES_MAX)
        return am_err_set(AM_EINVAL, "home files: at most %d (got %zu)", AM_POD_HOME_FILES_MAX, n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_path(f[i]->key);
        if (rc)
            return rc;
        total += f[i]->value.len;
        if (total > AM_POD_HOME_BYTES_MAX)
            return am_err_set(AM_EINVAL, "home files: at most %u bytes in all",
                              AM_POD_HOME_BYTES_MAX);
    }
    return 0;
}

static int fail(const char *step, const char *path) {
    return am_err_set(AM_EIO, "home file '%.64s': %s: %s", path, step, strerror(errno));
}

/* One file: walk its directories from dfd (creating the missing ones), then the file. */
static int write_one(int dfd, uid_t uid, gid_t gid, const am_pod_home_file *hf) {
    char buf[PATH_MAX_LEN + 1];
    snprintf(buf, sizeof buf, "%s", hf->key);
    int cur = dfd, rc = 0;
    char *part = buf;
    for (char *slash; (slash = strchr(part, '/')); part = slash + 1) {
        *slash = '\0';
        int made = mkdirat(cur, part, 0700) == 0;
        if (!made && errno != EEXIST) {
            rc = fail("mkdirat", hf->key);
            goto out;
        }
        int nfd = openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (nfd < 0) {
            rc = fail(errno == ELOOP || errno == ENOTDIR ? "a part is a link or not a directory"
                                                         : "openat",
                      hf->key);
            goto out;
        }
        if (cur != dfd)
            close(cur);
        cur = nfd;
        if (made && fchown(cur, uid, gid) != 0) {
            rc = fail("fchown dir", hf->key);
            goto out;
        }
    }
    int fd = openat(cur, part, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = fail(errno == ELOOP ? "is a link" : "openat", hf->key);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = fail("fstat", hf->key);
    } else if (!S_ISREG(st.st_mode)) {
        errno = EINVAL;
        rc = fail("not a regular file", hf->key);
    } else if (ftruncate(fd, 0) != 0) {
        rc = fail("ftruncate", hf->key);
    } else if (fchown(fd, uid, gid) != 0 || fchmod(fd, 0600) != 0) {
        rc = fail("fchown", hf->key);
    }
    for (size_t off = 0; rc == 0 && off < hf->value.len;) {
        ssize_t w = write(fd, hf->value.data + off, hf->value.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = fail("write", hf->key);
            break;
        }
        off += (size_t)w;
    }
    close(fd);
out:
    if (cur != dfd)
        close(cur);
    return rc;
}

int am_pod_home_files_write(const char *home, am_pod_home_file *const *f, size_t n) {
    int rc = am_pod_home_files_check(f, n);
    if (rc || n == 0)
        return rc;
    if (!home || !*home)
        return am_err_set(AM_EINVAL, "home files: this pod has no HOME on the runner");
    int dfd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return am_err_set(AM_EIO, "home files: open %s: %s", home, strerror(errno));
    struct stat st;
    if (fstat(dfd, &st) != 0) {
        rc = am_err_set(AM_EIO, "home files: fstat %s: %s", home, strerror(errno));
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = write_one(dfd, st.st_uid, st.st_gid, f[i]);
out:
    close(dfd);
    return rc;
}
