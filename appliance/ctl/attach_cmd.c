/*
 * appliance/ctl/attach_cmd.c — `airmeshctl pod logs ID [--follow]` and `pod attach ID`: the
 * pod's terminal WebSocket (/api/v1/pods/ID/terminal, see README "The console and the web
 * terminal") in your own terminal.
 *
 * logs: the appliance replays its ring (the last 1 MiB of output) from offset 0; the bytes up to
 * the ring's end as the hello announced it are written to stdout, then it returns (--follow:
 * keeps writing until the pod ends or Ctrl-C).
 * attach: the terminal goes to raw mode (restored on every way out: detach, pod exit, error,
 * SIGTERM/SIGHUP), the ring is replayed, input control is asked for ({"type":"take"}); while
 * this client holds it, keystrokes go to the pod and the window size follows this terminal
 * (SIGWINCH). Ctrl-] then q detaches (Ctrl-] twice sends one Ctrl-]). Someone else holding
 * control is said on stderr; the output keeps coming. One thread; poll() on stdin and the socket.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "appliance/ctl/ctl.h"
#include "appliance/ctl/ws.h"

#define DETACH_KEY 0x1d /* Ctrl-] */

static int write_out(const void *p, size_t n) {
    const char *b = p;
    while (n) {
        ssize_t w = write(STDOUT_FILENO, b, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int open_terminal(am_ctl *c, const char *id, am_ctl_ws **w, json_t **hello) {
    char path[300];
    snprintf(path, sizeof path, "/api/v1/pods/%s/terminal?offset=0", id);
    if (!c->token[0]) {
        fprintf(stderr, "airmeshctl: not logged in: run `airmeshctl login --user NAME` (or set "
                        "AIRMESH_TOKEN)\n");
        return 1;
    }
    if (am_ctl_ws_open(c->url, c->ca, c->token, path, w) != 0)
        return 1;
    for (;;) {
        int op;
        const uint8_t *data;
        size_t len;
        int r = am_ctl_ws_recv(*w, 30000, &op, &data, &len);
        if (r <= 0) {
            fprintf(stderr, "airmeshctl: pod %s: the terminal closed before saying hello\n", id);
            goto fail;
        }
        if (op != AM_WS_TEXT)
            continue;
        json_t *m = json_loadb((const char *)data, len, 0, NULL);
        const char *type = json_string_value(json_object_get(m, "type"));
        if (type && strcmp(type, "hello") == 0) {
            *hello = m;
            return 0;
        }
        if (type && strcmp(type, "error") == 0)
            fprintf(stderr, "airmeshctl: pod %s: %s\n", id,
                    json_string_value(json_object_get(m, "message")));
        json_decref(m);
    }
fail:
    am_ctl_ws_free(*w);
    *w = NULL;
    return 1;
}

static int pod_logs(am_ctl *c, const char *id, int follow) {
    am_ctl_ws *w = NULL;
    json_t *hello = NULL;
    if (open_terminal(c, id, &w, &hello) != 0)
        return 1;
    long long off = json_integer_value(json_object_get(hello, "offset"));
    long long end = json_integer_value(json_object_get(hello, "ring_end"));
    json_decref(hello);
    int rc = 0;
    while (follow || off < end) {
        int op;
        const uint8_t *data;
        size_t len;
        int r = am_ctl_ws_recv(w, follow ? -1 : 30000, &op, &data, &len);
        if (r == 0) {
            fprintf(stderr, "airmeshctl: pod %s: the scrollback stopped arriving\n", id);
            rc = 1;
            break;
        }
        if (r < 0)
            break;
        if (op == AM_WS_BINARY) {
            if (write_out(data, len) != 0) {
                rc = 1;
                break;
            }
            off += (long long)len;
        } else if (op == AM_WS_TEXT) {
            json_t *m = json_loadb((const char *)data, len, 0, NULL);
            const char *type = json_string_value(json_object_get(m, "type"));
            int stop = type && strcmp(type, "exit") == 0;
            if (type && strcmp(type, "lagged") == 0)
                off = json_integer_value(json_object_get(m, "skipped_to"));
            json_decref(m);
            if (stop)
                break;
        }
    }
    am_ctl_ws_free(w);
    return rc;
}

/* --- attach ----------------------------------------------------------------------------- */

static struct termios saved_tio;
static int raw_on;
static volatile sig_atomic_t winch, quit_sig;

static void restore_tty(void) {
    if (raw_on) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
        raw_on = 0;
    }
}

static void on_winch(int sig) {
    (void)sig;
    winch = 1;
}

static void on_quit(int sig) {
    quit_sig = sig;
}

static void send_size(am_ctl_ws *w) {
    struct winsize ws;
    if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) != 0 || !ws.ws_col || !ws.ws_row)
        return;
    char msg[96];
    int n = snprintf(msg, sizeof msg, "{\"type\":\"resize\",\"cols\":%u,\"rows\":%u}", ws.ws_col,
                     ws.ws_row);
    am_ctl_ws_send(w, AM_WS_TEXT, msg, (size_t)n);
}

/* A notice on stderr that reads well in raw mode (CR LF). */
static void say(const char *fmt, const char *a, const char *b) {
    fprintf(stderr, raw_on ? "\r\n[" : "[");
    fprintf(stderr, fmt, a, b);
    fprintf(stderr, raw_on ? "]\r\n" : "]\n");
}

static int pod_attach(am_ctl *c, const char *id) {
    am_ctl_ws *w = NULL;
    json_t *hello = NULL;
    if (open_terminal(c, id, &w, &hello) != 0)
        return 1;
    json_int_t you = json_integer_value(json_object_get(hello, "you"));
    int can_input = json_is_true(json_object_get(hello, "can_input"));
    int held = json_is_integer(json_object_get(hello, "control"));
    char holder[160];
    snprintf(holder, sizeof holder, "%s",
             json_string_value(json_object_get(hello, "control_user"))
                 ? json_string_value(json_object_get(hello, "control_user"))
                 : "someone else");
    const char *state = json_string_value(json_object_get(hello, "state"));
    int ended = state && (strcmp(state, "exited") == 0 || strcmp(state, "stopped") == 0 ||
                          strcmp(state, "failed") == 0);
    fprintf(stderr, "airmeshctl: attached to pod %s (%s); detach with Ctrl-] then q\n", id,
            state ? state : "?");
    json_decref(hello);

    int tty = isatty(STDIN_FILENO);
    if (tty && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
        struct termios raw = saved_tio;
        cfmakeraw(&raw);
        if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) {
            raw_on = 1;
            atexit(restore_tty);
        }
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_winch;
    sigaction(SIGWINCH, &sa, NULL);
    sa.sa_handler = on_quit;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (can_input && !ended && held)
        say("%s has control: you are watching%s", holder, " (they release it first)");
    else if (can_input && !ended)
        am_ctl_ws_send(w, AM_WS_TEXT, "{\"type\":\"take\"}", 15);
    else if (!ended)
        say("%s%s", "your role can watch this pod but not type into it", "");
    int holding = 0, pending_detach = 0, rc = 0, stdin_open = 1;
    char why[160] = "";
    for (;;) {
        if (quit_sig) {
            snprintf(why, sizeof why, "detached (signal %d)", (int)quit_sig);
            break;
        }
        if (winch) {
            winch = 0;
            if (holding)
                send_size(w);
        }
        /* Every whole message already read, then wait for the socket or the keyboard. */
        int op, r;
        const uint8_t *data;
        size_t len;
        while ((r = am_ctl_ws_recv(w, 0, &op, &data, &len)) == 1) {
            if (op == AM_WS_BINARY) {
                write_out(data, len);
                continue;
            }
            json_t *m = json_loadb((const char *)data, len, 0, NULL);
            const char *type = json_string_value(json_object_get(m, "type"));
            if (type && strcmp(type, "control") == 0) {
                json_t *h = json_object_get(m, "holder");
                int mine = json_is_integer(h) && json_integer_value(h) == you;
                if (mine && !holding) {
                    send_size(w);
                    say("you have control: typing goes to the pod%s", "", "");
                } else if (!json_is_integer(h) && can_input && !ended) {
                    /* control is free again: ask for it (the appliance gives it to one asker) */
                    am_ctl_ws_send(w, AM_WS_TEXT, "{\"type\":\"take\"}", 15);
                } else if (!mine && json_is_integer(h)) {
                    const char *u = json_string_value(json_object_get(m, "user"));
                    say("%s has control: you are watching%s", u ? u : "someone else",
                        holding ? "" : " (they release it first)");
                }
                holding = mine;
            } else if (type && strcmp(type, "exit") == 0) {
                snprintf(why, sizeof why, "pod %s %s (code %d)", id,
                         json_string_value(json_object_get(m, "state")),
                         (int)json_integer_value(json_object_get(m, "code")));
                json_decref(m);
                goto done;
            } else if (type && strcmp(type, "error") == 0) {
                say("%s%s", json_string_value(json_object_get(m, "message")), "");
            }
            json_decref(m);
        }
        if (r < 0) {
            int code = am_ctl_ws_close_code(w);
            if (!why[0])
                snprintf(why, sizeof why, "the terminal closed (%d)", code);
            rc = code == 1000 ? 0 : 1;
            break;
        }
        struct pollfd p[2] = {{.fd = am_ctl_ws_fd(w), .events = POLLIN},
                              {.fd = STDIN_FILENO, .events = POLLIN}};
        int n = poll(p, stdin_open ? 2 : 1, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0 || !(p[1].revents & (POLLIN | POLLHUP)) || !stdin_open)
            continue;
        uint8_t in[4096], send_buf[4097];
        ssize_t got = read(STDIN_FILENO, in, sizeof in);
        if (got <= 0) {
            stdin_open = 0; /* end of input: keep watching until the pod ends */
            continue;
        }
        size_t out = 0;
        for (ssize_t i = 0; i < got; i++) {
            if (pending_detach) {
                pending_detach = 0;
                if (in[i] == 'q' || in[i] == 'Q') {
                    snprintf(why, sizeof why, "detached from pod %s", id);
                    if (out && holding)
                        am_ctl_ws_send(w, AM_WS_BINARY, send_buf, out);
                    goto done;
                }
                send_buf[out++] = DETACH_KEY;
                if (in[i] == DETACH_KEY)
                    continue;
            } else if (in[i] == DETACH_KEY) {
                pending_detach = 1;
                continue;
            }
            send_buf[out++] = in[i];
        }
        if (out && holding && am_ctl_ws_send(w, AM_WS_BINARY, send_buf, out) != 0)
            break;
    }
done:
    if (holding)
        am_ctl_ws_send(w, AM_WS_TEXT, "{\"type\":\"release\"}", 18);
    restore_tty();
    am_ctl_ws_free(w);
    fprintf(stderr, "\nairmeshctl: %s\n", why[0] ? why : "detached");
    return rc;
}

int am_ctl_pod_terminal(am_ctl *c, int argc, char **argv) {
    /* argv: "pod" "logs"|"attach" ID [--follow] */
    int logs = strcmp(argv[1], "logs") == 0, follow = 0;
    const char *id = NULL;
    for (int i = 2; i < argc; i++) {
        if (logs && (strcmp(argv[i], "--follow") == 0 || strcmp(argv[i], "-f") == 0))
            follow = 1;
        else if (argv[i][0] != '-' && !id)
            id = argv[i];
        else {
            fprintf(stderr, "airmeshctl pod %s: unexpected '%s' (see airmeshctl help pod)\n",
                    argv[1], argv[i]);
            return 2;
        }
    }
    if (!id) {
        fprintf(stderr, "airmeshctl pod %s: which pod? (airmeshctl pod %s ID)\n", argv[1], argv[1]);
        return 2;
    }
    return logs ? pod_logs(c, id, follow) : pod_attach(c, id);
}
