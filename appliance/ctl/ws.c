/*
 * appliance/ctl/ws.c — the WebSocket client behind `airmeshctl pod logs|attach` (see ws.h).
 *
 * Steps of am_ctl_ws_open, each failure printed with what failed: parse the https URL, resolve
 * and connect (TCP), TLS (OpenSSL; the peer must chain to --ca or the system store and match
 * the URL's host name or IP; ALPN http/1.1 so the upgrade is HTTP/1.1), send the upgrade
 * request with the bearer token, read the response head: 101 goes on, anything else is the
 * API's JSON error, printed. Frames: the client masks (random key per frame), the server does
 * not; a message larger than 16 MiB ends the connection (airmeshd sends at most 64 KiB).
 * Ownership: am_ctl_ws owns its socket, SSL objects and buffers; am_ctl_ws_free releases all.
 */
#include "appliance/ctl/ws.h"
#include "appliance/ctl/wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MESSAGE (16u << 20)

struct am_ctl_ws {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    uint8_t *buf; /* bytes read from TLS, not yet consumed */
    size_t len, cap;
    uint8_t *msg; /* the last message returned by recv */
    int close_code;
};

static void tls_error(const char *step) {
    unsigned long e = ERR_get_error();
    char text[256];
    ERR_error_string_n(e, text, sizeof text);
    fprintf(stderr, "airmeshctl: %s: %s\n", step, e ? text : "failed");
}

/* "https://host[:port][/...]" → host, port. IPv6 in brackets. */
static int parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap) {
    if (strncasecmp(url, "https://", 8) != 0) {
        fprintf(stderr, "airmeshctl: %s: the appliance URL must start with https://\n", url);
        return -1;
    }
    const char *p = url + 8, *end;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end)
            goto bad;
        snprintf(host, hcap, "%.*s", (int)(end - p - 1), p + 1);
        p = end + 1;
    } else {
        end = p + strcspn(p, ":/");
        snprintf(host, hcap, "%.*s", (int)(end - p), p);
        p = end;
    }
    if (!*host)
        goto bad;
    if (*p == ':') {
        size_t n = strcspn(p + 1, "/");
        if (n == 0 || n >= pcap)
            goto bad;
        snprintf(port, pcap, "%.*s", (int)n, p + 1);
    } else {
        snprintf(port, pcap, "443");
    }
    return 0;
bad:
    fprintf(stderr, "airmeshctl: %s: not a URL of the form https://HOST[:PORT]\n", url);
    return -1;
}

static int dial(const char *host, const char *port) {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "airmeshctl: cannot find the appliance's host %s: %s (check --url)\n", host,
                gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        fprintf(stderr, "airmeshctl: cannot connect to %s:%s: %s (is airmeshd running there?)\n",
                host, port, strerror(err));
    return fd;
}

static int write_all(am_ctl_ws *w, const void *data, size_t len) {
    const uint8_t *p = data;
    while (len) {
        int n = SSL_write(w->ssl, p, len > 1 << 30 ? 1 << 30 : (int)len);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Read more TLS bytes into buf, waiting up to timeout_ms. 1 read, 0 timeout, -1 closed. */
static int fill(am_ctl_ws *w, int timeout_ms) {
    if (!SSL_pending(w->ssl)) {
        struct pollfd pfd = {.fd = w->fd, .events = POLLIN};
        int r = poll(&pfd, 1, timeout_ms);
        if (r == 0)
            return 0;
        if (r < 0)
            return errno == EINTR ? 0 : -1;
    }
    if (w->cap - w->len < 65536) {
        size_t ncap = w->cap ? w->cap * 2 : 131072;
        uint8_t *nb = realloc(w->buf, ncap);
        if (!nb)
            return -1;
        w->buf = nb;
        w->cap = ncap;
    }
    int n = SSL_read(w->ssl, w->buf + w->len, (int)(w->cap - w->len));
    if (n <= 0) {
        int e = SSL_get_error(w->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            return 0;
        return -1;
    }
    w->len += (size_t)n;
    return 1;
}

static const char *find_head_end(const uint8_t *b, size_t n) {
    for (size_t i = 0; i + 3 < n; i++)
        if (b[i] == '\r' && b[i + 1] == '\n' && b[i + 2] == '\r' && b[i + 3] == '\n')
            return (const char *)b + i;
    return NULL;
}

/* A refused upgrade: print the API's {"error":{"message"}} (reading Content-Length bytes). */
static void report_refusal(am_ctl_ws *w, int status, size_t head_len) {
    const char *cl = NULL;
    size_t want = 0;
    for (size_t i = 0; i + 15 < head_len; i++)
        if (strncasecmp((char *)w->buf + i, "\r\ncontent-length:", 17) == 0) {
            cl = (char *)w->buf + i + 17;
            want = strtoul(cl, NULL, 10);
            break;
        }
    if (want > 65536)
        want = 65536;
    time_t deadline = time(NULL) + 10;
    while (w->len < head_len + want && time(NULL) < deadline)
        if (fill(w, 1000) < 0)
            break;
    json_t *doc = w->len > head_len
                      ? json_loadb((char *)w->buf + head_len,
                                   w->len - head_len < want ? w->len - head_len : want, 0, NULL)
                      : NULL;
    const char *msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
    fprintf(stderr, "airmeshctl: HTTP %d: %s\n", status, msg ? msg : "the terminal was refused");
    json_decref(doc);
}

int am_ctl_ws_open(const char *base_url, const char *ca, const char *token, const char *path,
                   am_ctl_ws **out) {
    char host[256], port[16];
    *out = NULL;
    if (parse_url(base_url, host, sizeof host, port, sizeof port) != 0)
        return 1;
    am_ctl_ws *w = calloc(1, sizeof *w);
    if (!w)
        return 1;
    w->fd = -1;
    w->close_code = 1006;
    /* 1. TCP */
    if ((w->fd = dial(host, port)) < 0)
        goto fail;
    /* 2. TLS, verified against the CA and the host name / IP of the URL */
    w->ctx = SSL_CTX_new(TLS_client_method());
    if (!w->ctx) {
        tls_error("TLS setup");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(w->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(w->ctx, SSL_VERIFY_PEER, NULL);
    if (ca ? SSL_CTX_load_verify_locations(w->ctx, ca, NULL) != 1
           : SSL_CTX_set_default_verify_paths(w->ctx) != 1) {
        fprintf(stderr,
                "airmeshctl: cannot load the CA certificate %s (pass the appliance's CA "
                "with --ca FILE or AIRMESH_CA)\n",
                ca ? ca : "store");
        goto fail;
    }
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(w->ctx, alpn, sizeof alpn - 1);
    w->ssl = SSL_new(w->ctx);
    if (!w->ssl || SSL_set_fd(w->ssl, w->fd) != 1) {
        tls_error("TLS setup");
        goto fail;
    }
    unsigned char ip[16];
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(w->ssl), host);
    } else {
        SSL_set_tlsext_host_name(w->ssl, host);
        SSL_set1_host(w->ssl, host);
    }
    if (SSL_connect(w->ssl) != 1) {
        long v = SSL_get_verify_result(w->ssl);
        if (v != X509_V_OK)
            fprintf(stderr,
                    "airmeshctl: %s: the appliance's certificate is not trusted: %s (pass the "
                    "appliance's CA with --ca FILE or AIRMESH_CA)\n",
                    base_url, X509_verify_cert_error_string(v));
        else
            tls_error("TLS handshake");
        goto fail;
    }
    /* 3. the upgrade */
    unsigned char nonce[16];
    char key[32], req[2048];
    RAND_bytes(nonce, sizeof nonce);
    EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n",
                     path, host, port, key, token);
    if (n < 0 || (size_t)n >= sizeof req || write_all(w, req, (size_t)n) != 0) {
        fprintf(stderr, "airmeshctl: cannot send the terminal request\n");
        OPENSSL_cleanse(req, sizeof req);
        goto fail;
    }
    OPENSSL_cleanse(req, sizeof req);
    /* 4. the response head */
    const char *end;
    time_t deadline = time(NULL) + 30;
    while (!(end = find_head_end(w->buf, w->len))) {
        if (w->len > 16384 || time(NULL) > deadline || fill(w, 1000) < 0) {
            fprintf(stderr, "airmeshctl: %s%s: no answer to the terminal request\n", base_url,
                    path);
            goto fail;
        }
    }
    size_t head_len = (size_t)(end - (char *)w->buf) + 4;
    int status = 0;
    if (sscanf((char *)w->buf, "HTTP/1.1 %d", &status) != 1 || status != 101) {
        report_refusal(w, status, head_len);
        goto fail;
    }
    memmove(w->buf, w->buf + head_len, w->len - head_len);
    w->len -= head_len;
    *out = w;
    return 0;
fail:
    am_ctl_ws_free(w);
    return 1;
}

int am_ctl_ws_send(am_ctl_ws *w, int opcode, const void *data, size_t len) {
    uint8_t hdr[14];
    size_t h = 0;
    hdr[h++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        hdr[h++] = (uint8_t)(0x80 | len);
    } else if (len < 65536) {
        hdr[h++] = 0x80 | 126;
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    uint8_t mask[4];
    RAND_bytes(mask, sizeof mask);
    memcpy(hdr + h, mask, 4);
    h += 4;
    uint8_t *frame = malloc(h + len);
    if (!frame)
        return -1;
    memcpy(frame, hdr, h);
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++)
        frame[h + i] = p[i] ^ mask[i & 3];
    int rc = write_all(w, frame, h + len);
    OPENSSL_cleanse(frame, h + len);
    free(frame);
    return rc;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int am_ctl_ws_recv(am_ctl_ws *w, int timeout_ms, int *opcode, const uint8_t **data, size_t *len) {
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        /* a whole frame in the buffer? */
        size_t off, n;
        int op, f = am_ctl_ws_frame(w->buf, w->len, MAX_MESSAGE, &op, &off, &n);
        if (f < 0)
            return -1;
        if (f == 1) {
            free(w->msg);
            w->msg = malloc(n + 1);
            if (!w->msg)
                return -1;
            memcpy(w->msg, w->buf + off, n);
            w->msg[n] = 0;
            memmove(w->buf, w->buf + off + n, w->len - off - n);
            w->len -= off + n;
            if (op == AM_WS_PING) {
                am_ctl_ws_send(w, AM_WS_PONG, w->msg, n);
                continue;
            }
            if (op == AM_WS_PONG)
                continue;
            if (op == AM_WS_CLOSE) {
                w->close_code = n >= 2 ? (w->msg[0] << 8) | w->msg[1] : 1005;
                uint8_t code[2] = {n >= 2 ? w->msg[0] : 0, n >= 2 ? w->msg[1] : 0};
                am_ctl_ws_send(w, AM_WS_CLOSE, code, n >= 2 ? 2 : 0);
                return -1;
            }
            *opcode = op;
            *data = w->msg;
            *len = n;
            return 1;
        }
        /* A zero timeout still reads what is already there. */
        int left = deadline < 0 ? -1 : (int)(deadline - now_ms());
        if (left < -1)
            left = 0;
        if (deadline >= 0 && left < 0)
            left = 0;
        int r = fill(w, left);
        if (r < 0)
            return -1;
        if (r == 0 && deadline >= 0 && now_ms() >= deadline)
            return 0;
    }
}

int am_ctl_ws_fd(const am_ctl_ws *w) {
    return w->fd;
}

int am_ctl_ws_buffered(const am_ctl_ws *w) {
    return w->len > 0 || SSL_pending(w->ssl) > 0;
}

int am_ctl_ws_close_code(const am_ctl_ws *w) {
    return w->close_code;
}

void am_ctl_ws_free(am_ctl_ws *w) {
    if (!w)
        return;
    if (w->ssl) {
        SSL_shutdown(w->ssl);
        SSL_free(w->ssl);
    }
    if (w->ctx)
        SSL_CTX_free(w->ctx);
    if (w->fd >= 0)
        close(w->fd);
    free(w->buf);
    free(w->msg);
    free(w);
}
