/*
 * runner/egress/proxy.c — one connection of a pod to its CONNECT proxy listener
 * (127.0.0.1:3128 in the pod's netns, network "allow"): one request head, which must be
 * `CONNECT host:port HTTP/1.1` for exactly one entry of the pod's allow list
 * (CreatePod.egress_allow, compared case-insensitively as written); the runner resolves and
 * connects from its own netns (this thread never entered the pod's), answers
 * "200 Connection established" and relays bytes both ways until either side ends.
 * Anything else is refused with 403 (400 for a request that is not HTTP) and a one-line
 * reason; a failed resolve/connect is 502. Every decision is an EgressEvent: refused
 * (with the reason), connect, and close (bytes each way, duration).
 * Threads: the connection's own (egress.c starts it).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "runner/egress/internal.h"

#define HEAD_CAP (16u << 10)
#define HEAD_WAIT_MS 30000
#define CONNECT_TIMEOUT_MS 10000
#define RELAY_BUF (64u << 10)

static void refuse(eg_conn *c, int status, const char *host, uint32_t port, const char *reason) {
    char resp[700];
    const char *phrase = status == 403   ? "Forbidden"
                         : status == 502 ? "Bad Gateway"
                         : status == 408 ? "Request Timeout"
                         : status == 431 ? "Request Header Fields Too Large"
                                         : "Bad Request";
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                     "Content-Length: %zu\r\n\r\n%s\n",
                     status, phrase, strlen(reason) + 1, reason);
    if (n > 0 && (size_t)n < sizeof resp)
        eg_write_all(c->fd, resp, (size_t)n);
    eg_event(c->pod, "refused", host, port, reason, 0, 0, 0);
}

static int allowed(const am_egress_pod *p, const char *target) {
    for (size_t i = 0; i < p->n_allow; i++)
        if (strcasecmp(p->allow[i], target) == 0)
            return 1;
    return 0;
}

/* Connect to host:port from the runner's netns within the timeout. fd or -1 (why set). */
static int dial(const char *host, uint16_t port, char *why, size_t cap) {
    char ps[8];
    snprintf(ps, sizeof ps, "%u", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int g = getaddrinfo(host, ps, &hints, &res);
    if (g != 0) {
        snprintf(why, cap, "cannot resolve %s: %s", host, gai_strerror(g));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        int s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (s < 0) {
            err = errno;
            continue;
        }
        if (connect(s, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            err = errno;
            close(s);
            continue;
        }
        struct pollfd pf = {s, POLLOUT, 0};
        int pr = poll(&pf, 1, CONNECT_TIMEOUT_MS);
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (pr <= 0) {
            err = pr == 0 ? ETIMEDOUT : errno;
            close(s);
            continue;
        }
        if (getsockopt(s, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr) {
            err = soerr ? soerr : errno;
            close(s);
            continue;
        }
        fcntl(s, F_SETFL, fcntl(s, F_GETFL) & ~O_NONBLOCK);
        fd = s;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(why, cap, "connect to %s:%u failed: %s", host, port, strerror(err));
    return fd;
}

/* Relay both ways until both directions ended (or an error, or the pod stops). */
static void relay(am_egress_pod *p, int a, int b, uint64_t *up, uint64_t *down) {
    uint8_t *buf = malloc(RELAY_BUF);
    if (!buf)
        return;
    int a_open = 1, b_open = 1; /* a = pod side (reads -> up), b = upstream */
    while (a_open || b_open) {
        struct pollfd pf[3] = {
            {a_open ? a : -1, POLLIN, 0}, {b_open ? b : -1, POLLIN, 0}, {p->stop_rd, POLLIN, 0}};
        int n = poll(pf, 3, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || pf[2].revents)
            break;
        for (int side = 0; side < 2; side++) {
            int from = side ? b : a, to = side ? a : b;
            int *open = side ? &b_open : &a_open;
            if (!*open || !(pf[side].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t r = recv(from, buf, RELAY_BUF, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0) {
                *open = 0;
                shutdown(to, SHUT_WR); /* pass the half-close on */
                if (r < 0)
                    goto out;
                continue;
            }
            if (eg_write_all(to, buf, (size_t)r) != 0)
                goto out;
            *(side ? down : up) += (uint64_t)r;
        }
    }
out:
    free(buf);
}

void eg_proxy_serve(eg_conn *c) {
    am_egress_pod *p = c->pod;
    char *in = malloc(HEAD_CAP);
    char *head = NULL;
    size_t have = 0;
    if (!in)
        return;
    am_h1_req r;
    int status = 0;
    const char *why = "";
    int n = eg_read_head(p, c->fd, in, HEAD_CAP, &have, &r, &head, &status, &why, HEAD_WAIT_MS);
    if (n == 0 || n == -2)
        goto out;
    char reason[400];
    if (n < 0) {
        snprintf(reason, sizeof reason, "bad request: %s", why);
        refuse(c, status == 408 || status == 431 ? status : 400, "", 0, reason);
        goto out;
    }
    char host[256];
    uint16_t port = 0;
    if (strcmp(r.method, "CONNECT") != 0) {
        snprintf(reason, sizeof reason,
                 "only CONNECT host:port is served here (this was %.16s %.200s)", r.method,
                 r.target);
        refuse(c, 403, "", 0, reason);
        goto out;
    }
    if (am_h1_authority(r.target, host, sizeof host, &port) != 0) {
        snprintf(reason, sizeof reason, "bad CONNECT target '%.200s' (host:port expected)",
                 r.target);
        refuse(c, 400, "", 0, reason);
        goto out;
    }
    if (!allowed(p, r.target)) {
        snprintf(reason, sizeof reason, "%.260s is not on this organization's egress allow list",
                 r.target);
        refuse(c, 403, host, port, reason);
        goto out;
    }
    int up = dial(host, port, reason, sizeof reason);
    if (up < 0) {
        refuse(c, 502, host, port, reason);
        goto out;
    }
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    uint64_t t0 = am_mono_ns(), bytes_up = 0, bytes_down = 0;
    if (eg_write_all(c->fd, ok, sizeof ok - 1) != 0) {
        close(up);
        goto out;
    }
    eg_event(p, "connect", host, port, "", 0, 0, 0);
    /* Bytes the client sent right behind the CONNECT head (e.g. a TLS ClientHello). */
    if (have && eg_write_all(up, in, have) == 0)
        bytes_up += have;
    relay(p, c->fd, up, &bytes_up, &bytes_down);
    close(up);
    eg_event(p, "close", host, port, "", bytes_up, bytes_down, (am_mono_ns() - t0) / 1000000);
out:
    free(head);
    free(in);
}
