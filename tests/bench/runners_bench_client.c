/*
 * tests/bench/runners_bench_client.c — the runner side of tests/bench/runners_bench.py: real
 * enrollments, mTLS Connect handshakes and many simulated runners in one process, each beside a
 * baseline measured in the same run. The driver starts airmeshd, makes the tokens and reads the
 * appliance's state; this program only speaks the runner protocol. Not meant to be run alone
 * (scripts/bench.sh skips it; `make bench` runs it through the driver).
 *
 * Modes (output: one `key=value …` line per result, parsed by the driver; errors on stderr):
 *   enroll TARGET CA_SHA256 TOKENS_FILE OUTDIR SEQ THREADS
 *     The first SEQ tokens are enrolled one after another with am_sess_enroll() — the exact code
 *     `airmesh-runner enroll` runs: pin the CA by fingerprint over a plain TLS handshake, new
 *     P-256 key, CSR, new gRPC channel, EnrollService.Enroll, verify the chain, write
 *     OUTDIR/rNNNNN/{identity.pem,ca.pem,runner.json}. Line `enroll_seq n= secs=`.
 *     Then `floor n= secs=`: the same number of in-process P-256 key generations + CSRs + CSR
 *     verifications + leaf issuances with //pki (the crypto an enrollment cannot avoid, no
 *     network, disk or process start). The remaining tokens are enrolled with THREADS threads
 *     (setup for `hold`): `enroll_bulk n= secs= threads=`.
 *   handshakes TARGET RUNNER_DIR N
 *     N times: new channel (own TCP connection: local subchannel pool) + Connect + Hello, wait
 *     for HelloAck, half-close, wait for the OK status, destroy the channel (`connect n= secs=`).
 *     Baseline, interleaved in blocks of 25 so drift hits both alike: N plain OpenSSL
 *     connections to the same port with the same client certificate — TCP connect, TLS
 *     handshake (ALPN h2, server verified against ca.pem), HTTP/2 preface + SETTINGS out, wait
 *     for the server's first bytes, close (`tls n= secs= version=`). The ratio is what gRPC, the
 *     call, Hello/HelloAck and the appliance's per-connection work cost on top of the transport.
 *   hold TARGET OUTDIR
 *     Simulated runners OUTDIR/r00000… in this one process, each with its own certificate and
 *     channel, all on ONE completion queue driven by this thread: Hello, then a Heartbeat every
 *     heartbeat_interval_ms from HelloAck. Commands on stdin: `grow N` connects runners until N
 *     (at most 32 handshakes in flight) and answers `ready n= acked= failed= secs= rss_kib=
 *     rss0_kib= hb_ms=` (this process's VmRSS now and before the first runner; the heartbeat
 *     interval the appliance asked for); `stop` half-closes every stream, waits for the
 *     statuses and answers
 *     `stopped n= clean= dropped= heartbeats= skipped=` (dropped = streams that ended before
 *     `stop`; skipped = heartbeats not sent because the previous send had not completed).
 * Threads: main (plus gRPC's own; `enroll` adds THREADS workers). Everything is freed at exit.
 */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "airmesh/v1/runner.pb-c.h"
#include "common/err.h"
#include "common/util.h"
#include "pki/pki.h"
#include "runner/session/session.h"

#define METHOD_CONNECT "/airmesh.v1.RunnerService/Connect"

static double now_s(void) {
    return (double)am_mono_ns() / 1e9;
}

static gpr_timespec in_ms(int ms) {
    return gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

static long self_rss_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---------- a runner's identity (the few lines of runner/session/identity.c we need) ---------- */

typedef struct {
    char *key_pem, *chain_pem, *ca_pem;
} ident;

static int ident_load(const char *dir, ident *id) {
    char path[4096];
    memset(id, 0, sizeof *id);
    snprintf(path, sizeof path, "%s/identity.pem", dir);
    char *all = slurp(path);
    char *cert = all ? strstr(all, "-----BEGIN CERTIFICATE-----") : NULL;
    if (!cert || cert == all) {
        fprintf(stderr, "runners_bench_client: %s: no key + certificate chain\n", path);
        free(all);
        return -1;
    }
    id->chain_pem = strdup(cert);
    *cert = '\0';
    id->key_pem = strdup(all);
    am_wipe(all, strlen(all));
    free(all);
    snprintf(path, sizeof path, "%s/ca.pem", dir);
    id->ca_pem = slurp(path);
    if (!id->ca_pem) {
        fprintf(stderr, "runners_bench_client: %s: unreadable\n", path);
        return -1;
    }
    return 0;
}

static void ident_free(ident *id) {
    if (id->key_pem) {
        am_wipe(id->key_pem, strlen(id->key_pem));
        free(id->key_pem);
    }
    free(id->chain_pem);
    free(id->ca_pem);
    memset(id, 0, sizeof *id);
}

/* ---------- gRPC helpers (as runner/session/client.c, plus a private subchannel pool) ---------- */

static grpc_channel *channel_for(const char *target, const ident *id) {
    grpc_ssl_pem_key_cert_pair pair = {id->key_pem, id->chain_pem};
    grpc_channel_credentials *creds = grpc_ssl_credentials_create(id->ca_pem, &pair, NULL, NULL);
    grpc_arg args[4];
    args[0] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                         .value.integer = 4 << 20};
    args[1] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 10000};
    args[2] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 5000};
    /* Every channel its own TCP connection + TLS handshake, as separate runner hosts would. */
    args[3] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1};
    grpc_channel_args cargs = {4, args};
    grpc_channel *ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *m) {
    size_t len = protobuf_c_message_get_packed_size(m);
    grpc_slice s = grpc_slice_malloc(len);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

static Airmesh__V1__ApplianceMessage *unpack_appliance(grpc_byte_buffer *bb) {
    grpc_byte_buffer_reader r;
    if (!bb || !grpc_byte_buffer_reader_init(&r, bb))
        return NULL;
    grpc_slice s = grpc_byte_buffer_reader_readall(&r);
    grpc_byte_buffer_reader_destroy(&r);
    Airmesh__V1__ApplianceMessage *m = airmesh__v1__appliance_message__unpack(
        NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
    grpc_slice_unref(s);
    return m;
}

static grpc_byte_buffer *hello_msg(int idx) {
    char host[64];
    snprintf(host, sizeof host, "bench-%05d", idx);
    Airmesh__V1__Hello h = AIRMESH__V1__HELLO__INIT;
    h.version = AM_RUNNER_VERSION;
    h.hostname = host;
    h.capacity = 4;
    h.os = "Linux";
    h.arch = "x86_64";
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.time_ms = am_now_ms();
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_HELLO;
    m.hello = &h;
    return pack(&m.base);
}

static grpc_byte_buffer *heartbeat_msg(void) {
    Airmesh__V1__Heartbeat hb = AIRMESH__V1__HEARTBEAT__INIT;
    hb.time_ms = am_now_ms();
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.time_ms = hb.time_ms;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_HEARTBEAT;
    m.heartbeat = &hb;
    return pack(&m.base);
}

static void details_str(grpc_slice d, char *buf, size_t cap) {
    size_t n = GRPC_SLICE_LENGTH(d);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, GRPC_SLICE_START_PTR(d), n);
    buf[n] = '\0';
}

/* ---------- enroll ---------- */

typedef struct {
    const char *target, *fp, *outdir;
    char **tokens;
    size_t from, to;
    atomic_size_t next;
    atomic_int failed;
} enroll_job;

static int enroll_one(enroll_job *j, size_t i) {
    char dir[4096], rid[128];
    snprintf(dir, sizeof dir, "%s/r%05zu", j->outdir, i);
    am_sess_enroll_opts o = {.appliance = j->target,
                             .token = j->tokens[i],
                             .ca_sha256 = j->fp,
                             .data_dir = dir};
    if (am_sess_enroll(&o, rid, sizeof rid) != 0) {
        fprintf(stderr, "runners_bench_client: enroll %zu: %s\n", i, am_err_last());
        return -1;
    }
    return 0;
}

static void *enroll_worker(void *arg) {
    enroll_job *j = arg;
    for (;;) {
        size_t i = atomic_fetch_add(&j->next, 1);
        if (i >= j->to || atomic_load(&j->failed))
            break;
        if (enroll_one(j, i) != 0)
            atomic_store(&j->failed, 1);
    }
    am_pki_thread_done();
    return NULL;
}

/* In-process: runner key + CSR (+ key PEM), CA-side CSR verification + leaf issuance. */
static int crypto_floor(size_t n, double *secs) {
    am_pki_key *ca_key = NULL;
    char *ca_pem = NULL;
    if (am_pki_key_generate(&ca_key) || am_pki_make_root(ca_key, "bench CA", 30, &ca_pem)) {
        fprintf(stderr, "runners_bench_client: floor CA: %s\n", am_err_last());
        am_pki_key_free(ca_key);
        return -1;
    }
    int rc = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n && rc == 0; i++) {
        am_pki_key *k = NULL;
        uint8_t *der = NULL;
        size_t len = 0;
        char *kpem = NULL, *cert = NULL;
        am_pki_csr csr = {0};
        am_pki_leaf_opts lo = {.cn = "r-bench", .org = "bench", .days = 7, .client = 1};
        rc = am_pki_key_generate(&k);
        if (rc == 0)
            rc = am_pki_csr_make(k, "bench-host", &der, &len);
        if (rc == 0)
            rc = am_pki_key_to_pem(k, &kpem);
        if (rc == 0)
            rc = am_pki_csr_parse(der, len, &csr);
        if (rc == 0)
            rc = am_pki_issue_leaf(csr.pub, &lo, ca_pem, ca_key, &cert, NULL);
        if (rc)
            fprintf(stderr, "runners_bench_client: floor: %s\n", am_err_last());
        am_pki_csr_free(&csr);
        if (kpem) {
            am_wipe(kpem, strlen(kpem));
            free(kpem);
        }
        free(cert);
        free(der);
        am_pki_key_free(k);
    }
    *secs = now_s() - t0;
    am_pki_key_free(ca_key);
    free(ca_pem);
    return rc;
}

static int mode_enroll(char **argv) {
    enroll_job j = {.target = argv[0], .fp = argv[1], .outdir = argv[3]};
    size_t seq = strtoul(argv[4], NULL, 10);
    int threads = atoi(argv[5]);
    if (threads < 1 || threads > 64)
        threads = 1;
    char *all = slurp(argv[2]);
    if (!all) {
        fprintf(stderr, "runners_bench_client: %s: unreadable\n", argv[2]);
        return 1;
    }
    size_t n = 0, cap = 0;
    for (char *save = NULL, *t = strtok_r(all, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            j.tokens = realloc(j.tokens, cap * sizeof *j.tokens);
        }
        j.tokens[n++] = t;
    }
    if (seq > n)
        seq = n;
    int rc = 0;
    double t0 = now_s();
    for (size_t i = 0; i < seq && rc == 0; i++)
        rc = enroll_one(&j, i);
    double seq_s = now_s() - t0;
    if (rc == 0)
        printf("enroll_seq n=%zu secs=%.4f\n", seq, seq_s);
    fflush(stdout);
    double floor_s = 0;
    if (rc == 0 && (rc = crypto_floor(seq, &floor_s)) == 0)
        printf("floor n=%zu secs=%.4f\n", seq, floor_s);
    fflush(stdout);
    if (rc == 0 && n > seq) {
        j.from = seq;
        j.to = n;
        atomic_init(&j.next, seq);
        atomic_init(&j.failed, 0);
        pthread_t th[64];
        t0 = now_s();
        for (int i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, enroll_worker, &j);
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        if (atomic_load(&j.failed))
            rc = -1;
        else
            printf("enroll_bulk n=%zu secs=%.4f threads=%d\n", n - seq, now_s() - t0, threads);
    }
    free(j.tokens);
    free(all);
    return rc ? 1 : 0;
}

/* ---------- handshakes ---------- */

/* One Connect: Hello -> HelloAck -> half-close -> OK. 0 on success. */
static int connect_once(const char *target, const ident *id, grpc_completion_queue *cq) {
    grpc_channel *ch = channel_for(target, id);
    grpc_call *call =
        grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                 grpc_slice_from_static_string(METHOD_CONNECT), NULL, in_ms(10000),
                                 NULL);
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_slice details = grpc_empty_slice();
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_byte_buffer *hello = hello_msg(0), *resp = NULL;
    int rc = -1, t1, t2, t3;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = hello;
    grpc_call_error e1 = grpc_call_start_batch(call, ops, 2, &t1, NULL);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[0].data.recv_initial_metadata.recv_initial_metadata = &md_init;
    ops[1].op = GRPC_OP_RECV_MESSAGE;
    ops[1].data.recv_message.recv_message = &resp;
    grpc_call_error e2 = grpc_call_start_batch(call, ops, 2, &t2, NULL);
    grpc_event ev1 = {0}, ev2 = {0};
    if (e1 == GRPC_CALL_OK)
        ev1 = grpc_completion_queue_pluck(cq, &t1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (e2 == GRPC_CALL_OK)
        ev2 = grpc_completion_queue_pluck(cq, &t2, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    Airmesh__V1__ApplianceMessage *m = ev2.success ? unpack_appliance(resp) : NULL;
    int acked = ev1.success && m && m->msg_case == AIRMESH__V1__APPLIANCE_MESSAGE__MSG_HELLO_ACK;
    if (m)
        airmesh__v1__appliance_message__free_unpacked(m, NULL);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[1].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[1].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[1].data.recv_status_on_client.status = &status;
    ops[1].data.recv_status_on_client.status_details = &details;
    if (!acked)
        grpc_call_cancel(call, NULL);
    if (grpc_call_start_batch(call, acked ? ops : ops + 1, acked ? 2 : 1, &t3, NULL) ==
        GRPC_CALL_OK)
        grpc_completion_queue_pluck(cq, &t3, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (acked && status == GRPC_STATUS_OK) {
        rc = 0;
    } else {
        char msg[300];
        details_str(details, msg, sizeof msg);
        fprintf(stderr, "runners_bench_client: Connect: acked=%d status=%d %s\n", acked,
                (int)status, msg);
    }
    grpc_byte_buffer_destroy(hello);
    if (resp)
        grpc_byte_buffer_destroy(resp);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
    grpc_call_unref(call);
    grpc_channel_destroy(ch);
    return rc;
}

typedef struct {
    SSL_CTX *ctx;
    struct sockaddr_in addr;
    char version[32];
} tls_base;

static int tls_base_init(tls_base *b, const char *target, const ident *id) {
    memset(b, 0, sizeof *b);
    char host[64];
    const char *colon = strrchr(target, ':');
    if (!colon || (size_t)(colon - target) >= sizeof host)
        return -1;
    memcpy(host, target, (size_t)(colon - target));
    host[colon - target] = '\0';
    b->addr.sin_family = AF_INET;
    b->addr.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &b->addr.sin_addr) != 1) {
        fprintf(stderr, "runners_bench_client: baseline needs an IPv4 target, got %s\n", target);
        return -1;
    }
    b->ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(b->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(b->ctx, SSL_VERIFY_PEER, NULL);
    static const unsigned char alpn[] = "\x02h2";
    SSL_CTX_set_alpn_protos(b->ctx, alpn, sizeof alpn - 1);
    /* Trust exactly the appliance root, present the runner's key and chain. */
    BIO *bio = BIO_new_mem_buf(id->ca_pem, -1);
    X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(b->ctx), ca);
    X509_free(ca);
    bio = BIO_new_mem_buf(id->key_pem, -1);
    EVP_PKEY *pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    bio = BIO_new_mem_buf(id->chain_pem, -1);
    X509 *leaf = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    int ok = pk && leaf && SSL_CTX_use_certificate(b->ctx, leaf) == 1 &&
             SSL_CTX_use_PrivateKey(b->ctx, pk) == 1;
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL)
        SSL_CTX_add_extra_chain_cert(b->ctx, extra); /* takes ownership */
    ERR_clear_error();
    BIO_free(bio);
    X509_free(leaf);
    EVP_PKEY_free(pk);
    if (!ok) {
        fprintf(stderr, "runners_bench_client: baseline: cannot load the runner identity\n");
        SSL_CTX_free(b->ctx);
        b->ctx = NULL;
        return -1;
    }
    return 0;
}

/* TCP + TLS (client cert) + h2 preface/SETTINGS, wait for the server's first bytes, close. */
static int tls_once(tls_base *b) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc = -1;
    SSL *ssl = NULL;
    if (connect(fd, (struct sockaddr *)&b->addr, sizeof b->addr) != 0)
        goto out;
    ssl = SSL_new(b->ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1)
        goto out;
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                                  "\x00\x00\x00\x04\x00\x00\x00\x00\x00"; /* empty SETTINGS */
    if (SSL_write(ssl, preface, (int)sizeof preface - 1) != (int)sizeof preface - 1)
        goto out;
    char buf[512];
    int got = 0;
    while (got < 9) { /* one frame header: the server's SETTINGS */
        int n = SSL_read(ssl, buf, sizeof buf);
        if (n <= 0)
            goto out;
        got += n;
    }
    snprintf(b->version, sizeof b->version, "%s", SSL_get_version(ssl));
    rc = 0;
    SSL_shutdown(ssl);
out:
    if (rc) {
        char e[200];
        ERR_error_string_n(ERR_get_error(), e, sizeof e);
        fprintf(stderr, "runners_bench_client: baseline TLS connection failed: %s (%s)\n", e,
                strerror(errno));
    }
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    return rc;
}

static int mode_handshakes(char **argv) {
    const char *target = argv[0];
    int n = atoi(argv[2]);
    ident id;
    tls_base b;
    if (ident_load(argv[1], &id) != 0 || tls_base_init(&b, target, &id) != 0) {
        ident_free(&id);
        return 1;
    }
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    /* Warm-up (not timed): one of each, so lazy initialisation is not charged to either. */
    int rc = connect_once(target, &id, cq) | tls_once(&b);
    double t_connect = 0, t_tls = 0;
    for (int done = 0; done < n && rc == 0;) {
        int blk = n - done < 25 ? n - done : 25;
        double t0 = now_s();
        for (int i = 0; i < blk && rc == 0; i++)
            rc = connect_once(target, &id, cq);
        t_connect += now_s() - t0;
        t0 = now_s();
        for (int i = 0; i < blk && rc == 0; i++)
            rc = tls_once(&b);
        t_tls += now_s() - t0;
        done += blk;
    }
    if (rc == 0) {
        printf("connect n=%d secs=%.4f\n", n, t_connect);
        printf("tls n=%d secs=%.4f version=%s\n", n, t_tls, b.version);
    }
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
    SSL_CTX_free(b.ctx);
    ident_free(&id);
    return rc ? 1 : 0;
}

/* ---------- hold: many runners, one completion queue ---------- */

enum { K_START, K_RECV, K_SEND, K_STATUS, K_CLOSE };

struct runner;
typedef struct {
    int kind;
    struct runner *r;
} rtag;

typedef struct runner {
    int idx;
    grpc_channel *ch;
    grpc_call *call;
    rtag t[5];
    int pending;       /* batches not yet completed */
    grpc_byte_buffer *sending, *recv_buf;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    int acked, done, close_sent;
    uint32_t hb_ms;
    uint64_t next_hb_ms;
} runner;

typedef struct {
    const char *target, *outdir;
    grpc_completion_queue *cq;
    runner *rs;
    int n, cap;
    int connecting; /* started, not acked, not done */
    int stopping;
    long heartbeats, skipped, dropped, clean, failed;
    uint32_t hb_ms; /* from the last HelloAck */
    long rss0_kib;  /* before the first runner */
} fleet;

static int batch(runner *r, grpc_op *ops, size_t n, int kind) {
    if (grpc_call_start_batch(r->call, ops, n, &r->t[kind], NULL) != GRPC_CALL_OK)
        return -1;
    r->pending++;
    return 0;
}

static void send_bb(runner *r, grpc_byte_buffer *bb) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    r->sending = bb;
    if (batch(r, &op, 1, K_SEND) != 0) {
        grpc_byte_buffer_destroy(bb);
        r->sending = NULL;
    }
}

static void post_recv(runner *r) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &r->recv_buf;
    batch(r, &op, 1, K_RECV);
}

static int runner_start(fleet *f, runner *r) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/r%05d", f->outdir, r->idx);
    ident id;
    if (ident_load(dir, &id) != 0) {
        ident_free(&id);
        return -1;
    }
    for (int k = 0; k < 5; k++)
        r->t[k] = (rtag){k, r};
    r->ch = channel_for(f->target, &id);
    ident_free(&id); /* the credentials keep their own copies */
    r->call = grpc_channel_create_call(r->ch, NULL, GRPC_PROPAGATE_DEFAULTS, f->cq,
                                       grpc_slice_from_static_string(METHOD_CONNECT), NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array_init(&r->md_init);
    grpc_metadata_array_init(&r->md_trail);
    r->details = grpc_empty_slice();
    r->status = GRPC_STATUS_UNKNOWN;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &r->md_init;
    batch(r, ops, 2, K_START);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &r->md_trail;
    ops[0].data.recv_status_on_client.status = &r->status;
    ops[0].data.recv_status_on_client.status_details = &r->details;
    batch(r, ops, 1, K_STATUS);
    send_bb(r, hello_msg(r->idx));
    post_recv(r);
    f->connecting++;
    return 0;
}

static void on_event(fleet *f, grpc_event ev) {
    rtag *t = ev.tag;
    runner *r = t->r;
    r->pending--;
    switch (t->kind) {
    case K_SEND:
        grpc_byte_buffer_destroy(r->sending);
        r->sending = NULL;
        break;
    case K_RECV: {
        if (!ev.success || !r->recv_buf)
            break; /* the stream is ending; the status follows */
        Airmesh__V1__ApplianceMessage *m = unpack_appliance(r->recv_buf);
        grpc_byte_buffer_destroy(r->recv_buf);
        r->recv_buf = NULL;
        if (m && m->msg_case == AIRMESH__V1__APPLIANCE_MESSAGE__MSG_HELLO_ACK && !r->acked) {
            r->acked = 1;
            f->connecting--;
            r->hb_ms = m->hello_ack->heartbeat_interval_ms ? m->hello_ack->heartbeat_interval_ms
                                                           : 5000;
            r->next_hb_ms = am_now_ms() + r->hb_ms;
            f->hb_ms = r->hb_ms;
        }
        if (m)
            airmesh__v1__appliance_message__free_unpacked(m, NULL);
        if (!r->done)
            post_recv(r);
        break;
    }
    case K_STATUS:
        r->done = 1;
        if (!r->acked) {
            f->connecting--;
            f->failed++;
        } else if (r->close_sent && r->status == GRPC_STATUS_OK) {
            f->clean++;
        } else {
            f->dropped++;
        }
        if (!(r->close_sent && r->status == GRPC_STATUS_OK) && f->failed + f->dropped <= 5) {
            char msg[300];
            details_str(r->details, msg, sizeof msg);
            fprintf(stderr, "runners_bench_client: runner %d ended: status=%d %s\n", r->idx,
                    (int)r->status, msg);
        }
        break;
    default:
        break;
    }
}

static void tick(fleet *f) {
    uint64_t now = am_now_ms();
    for (int i = 0; i < f->n; i++) {
        runner *r = &f->rs[i];
        if (!r->acked || r->done || r->close_sent || now < r->next_hb_ms)
            continue;
        r->next_hb_ms = now + r->hb_ms;
        if (r->sending) {
            f->skipped++;
            continue;
        }
        send_bb(r, heartbeat_msg());
        f->heartbeats++;
    }
    grpc_event ev = grpc_completion_queue_next(f->cq, in_ms(50), NULL);
    while (ev.type == GRPC_OP_COMPLETE) {
        on_event(f, ev);
        ev = grpc_completion_queue_next(f->cq, gpr_time_0(GPR_CLOCK_REALTIME), NULL);
    }
}

static int grow(fleet *f, int target_n) {
    if (target_n > f->cap) {
        fprintf(stderr, "runners_bench_client: grow %d: at most %d\n", target_n, f->cap);
        return -1;
    }
    double t0 = now_s();
    long failed0 = f->failed;
    while ((f->n < target_n || f->connecting > 0) && now_s() - t0 < 120) {
        while (f->n < target_n && f->connecting < 32) {
            runner *r = &f->rs[f->n];
            r->idx = f->n;
            f->n++;
            if (runner_start(f, r) != 0)
                return -1;
        }
        tick(f);
    }
    int acked = 0;
    for (int i = 0; i < f->n; i++)
        acked += f->rs[i].acked && !f->rs[i].done;
    printf("ready n=%d acked=%d failed=%ld secs=%.3f rss_kib=%ld rss0_kib=%ld hb_ms=%u\n", f->n,
           acked, f->failed - failed0, now_s() - t0, self_rss_kib(), f->rss0_kib, f->hb_ms);
    fflush(stdout);
    return 0;
}

static void stop_all(fleet *f) {
    for (int i = 0; i < f->n; i++) {
        runner *r = &f->rs[i];
        if (r->done || r->close_sent)
            continue;
        grpc_op op;
        memset(&op, 0, sizeof op);
        op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
        r->close_sent = 1;
        batch(r, &op, 1, K_CLOSE);
    }
    double t0 = now_s();
    for (;;) {
        int live = 0;
        for (int i = 0; i < f->n; i++)
            live += !f->rs[i].done;
        if (!live || now_s() - t0 > 30)
            break;
        tick(f);
    }
    /* Cancel stragglers, wait for every batch, then free. */
    for (int i = 0; i < f->n; i++)
        grpc_call_cancel(f->rs[i].call, NULL);
    for (;;) {
        int pend = 0;
        for (int i = 0; i < f->n; i++)
            pend += f->rs[i].pending;
        if (!pend)
            break;
        grpc_event ev = grpc_completion_queue_next(f->cq, in_ms(1000), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            on_event(f, ev);
    }
}

static void fleet_free(fleet *f) {
    for (int i = 0; i < f->n; i++) {
        runner *r = &f->rs[i];
        if (r->recv_buf)
            grpc_byte_buffer_destroy(r->recv_buf);
        grpc_slice_unref(r->details);
        grpc_metadata_array_destroy(&r->md_init);
        grpc_metadata_array_destroy(&r->md_trail);
        grpc_call_unref(r->call);
        grpc_channel_destroy(r->ch);
    }
    grpc_completion_queue_shutdown(f->cq);
    while (grpc_completion_queue_next(f->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(f->cq);
    free(f->rs);
}

static int mode_hold(char **argv) {
    fleet f = {.target = argv[0], .outdir = argv[1], .cap = 20000};
    f.rs = calloc((size_t)f.cap, sizeof *f.rs);
    f.cq = grpc_completion_queue_create_for_next(NULL);
    f.rss0_kib = self_rss_kib();
    char line[256];
    size_t len = 0;
    int rc = 0, quit = 0;
    while (!quit && rc == 0) {
        struct pollfd p = {0, POLLIN, 0};
        if (poll(&p, 1, 0) == 1) {
            ssize_t k = read(0, line + len, sizeof line - 1 - len);
            if (k <= 0) {
                quit = 1; /* the driver is gone: stop */
                break;
            }
            len += (size_t)k;
            line[len] = '\0';
            char *nl;
            while (!quit && rc == 0 && (nl = strchr(line, '\n')) != NULL) {
                *nl = '\0';
                int n;
                if (sscanf(line, "grow %d", &n) == 1)
                    rc = grow(&f, n);
                else if (strcmp(line, "stop") == 0)
                    quit = 1;
                memmove(line, nl + 1, len - (size_t)(nl + 1 - line) + 1);
                len = strlen(line);
            }
            if (len == sizeof line - 1)
                len = 0;
        }
        tick(&f);
    }
    stop_all(&f);
    printf("stopped n=%d clean=%ld dropped=%ld failed=%ld heartbeats=%ld skipped=%ld\n", f.n,
           f.clean, f.dropped, f.failed, f.heartbeats, f.skipped);
    fflush(stdout);
    fleet_free(&f);
    return rc ? 1 : 0;
}

int main(int argc, char **argv) {
    /* Never outlive the driver. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = 2;
    grpc_init();
    if (argc == 8 && strcmp(argv[1], "enroll") == 0)
        rc = mode_enroll(argv + 2);
    else if (argc == 5 && strcmp(argv[1], "handshakes") == 0)
        rc = mode_handshakes(argv + 2);
    else if (argc == 4 && strcmp(argv[1], "hold") == 0)
        rc = mode_hold(argv + 2);
    else
        fprintf(stderr,
                "usage: runners_bench_client enroll TARGET CA_SHA256 TOKENS OUTDIR SEQ THREADS\n"
                "       runners_bench_client handshakes TARGET RUNNER_DIR N\n"
                "       runners_bench_client hold TARGET OUTDIR   (commands on stdin)\n"
                "Run through tests/bench/runners_bench.py (make bench).\n");
    grpc_shutdown();
    am_pki_thread_done();
    return rc;
}
