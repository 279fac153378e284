/*
 * runner/mcp/airmesh_mcp.c — airmesh-mcp, the stdio MCP server an agent CLI starts inside a
 * pod (bound read-only at AM_MCP_BIN): it relays newline-delimited JSON-RPC 2.0 messages
 * between its stdin/stdout and the pod's MCP socket (AIRMESH_MCP_SOCKET, default
 * AM_MCP_SOCKET), which the runner serves and forwards to airmeshd. It decides nothing: the
 * pod's identity is the socket, airmeshd speaks MCP.
 *
 * What it does itself: when the socket cannot be reached (or the connection drops), every
 * request (a message with an id) that has no answer yet gets a JSON-RPC error saying why, so
 * the agent is never left waiting; notifications get nothing. The next request connects again.
 * jansson reads each message's id (and nothing else).
 * Threads: one (poll over stdin and the socket). Blocking writes: the runner reads its side
 * continuously.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/mcp.h"
#include "common/version.h"

#define PENDING_MAX 4096

static const char k_help[] =
    "usage: airmesh-mcp [--socket PATH]\n"
    "\n"
    "The stdio MCP server of an airmesh pod. An agent CLI starts it as an MCP server (command\n"
    "/opt/airmesh/bin/airmesh-mcp, no arguments) and talks JSON-RPC 2.0 to it, one message per\n"
    "line on stdin/stdout (MCP's stdio transport). airmesh-mcp relays every line to the pod's\n"
    "MCP socket; airmeshd answers (initialize, tools/list, tools/call: tickets, pods, bindings,\n"
    "channels) with the pod itself as the caller, its identity taken from the socket.\n"
    "\n"
    "  --socket PATH  the pod's MCP socket (default: $" AM_MCP_ENV_SOCKET ", else " AM_MCP_SOCKET
    ")\n"
    "  --help         this text\n"
    "  --version      airmesh's version\n"
    "\n"
    "If the socket cannot be reached, each request is answered with a JSON-RPC error (code\n"
    "-32000) saying why; the next request tries again.\n";

typedef struct {
    const char *path;
    int sock;
    char *pending[PENDING_MAX]; /* ids (compact JSON) of requests sent, not answered */
    size_t n_pending;
    char err[300]; /* why the socket is not connected */
} relay;

static void out_line(const char *s, size_t len) {
    fwrite(s, 1, len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
}

static void answer_error(const char *id_json, const char *why) {
    json_t *id = json_loads(id_json, JSON_DECODE_ANY, NULL);
    json_t *m = json_pack("{s:s,s:o,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", id ? id : json_null(),
                          "error", "code", -32000, "message", why);
    char *s = m ? json_dumps(m, JSON_COMPACT) : NULL;
    if (s)
        out_line(s, strlen(s));
    free(s);
    json_decref(m);
}

/* The id of a request (compact JSON), or NULL for a notification, a response or junk. */
static char *request_id(const char *line, size_t len, int *is_request) {
    *is_request = 0;
    json_t *m = json_loadb(line, len, 0, NULL);
    char *id = NULL;
    if (json_is_object(m) && json_is_string(json_object_get(m, "method"))) {
        json_t *v = json_object_get(m, "id");
        if (v && !json_is_null(v)) {
            id = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            *is_request = 1;
        }
    }
    json_decref(m);
    return id;
}

static void fail_pending(relay *r, const char *why) {
    for (size_t i = 0; i < r->n_pending; i++) {
        answer_error(r->pending[i], why);
        free(r->pending[i]);
    }
    r->n_pending = 0;
}

static void drop_socket(relay *r, const char *why) {
    if (r->sock >= 0)
        close(r->sock);
    r->sock = -1;
    snprintf(r->err, sizeof r->err, "%s", why);
    char msg[400];
    snprintf(msg, sizeof msg, "airmesh-mcp: %s", why);
    fail_pending(r, msg);
}

static int connect_socket(relay *r) {
    if (r->sock >= 0)
        return 0;
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (strlen(r->path) >= sizeof a.sun_path) {
        snprintf(r->err, sizeof r->err, "the MCP socket path %s is too long", r->path);
        return -1;
    }
    memcpy(a.sun_path, r->path, strlen(r->path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        snprintf(r->err, sizeof r->err,
                 "cannot reach the pod's MCP socket %s: %s (is this an airmesh pod?)", r->path,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    r->sock = fd;
    return 0;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One line from the agent: to the socket, or an error answer when it cannot go. */
static void from_agent(relay *r, char *line, size_t len) {
    if (len && line[len - 1] == '\r')
        len--;
    if (!len)
        return;
    int is_req;
    char *id = request_id(line, len, &is_req);
    if (connect_socket(r) != 0) {
        if (is_req) {
            char msg[400];
            snprintf(msg, sizeof msg, "airmesh-mcp: %s", r->err);
            answer_error(id, msg);
        }
        free(id);
        return;
    }
    line[len] = '\n';
    if (write_all(r->sock, line, len + 1) != 0) {
        char why[300];
        snprintf(why, sizeof why, "the connection to the runner failed: %s", strerror(errno));
        drop_socket(r, why);
        if (is_req) {
            char msg[400];
            snprintf(msg, sizeof msg, "airmesh-mcp: %s", why);
            answer_error(id, msg);
        }
        free(id);
        return;
    }
    if (is_req && r->n_pending < PENDING_MAX)
        r->pending[r->n_pending++] = id;
    else
        free(id);
}

/* One line from the runner: to the agent; its id is answered. */
static void from_runner(relay *r, const char *line, size_t len) {
    json_t *m = json_loadb(line, len, 0, NULL);
    json_t *v = json_is_object(m) ? json_object_get(m, "id") : NULL;
    char *id = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(m);
    for (size_t i = 0; id && i < r->n_pending; i++)
        if (strcmp(r->pending[i], id) == 0) {
            free(r->pending[i]);
            r->pending[i] = r->pending[--r->n_pending];
            break;
        }
    free(id);
    out_line(line, len);
}

typedef struct {
    char *buf;
    size_t len, cap;
} linebuf;

/* Read from fd into b and call fn for every complete line; 0 at EOF/error, 1 otherwise. A line
 * longer than AM_MCP_LINE_MAX is dropped (-1 returned once for it through *too_long). */
static int read_lines(int fd, linebuf *b, relay *r, void (*fn)(relay *, char *, size_t),
                      int *too_long) {
    if (b->cap - b->len < 65536) {
        size_t cap = b->cap ? b->cap * 2 : 131072;
        if (cap > AM_MCP_LINE_MAX + 131072)
            cap = AM_MCP_LINE_MAX + 131072;
        char *n = realloc(b->buf, cap);
        if (!n)
            return 0;
        b->buf = n;
        b->cap = cap;
    }
    ssize_t n = read(fd, b->buf + b->len, b->cap - b->len - 1);
    if (n < 0 && errno == EINTR)
        return 1;
    if (n <= 0)
        return 0;
    size_t start = 0, end = b->len + (size_t)n;
    for (size_t k = b->len; k < end; k++)
        if (b->buf[k] == '\n') {
            fn(r, b->buf + start, k - start);
            start = k + 1;
        }
    memmove(b->buf, b->buf + start, end - start);
    b->len = end - start;
    if (b->len > AM_MCP_LINE_MAX) {
        b->len = 0;
        *too_long = 1;
    }
    return 1;
}

static void agent_line(relay *r, char *line, size_t len) {
    from_agent(r, line, len);
}

static void runner_line(relay *r, char *line, size_t len) {
    from_runner(r, line, len);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    relay r = {.sock = -1};
    r.path = getenv(AM_MCP_ENV_SOCKET);
    if (!r.path || !r.path[0])
        r.path = AM_MCP_SOCKET;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(k_help, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("airmesh-mcp %s\n", AM_VERSION);
            return 0;
        }
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            r.path = argv[++i];
            continue;
        }
        fprintf(stderr, "airmesh-mcp: unknown argument '%s' (see --help)\n", argv[i]);
        return 2;
    }
    connect_socket(&r); /* early, so the first request does not wait; errors come per request */
    linebuf in = {0}, sock = {0};
    int stdin_open = 1;
    while (stdin_open || (r.sock >= 0 && r.n_pending)) {
        struct pollfd pf[2] = {{stdin_open ? 0 : -1, POLLIN, 0}, {r.sock, POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            int too_long = 0;
            if (!read_lines(r.sock, &sock, &r, runner_line, &too_long)) {
                sock.len = 0;
                drop_socket(&r, "the runner closed the connection (the pod is ending, or the "
                                "runner lost its appliance)");
            } else if (too_long) {
                sock.len = 0;
                drop_socket(&r, "the runner sent a message longer than 1 MiB");
            }
        }
        if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            int too_long = 0;
            if (!read_lines(0, &in, &r, agent_line, &too_long)) {
                stdin_open = 0;
                if (r.sock >= 0)
                    shutdown(r.sock, SHUT_WR); /* answers still come */
            } else if (too_long) {
                json_t *m = json_pack("{s:s,s:n,s:{s:i,s:s}}", "jsonrpc", "2.0", "id", "error",
                                      "code", -32600, "message",
                                      "airmesh-mcp: a message longer than 1 MiB was dropped");
                char *s = json_dumps(m, JSON_COMPACT);
                if (s)
                    out_line(s, strlen(s));
                free(s);
                json_decref(m);
            }
        }
    }
    for (size_t i = 0; i < r.n_pending; i++)
        free(r.pending[i]);
    if (r.sock >= 0)
        close(r.sock);
    free(in.buf);
    free(sock.buf);
    return 0;
}
