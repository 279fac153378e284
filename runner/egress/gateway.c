/*
 * runner/egress/gateway.c — one connection of a pod to its model gateway listener
 * (127.0.0.1:4000 in the pod's netns): read each HTTP/1.1 request whole (strict parser,
 * http1.h; Content-Length or chunked body up to AM_EGRESS_MAX_BODY), send it to the appliance
 * as GatewayRequest messages (AM_EGRESS_CHUNK body bytes each, `more` on all but the last),
 * then write the GatewayResponse messages to the pod's client as they come: status line,
 * headers minus hop-by-hop ones, body in chunked transfer encoding (so SSE streams flow), the
 * final chunk on `last`. Keep-alive: the next request on the same connection after that.
 *
 * Errors the runner answers itself (JSON {"error": {"code", "message"}}): 400/413/414/431/
 * 501/505 for what the parser refuses, 502 when the stream to the appliance is down or the
 * appliance does not answer within the answer timeout. The pod's client going away while a
 * request is in flight sends `cancel`.
 * Threads: the connection's own (egress.c starts it); it blocks only itself.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/egress.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/egress/internal.h"

#define IN_CAP (AM_H1_MAX_HEAD + (64u << 10))
#define IDLE_MS 120000     /* a keep-alive connection with no next request is closed */
#define BODY_WAIT_MS 60000 /* between body bytes */

static const char *reason_phrase(unsigned st) {
    switch (st) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

/* The runner's own answer: a JSON error (msg is one of our constant texts: no escaping). */
static void send_error(int fd, int status, const char *code, const char *msg) {
    char body[512], head[256];
    int bn = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}\n", code,
                      msg);
    if (bn < 0 || (size_t)bn >= sizeof body)
        bn = snprintf(body, sizeof body, "{\"error\":{\"code\":\"%s\"}}\n", code);
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n",
                      status, reason_phrase((unsigned)status), bn);
    if (hn > 0 && (size_t)hn < sizeof head && eg_write_all(fd, head, (size_t)hn) == 0)
        eg_write_all(fd, body, (size_t)bn);
}

static const char *error_code(int status) {
    switch (status) {
    case 408:
        return "request_timeout";
    case 413:
        return "request_too_large";
    case 414:
    case 431:
        return "request_head_too_large";
    case 417:
        return "expectation_failed";
    case 501:
        return "not_implemented";
    case 505:
        return "http_version_not_supported";
    case 503:
        return "unavailable";
    default:
        return "bad_request";
    }
}

/* Read the body into *body (malloc'd, *blen bytes); in[0..*have) holds what followed the head.
 * 0, -1 with *status and *why, -2 (client gone or pod stopping). */
static int read_body(eg_conn *c, const am_h1_req *r, char *in, size_t *have, uint8_t **body,
                     size_t *blen, int *status, const char **why) {
    am_egress_pod *p = c->pod;
    *body = NULL;
    *blen = 0;
    if (!r->chunked && !r->has_length)
        return 0;
    if (r->has_length && r->length > AM_EGRESS_MAX_BODY) {
        *status = 413;
        *why = "request body larger than the gateway accepts (32 MiB)";
        return -1;
    }
    int continued = 0;
    if (r->has_length) {
        size_t want = (size_t)r->length;
        *body = malloc(want ? want : 1);
        if (!*body) {
            *status = 503;
            *why = "out of memory";
            return -1;
        }
        size_t n = *have < want ? *have : want;
        memcpy(*body, in, n);
        memmove(in, in + n, *have - n);
        *have -= n;
        *blen = n;
        while (*blen < want) {
            if (r->expect_continue && !continued) {
                static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
                if (eg_write_all(c->fd, k100, sizeof k100 - 1) != 0)
                    return -2;
                continued = 1;
            }
            int w = eg_wait(p, c->fd, BODY_WAIT_MS);
            if (w < 0)
                return -2;
            if (w == 0) {
                *status = 408;
                *why = "the request body did not arrive in time";
                return -1;
            }
            ssize_t k = recv(c->fd, *body + *blen, want - *blen, 0);
            if (k < 0 && errno == EINTR)
                continue;
            if (k <= 0)
                return -2;
            *blen += (size_t)k;
        }
        return 0;
    }
    /* chunked */
    am_h1_chunked ch;
    memset(&ch, 0, sizeof ch);
    size_t cap = 64u << 10;
    *body = malloc(cap);
    if (!*body) {
        *status = 503;
        *why = "out of memory";
        return -1;
    }
    for (;;) {
        size_t used = 0;
        int d = am_h1_chunked_feed(&ch, (const uint8_t *)in, *have, &used, *body, cap, blen, why);
        memmove(in, in + used, *have - used);
        *have -= used;
        if (d < 0) {
            *status = 400;
            return -1;
        }
        if (d == 1)
            return 0;
        if (*blen == cap && *have) { /* out of room with input left: grow, up to the limit */
            if (cap >= AM_EGRESS_MAX_BODY) {
                *status = 413;
                *why = "request body larger than the gateway accepts (32 MiB)";
                return -1;
            }
            size_t nc = cap * 2 > AM_EGRESS_MAX_BODY ? AM_EGRESS_MAX_BODY : cap * 2;
            uint8_t *nb = realloc(*body, nc);
            if (!nb) {
                *status = 503;
                *why = "out of memory";
                return -1;
            }
            *body = nb;
            cap = nc;
            continue;
        }
        if (r->expect_continue && !continued) {
            static const char k100[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (eg_write_all(c->fd, k100, sizeof k100 - 1) != 0)
                return -2;
            continued = 1;
        }
        if (*have == IN_CAP) { /* cannot happen: feed consumes while there is room */
            *status = 400;
            *why = "chunked body framing";
            return -1;
        }
        int w = eg_wait(p, c->fd, BODY_WAIT_MS);
        if (w < 0)
            return -2;
        if (w == 0) {
            *status = 408;
            *why = "the request body did not arrive in time";
            return -1;
        }
        ssize_t k = recv(c->fd, in + *have, IN_CAP - *have, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -2;
        *have += (size_t)k;
    }
}

static int send_cancel(am_egress_pod *p, uint64_t id) {
    Airmesh__V1__GatewayRequest g = AIRMESH__V1__GATEWAY_REQUEST__INIT;
    g.pod_id = p->pod_id;
    g.request_id = id;
    g.cancel = 1;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_GATEWAY_REQUEST;
    m.gateway_request = &g;
    return p->e->emit(p->e->ud, &m);
}

/* The request as GatewayRequest messages. 0, or -1 when the stream dropped one. */
static int forward(am_egress_pod *p, uint64_t id, const am_h1_req *r, const uint8_t *body,
                   size_t blen) {
    Airmesh__V1__HttpHeader hs[AM_H1_MAX_HEADERS], *hp[AM_H1_MAX_HEADERS];
    size_t nh = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (am_h1_hop_by_hop(r->headers[i].name))
            continue;
        airmesh__v1__http_header__init(&hs[nh]);
        hs[nh].name = (char *)r->headers[i].name;
        hs[nh].value = (char *)r->headers[i].value;
        hp[nh] = &hs[nh];
        nh++;
    }
    size_t off = 0;
    int first = 1;
    do {
        size_t n = blen - off < AM_EGRESS_CHUNK ? blen - off : AM_EGRESS_CHUNK;
        Airmesh__V1__GatewayRequest g = AIRMESH__V1__GATEWAY_REQUEST__INIT;
        g.pod_id = p->pod_id;
        g.request_id = id;
        if (first) {
            g.method = (char *)r->method;
            g.path = (char *)r->target;
            g.headers = hp;
            g.n_headers = nh;
        }
        g.body.data = (uint8_t *)body + off;
        g.body.len = n;
        off += n;
        g.more = off < blen;
        Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
        m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_GATEWAY_REQUEST;
        m.gateway_request = &g;
        if (p->e->emit(p->e->ud, &m) != 0)
            return -1;
        first = 0;
    } while (off < blen);
    return 0;
}

/* A response header the pod may see: not hop-by-hop, no CR/LF, a token name. */
static int header_ok(const Airmesh__V1__HttpHeader *h) {
    if (!h->name || !h->value || !*h->name || am_h1_hop_by_hop(h->name))
        return 0;
    for (const char *q = h->name; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == ':' || (unsigned char)*q >= 0x7f)
            return 0;
    for (const char *q = h->value; *q; q++)
        if (*q == '\r' || *q == '\n' || *q == '\0')
            return 0;
    return 1;
}

/* Status line and headers. framing: 1 chunked, 0 close-delimited (HTTP/1.0), -1 no body. */
static int write_head(int fd, const Airmesh__V1__GatewayResponse *m, int framing, int keep) {
    size_t cap = 1024, len = 0;
    for (size_t i = 0; i < m->n_headers; i++)
        if (m->headers[i]->name && m->headers[i]->value)
            cap += strlen(m->headers[i]->name) + strlen(m->headers[i]->value) + 4;
    char *b = malloc(cap);
    if (!b)
        return -1;
    unsigned st = m->status >= 100 && m->status <= 599 ? m->status : 502;
    len += (size_t)snprintf(b, cap, "HTTP/1.1 %u %s\r\n", st, reason_phrase(st));
    for (size_t i = 0; i < m->n_headers; i++) {
        const Airmesh__V1__HttpHeader *h = m->headers[i];
        if (!header_ok(h))
            continue;
        len += (size_t)snprintf(b + len, cap - len, "%s: %s\r\n", h->name, h->value);
    }
    len += (size_t)snprintf(b + len, cap - len, "%s%s\r\n",
                            framing == 1    ? "Transfer-Encoding: chunked\r\n"
                            : framing == -1 ? "Content-Length: 0\r\n"
                                            : "",
                            keep ? "" : "Connection: close\r\n");
    int rc = len < cap ? eg_write_all(fd, b, len) : -1;
    free(b);
    return rc;
}

static int write_chunk(int fd, const uint8_t *d, size_t n, int chunked) {
    if (!n)
        return 0;
    if (!chunked)
        return eg_write_all(fd, d, n);
    char h[24];
    int hn = snprintf(h, sizeof h, "%zx\r\n", n);
    if (eg_write_all(fd, h, (size_t)hn) || eg_write_all(fd, d, n) || eg_write_all(fd, "\r\n", 2))
        return -1;
    return 0;
}

enum { ANS_DONE = 0, ANS_CLOSE = 1 };

/* Wait for the answer to request q and write it to the pod's client. ANS_DONE: complete
 * (the connection may serve the next request); ANS_CLOSE: end the connection. */
static int relay_answer(eg_conn *c, eg_req *q, const am_h1_req *r, int *keep) {
    am_egress_pod *p = c->pod;
    am_egress *e = p->e;
    int started = 0, framing = 1;
    uint64_t deadline = am_mono_ns() / 1000000 + e->answer_timeout_ms;
    for (;;) {
        int link_down = 0, overflow = 0;
        Airmesh__V1__GatewayResponse *m = eg_req_pop(e, q, &link_down, &overflow);
        if (m) {
            int rc = 0;
            if (!started) {
                started = 1;
                unsigned st = m->status;
                int no_body = strcasecmp(r->method, "HEAD") == 0 || st == 204 || st == 304 ||
                              (st >= 100 && st < 200);
                framing = no_body ? -1 : r->minor == 1 ? 1 : 0;
                if (framing == 0)
                    *keep = 0; /* HTTP/1.0: the end of the body is the end of the connection */
                rc = write_head(c->fd, m, framing, *keep);
            }
            if (rc == 0 && framing >= 0)
                rc = write_chunk(c->fd, m->data.data, m->data.len, framing == 1);
            int last = m->last;
            protobuf_c_message_free_unpacked(&m->base, NULL);
            if (rc != 0) {
                send_cancel(p, q->id); /* the pod's client went away */
                return ANS_CLOSE;
            }
            if (last) {
                if (framing == 1 && eg_write_all(c->fd, "0\r\n\r\n", 5) != 0)
                    return ANS_CLOSE;
                return *keep ? ANS_DONE : ANS_CLOSE;
            }
            continue;
        }
        if (link_down || overflow) {
            if (overflow)
                send_cancel(p, q->id);
            if (!started)
                send_error(c->fd, 502, "gateway_unavailable",
                           overflow ? "the pod's client did not read the answer"
                                    : "the runner's link to the appliance went down");
            return ANS_CLOSE; /* mid-response: no final chunk, so the client sees the cut */
        }
        uint64_t now = am_mono_ns() / 1000000;
        if (!started && now >= deadline) {
            send_cancel(p, q->id);
            send_error(c->fd, 502, "gateway_timeout", "the appliance did not answer in time");
            return ANS_CLOSE;
        }
        struct pollfd pf[3] = {
            {q->wake_fd, POLLIN, 0}, {c->fd, POLLRDHUP, 0}, {p->stop_rd, POLLIN, 0}};
        int to = started ? -1 : (int)(deadline - now);
        int n = poll(pf, 3, to);
        if (n < 0 && errno != EINTR)
            return ANS_CLOSE;
        if (pf[2].revents) {
            send_cancel(p, q->id);
            return ANS_CLOSE;
        }
        if (pf[1].revents & (POLLRDHUP | POLLHUP | POLLERR)) {
            send_cancel(p, q->id);
            am_log_debug("egress", "pod client left; request cancelled", "pod=%s request=%llu",
                         p->pod_id, (unsigned long long)q->id);
            return ANS_CLOSE;
        }
    }
}

void eg_gateway_serve(eg_conn *c) {
    am_egress_pod *p = c->pod;
    char *in = malloc(IN_CAP);
    size_t have = 0;
    if (!in)
        return;
    for (;;) {
        am_h1_req r;
        char *head = NULL;
        int status = 0;
        const char *why = "";
        int n = eg_read_head(p, c->fd, in, IN_CAP, &have, &r, &head, &status, &why, IDLE_MS);
        if (n == 0 || n == -2)
            break;
        if (n < 0) {
            send_error(c->fd, status, error_code(status), why);
            break;
        }
        if (r.target[0] != '/') {
            send_error(c->fd, strcmp(r.method, "CONNECT") == 0 ? 405 : 400, "bad_request",
                       "the model gateway takes origin-form paths (POST /v1/...); it is not a "
                       "proxy");
            free(head);
            break;
        }
        uint8_t *body = NULL;
        size_t blen = 0;
        int brc = read_body(c, &r, in, &have, &body, &blen, &status, &why);
        if (brc != 0) {
            if (brc == -1)
                send_error(c->fd, status, error_code(status), why);
            free(body);
            free(head);
            break;
        }
        eg_req *q = eg_req_new(p->e, p->pod_id);
        int keep = r.keep_alive, verdict = ANS_CLOSE;
        if (!q) {
            send_error(c->fd, 503, "unavailable", "out of memory");
        } else if (forward(p, q->id, &r, body, blen) != 0) {
            send_cancel(p, q->id);
            send_error(c->fd, 502, "gateway_unavailable",
                       "the runner's link to the appliance is down");
        } else {
            free(body);
            body = NULL;
            verdict = relay_answer(c, q, &r, &keep);
        }
        eg_req_free(p->e, q);
        free(body);
        free(head);
        if (verdict != ANS_DONE)
            break;
    }
    free(in);
}
