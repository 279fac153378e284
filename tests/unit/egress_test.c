/*
 * tests/unit/egress_test.c — runner/egress: the strict HTTP/1.1 parser (http1.c) and the gateway
 * forwarder (gateway.c) against a fake stream: a listener on the test's loopback stands for the
 * pod's, the emit callback records the GatewayRequest messages the appliance would get, and the
 * test answers with am_egress_on_response as the session thread would.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "airmesh/v1/runner.pb-c.h"
#include "runner/egress/egress.h"
#include "runner/egress/http1.h"

/* ---- the parser ---- */

static int parse(const char *text, am_h1_req *r, int *status) {
    static char buf[65536];
    size_t n = strlen(text);
    memcpy(buf, text, n);
    const char *why;
    return am_h1_parse_head(buf, n, r, status, &why);
}

static void test_parser_accepts_a_plain_request(void **state) {
    (void)state;
    am_h1_req r;
    int st;
    const char *req = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n"
                      "Content-Length: 12\r\nAuthorization: Bearer amk_x  \r\n\r\nbody";
    int n = parse(req, &r, &st);
    assert_int_equal(n, (int)(strlen(req) - 4));
    assert_string_equal(r.method, "POST");
    assert_string_equal(r.target, "/v1/chat/completions");
    assert_int_equal(r.minor, 1);
    assert_int_equal(r.has_length, 1);
    assert_int_equal(r.length, 12);
    assert_int_equal(r.keep_alive, 1);
    assert_string_equal(am_h1_header_get(&r, "authorization"), "Bearer amk_x");
    /* Incomplete: more bytes needed, no error. */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\n", &r, &st), 0);
    assert_int_equal(parse("GE", &r, &st), 0);
}

static void test_parser_refuses_ambiguous_or_junk_heads(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int status;
    } bad[] = {
        {"\x16\x03\x01\x02\x00\x01", 400},                     /* TLS */
        {"GET / HTTP/1.1\nHost: a\n\n", 400},                  /* bare LF */
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},           /* space before : */
        {"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", 400}, /* obs-fold */
        {"GET / HTTP/1.1\r\n\r\n", 400},                       /* no Host */
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},            /* version */
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
         400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
        {"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        am_h1_req r;
        int st = 0;
        int n = parse(bad[i].text, &r, &st);
        if (n != -1 || st != bad[i].status)
            fail_msg("case %zu: got %d status %d, want -1 status %d", i, n, st, bad[i].status);
    }
    /* Too many headers and too large heads have their own statuses. */
    static char big[AM_H1_MAX_HEAD + 100];
    size_t off = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < AM_H1_MAX_HEADERS + 1; i++)
        off += (size_t)snprintf(big + off, sizeof big - off, "X-%d: v\r\n", i);
    snprintf(big + off, sizeof big - off, "\r\n");
    am_h1_req r;
    int st = 0;
    assert_int_equal(parse(big, &r, &st), -1);
    assert_int_equal(st, 431);
    memset(big, 'a', sizeof big - 1);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = '\0';
    assert_int_equal(parse(big, &r, &st), -1);
    assert_int_equal(st, 414);
}

static void test_chunked_body_decodes_byte_by_byte(void **state) {
    (void)state;
    const char *body = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    am_h1_chunked c;
    memset(&c, 0, sizeof c);
    uint8_t out[64];
    size_t olen = 0, total = 0;
    const char *why;
    int rc = 0;
    for (size_t i = 0; body[i] && rc == 0; i++) {
        size_t used = 0;
        rc = am_h1_chunked_feed(&c, (const uint8_t *)body + i, 1, &used, out, sizeof out, &olen,
                                &why);
        total += used;
    }
    assert_int_equal(rc, 1);
    assert_int_equal(olen, 11);
    assert_memory_equal(out, "hello world", 11);
    assert_int_equal(total, strlen(body) - 4); /* "NEXT" is the next request's */
    static const char *const bad[] = {"x\r\n", "5\r\nhelloXX", "5\nhello\r\n", "\r\n",
                                      "1234567890abcdef0\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&c, 0, sizeof c);
        size_t used;
        olen = 0;
        assert_int_equal(am_h1_chunked_feed(&c, (const uint8_t *)bad[i], strlen(bad[i]), &used, out,
                                            sizeof out, &olen, &why),
                         -1);
    }
}

static void test_authority_form(void **state) {
    (void)state;
    char host[256];
    uint16_t port;
    assert_int_equal(am_h1_authority("git.lan:443", host, sizeof host, &port), 0);
    assert_string_equal(host, "git.lan");
    assert_int_equal(port, 443);
    assert_int_equal(am_h1_authority("[::1]:8080", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    static const char *const bad[] = {"git.lan", "git.lan:0", "git.lan:65536", ":80",
                                      "a/b:80",  "[::1]80",   "x:80x",         "x:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(am_h1_authority(bad[i], host, sizeof host, &port), -1);
}

/* ---- the gateway forwarder against a fake stream ---- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Airmesh__V1__GatewayRequest *q[256];
    size_t n;
    Airmesh__V1__EgressEvent *ev[64];
    size_t n_ev;
    int fail; /* emit answers -1 (the stream is down) */
} fake_stream;

static int fake_emit(void *ud, Airmesh__V1__RunnerMessage *m) {
    fake_stream *f = ud;
    pthread_mutex_lock(&f->mu);
    int fail = f->fail;
    if (!fail && m->msg_case == AIRMESH__V1__RUNNER_MESSAGE__MSG_GATEWAY_REQUEST && f->n < 256) {
        size_t len = protobuf_c_message_get_packed_size(&m->gateway_request->base);
        uint8_t *buf = malloc(len ? len : 1);
        protobuf_c_message_pack(&m->gateway_request->base, buf);
        f->q[f->n++] = airmesh__v1__gateway_request__unpack(NULL, len, buf);
        free(buf);
        pthread_cond_broadcast(&f->cv);
    }
    if (!fail && m->msg_case == AIRMESH__V1__RUNNER_MESSAGE__MSG_EGRESS && f->n_ev < 64) {
        size_t len = protobuf_c_message_get_packed_size(&m->egress->base);
        uint8_t *buf = malloc(len ? len : 1);
        protobuf_c_message_pack(&m->egress->base, buf);
        f->ev[f->n_ev++] = airmesh__v1__egress_event__unpack(NULL, len, buf);
        free(buf);
        pthread_cond_broadcast(&f->cv);
    }
    pthread_mutex_unlock(&f->mu);
    return fail ? -1 : 0;
}

/* The i-th request message the runner sent (waits up to 10 s). */
static Airmesh__V1__GatewayRequest *nth(fake_stream *f, size_t i) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&f->mu);
    while (f->n <= i)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT)
            break;
    Airmesh__V1__GatewayRequest *g = f->n > i ? f->q[i] : NULL;
    pthread_mutex_unlock(&f->mu);
    if (!g)
        fail_msg("no GatewayRequest #%zu within 10 s", i);
    return g;
}

typedef struct {
    fake_stream f;
    am_egress *e;
    am_egress_pod *pod;
    int port;
    int up_fd, up_port; /* proxy fixture: an upstream listener on loopback */
} fixture;

static int setup(void **state) {
    fixture *x = calloc(1, sizeof *x);
    pthread_mutex_init(&x->f.mu, NULL);
    pthread_cond_init(&x->f.cv, NULL);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) || listen(lfd, 16) ||
        getsockname(lfd, (struct sockaddr *)&a, &al))
        return -1;
    x->port = ntohs(a.sin_port);
    if (am_egress_new(fake_emit, &x->f, &x->e) ||
        am_egress_pod_start(x->e, "p-test", lfd, -1, NULL, 0, &x->pod))
        return -1;
    *state = x;
    return 0;
}

static int teardown(void **state) {
    fixture *x = *state;
    am_egress_pod_stop(x->pod);
    am_egress_free(x->e);
    for (size_t i = 0; i < x->f.n; i++)
        protobuf_c_message_free_unpacked(&x->f.q[i]->base, NULL);
    for (size_t i = 0; i < x->f.n_ev; i++)
        protobuf_c_message_free_unpacked(&x->f.ev[i]->base, NULL);
    if (x->up_fd > 0)
        close(x->up_fd);
    free(x);
    return 0;
}

static int dial(fixture *x) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)x->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void send_all(int fd, const void *b, size_t n) {
    assert_int_equal(send(fd, b, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read until `until` appears in what was read (or 10 s pass); returns the bytes so far. */
static char *read_until(int fd, const char *until, char *buf, size_t cap, size_t *have) {
    for (;;) {
        buf[*have] = '\0';
        if (strstr(buf, until))
            return buf;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) != 1)
            fail_msg("'%s' did not arrive; got: %s", until, buf);
        ssize_t n = recv(fd, buf + *have, cap - 1 - *have, 0);
        if (n <= 0)
            fail_msg("connection ended before '%s'; got: %s", until, buf);
        *have += (size_t)n;
    }
}

static void respond(fixture *x, uint64_t id, uint32_t status, const char *data, int last) {
    Airmesh__V1__HttpHeader ct = AIRMESH__V1__HTTP_HEADER__INIT, conn = ct, bad = ct;
    ct.name = "Content-Type";
    ct.value = "text/event-stream";
    conn.name = "Connection"; /* hop-by-hop: never reaches the pod */
    conn.value = "upgrade";
    bad.name = "X-Evil";
    bad.value = "a\r\nSet-Cookie: x";
    Airmesh__V1__HttpHeader *hs[] = {&ct, &conn, &bad};
    Airmesh__V1__GatewayResponse r = AIRMESH__V1__GATEWAY_RESPONSE__INIT;
    r.pod_id = "p-test";
    r.request_id = id;
    r.status = status;
    if (status) {
        r.headers = hs;
        r.n_headers = 3;
    }
    r.data.data = (uint8_t *)data;
    r.data.len = strlen(data);
    r.last = last;
    am_egress_on_response(x->e, &r);
}

static void test_request_is_framed_and_the_answer_streams(void **state) {
    fixture *x = *state;
    int fd = dial(x);
    size_t blen = 600u << 10;
    char *body = malloc(blen);
    memset(body, 'b', blen);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:4000\r\n"
                      "Authorization: Bearer amk_k\r\nConnection: keep-alive\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      blen);
    send_all(fd, head, (size_t)hn);
    send_all(fd, body, blen);
    free(body);
    /* 600 KiB = 256 + 256 + 88 KiB; method, path and headers on the first only. */
    Airmesh__V1__GatewayRequest *g0 = nth(&x->f, 0), *g1 = nth(&x->f, 1), *g2 = nth(&x->f, 2);
    assert_string_equal(g0->pod_id, "p-test");
    assert_string_equal(g0->method, "POST");
    assert_string_equal(g0->path, "/v1/chat/completions");
    assert_int_equal(g0->body.len, 256u << 10);
    assert_true(g0->more && g1->more && !g2->more);
    assert_int_equal(g2->body.len, 88u << 10);
    assert_int_equal(g1->request_id, g0->request_id);
    int auth = 0;
    for (size_t i = 0; i < g0->n_headers; i++) {
        assert_true(strcasecmp(g0->headers[i]->name, "Connection") != 0);
        assert_true(strcasecmp(g0->headers[i]->name, "Content-Length") != 0);
        auth |= strcmp(g0->headers[i]->name, "Authorization") == 0 &&
                strcmp(g0->headers[i]->value, "Bearer amk_k") == 0;
    }
    assert_true(auth);
    /* The first event reaches the pod's client before the last one is sent. */
    respond(x, g0->request_id, 200, "data: one\n\n", 0);
    char buf[8192];
    size_t have = 0;
    read_until(fd, "data: one\n\n\r\n", buf, sizeof buf, &have);
    assert_true(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0);
    assert_non_null(strstr(buf, "Content-Type: text/event-stream\r\n"));
    assert_non_null(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    assert_null(strstr(buf, "upgrade"));
    assert_null(strstr(buf, "Set-Cookie"));
    assert_null(strstr(buf, "0\r\n\r\n"));
    respond(x, g0->request_id, 0, "data: two\n\n", 1);
    read_until(fd, "data: two\n\n\r\n0\r\n\r\n", buf, sizeof buf, &have);
    /* Keep-alive: the next request on the same connection, with a chunked body. */
    const char *second = "POST /v1/messages HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                         "\r\n3\r\nabc\r\n0\r\n\r\n";
    send_all(fd, second, strlen(second));
    Airmesh__V1__GatewayRequest *g3 = nth(&x->f, 3);
    assert_true(g3->request_id != g0->request_id);
    assert_int_equal(g3->body.len, 3);
    assert_memory_equal(g3->body.data, "abc", 3);
    assert_false(g3->more);
    respond(x, g3->request_id, 429, "{\"error\":{}}", 1);
    have = 0;
    read_until(fd, "0\r\n\r\n", buf, sizeof buf, &have);
    assert_true(strncmp(buf, "HTTP/1.1 429 Too Many Requests\r\n", 32) == 0);
    close(fd);
}

static void test_client_leaving_sends_cancel(void **state) {
    fixture *x = *state;
    int fd = dial(x);
    const char *req = "GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, req, strlen(req));
    Airmesh__V1__GatewayRequest *g = nth(&x->f, 0);
    assert_false(g->cancel);
    close(fd);
    Airmesh__V1__GatewayRequest *c = nth(&x->f, 1);
    assert_true(c->cancel);
    assert_int_equal(c->request_id, g->request_id);
    /* A late answer for it is dropped without harm. */
    respond(x, g->request_id, 200, "late", 1);
}

static void test_stream_down_is_a_502_with_a_json_error(void **state) {
    fixture *x = *state;
    char buf[4096];
    size_t have = 0;
    /* The stream drops while the request waits for its answer. */
    int fd = dial(x);
    const char *req = "GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, req, strlen(req));
    nth(&x->f, 0);
    am_egress_link_down(x->e);
    read_until(fd, "}}", buf, sizeof buf, &have);
    assert_true(strncmp(buf, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
    assert_non_null(strstr(buf, "Content-Type: application/json"));
    assert_non_null(strstr(buf, "\"code\":\"gateway_unavailable\""));
    close(fd);
    /* The stream is down when the request comes. */
    pthread_mutex_lock(&x->f.mu);
    x->f.fail = 1;
    pthread_mutex_unlock(&x->f.mu);
    fd = dial(x);
    send_all(fd, req, strlen(req));
    have = 0;
    read_until(fd, "}}", buf, sizeof buf, &have);
    assert_true(strncmp(buf, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
    assert_non_null(strstr(buf, "link to the appliance is down"));
    close(fd);
}

static void test_no_answer_is_a_502_after_the_timeout(void **state) {
    fixture *x = *state;
    am_egress_set_answer_timeout(x->e, 300);
    int fd = dial(x);
    const char *req = "GET /v1/models HTTP/1.1\r\nHost: h\r\n\r\n";
    send_all(fd, req, strlen(req));
    char buf[4096];
    size_t have = 0;
    read_until(fd, "}}", buf, sizeof buf, &have);
    assert_true(strncmp(buf, "HTTP/1.1 502 Bad Gateway\r\n", 26) == 0);
    assert_non_null(strstr(buf, "gateway_timeout"));
    assert_true(nth(&x->f, 1)->cancel); /* the appliance is told to stop */
    close(fd);
}

static void test_oversized_and_junk_requests_never_reach_the_stream(void **state) {
    fixture *x = *state;
    static const struct {
        const char *req, *status;
    } cases[] = {
        {"POST /v1/x HTTP/1.1\r\nHost: h\r\nContent-Length: 33554433\r\n\r\n", "HTTP/1.1 413 "},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", "HTTP/1.1 400 "},
        {"GET http://evil/ HTTP/1.1\r\nHost: evil\r\n\r\n", "HTTP/1.1 400 "},
        {"CONNECT evil:443 HTTP/1.1\r\nHost: evil\r\n\r\n", "HTTP/1.1 405 "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = dial(x);
        send_all(fd, cases[i].req, strlen(cases[i].req));
        char buf[4096];
        size_t have = 0;
        read_until(fd, "\r\n\r\n", buf, sizeof buf, &have);
        if (strncmp(buf, cases[i].status, strlen(cases[i].status)) != 0)
            fail_msg("case %zu: %s", i, buf);
        close(fd);
    }
    /* A chunked body that grows past the limit is 413 too. */
    int fd = dial(x);
    const char *h = "POST /v1/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    send_all(fd, h, strlen(h));
    static char chunk[(1u << 20) + 16];
    int cn = snprintf(chunk, sizeof chunk, "%x\r\n", 1u << 20);
    memset(chunk + cn, 'z', 1u << 20);
    memcpy(chunk + cn + (1u << 20), "\r\n", 2);
    int refused = 0;
    for (int i = 0; i < 40 && !refused; i++) {
        if (send(fd, chunk, (size_t)cn + (1u << 20) + 2, MSG_NOSIGNAL) < 0)
            refused = 1;
    }
    char buf[4096];
    size_t have = 0;
    read_until(fd, "\r\n\r\n", buf, sizeof buf, &have);
    assert_true(strncmp(buf, "HTTP/1.1 413 ", 13) == 0);
    close(fd);
    pthread_mutex_lock(&x->f.mu);
    size_t n = x->f.n;
    pthread_mutex_unlock(&x->f.mu);
    assert_int_equal(n, 0);
}

static void test_a_pod_cannot_buffer_unbounded_bodies(void **state) {
    fixture *x = *state;
    /* Four 30 MiB bodies on the way: three fit the pod's budget (96 MiB) and wait for their
     * bytes, the fourth (whichever comes last) is answered 503 at once; once one is given back
     * (its client left) a new one fits again. */
    const char *h = "POST /v1/x HTTP/1.1\r\nHost: h\r\nContent-Length: 31457280\r\n\r\nabc";
    struct pollfd pf[4];
    for (int i = 0; i < 4; i++) {
        pf[i] = (struct pollfd){dial(x), POLLIN, 0};
        send_all(pf[i].fd, h, strlen(h));
    }
    assert_true(poll(pf, 4, 10000) >= 1);
    int refused = -1, n_ready = 0;
    for (int i = 0; i < 4; i++)
        if (pf[i].revents) {
            refused = i;
            n_ready++;
        }
    assert_int_equal(n_ready, 1);
    char buf[4096];
    size_t have = 0;
    read_until(pf[refused].fd, "\r\n\r\n", buf, sizeof buf, &have);
    assert_true(strncmp(buf, "HTTP/1.1 503 ", 13) == 0);
    /* The reason is in the body, which may come in a later segment than the head. */
    read_until(pf[refused].fd, "too many large requests", buf, sizeof buf, &have);
    close(pf[refused].fd);
    close(pf[(refused + 1) % 4].fd); /* gives its 30 MiB back */
    int freed = 0;
    for (int tries = 0; tries < 100 && !freed; tries++) {
        int fd = dial(x);
        send_all(fd, h, strlen(h));
        struct pollfd one = {fd, POLLIN, 0};
        freed = poll(&one, 1, 100) == 0; /* no 503: it waits for its body */
        close(fd);
    }
    assert_true(freed);
    close(pf[(refused + 2) % 4].fd);
    close(pf[(refused + 3) % 4].fd);
}

/* ---- the CONNECT proxy ---- */

static int listen_any(int *port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&a, &al))
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int setup_proxy(void **state) {
    fixture *x = calloc(1, sizeof *x);
    pthread_mutex_init(&x->f.mu, NULL);
    pthread_cond_init(&x->f.cv, NULL);
    int lfd = listen_any(&x->port);
    x->up_fd = listen_any(&x->up_port);
    if (lfd < 0 || x->up_fd < 0)
        return -1;
    char allowed[64];
    snprintf(allowed, sizeof allowed, "127.0.0.1:%d", x->up_port);
    char *allow[] = {allowed, "git.lan:443"};
    if (am_egress_new(fake_emit, &x->f, &x->e) ||
        am_egress_pod_start(x->e, "p-test", -1, lfd, allow, 2, &x->pod))
        return -1;
    *state = x;
    return 0;
}

/* The i-th EgressEvent (waits up to 10 s). */
static Airmesh__V1__EgressEvent *nth_event(fake_stream *f, size_t i) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&f->mu);
    while (f->n_ev <= i)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &ts) == ETIMEDOUT)
            break;
    Airmesh__V1__EgressEvent *ev = f->n_ev > i ? f->ev[i] : NULL;
    pthread_mutex_unlock(&f->mu);
    if (!ev)
        fail_msg("no EgressEvent #%zu within 10 s", i);
    return ev;
}

static void test_proxy_connects_only_to_the_allow_list(void **state) {
    fixture *x = *state;
    char req[256], buf[4096];
    size_t have = 0;
    /* Allowed: 200, the bytes sent right behind the head arrive upstream, then both ways. */
    int fd = dial(x);
    int n = snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\nhello",
                     x->up_port);
    send_all(fd, req, (size_t)n);
    int up = accept(x->up_fd, NULL, NULL);
    assert_true(up >= 0);
    read_until(fd, "\r\n\r\n", buf, sizeof buf, &have);
    assert_string_equal(buf, "HTTP/1.1 200 Connection established\r\n\r\n");
    char got[16] = "";
    size_t gl = 0;
    read_until(up, "hello", got, sizeof got, &gl);
    send_all(up, "world!", 6);
    have = 0;
    read_until(fd, "world!", buf, sizeof buf, &have);
    Airmesh__V1__EgressEvent *ev = nth_event(&x->f, 0);
    assert_string_equal(ev->kind, "connect");
    assert_string_equal(ev->host, "127.0.0.1");
    assert_int_equal(ev->port, x->up_port);
    close(fd);
    close(up);
    ev = nth_event(&x->f, 1);
    assert_string_equal(ev->kind, "close");
    assert_int_equal(ev->bytes_up, 5);
    assert_int_equal(ev->bytes_down, 6);
    /* Not listed (the same host, another port), another method, junk: refused, each an event. */
    static const struct {
        const char *req, *status, *reason;
    } refused[] = {
        {"CONNECT 127.0.0.1:1 HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 403 ",
         "127.0.0.1:1 is not on this organization's egress allow list"},
        {"GET http://git.lan:443/ HTTP/1.1\r\nHost: git.lan\r\n\r\n", "HTTP/1.1 403 ",
         "only CONNECT host:port is served here"},
        {"CONNECT git.lan HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 400 ", "bad CONNECT target"},
        {"\x16\x03\x01\x02", "HTTP/1.1 400 ", "bad request: "},
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        fd = dial(x);
        send_all(fd, refused[i].req, strlen(refused[i].req));
        have = 0;
        read_until(fd, "\n", buf, sizeof buf, &have);
        if (strncmp(buf, refused[i].status, strlen(refused[i].status)) != 0)
            fail_msg("case %zu: %s", i, buf);
        close(fd);
        ev = nth_event(&x->f, 2 + i);
        assert_string_equal(ev->kind, "refused");
        if (!strstr(ev->reason, refused[i].reason))
            fail_msg("case %zu: reason '%s'", i, ev->reason);
    }
}

static void test_pod_stop_ends_a_relay_to_a_host_that_does_not_read(void **state) {
    fixture *x = *state;
    int fd = dial(x);
    char req[128], buf[256];
    int n =
        snprintf(req, sizeof req, "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", x->up_port);
    send_all(fd, req, (size_t)n);
    int up = accept(x->up_fd, NULL, NULL); /* accepted, never read */
    size_t have = 0;
    read_until(fd, "\r\n\r\n", buf, sizeof buf, &have);
    /* Fill both socket buffers until the relay blocks writing upstream. */
    static char junk[1u << 16];
    fcntl(fd, F_SETFL, O_NONBLOCK);
    size_t sent = 0;
    for (int idle = 0; idle < 20;) {
        ssize_t w = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (size_t)w;
            idle = 0;
        } else {
            struct pollfd pf = {fd, POLLOUT, 0};
            idle += poll(&pf, 1, 50) == 0;
        }
    }
    assert_true(sent > (1u << 16));
    /* The stop must not hang on that relay (teardown joins everything). */
    am_egress_pod_stop(x->pod);
    x->pod = NULL;
    Airmesh__V1__EgressEvent *ev = nth_event(&x->f, 1);
    assert_string_equal(ev->kind, "close");
    close(fd);
    close(up);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser_accepts_a_plain_request),
        cmocka_unit_test(test_parser_refuses_ambiguous_or_junk_heads),
        cmocka_unit_test(test_chunked_body_decodes_byte_by_byte),
        cmocka_unit_test(test_authority_form),
        cmocka_unit_test_setup_teardown(test_request_is_framed_and_the_answer_streams, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_client_leaving_sends_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_down_is_a_502_with_a_json_error, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_answer_is_a_502_after_the_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_and_junk_requests_never_reach_the_stream,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_pod_cannot_buffer_unbounded_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_proxy_connects_only_to_the_allow_list, setup_proxy,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pod_stop_ends_a_relay_to_a_host_that_does_not_read,
                                        setup_proxy, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
