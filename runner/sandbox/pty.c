/*
 * runner/sandbox/pty.c — open the PTY pair for a pod and resize it.
 *
 * The master stays with the caller (non-blocking, O_CLOEXEC); the slave is handed to the pod's
 * init, which makes it the command's stdin/stdout/stderr and controlling terminal. Both are
 * opened with O_NOCTTY so the runner never acquires a controlling terminal. Thread-safe.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/sandbox/internal.h"

int sbx_pty_open(uint16_t cols, uint16_t rows, int *master, int *slave, char *name, size_t cap) {
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return am_err_set(AM_EIO, "sandbox: posix_openpt: %s", strerror(errno));
    if (grantpt(m) != 0 || unlockpt(m) != 0 || ptsname_r(m, name, cap) != 0) {
        int e = errno;
        close(m);
        return am_err_set(AM_EIO, "sandbox: unlock pty: %s", strerror(e));
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int e = errno;
        close(m);
        return am_err_set(AM_EIO, "sandbox: open %s: %s", name, strerror(e));
    }
    int fl = fcntl(m, F_GETFL);
    if (fl < 0 || fcntl(m, F_SETFL, fl | O_NONBLOCK) != 0) {
        int e = errno;
        close(m);
        close(s);
        return am_err_set(AM_EIO, "sandbox: pty O_NONBLOCK: %s", strerror(e));
    }
    int rc = sbx_pty_resize(m, cols, rows);
    if (rc < 0) {
        close(m);
        close(s);
        return rc;
    }
    *master = m;
    *slave = s;
    return 0;
}

int sbx_pty_resize(int master, uint16_t cols, uint16_t rows) {
    struct winsize ws;
    memset(&ws, 0, sizeof ws);
    ws.ws_col = cols ? cols : 80;
    ws.ws_row = rows ? rows : 24;
    if (ioctl(master, TIOCSWINSZ, &ws) != 0)
        return am_err_set(AM_EIO, "sandbox: TIOCSWINSZ: %s", strerror(errno));
    return 0;
}
