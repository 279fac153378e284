/*
 * runner/session/enroll.c — enrollment: pin the appliance CA by fingerprint, then trade the
 * one-time token and a CSR for a client certificate.
 *
 * Pinning: the runner is given only the root CA's SHA-256. A plain TLS handshake (OpenSSL,
 * no verification yet) fetches the chain the appliance presents (leaf, issuing CA, root); the
 * certificate whose DER hashes to the pinned value must be a self-signed CA, and the whole chain
 * must verify against it. Only then is it trusted — by the gRPC channel that carries Enroll.
 */
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "airmesh/v1/enroll.pb-c.h"
#include "common/err.h"
#include "common/util.h"
#include "pki/pki.h"
#include "runner/session/client.h"
#include "runner/session/identity.h"
#include "runner/session/session.h"

static int split_hostport(const char *s, char *host, size_t cap, char *port, size_t pcap) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || !colon[1])
        return am_err_set(AM_EINVAL, "--appliance %s: expected HOST:PORT", s);
    size_t hl = (size_t)(colon - s);
    if (s[0] == '[' && colon[-1] == ']') {
        s++;
        hl -= 2;
    }
    if (hl >= cap || strlen(colon + 1) >= pcap)
        return am_err_set(AM_EINVAL, "--appliance %s: too long", s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    snprintf(port, pcap, "%s", colon + 1);
    return 0;
}

static int tcp_connect(const char *host, const char *port, int timeout_ms) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai)
        return am_err_set(AM_EIO, "appliance %s:%s: %s", host, port, gai_strerror(gai));
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
            err = errno;
            close(fd);
            fd = -1;
            continue;
        }
        struct pollfd p = {fd, POLLOUT, 0};
        socklen_t l = sizeof err;
        if (poll(&p, 1, timeout_ms) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) ||
            err) {
            if (!err)
                err = ETIMEDOUT;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return am_err_set(AM_EIO, "appliance %s:%s: %s", host, port, strerror(err));
    /* Back to blocking for the handshake, bounded by socket timeouts. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

static int normalize_fp(const char *in, char out[65]) {
    size_t n = 0;
    for (const char *p = in; *p; p++) {
        if (*p == ':')
            continue;
        if (n == 64 || !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') ||
                         (*p >= 'A' && *p <= 'F')))
            return am_err_set(AM_EINVAL, "--ca-sha256: expected 64 hex characters");
        out[n++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    }
    out[n] = '\0';
    if (n != 64)
        return am_err_set(AM_EINVAL, "--ca-sha256: expected 64 hex characters");
    return 0;
}

/* Handshake with the appliance, find the pinned root in its chain, verify the chain. */
static int discover_ca(const char *hostport, const char *fp_hex, char **ca_pem_out) {
    char host[256], port[16], want[65];
    int rc = normalize_fp(fp_hex, want);
    if (rc == 0)
        rc = split_hostport(hostport, host, sizeof host, port, sizeof port);
    if (rc)
        return rc;
    int fd = tcp_connect(host, port, 10000);
    if (fd < 0)
        return fd;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = ctx ? SSL_new(ctx) : NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *vctx = NULL;
    X509 *root = NULL;
    rc = -AM_EIO;
    if (!ssl)
        goto out;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    static const unsigned char alpn[] = "\x02h2";
    SSL_set_alpn_protos(ssl, alpn, sizeof alpn - 1);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        char buf[200];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        rc = am_err_set(AM_EIO, "TLS handshake with %s failed: %s", hostport, buf);
        goto out;
    }
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    for (int i = 0; chain && i < sk_X509_num(chain) && !root; i++) {
        X509 *c = sk_X509_value(chain, i);
        unsigned char *der = NULL;
        int len = i2d_X509(c, &der);
        if (len <= 0)
            continue;
        unsigned char d[32];
        unsigned int dl = 0;
        EVP_Digest(der, (size_t)len, d, &dl, EVP_sha256(), NULL);
        OPENSSL_free(der);
        char hex[65];
        am_hex(d, 32, hex);
        if (am_ct_equal(hex, want, 64))
            root = c;
    }
    if (!root || !leaf) {
        rc = am_err_set(AM_EAUTH,
                        "the appliance at %s did not present a CA with SHA-256 %s: wrong "
                        "fingerprint, or not the appliance you meant",
                        hostport, want);
        goto out;
    }
    if (X509_check_ca(root) == 0 ||
        X509_NAME_cmp(X509_get_subject_name(root), X509_get_issuer_name(root)) != 0) {
        rc = am_err_set(AM_EAUTH, "the pinned certificate is not a self-signed CA");
        goto out;
    }
    store = X509_STORE_new();
    vctx = X509_STORE_CTX_new();
    X509_STORE_add_cert(store, root);
    if (!vctx || X509_STORE_CTX_init(vctx, store, leaf, chain) != 1 ||
        X509_verify_cert(vctx) != 1) {
        rc = am_err_set(AM_EAUTH, "the appliance's certificate chain does not verify against "
                                  "the pinned CA: %s",
                        X509_verify_cert_error_string(X509_STORE_CTX_get_error(vctx)));
        goto out;
    }
    BIO *mem = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(mem, root);
    char *data;
    long n = BIO_get_mem_data(mem, &data);
    *ca_pem_out = strndup(data, (size_t)n);
    BIO_free(mem);
    rc = *ca_pem_out ? 0 : am_err_set(AM_ENOMEM, "out of memory");
out:
    X509_STORE_CTX_free(vctx);
    X509_STORE_free(store);
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    SSL_CTX_free(ctx);
    close(fd);
    return rc;
}

int am_sess_enroll(const am_sess_enroll_opts *o, char *runner_id_out, size_t cap) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/identity.pem", o->data_dir);
    if (access(path, F_OK) == 0)
        return am_err_set(AM_EEXISTS,
                          "%s is already enrolled: remove it (or use another --data) to enroll "
                          "again",
                          o->data_dir);
    if (am_mkdir_p(o->data_dir, 0700) != 0)
        return -AM_EIO;
    char *ca_pem = NULL, *key_pem = NULL;
    uint8_t *csr = NULL;
    size_t csr_len = 0;
    am_pki_key *key = NULL;
    grpc_channel *ch = NULL;
    grpc_completion_queue *cq = NULL;
    grpc_call *call = NULL;
    grpc_byte_buffer *req_bb = NULL, *resp_bb = NULL;
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_slice details = grpc_empty_slice();
    Airmesh__V1__EnrollResponse *resp = NULL;
    char hostname[256] = "unknown";
    gethostname(hostname, sizeof hostname - 1);

    int rc = discover_ca(o->appliance, o->ca_sha256, &ca_pem);
    if (rc == 0)
        rc = am_pki_key_generate(&key);
    if (rc == 0)
        rc = am_pki_csr_make(key, hostname, &csr, &csr_len);
    if (rc == 0)
        rc = am_pki_key_to_pem(key, &key_pem);
    if (rc)
        goto out;

    Airmesh__V1__EnrollRequest req = AIRMESH__V1__ENROLL_REQUEST__INIT;
    req.token = (char *)o->token;
    req.csr_der.data = csr;
    req.csr_der.len = csr_len;
    req.hostname = hostname;
    req.version = AM_RUNNER_VERSION;
    Airmesh__V1__EnrollRequest__LabelsEntry ents[32], *arr[32];
    for (size_t i = 0; i < o->n_labels && i < 32; i++) {
        airmesh__v1__enroll_request__labels_entry__init(&ents[i]);
        ents[i].key = (char *)o->label_keys[i];
        ents[i].value = (char *)o->label_values[i];
        arr[i] = &ents[i];
    }
    req.labels = arr;
    req.n_labels = o->n_labels < 32 ? o->n_labels : 32;
    req_bb = am_grpc_pack(&req.base);

    ch = am_client_channel(o->appliance, ca_pem, NULL, NULL);
    cq = grpc_completion_queue_create_for_pluck(NULL);
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                         gpr_time_from_seconds(30, GPR_TIMESPAN));
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                    grpc_slice_from_static_string(AM_METHOD_ENROLL), NULL,
                                    deadline, NULL);
    grpc_status_code status = GRPC_STATUS_UNKNOWN;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = req_bb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &md_init;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &resp_bb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[5].data.recv_status_on_client.status = &status;
    ops[5].data.recv_status_on_client.status_details = &details;
    int tag = 1;
    if (grpc_call_start_batch(call, ops, 6, &tag, NULL) != GRPC_CALL_OK) {
        rc = am_err_set(AM_EIO, "enroll: could not start the call");
        goto out;
    }
    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    char msg[512];
    am_client_details(details, msg, sizeof msg);
    if (status != GRPC_STATUS_OK) {
        rc = am_err_set(status == GRPC_STATUS_UNAUTHENTICATED ? AM_EAUTH : AM_EIO,
                        "enrollment refused by %s: %s", o->appliance,
                        msg[0] ? msg : "no reason given (is the address right?)");
        goto out;
    }
    resp = (Airmesh__V1__EnrollResponse *)am_grpc_unpack(
        resp_bb, &airmesh__v1__enroll_response__descriptor);
    if (!resp || !resp->cert_chain_pem[0]) {
        rc = am_err_set(AM_EIO, "enroll: malformed response from the appliance");
        goto out;
    }
    /* The certificate must be for our key and chain to the pinned CA. */
    if (am_pki_verify_chain(ca_pem, resp->cert_chain_pem) != 0) {
        rc = am_err_set(AM_EAUTH, "enroll: the issued certificate does not chain to the pinned CA");
        goto out;
    }
    rc = am_identity_save_pem(o->data_dir, key_pem, resp->cert_chain_pem);
    if (rc == 0)
        rc = am_identity_save_meta(o->data_dir, ca_pem, resp->runner_id, resp->org_id,
                                   o->appliance);
    if (rc == 0)
        snprintf(runner_id_out, cap, "%s", resp->runner_id);
out:
    if (resp)
        protobuf_c_message_free_unpacked(&resp->base, NULL);
    if (req_bb)
        grpc_byte_buffer_destroy(req_bb);
    if (resp_bb)
        grpc_byte_buffer_destroy(resp_bb);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
    if (call)
        grpc_call_unref(call);
    if (ch)
        grpc_channel_destroy(ch);
    if (cq) {
        grpc_completion_queue_shutdown(cq);
        grpc_completion_queue_destroy(cq);
    }
    if (key_pem) {
        am_wipe(key_pem, strlen(key_pem));
        free(key_pem);
    }
    am_pki_key_free(key);
    free(csr);
    free(ca_pem);
    return rc;
}
