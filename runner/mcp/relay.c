/*
 * runner/mcp/relay.c — a pod's MCP socket served by the runner (see relay.h): one thread per
 * pod polls its listener, its connections and a wake eventfd; lines read become McpRequest
 * messages, McpResponse messages queued by the session thread are written back.
 *
 * Why one thread per pod and non-blocking sockets: a pod has a few short-lived connections (one
 * per agent CLI's airmesh-mcp), so one poll loop serves them all without a thread per
 * connection, and nothing the pod does (not reading, sending junk) can block the session
 * thread or another pod.
 * Locking: r->mu guards the pod list and every connection's slot (fd, id) and answer queue; the
 * pod's thread alone reads and accepts. Messages go to emit outside r->mu.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/mcp.h"
#include "common/util.h"
#include "runner/mcp/relay.h"

#define READ_CHUNK (64u << 10)
/* What one pod may send per second (with a burst of one second's worth): far above what an
 * agent's tool calls need, low enough that a pod flooding its socket cannot fill the runner's
 * stream queue with megabyte lines faster than it drains. Over it, the pod's connections are
 * simply not read until the budget refills (back-pressure, nothing dropped). */
#define RATE_BYTES (8u << 20)
#define RATE_LINES 500u

typedef struct outbuf {
    struct outbuf *next;
    size_t len, off;
    int close_after;
    uint8_t data[];
} outbuf;

typedef struct {
    int fd; /* -1 = free slot */
    uint64_t id;
    uint8_t *in; /* bytes of the line being read (no '\n' yet) */
    size_t in_len, in_cap;
    outbuf *oh, *ot;
    size_t out_bytes;
    int drop; /* close at the next turn (overflow, write error, close_after written) */
} mconn;

struct am_mcprelay_pod {
    am_mcprelay *r;
    am_mcprelay_pod *next;
    char pod_id[128];
    int lfd, wake;
    int stop;
    pthread_t th;
    mconn c[AM_MCP_CONNS_MAX];
    double bytes_left, lines_left; /* the send budget (pod thread only) */
    uint64_t budget_ms;            /* when it was last refilled */
};

struct am_mcprelay {
    am_mcprelay_emit_fn emit;
    void *ud;
    pthread_mutex_t mu;
    uint64_t next_conn;
    am_mcprelay_pod *pods;
};

int am_mcprelay_new(am_mcprelay_emit_fn emit, void *ud, am_mcprelay **out) {
    am_mcprelay *r = calloc(1, sizeof *r);
    if (!r)
        return am_err_set(AM_ENOMEM, "mcp relay: out of memory");
    r->emit = emit;
    r->ud = ud;
    r->next_conn = 1;
    pthread_mutex_init(&r->mu, NULL);
    *out = r;
    return 0;
}

void am_mcprelay_free(am_mcprelay *r) {
    if (!r)
        return;
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static void wake(int fd) {
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w;
}

/* ---- messages to the appliance ---- */

static int emit_line(am_mcprelay_pod *p, uint64_t id, const uint8_t *line, size_t len, int closed) {
    Airmesh__V1__McpRequest q = AIRMESH__V1__MCP_REQUEST__INIT;
    q.pod_id = p->pod_id;
    q.conn_id = id;
    q.message.data = (uint8_t *)line;
    q.message.len = len;
    q.closed = closed;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_MCP_REQUEST;
    m.mcp_request = &q;
    return p->r->emit(p->r->ud, &m);
}

/* ---- connections (pod thread) ---- */

/* Caller holds r->mu. */
static void conn_reset(mconn *c) {
    while (c->oh) {
        outbuf *n = c->oh->next;
        free(c->oh);
        c->oh = n;
    }
    c->ot = NULL;
    c->out_bytes = 0;
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
    c->drop = 0;
    c->fd = -1;
    c->id = 0;
}

/* Close connection i and tell the appliance (not under r->mu). */
static void conn_close(am_mcprelay_pod *p, int i, const char *why) {
    pthread_mutex_lock(&p->r->mu);
    int fd = p->c[i].fd;
    uint64_t id = p->c[i].id;
    conn_reset(&p->c[i]);
    pthread_mutex_unlock(&p->r->mu);
    if (fd < 0)
        return;
    close(fd);
    emit_line(p, id, NULL, 0, 1);
    am_log_debug("mcp", "connection closed", "pod=%s conn=%llu why=%s", p->pod_id,
                 (unsigned long long)id, why);
}

static void do_accept(am_mcprelay_pod *p) {
    int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0)
        return; /* EAGAIN, or the client gave up already */
    pthread_mutex_lock(&p->r->mu);
    int slot = -1;
    for (int i = 0; i < AM_MCP_CONNS_MAX && slot < 0; i++)
        if (p->c[i].fd < 0)
            slot = i;
    if (slot >= 0) {
        p->c[slot].fd = fd;
        p->c[slot].id = p->r->next_conn++;
    }
    pthread_mutex_unlock(&p->r->mu);
    if (slot < 0) {
        am_log_warn("mcp", "connection refused: too many", "pod=%s max=%d", p->pod_id,
                    AM_MCP_CONNS_MAX);
        close(fd);
    }
}

/* Read what the connection has; each complete line goes out. */
static void do_read(am_mcprelay_pod *p, int i) {
    mconn *c = &p->c[i];
    for (;;) {
        if (c->in_cap - c->in_len < READ_CHUNK) {
            size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK * 2;
            if (cap > AM_MCP_LINE_MAX + READ_CHUNK * 2)
                cap = AM_MCP_LINE_MAX + READ_CHUNK * 2;
            if (cap - c->in_len < READ_CHUNK) { /* cannot happen: lines are cut below */
                conn_close(p, i, "line too long");
                return;
            }
            uint8_t *n = realloc(c->in, cap);
            if (!n) {
                conn_close(p, i, "out of memory");
                return;
            }
            c->in = n;
            c->in_cap = cap;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, READ_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(p, i, n == 0 ? "eof" : "read error");
            return;
        }
        size_t start = 0, end = c->in_len + (size_t)n;
        for (size_t k = c->in_len; k < end; k++) {
            if (c->in[k] != '\n')
                continue;
            size_t len = k - start;
            if (len && c->in[start + len - 1] == '\r')
                len--;
            if (len > AM_MCP_LINE_MAX) {
                conn_close(p, i, "line too long");
                return;
            }
            if (len) {
                p->bytes_left -= (double)len;
                p->lines_left -= 1;
            }
            if (len && emit_line(p, c->id, c->in + start, len, 0) != 0) {
                conn_close(p, i, "stream to the appliance down");
                return;
            }
            start = k + 1;
        }
        memmove(c->in, c->in + start, end - start);
        c->in_len = end - start;
        if (c->in_len > AM_MCP_LINE_MAX) {
            am_log_warn("mcp", "line too long: connection dropped", "pod=%s max=%u", p->pod_id,
                        AM_MCP_LINE_MAX);
            conn_close(p, i, "line too long");
            return;
        }
    }
}

/* Write queued answers (caller holds r->mu); marks drop on error or after a close. */
static void do_write_locked(mconn *c) {
    while (c->oh && !c->drop) {
        outbuf *b = c->oh;
        ssize_t n = write(c->fd, b->data + b->off, b->len - b->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            c->drop = 1;
            return;
        }
        b->off += (size_t)n;
        if (b->off < b->len)
            continue;
        c->oh = b->next;
        if (!c->oh)
            c->ot = NULL;
        c->out_bytes -= b->len;
        if (b->close_after)
            c->drop = 1;
        free(b);
    }
}

static void *pod_thread(void *arg) {
    am_mcprelay_pod *p = arg;
    am_mcprelay *r = p->r;
    for (;;) {
        struct pollfd pf[2 + AM_MCP_CONNS_MAX];
        int idx[AM_MCP_CONNS_MAX];
        nfds_t n = 0;
        pf[n++] = (struct pollfd){p->wake, POLLIN, 0};
        pf[n++] = (struct pollfd){p->lfd, POLLIN, 0};
        /* Refill the send budget; while it is spent, read nothing (wake again in 50 ms). */
        uint64_t now = am_mono_ns() / 1000000;
        double dt = (double)(now - p->budget_ms) / 1000.0;
        p->budget_ms = now;
        p->bytes_left += dt * RATE_BYTES;
        p->lines_left += dt * RATE_LINES;
        if (p->bytes_left > RATE_BYTES)
            p->bytes_left = RATE_BYTES;
        if (p->lines_left > RATE_LINES)
            p->lines_left = RATE_LINES;
        int throttled = p->bytes_left <= 0 || p->lines_left <= 0;
        pthread_mutex_lock(&r->mu);
        int stop = p->stop;
        int ndrop = 0, drops[AM_MCP_CONNS_MAX];
        for (int i = 0; i < AM_MCP_CONNS_MAX; i++) {
            mconn *c = &p->c[i];
            if (c->fd < 0)
                continue;
            do_write_locked(c);
            if (c->drop) {
                drops[ndrop++] = i;
                continue;
            }
            idx[n - 2] = i;
            /* throttled and nothing to write: not polled at all (a hang-up would spin) */
            pf[n++] = (struct pollfd){throttled && !c->oh ? -1 : c->fd,
                                      (short)((throttled ? 0 : POLLIN) | (c->oh ? POLLOUT : 0)), 0};
        }
        pthread_mutex_unlock(&r->mu);
        for (int k = 0; k < ndrop; k++)
            conn_close(p, drops[k], "answered and closed, or not reading its answers");
        if (stop)
            break;
        if (ndrop)
            continue; /* the poll set changed */
        if (poll(pf, n, throttled ? 50 : -1) < 0) {
            if (errno == EINTR)
                continue;
            am_log_error("mcp", "poll failed: the pod's MCP socket stops", "pod=%s error=\"%s\"",
                         p->pod_id, strerror(errno));
            break;
        }
        if (pf[0].revents & POLLIN) {
            uint64_t v;
            ssize_t rr = read(p->wake, &v, sizeof v);
            (void)rr;
        }
        if (pf[1].revents & POLLIN)
            do_accept(p);
        for (nfds_t k = 2; k < n; k++) {
            int i = idx[k - 2];
            if (!throttled && (pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
                do_read(p, i); /* EOF and errors surface as read() results */
        }
    }
    for (int i = 0; i < AM_MCP_CONNS_MAX; i++)
        conn_close(p, i, "pod ended");
    return NULL;
}

int am_mcprelay_pod_start(am_mcprelay *r, const char *pod_id, int listen_fd,
                          am_mcprelay_pod **out) {
    *out = NULL;
    am_mcprelay_pod *p = calloc(1, sizeof *p);
    if (!p) {
        close(listen_fd);
        return am_err_set(AM_ENOMEM, "mcp relay: out of memory");
    }
    p->r = r;
    p->lfd = listen_fd;
    snprintf(p->pod_id, sizeof p->pod_id, "%s", pod_id);
    for (int i = 0; i < AM_MCP_CONNS_MAX; i++)
        p->c[i].fd = -1;
    p->bytes_left = RATE_BYTES;
    p->lines_left = RATE_LINES;
    p->budget_ms = am_mono_ns() / 1000000;
    p->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int fl = fcntl(listen_fd, F_GETFL);
    if (p->wake < 0 || fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) != 0) {
        int e = errno;
        if (p->wake >= 0)
            close(p->wake);
        close(listen_fd);
        free(p);
        return am_err_set(AM_EIO, "mcp relay: eventfd / O_NONBLOCK for pod %s: %s", pod_id,
                          strerror(e));
    }
    pthread_mutex_lock(&r->mu);
    p->next = r->pods;
    r->pods = p;
    pthread_mutex_unlock(&r->mu);
    int e = pthread_create(&p->th, NULL, pod_thread, p);
    if (e) {
        pthread_mutex_lock(&r->mu);
        for (am_mcprelay_pod **pp = &r->pods; *pp; pp = &(*pp)->next)
            if (*pp == p) {
                *pp = p->next;
                break;
            }
        pthread_mutex_unlock(&r->mu);
        close(p->wake);
        close(listen_fd);
        free(p);
        return am_err_set(AM_EIO, "mcp relay: thread for pod %s: %s", pod_id, strerror(e));
    }
    *out = p;
    return 0;
}

void am_mcprelay_pod_stop(am_mcprelay_pod *p) {
    if (!p)
        return;
    am_mcprelay *r = p->r;
    pthread_mutex_lock(&r->mu);
    p->stop = 1;
    pthread_mutex_unlock(&r->mu);
    wake(p->wake);
    pthread_join(p->th, NULL);
    pthread_mutex_lock(&r->mu);
    for (am_mcprelay_pod **pp = &r->pods; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    pthread_mutex_unlock(&r->mu);
    close(p->lfd);
    close(p->wake);
    free(p);
}

void am_mcprelay_on_response(am_mcprelay *r, const Airmesh__V1__McpResponse *m) {
    if (!r || !m || !m->pod_id)
        return;
    pthread_mutex_lock(&r->mu);
    am_mcprelay_pod *p = r->pods;
    while (p && strcmp(p->pod_id, m->pod_id) != 0)
        p = p->next;
    mconn *c = NULL;
    for (int i = 0; p && i < AM_MCP_CONNS_MAX && !c; i++)
        if (p->c[i].fd >= 0 && p->c[i].id == m->conn_id)
            c = &p->c[i];
    if (c && !c->drop && m->message.len <= AM_MCP_LINE_MAX) {
        outbuf *b = malloc(sizeof *b + m->message.len + 1);
        if (!b || c->out_bytes + m->message.len + 1 > AM_MCPRELAY_OUT_MAX) {
            free(b);
            c->drop = 1; /* the pod does not read its answers: end it rather than grow */
        } else {
            b->next = NULL;
            b->off = 0;
            b->len = m->message.len ? m->message.len + 1 : 0;
            b->close_after = m->close;
            if (m->message.len) {
                memcpy(b->data, m->message.data, m->message.len);
                b->data[m->message.len] = '\n';
            }
            if (c->ot)
                c->ot->next = b;
            else
                c->oh = b;
            c->ot = b;
            c->out_bytes += b->len;
        }
    } else if (c && m->close) {
        c->drop = 1;
    }
    if (c)
        wake(p->wake);
    pthread_mutex_unlock(&r->mu);
}

void am_mcprelay_link_down(am_mcprelay *r) {
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    for (am_mcprelay_pod *p = r->pods; p; p = p->next) {
        int any = 0;
        for (int i = 0; i < AM_MCP_CONNS_MAX; i++)
            if (p->c[i].fd >= 0) {
                p->c[i].drop = 1;
                any = 1;
            }
        if (any)
            wake(p->wake);
    }
    pthread_mutex_unlock(&r->mu);
}

size_t am_mcprelay_conns(am_mcprelay *r) {
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (am_mcprelay_pod *p = r->pods; p; p = p->next)
        for (int i = 0; i < AM_MCP_CONNS_MAX; i++)
            n += p->c[i].fd >= 0;
    pthread_mutex_unlock(&r->mu);
    return n;
}
