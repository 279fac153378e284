/*
 * appliance/rpc/rpc.c — the runner protocol on the gRPC C core: server setup, the rpc thread's
 * completion-queue loop, and Enroll (unary). The Connect stream is stream.c.
 *
 * Every operation batch carries a `tag` naming its object and kind; the rpc thread is the only
 * one that touches call objects, except am_hub close callbacks (stream.c). What a message means
 * is appliance/ops' business: this module frames, identifies the peer, and hands over.
 */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/enroll.pb-c.h"
#include "airmesh/v1/runner.pb-c.h"
#include "appliance/rpc/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* ---------- helpers ---------- */

void am_rpc_labels_from(void **entries, size_t n, const char **keys, const char **vals, size_t cap,
                        am_labels *out) {
    size_t k = 0;
    for (size_t i = 0; i < n && k < cap; i++) {
        /* Map entries of every message share the key/value layout. */
        Airmesh__V1__Hello__LabelsEntry *e = entries[i];
        if (!e->key || !e->value || strlen(e->key) > 63 || strlen(e->value) > 255)
            continue;
        keys[k] = e->key;
        vals[k] = e->value;
        k++;
    }
    out->keys = keys;
    out->values = vals;
    out->n = k;
}

void am_rpc_peer_addr(grpc_call *call, char *buf, size_t cap) {
    char *p = grpc_call_get_peer(call);
    snprintf(buf, cap, "%s", p ? p : "");
    gpr_free(p);
}

/* ---------- Enroll (unary) ---------- */

typedef struct {
    am_rpc *rpc;
    tag t_new, t_done;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *payload;
    grpc_byte_buffer *resp;
    int cancelled;
    grpc_slice details;
} enroll_call;

void am_rpc_request_enroll(am_rpc *r) {
    enroll_call *e = calloc(1, sizeof *e);
    e->rpc = r;
    e->t_new = (tag){T_NEW_ENROLL, e};
    e->t_done = (tag){T_ENROLL_DONE, e};
    grpc_metadata_array_init(&e->md);
    grpc_server_request_registered_call(r->server, r->m_enroll, &e->call, &e->deadline, &e->md,
                                        &e->payload, r->cq, r->cq, &e->t_new);
}

static void enroll_free(enroll_call *e) {
    if (e->payload)
        grpc_byte_buffer_destroy(e->payload);
    if (e->resp)
        grpc_byte_buffer_destroy(e->resp);
    grpc_metadata_array_destroy(&e->md);
    grpc_slice_unref(e->details);
    if (e->call)
        grpc_call_unref(e->call);
    free(e);
}

static void on_enroll(enroll_call *e) {
    am_rpc *r = e->rpc;
    char peer[128];
    am_rpc_peer_addr(e->call, peer, sizeof peer);
    grpc_status_code code = GRPC_STATUS_OK;
    char msg[512] = "";
    Airmesh__V1__EnrollRequest *req =
        e->payload ? (Airmesh__V1__EnrollRequest *)am_grpc_unpack(
                         e->payload, &airmesh__v1__enroll_request__descriptor)
                   : NULL;
    if (!req) {
        code = GRPC_STATUS_INVALID_ARGUMENT;
        snprintf(msg, sizeof msg, "malformed EnrollRequest");
    } else {
        const char *keys[32], *vals[32];
        am_labels labels;
        am_rpc_labels_from((void **)req->labels, req->n_labels, keys, vals, 32, &labels);
        am_enrolled en;
        int rc = am_ops_runner_enroll(r->app->ops, peer, req->token, req->csr_der.data,
                                      req->csr_der.len, req->hostname, req->version, &labels, &en);
        if (rc) {
            code = rc == -AM_EAUTH                         ? GRPC_STATUS_UNAUTHENTICATED
                   : rc == -AM_EINVAL || rc == -AM_ECRYPTO ? GRPC_STATUS_INVALID_ARGUMENT
                                                           : GRPC_STATUS_INTERNAL;
            snprintf(msg, sizeof msg, "%s", am_err_last());
        } else {
            Airmesh__V1__EnrollResponse resp = AIRMESH__V1__ENROLL_RESPONSE__INIT;
            uint8_t *ca_pem = NULL;
            size_t ca_len = 0;
            am_read_file(am_ca_path(r->app->ca, "ca.pem"), 1 << 20, &ca_pem, &ca_len);
            resp.runner_id = en.runner_id;
            resp.cert_chain_pem = en.chain_pem;
            resp.ca_pem = ca_pem ? (char *)ca_pem : "";
            resp.org_id = en.org_id;
            resp.cert_not_after_ms = en.not_after_ms;
            e->resp = am_grpc_pack(&resp.base);
            free(ca_pem);
            free(en.chain_pem);
        }
        protobuf_c_message_free_unpacked(&req->base, NULL);
    }
    grpc_op ops[4];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (e->resp) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n++].data.send_message.send_message = e->resp;
    }
    e->details = grpc_slice_from_copied_string(msg);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = code;
    ops[n++].data.send_status_from_server.status_details = &e->details;
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n++].data.recv_close_on_server.cancelled = &e->cancelled;
    if (grpc_call_start_batch(e->call, ops, n, &e->t_done, NULL) != GRPC_CALL_OK)
        enroll_free(e);
}

/* ---------- unknown methods: UNIMPLEMENTED at once ---------- */

/* Calls to methods nobody registered would wait for their deadline; one generic request is
 * always posted to catch them and answer UNIMPLEMENTED (trailers only). */
typedef struct {
    tag t_new, t_done;
    grpc_call *call;
    grpc_call_details cd;
    grpc_metadata_array md;
    int cancelled;
    grpc_slice details;
} unknown_call;

static void request_unknown(am_rpc *r) {
    unknown_call *u = calloc(1, sizeof *u);
    if (!u)
        return;
    u->t_new = (tag){T_NEW_UNKNOWN, u};
    u->t_done = (tag){T_UNKNOWN_DONE, u};
    grpc_call_details_init(&u->cd);
    grpc_metadata_array_init(&u->md);
    u->details = grpc_slice_from_static_string("unknown method");
    grpc_server_request_call(r->server, &u->call, &u->cd, &u->md, r->cq, r->cq, &u->t_new);
}

static void unknown_free(unknown_call *u) {
    if (u->call)
        grpc_call_unref(u->call);
    grpc_call_details_destroy(&u->cd);
    grpc_metadata_array_destroy(&u->md);
    grpc_slice_unref(u->details);
    free(u);
}

static void on_unknown(unknown_call *u) {
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[1].data.recv_close_on_server.cancelled = &u->cancelled;
    ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[2].data.send_status_from_server.status = GRPC_STATUS_UNIMPLEMENTED;
    ops[2].data.send_status_from_server.status_details = &u->details;
    if (grpc_call_start_batch(u->call, ops, 3, &u->t_done, NULL) != GRPC_CALL_OK)
        unknown_free(u);
}

/* ---------- the rpc thread ---------- */

static void *rpc_thread(void *arg) {
    am_rpc *r = arg;
    int shutdown_seen = 0;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        tag *t = ev.tag;
        switch (t->kind) {
        case T_SHUTDOWN:
            shutdown_seen = 1;
            break;
        case T_NEW_ENROLL: {
            enroll_call *e = t->obj;
            if (!ev.success || r->stopping) {
                enroll_free(e);
                break;
            }
            am_rpc_request_enroll(r);
            on_enroll(e);
            break;
        }
        case T_ENROLL_DONE:
            enroll_free(t->obj);
            break;
        case T_NEW_UNKNOWN:
            if (!ev.success || r->stopping) {
                unknown_free(t->obj);
                break;
            }
            request_unknown(r);
            on_unknown(t->obj);
            break;
        case T_UNKNOWN_DONE:
            unknown_free(t->obj);
            break;
        case T_NEW_CONNECT:
            am_rpc_stream_started(r, t->obj, ev.success);
            break;
        default:
            am_rpc_stream_event(t->obj, t->kind, ev.success);
        }
        if (shutdown_seen && r->live_streams == 0) {
            grpc_completion_queue_shutdown(r->cq);
            shutdown_seen = 0;
        }
    }
    am_pki_thread_done();
    return NULL;
}

int am_rpc_start(am_app *app, am_hub *hub, const am_rpc_opts *o, am_rpc **out) {
    am_rpc *r = calloc(1, sizeof *r);
    if (!r)
        return am_err_set(AM_ENOMEM, "rpc: out of memory");
    r->app = app;
    r->hub = hub;
    r->o = *o;
    if (!r->o.cert_days)
        r->o.cert_days = 7;
    if (!r->o.heartbeat_ms)
        r->o.heartbeat_ms = 5000;
    if (!r->o.max_message)
        r->o.max_message = 4u << 20;
    r->t_shutdown = (tag){T_SHUTDOWN, r};

    uint8_t *chain = NULL, *key = NULL, *root = NULL;
    size_t chain_len, key_len, root_len;
    int rc = am_read_file(am_ca_path(app->ca, "server.pem"), 1 << 20, &chain, &chain_len);
    if (rc == 0)
        rc = am_read_file(am_ca_path(app->ca, "server.key"), 1 << 20, &key, &key_len);
    if (rc == 0)
        rc = am_read_file(am_ca_path(app->ca, "ca.pem"), 1 << 20, &root, &root_len);
    if (rc) {
        free(chain);
        free(key);
        free(root);
        free(r);
        return rc;
    }
    /* Chain sent to peers: leaf, issuing CA, root (so a runner can pin the root by hash). */
    char *full = malloc(chain_len + root_len + 2);
    snprintf(full, chain_len + root_len + 2, "%s%s%s", (char *)chain,
             chain_len && chain[chain_len - 1] != '\n' ? "\n" : "", (char *)root);
    grpc_ssl_pem_key_cert_pair pair = {(const char *)key, full};
    grpc_server_credentials *creds = grpc_ssl_server_credentials_create_ex(
        (const char *)root, &pair, 1, GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY, NULL);

    grpc_arg args[4];
    args[0] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                         .value.integer = (int)r->o.max_message};
    args[1] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 10000};
    args[2] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 5000};
    args[3] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                         .key = GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
                         .value.integer = 1000};
    grpc_channel_args cargs = {4, args};
    r->server = grpc_server_create(&cargs, NULL);
    r->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(r->server, r->cq, NULL);
    r->m_enroll = grpc_server_register_method(r->server, METHOD_ENROLL, NULL,
                                              GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
    r->m_connect =
        grpc_server_register_method(r->server, METHOD_CONNECT, NULL, GRPC_SRM_PAYLOAD_NONE, 0);
    r->port = grpc_server_add_http2_port(r->server, o->listen, creds);
    grpc_server_credentials_release(creds);
    am_wipe(key, key_len);
    free(key);
    free(chain);
    free(root);
    free(full);
    if (r->port == 0) {
        grpc_server_destroy(r->server);
        grpc_completion_queue_shutdown(r->cq);
        while (grpc_completion_queue_next(r->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN)
            ;
        grpc_completion_queue_destroy(r->cq);
        free(r);
        return am_err_set(AM_EIO,
                          "rpc: cannot listen on %s (port in use or bad address; see "
                          "--grpc-listen)",
                          o->listen);
    }
    grpc_server_start(r->server);
    for (int i = 0; i < 4; i++) {
        am_rpc_request_enroll(r);
        am_rpc_request_connect(r);
    }
    request_unknown(r);
    if (pthread_create(&r->thread, NULL, rpc_thread, r) != 0) {
        am_rpc_stop(r);
        return am_err_set(AM_EIO, "rpc: cannot start the rpc thread");
    }
    *out = r;
    return 0;
}

int am_rpc_port(const am_rpc *r) {
    return r->port;
}

int am_rpc_link_send(void *rpc, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    return rpc ? am_rpc_send(rpc, runner_id, m)
               : am_err_set(AM_EUNAVAIL, "runner %s is not connected", runner_id);
}

void am_rpc_stop(am_rpc *r) {
    if (!r)
        return;
    r->stopping = 1;
    grpc_server_shutdown_and_notify(r->server, r->cq, &r->t_shutdown);
    grpc_server_cancel_all_calls(r->server);
    if (r->thread)
        pthread_join(r->thread, NULL);
    grpc_server_destroy(r->server);
    grpc_completion_queue_destroy(r->cq);
    free(r);
}
