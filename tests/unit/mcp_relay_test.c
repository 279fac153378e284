/*
 * tests/unit/mcp_relay_test.c — runner/mcp/relay with real sockets: a listening AF_UNIX socket
 * in a temp dir stands in for the pod's, a client connects as airmesh-mcp would, and the emit
 * callback records the McpRequest messages the appliance would get.
 */
#include <errno.h>
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/mcp.h"
#include "runner/mcp/relay.h"

#define MAXREC 4096

typedef struct {
    char pod[64];
    uint64_t conn;
    char *msg;
    size_t len;
    int closed;
} rec;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static rec g_rec[MAXREC];
static size_t g_n;
static int g_refuse; /* emit answers "dropped" */

static int emit(void *ud, Airmesh__V1__RunnerMessage *m) {
    (void)ud;
    assert_int_equal(m->msg_case, AIRMESH__V1__RUNNER_MESSAGE__MSG_MCP_REQUEST);
    pthread_mutex_lock(&g_mu);
    int refuse = g_refuse && !m->mcp_request->closed;
    if (!refuse && g_n < MAXREC) {
        rec *r = &g_rec[g_n++];
        snprintf(r->pod, sizeof r->pod, "%s", m->mcp_request->pod_id);
        r->conn = m->mcp_request->conn_id;
        r->len = m->mcp_request->message.len;
        r->msg = malloc(r->len + 1);
        if (r->len)
            memcpy(r->msg, m->mcp_request->message.data, r->len);
        r->msg[r->len] = 0;
        r->closed = m->mcp_request->closed;
    }
    pthread_mutex_unlock(&g_mu);
    return refuse ? -1 : 0;
}

static size_t n_recs(void) {
    pthread_mutex_lock(&g_mu);
    size_t n = g_n;
    pthread_mutex_unlock(&g_mu);
    return n;
}

/* Wait (deadline 10 s) until at least n records are there. */
static void wait_recs(size_t n) {
    for (int i = 0; i < 10000 && n_recs() < n; i++)
        usleep(1000);
    assert_true(n_recs() >= n);
}

static void reset(void) {
    pthread_mutex_lock(&g_mu);
    for (size_t i = 0; i < g_n; i++)
        free(g_rec[i].msg);
    g_n = 0;
    g_refuse = 0;
    pthread_mutex_unlock(&g_mu);
}

typedef struct {
    char dir[32], path[64];
    am_mcprelay *r;
    am_mcprelay_pod *p;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/mcp-relay-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/mcp.sock", f->dir);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", f->path);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 64), 0);
    assert_int_equal(am_mcprelay_new(emit, NULL, &f->r), 0);
    assert_int_equal(am_mcprelay_pod_start(f->r, "p-aaaa", l, &f->p), 0);
    reset();
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    am_mcprelay_pod_stop(f->p);
    am_mcprelay_free(f->r);
    unlink(f->path);
    rmdir(f->dir);
    reset();
    free(f);
    return 0;
}

static int dial(const fixture *f) {
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", f->path);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof a), 0);
    return c;
}

static void write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the relay dropped us */
        p += w;
        n -= (size_t)w;
    }
}

/* Read until n bytes or EOF (10 s at most); returns bytes read, *eof set at EOF. */
static size_t read_some(int fd, char *buf, size_t n, int *eof) {
    size_t got = 0;
    *eof = 0;
    while (got < n) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 10000) <= 0)
            break;
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            *eof = 1;
            break;
        }
        got += (size_t)r;
    }
    return got;
}

static void respond(fixture *f, uint64_t conn, const char *text, int close) {
    Airmesh__V1__McpResponse r = AIRMESH__V1__MCP_RESPONSE__INIT;
    r.pod_id = "p-aaaa";
    r.conn_id = conn;
    r.message.data = (uint8_t *)text;
    r.message.len = strlen(text);
    r.close = close;
    am_mcprelay_on_response(f->r, &r);
}

static void test_lines_become_requests_of_the_listeners_pod(void **state) {
    fixture *f = *state;
    int c = dial(f);
    write_all(c, "{\"a\":1}\n{\"pod_id\":\"p-other\"}\r\n\n", 31);
    wait_recs(2);
    assert_string_equal(g_rec[0].pod, "p-aaaa");
    assert_string_equal(g_rec[0].msg, "{\"a\":1}");
    assert_string_equal(g_rec[1].pod, "p-aaaa"); /* never what the line says */
    assert_string_equal(g_rec[1].msg, "{\"pod_id\":\"p-other\"}");
    assert_int_equal(g_rec[0].conn, g_rec[1].conn);
    assert_false(g_rec[0].closed);
    close(c);
    wait_recs(3);
    assert_true(g_rec[2].closed);
    assert_int_equal(g_rec[2].conn, g_rec[0].conn);
}

static void test_answers_are_written_with_a_newline_and_close_ends_it(void **state) {
    fixture *f = *state;
    int c = dial(f);
    write_all(c, "ping\n", 5);
    wait_recs(1);
    uint64_t conn = g_rec[0].conn;
    respond(f, conn + 1000, "not yours", 0); /* an unknown connection: dropped */
    respond(f, conn, "{\"id\":1}", 0);
    respond(f, conn, "{\"id\":2}", 1);
    char buf[64] = {0};
    int eof;
    size_t n = read_some(c, buf, sizeof buf - 1, &eof);
    assert_int_equal(n, 18);
    assert_string_equal(buf, "{\"id\":1}\n{\"id\":2}\n");
    assert_true(eof);
    close(c);
}

static void test_an_oversized_line_drops_the_connection(void **state) {
    fixture *f = *state;
    int c = dial(f);
    size_t n = AM_MCP_LINE_MAX + 100;
    char *big = malloc(n);
    memset(big, 'x', n);
    write_all(c, big, n);
    free(big);
    char buf[16];
    int eof;
    read_some(c, buf, sizeof buf, &eof);
    assert_true(eof);
    wait_recs(1);
    assert_int_equal(n_recs(), 1);
    assert_true(g_rec[0].closed); /* no line was forwarded */
    close(c);
    /* A line of exactly the limit still goes through. */
    reset();
    c = dial(f);
    n = AM_MCP_LINE_MAX;
    big = malloc(n + 1);
    memset(big, 'y', n);
    big[n] = '\n';
    write_all(c, big, n + 1);
    free(big);
    wait_recs(1);
    assert_int_equal(g_rec[0].len, AM_MCP_LINE_MAX);
    assert_false(g_rec[0].closed);
    close(c);
}

static void test_connections_beyond_the_limit_are_closed_at_once(void **state) {
    fixture *f = *state;
    int c[AM_MCP_CONNS_MAX + 1];
    for (int i = 0; i < AM_MCP_CONNS_MAX; i++) {
        c[i] = dial(f);
        write_all(c[i], "hi\n", 3);
    }
    wait_recs(AM_MCP_CONNS_MAX);
    assert_int_equal(am_mcprelay_conns(f->r), AM_MCP_CONNS_MAX);
    c[AM_MCP_CONNS_MAX] = dial(f);
    char buf[4];
    int eof;
    read_some(c[AM_MCP_CONNS_MAX], buf, sizeof buf, &eof);
    assert_true(eof);
    assert_int_equal(am_mcprelay_conns(f->r), AM_MCP_CONNS_MAX);
    for (int i = 0; i <= AM_MCP_CONNS_MAX; i++)
        close(c[i]);
}

static void test_a_dropped_line_and_link_down_close_connections(void **state) {
    fixture *f = *state;
    int c = dial(f);
    write_all(c, "one\n", 4);
    wait_recs(1);
    pthread_mutex_lock(&g_mu);
    g_refuse = 1; /* the stream is down: the line cannot be queued */
    pthread_mutex_unlock(&g_mu);
    write_all(c, "two\n", 4);
    char buf[4];
    int eof;
    read_some(c, buf, sizeof buf, &eof);
    assert_true(eof);
    close(c);
    reset();
    c = dial(f);
    write_all(c, "three\n", 6);
    wait_recs(1);
    am_mcprelay_link_down(f->r);
    read_some(c, buf, sizeof buf, &eof);
    assert_true(eof);
    close(c);
}

static void test_pod_stop_closes_every_connection_and_reports_it(void **state) {
    fixture *f = *state;
    int a = dial(f), b = dial(f);
    write_all(a, "a\n", 2);
    write_all(b, "b\n", 2);
    wait_recs(2);
    am_mcprelay_pod_stop(f->p);
    f->p = NULL;
    char buf[4];
    int eof;
    read_some(a, buf, sizeof buf, &eof);
    assert_true(eof);
    read_some(b, buf, sizeof buf, &eof);
    assert_true(eof);
    assert_int_equal(n_recs(), 4);
    assert_true(g_rec[2].closed && g_rec[3].closed);
    assert_int_equal(am_mcprelay_conns(f->r), 0);
    close(a);
    close(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lines_become_requests_of_the_listeners_pod, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_answers_are_written_with_a_newline_and_close_ends_it,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_an_oversized_line_drops_the_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connections_beyond_the_limit_are_closed_at_once, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_dropped_line_and_link_down_close_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pod_stop_closes_every_connection_and_reports_it, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
