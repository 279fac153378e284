/*
 * runner/notify/notify.c — airmesh-notify, run inside a pod (by an agent's hooks, a script, a
 * person) to say what the agent is doing: `airmesh-notify working|waiting|idle [MESSAGE...]`.
 * It writes one OSC 777 notification, ESC ] 777 ; notify ; airmesh ; STATE ; MESSAGE BEL, to
 * /dev/tty (the pod's PTY, even when the hook's stdout is a pipe), or to stderr when there is
 * no terminal. The runner reads it from the PTY (runner/pod/agentstate.c): the pod it came from
 * is the PTY it came through, so there is nothing to name or forge. MESSAGE (the arguments
 * joined by spaces) loses control characters and invalid UTF-8 and is cut to 200 bytes.
 * The runner binds its own copy read-only at /opt/airmesh/bin/airmesh-notify in every pod.
 * Exit: 0 written, 1 write failed, 2 usage.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runner/pod/agentstate.h"

/* Under --config=asan (the tests) this binary carries the sanitizer runtime, and inside a pod
 * LeakSanitizer cannot work (seccomp denies what it needs: it dies with "fatal error" at exit,
 * printing into the pod's terminal). A program this small leaks nothing worth a report. */
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void) {
    return 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: airmesh-notify working|waiting|idle [MESSAGE...]\n"
            "Tell airmesh what the agent in this pod is doing. The pod's page, `airmeshctl pod\n"
            "list` and /api/v1/events show it; \"waiting\" (for input) also raises a browser\n"
            "notification. Call it from an agent's hooks, e.g. when it needs a permission or a\n"
            "review (waiting), starts a turn (working) or ends one (idle).\n"
            "Writes ESC ] 777 ; notify ; airmesh ; STATE ; MESSAGE BEL to /dev/tty (stderr\n"
            "without a terminal). MESSAGE: control characters removed, at most 200 bytes.\n"
            "Exit status: 0 written, 1 not written, 2 usage.\n");
}

int main(int argc, char **argv) {
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc < 2 || !am_agentstate_valid(argv[1])) {
        fprintf(stderr, "airmesh-notify: expected working, waiting or idle%s%s%s\n",
                argc >= 2 ? " (got '" : "", argc >= 2 ? argv[1] : "", argc >= 2 ? "')" : "");
        usage(stderr);
        return 2;
    }
    char joined[4096] = "";
    size_t n = 0;
    for (int i = 2; i < argc && n < sizeof joined - 1; i++) {
        int w = snprintf(joined + n, sizeof joined - n, "%s%s", i > 2 ? " " : "", argv[i]);
        if (w < 0)
            break;
        n += (size_t)w < sizeof joined - n ? (size_t)w : sizeof joined - 1 - n;
    }
    char msg[AM_AGENTSTATE_MSG_MAX + 1];
    am_agentstate_sanitize(joined, n, msg, sizeof msg);
    char seq[AM_AGENTSTATE_MSG_MAX + 64];
    int len = snprintf(seq, sizeof seq, "\033]777;notify;airmesh;%s;%s\007", argv[1], msg);
    if (len < 0 || (size_t)len >= sizeof seq)
        return 1;
    int fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC);
    int out = fd >= 0 ? fd : STDERR_FILENO;
    ssize_t w = write(out, seq, (size_t)len);
    if (fd >= 0)
        close(fd);
    if (w != len) {
        perror("airmesh-notify: write");
        return 1;
    }
    return 0;
}
