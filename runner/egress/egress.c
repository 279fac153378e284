/*
 * runner/egress/egress.c — the egress registry: requests waiting for the appliance's
 * GatewayResponse messages (dispatched here from the session thread by request_id), the pods'
 * listeners (one accept thread each) and their connection threads (one per connection), and
 * the helpers gateway.c and proxy.c share (waiting with the pod's stop, reading a request head,
 * EgressEvent messages).
 *
 * Why threads: a pod has a handful of connections, each a simple blocking story (read a
 * request, forward, write the answer); the session thread only queues and wakes (eventfd), so a
 * slow pod client never stalls the stream. A pod's stop closes its stop pipe's write end: every
 * poller of that pod sees POLLHUP and ends; am_egress_pod_stop waits for all of them.
 * Ownership and threads: see egress.h and internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "runner/egress/internal.h"

int am_egress_new(am_egress_emit_fn emit, void *ud, am_egress **out) {
    am_egress *e = calloc(1, sizeof *e);
    if (!e)
        return am_err_set(AM_ENOMEM, "egress: out of memory");
    e->emit = emit;
    e->ud = ud;
    e->next_id = 1;
    e->answer_timeout_ms = 120000;
    pthread_mutex_init(&e->mu, NULL);
    *out = e;
    return 0;
}

void am_egress_free(am_egress *e) {
    if (!e)
        return;
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void am_egress_set_answer_timeout(am_egress *e, uint32_t ms) {
    e->answer_timeout_ms = ms ? ms : 120000;
}

/* ---- requests waiting for answers ---- */

static void wake(int fd) {
    uint64_t one = 1;
    ssize_t w = write(fd, &one, sizeof one);
    (void)w;
}

eg_req *eg_req_new(am_egress *e, const char *pod_id) {
    eg_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->wake_fd < 0) {
        free(r);
        return NULL;
    }
    r->pod_id = pod_id;
    pthread_mutex_lock(&e->mu);
    r->id = e->next_id++;
    r->next = e->reqs;
    e->reqs = r;
    pthread_mutex_unlock(&e->mu);
    return r;
}

void eg_req_free(am_egress *e, eg_req *r) {
    if (!r)
        return;
    pthread_mutex_lock(&e->mu);
    for (eg_req **pp = &e->reqs; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    pthread_mutex_unlock(&e->mu);
    while (r->head) {
        eg_resp *n = r->head->next;
        protobuf_c_message_free_unpacked(&r->head->msg->base, NULL);
        free(r->head);
        r->head = n;
    }
    close(r->wake_fd);
    free(r);
}

Airmesh__V1__GatewayResponse *eg_req_pop(am_egress *e, eg_req *r, int *link_down, int *overflow) {
    uint64_t v;
    ssize_t n = read(r->wake_fd, &v, sizeof v); /* drain; re-armed by the next wake */
    (void)n;
    pthread_mutex_lock(&e->mu);
    Airmesh__V1__GatewayResponse *m = NULL;
    eg_resp *h = r->head;
    if (h) {
        r->head = h->next;
        if (!r->head)
            r->tail = NULL;
        m = h->msg;
        r->queued_bytes -= m->data.len;
        free(h);
        if (r->head) /* more to come: keep the eventfd readable */
            wake(r->wake_fd);
    }
    *link_down = r->link_down;
    *overflow = r->overflow;
    pthread_mutex_unlock(&e->mu);
    return m;
}

/* A deep copy through the wire form (the message's own allocator, freed by
 * protobuf_c_message_free_unpacked). */
static Airmesh__V1__GatewayResponse *copy_response(const Airmesh__V1__GatewayResponse *r) {
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(&r->base, buf);
    Airmesh__V1__GatewayResponse *c = airmesh__v1__gateway_response__unpack(NULL, len, buf);
    free(buf);
    return c;
}

void am_egress_on_response(am_egress *e, const Airmesh__V1__GatewayResponse *m) {
    if (!e || !m || !m->pod_id)
        return;
    pthread_mutex_lock(&e->mu);
    eg_req *r = e->reqs;
    while (r && !(r->id == m->request_id && strcmp(r->pod_id, m->pod_id) == 0))
        r = r->next;
    if (!r) {
        pthread_mutex_unlock(&e->mu);
        am_log_debug("egress", "gateway response for no waiting request dropped",
                     "pod=%.20s request=%llu", m->pod_id, (unsigned long long)m->request_id);
        return;
    }
    if (r->queued_bytes + m->data.len > EG_QUEUE_MAX) {
        r->overflow = 1; /* the pod's client does not read: its connection is closed */
        wake(r->wake_fd);
        pthread_mutex_unlock(&e->mu);
        return;
    }
    eg_resp *q = calloc(1, sizeof *q);
    if (q && !(q->msg = copy_response(m))) {
        free(q);
        q = NULL;
    }
    if (!q) {
        r->overflow = 1;
    } else {
        if (r->tail)
            r->tail->next = q;
        else
            r->head = q;
        r->tail = q;
        r->queued_bytes += m->data.len;
    }
    wake(r->wake_fd);
    pthread_mutex_unlock(&e->mu);
}

void am_egress_link_down(am_egress *e) {
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    for (eg_req *r = e->reqs; r; r = r->next) {
        r->link_down = 1;
        wake(r->wake_fd);
    }
    pthread_mutex_unlock(&e->mu);
}

/* ---- helpers for the connection threads ---- */

int eg_wait(am_egress_pod *p, int fd, int timeout_ms) {
    for (;;) {
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {p->stop_rd, POLLIN, 0}};
        int n = poll(pf, 2, timeout_ms);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || pf[1].revents)
            return -1;
        return n == 0 ? 0 : 1;
    }
}

int eg_write_all(int fd, const void *buf, size_t len) {
    const char *b = buf;
    while (len) {
        ssize_t w = send(fd, b, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        len -= (size_t)w;
    }
    return 0;
}

int eg_read_head(am_egress_pod *p, int fd, char *in, size_t cap, size_t *have, am_h1_req *r,
                 char **head_copy, int *status, const char **why, int idle_ms) {
    *head_copy = NULL;
    for (;;) {
        if (*have) {
            /* Parse a copy: the parser writes NULs, and the bytes after the head stay. */
            char *cp = malloc(*have + 1);
            if (!cp) {
                *status = 503;
                *why = "out of memory";
                return -1;
            }
            memcpy(cp, in, *have);
            cp[*have] = '\0';
            int n = am_h1_parse_head(cp, *have, r, status, why);
            if (n > 0) {
                *head_copy = cp;
                memmove(in, in + n, *have - (size_t)n);
                *have -= (size_t)n;
                return n;
            }
            free(cp);
            if (n < 0)
                return -1;
        }
        if (*have >= cap) {
            *status = 431;
            *why = "request head too large";
            return -1;
        }
        int w = eg_wait(p, fd, *have ? 30000 : idle_ms);
        if (w < 0)
            return -2;
        if (w == 0) {
            if (!*have)
                return 0; /* idle keep-alive connection: close it */
            *status = 408;
            *why = "the request head did not arrive in time";
            return -1;
        }
        ssize_t n = recv(fd, in + *have, cap - *have, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0; /* the client went away */
        *have += (size_t)n;
    }
}

void eg_event(am_egress_pod *p, const char *kind, const char *host, uint32_t port,
              const char *reason, uint64_t up, uint64_t down, uint64_t duration_ms) {
    Airmesh__V1__EgressEvent ev = AIRMESH__V1__EGRESS_EVENT__INIT;
    ev.pod_id = p->pod_id;
    ev.kind = (char *)kind;
    ev.host = (char *)(host ? host : "");
    ev.port = port;
    ev.reason = (char *)(reason ? reason : "");
    ev.bytes_up = up;
    ev.bytes_down = down;
    ev.duration_ms = duration_ms;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_EGRESS;
    m.egress = &ev;
    if (p->e->emit(p->e->ud, &m) != 0)
        am_log_warn("egress", "egress event not delivered (stream down)",
                    "pod=%s kind=%s host=%.100s port=%u", p->pod_id, kind, ev.host, port);
    am_log_info("egress", "decision", "pod=%s kind=%s host=%.100s port=%u reason=\"%.200s\"",
                p->pod_id, kind, ev.host, port, ev.reason);
}

/* ---- pods: listeners and connection threads ---- */

static void *conn_main(void *arg) {
    eg_conn *c = arg;
    am_egress_pod *p = c->pod;
    if (c->kind == EG_GATEWAY)
        eg_gateway_serve(c);
    else
        eg_proxy_serve(c);
    pthread_mutex_lock(&p->mu);
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    p->n_conns--;
    close(c->fd);
    free(c);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

typedef struct {
    am_egress_pod *p;
    int kind;
} accept_arg;

static void accept_loop(am_egress_pod *p, int lfd, int kind) {
    for (;;) {
        int w = eg_wait(p, lfd, -1);
        if (w < 0)
            return;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                continue;
            am_log_warn("egress", "accept failed", "pod=%s error=\"%s\"", p->pod_id,
                        strerror(errno));
            usleep(100000);
            continue;
        }
        /* Answers go out in pieces (head, each chunk, the end): without this, Nagle holds each
         * small write until the pod's client acknowledges the last (its delayed ACK: ~40 ms). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        pthread_mutex_lock(&p->mu);
        eg_conn *c = NULL;
        if (!p->stopping && p->n_conns < EG_MAX_CONNS)
            c = calloc(1, sizeof *c);
        if (!c) {
            pthread_mutex_unlock(&p->mu);
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
            eg_write_all(fd, busy, sizeof busy - 1);
            close(fd);
            continue;
        }
        c->pod = p;
        c->fd = fd;
        c->up_fd = -1;
        c->kind = kind;
        c->next = p->conns;
        if (p->conns)
            p->conns->prev = c;
        p->conns = c;
        p->n_conns++;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        int rc = pthread_create(&t, &at, conn_main, c);
        pthread_attr_destroy(&at);
        if (rc != 0) {
            p->conns = c->next;
            if (c->next)
                c->next->prev = NULL;
            p->n_conns--;
            free(c);
            close(fd);
        }
        pthread_mutex_unlock(&p->mu);
    }
}

static void *gw_accept_main(void *arg) {
    am_egress_pod *p = arg;
    accept_loop(p, p->gw_fd, EG_GATEWAY);
    return NULL;
}

static void *proxy_accept_main(void *arg) {
    am_egress_pod *p = arg;
    accept_loop(p, p->proxy_fd, EG_PROXY);
    return NULL;
}

int am_egress_pod_start(am_egress *e, const char *pod_id, int gateway_fd, int proxy_fd,
                        char *const *allow, size_t n_allow, am_egress_pod **out) {
    *out = NULL;
    am_egress_pod *p = calloc(1, sizeof *p);
    int pipefd[2] = {-1, -1};
    if (!p || pipe2(pipefd, O_CLOEXEC) != 0) {
        free(p);
        if (gateway_fd >= 0)
            close(gateway_fd);
        if (proxy_fd >= 0)
            close(proxy_fd);
        return am_err_set(AM_EIO, "egress: pod %s: cannot set up", pod_id);
    }
    p->e = e;
    snprintf(p->pod_id, sizeof p->pod_id, "%s", pod_id);
    p->gw_fd = gateway_fd;
    p->proxy_fd = proxy_fd;
    p->stop_rd = pipefd[0];
    p->stop_wr = pipefd[1];
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    if (n_allow) {
        p->allow = calloc(n_allow, sizeof *p->allow);
        for (size_t i = 0; p->allow && i < n_allow; i++)
            if ((p->allow[i] = strdup(allow[i])))
                p->n_allow++;
    }
    /* Non-blocking listeners: a connection the pod aborted between poll and accept must not
     * block the accept thread (and with it the pod's stop). */
    if (p->gw_fd >= 0)
        fcntl(p->gw_fd, F_SETFL, fcntl(p->gw_fd, F_GETFL) | O_NONBLOCK);
    if (p->proxy_fd >= 0)
        fcntl(p->proxy_fd, F_SETFL, fcntl(p->proxy_fd, F_GETFL) | O_NONBLOCK);
    int rc = 0;
    if (p->gw_fd >= 0 && pthread_create(&p->gw_thread, NULL, gw_accept_main, p) == 0)
        p->have_gw_thread = 1;
    else if (p->gw_fd >= 0)
        rc = -1;
    if (rc == 0 && p->proxy_fd >= 0) {
        if (pthread_create(&p->proxy_thread, NULL, proxy_accept_main, p) == 0)
            p->have_proxy_thread = 1;
        else
            rc = -1;
    }
    if (rc) {
        am_egress_pod_stop(p);
        return am_err_set(AM_EIO, "egress: pod %s: cannot start the listener threads", pod_id);
    }
    am_log_info("egress", "serving the pod's listeners", "pod=%s gateway=%s proxy=%s allow=%zu",
                pod_id, gateway_fd >= 0 ? "127.0.0.1:4000" : "-",
                proxy_fd >= 0 ? "127.0.0.1:3128" : "-", p->n_allow);
    *out = p;
    return 0;
}

void am_egress_pod_stop(am_egress_pod *p) {
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_mutex_unlock(&p->mu);
    close(p->stop_wr); /* every poller of this pod wakes with POLLHUP */
    if (p->have_gw_thread)
        pthread_join(p->gw_thread, NULL);
    if (p->have_proxy_thread)
        pthread_join(p->proxy_thread, NULL);
    if (p->gw_fd >= 0)
        close(p->gw_fd);
    if (p->proxy_fd >= 0)
        close(p->proxy_fd);
    pthread_mutex_lock(&p->mu);
    for (eg_conn *c = p->conns; c; c = c->next) {
        shutdown(c->fd, SHUT_RDWR); /* unblocks a thread in a blocking write */
        if (c->up_fd >= 0)
            shutdown(c->up_fd, SHUT_RDWR);
    }
    while (p->n_conns)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
    close(p->stop_rd);
    for (size_t i = 0; i < p->n_allow; i++)
        free(p->allow[i]);
    free(p->allow);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
