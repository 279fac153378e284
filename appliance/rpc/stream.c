/*
 * appliance/rpc/stream.c — RunnerService.Connect: the bidirectional stream state machine
 * (identity from the client certificate, the send queue, receive, close), driven by the rpc
 * thread (rpc.c). Each message is handed to appliance/ops.
 *
 * Every operation batch carries a `tag` naming its object and kind; the rpc thread is the only
 * one that touches call objects, except am_hub close callbacks, which only call the thread-safe
 * grpc_call_cancel_with_status under the hub mutex (a stream leaves the hub, under that mutex,
 * before it is freed). A stream object is freed when its close notification arrived and no batch
 * is outstanding (`pending` == 0). Only one SEND_MESSAGE is in flight per call; others queue.
 * Terminal output (TerminalOutput) is appended to the pod's ring in the hub, which wakes the
 * http thread for the web terminal; a final PodStatus (exited/stopped/failed) ends the pod's
 * terminal there after its last byte (same stream, in order). A GatewayRequest goes to the
 * model gateway's thread (appliance/gateway, am_gw_submit copies it); its answers come back
 * through am_rpc_send, and am_rpc_queued tells the gateway how full the stream's queue is
 * (bytes queued or in flight), so it pauses a transfer instead of growing the queue. An
 * McpRequest goes to the MCP workers (appliance/mcp, am_mcp_submit copies it); their
 * McpResponse messages come back through am_rpc_send as well.
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
#include "appliance/gateway/gateway.h"
#include "appliance/mcp/mcp.h"
#include "appliance/rpc/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* The verified client certificate's CN (runner id), O (org) and serial. */
static int peer_identity(grpc_call *call, char *cn, size_t cn_cap, char *org, size_t org_cap,
                         uint64_t *serial) {
    grpc_auth_context *ac = grpc_call_auth_context(call);
    int rc = -1;
    if (!ac)
        return -1;
    if (!grpc_auth_context_peer_is_authenticated(ac))
        goto out;
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ac, "x509_pem_cert");
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    if (!p)
        goto out;
    BIO *bio = BIO_new_mem_buf(p->value, (int)p->value_length);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!x)
        goto out;
    X509_NAME *subj = X509_get_subject_name(x);
    const ASN1_INTEGER *sn = X509_get0_serialNumber(x);
    uint64_t v = 0;
    if (X509_NAME_get_text_by_NID(subj, NID_commonName, cn, (int)cn_cap) > 0 &&
        X509_NAME_get_text_by_NID(subj, NID_organizationName, org, (int)org_cap) > 0 &&
        ASN1_INTEGER_get_uint64(&v, sn) == 1) {
        *serial = v;
        rc = 0;
    }
    X509_free(x);
out:
    grpc_auth_context_release(ac);
    return rc;
}

/* ---------- Connect (stream) ---------- */

typedef struct sendq {
    grpc_byte_buffer *bb;
    size_t len;
    struct sendq *next;
} sendq;

typedef struct stream {
    am_rpc *rpc;
    tag t_new, t_start, t_recv, t_send, t_close, t_status;
    grpc_call *call;
    gpr_timespec deadline;
    grpc_metadata_array md;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *sending;
    size_t sending_len;
    sendq *q_head, *q_tail;
    size_t q_bytes; /* queued + in flight: the model gateway's back-pressure reads it */
    int pending;    /* batches not yet completed */
    int closed;     /* RECV_CLOSE_ON_SERVER completed */
    int status_sent;
    int online; /* registered in the hub */
    int cancelled;
    size_t qlen;
    pthread_mutex_t mu; /* recursive: guards the send queue, pending and status_sent, because
                           other threads send through am_rpc_send (hub mutex held) */
    grpc_slice details;
    char runner_id[64], org[129], peer[128];
} stream;

#define SENDQ_MAX 4096

void am_rpc_request_connect(am_rpc *r) {
    stream *s = calloc(1, sizeof *s);
    s->rpc = r;
    s->t_new = (tag){T_NEW_CONNECT, s};
    s->t_start = (tag){T_C_START, s};
    s->t_recv = (tag){T_C_RECV, s};
    s->t_send = (tag){T_C_SEND, s};
    s->t_close = (tag){T_C_CLOSE, s};
    s->t_status = (tag){T_C_STATUS, s};
    s->details = grpc_empty_slice();
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &ma);
    pthread_mutexattr_destroy(&ma);
    grpc_metadata_array_init(&s->md);
    grpc_server_request_registered_call(r->server, r->m_connect, &s->call, &s->deadline, &s->md,
                                        NULL, r->cq, r->cq, &s->t_new);
}

static void stream_free(stream *s) {
    while (s->q_head) {
        sendq *n = s->q_head->next;
        grpc_byte_buffer_destroy(s->q_head->bb);
        free(s->q_head);
        s->q_head = n;
    }
    if (s->sending)
        grpc_byte_buffer_destroy(s->sending);
    if (s->recv_buf)
        grpc_byte_buffer_destroy(s->recv_buf);
    grpc_metadata_array_destroy(&s->md);
    grpc_slice_unref(s->details);
    if (s->call)
        grpc_call_unref(s->call);
    s->rpc->live_streams--;
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int start(stream *s, grpc_op *ops, size_t n, tag *t) {
    pthread_mutex_lock(&s->mu);
    int rc = grpc_call_start_batch(s->call, ops, n, t, NULL) == GRPC_CALL_OK ? 0 : -1;
    if (rc == 0)
        s->pending++;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static void finish(stream *s, grpc_status_code code, const char *msg) {
    pthread_mutex_lock(&s->mu);
    if (s->status_sent) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->status_sent = 1;
    grpc_slice_unref(s->details);
    s->details = grpc_slice_from_copied_string(msg);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    op.data.send_status_from_server.status = code;
    op.data.send_status_from_server.status_details = &s->details;
    start(s, &op, 1, &s->t_status);
    pthread_mutex_unlock(&s->mu);
}

/* Caller holds s->mu. */
static void send_next(stream *s) {
    if (s->sending || !s->q_head || s->status_sent)
        return;
    sendq *q = s->q_head;
    s->qlen--;
    s->q_head = q->next;
    if (!s->q_head)
        s->q_tail = NULL;
    s->sending = q->bb;
    s->sending_len = q->len;
    free(q);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = s->sending;
    if (start(s, &op, 1, &s->t_send) != 0) {
        grpc_byte_buffer_destroy(s->sending);
        s->sending = NULL;
        s->q_bytes -= s->sending_len;
    }
}

/* Any thread. -1 when the stream is ending or its queue is full. */
static int send_msg(stream *s, Airmesh__V1__ApplianceMessage *m) {
    m->time_ms = am_now_ms();
    pthread_mutex_lock(&s->mu);
    if (s->status_sent || s->qlen >= SENDQ_MAX) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    sendq *q = calloc(1, sizeof *q);
    if (!q) {
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    q->bb = am_grpc_pack(&m->base);
    q->len = q->bb ? grpc_byte_buffer_length(q->bb) : 0;
    s->q_bytes += q->len;
    if (s->q_tail)
        s->q_tail->next = q;
    else
        s->q_head = q;
    s->q_tail = q;
    s->qlen++;
    send_next(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void post_recv(stream *s) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &s->recv_buf;
    start(s, &op, 1, &s->t_recv);
}

/* Hub close callback: runs on any thread under the hub mutex. */
static void hub_close(void *stream_ptr, const char *reason) {
    stream *s = stream_ptr;
    grpc_call_cancel_with_status(s->call, GRPC_STATUS_PERMISSION_DENIED, reason, NULL);
}

static void on_connect(stream *s) {
    am_rpc *r = s->rpc;
    r->live_streams++;
    am_rpc_peer_addr(s->call, s->peer, sizeof s->peer);
    uint64_t serial = 0;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    start(s, ops, 1, &s->t_start);
    ops[0].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[0].data.recv_close_on_server.cancelled = &s->cancelled;
    start(s, ops, 1, &s->t_close);

    if (peer_identity(s->call, s->runner_id, sizeof s->runner_id, s->org, sizeof s->org, &serial) !=
        0) {
        am_ops_peer anon = {NULL, "", s->peer};
        am_ops_runner_connect(r->app->ops, &anon, 0);
        finish(s, GRPC_STATUS_UNAUTHENTICATED,
               "a client certificate issued by this appliance is required: enroll first");
        return;
    }
    am_ops_peer p = {s->runner_id, s->org, s->peer};
    if (am_ops_runner_connect(r->app->ops, &p, serial) != 0) {
        finish(s, GRPC_STATUS_PERMISSION_DENIED, am_err_last());
        return;
    }
    am_hub_runner_online(r->hub, s->runner_id, s, hub_close, s->peer);
    s->online = 1;
    post_recv(s);
}

/* The runner the stream's certificate names: what every message is attributed to. */
static am_ops_peer stream_peer(const stream *s) {
    return (am_ops_peer){s->runner_id, s->org, s->peer};
}

/* Framing is ours; what each message means is appliance/ops'. */
static void on_message(stream *s, Airmesh__V1__RunnerMessage *m) {
    am_rpc *r = s->rpc;
    am_ops *o = r->app->ops;
    am_ops_peer p = stream_peer(s);
    switch (m->msg_case) {
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_HELLO: {
        if (am_ops_runner_hello(o, &p, m->hello) != 0)
            am_log_warn("rpc", "hello not fully applied", "runner=%s error=\"%s\"", s->runner_id,
                        am_err_last());
        am_hub_runner_introduced(r->hub, s->runner_id);
        am_hub_runner_heartbeat(r->hub, s->runner_id);
        Airmesh__V1__HelloAck ack = AIRMESH__V1__HELLO_ACK__INIT;
        ack.runner_id = s->runner_id;
        ack.server_version = AM_VERSION;
        ack.heartbeat_interval_ms = r->o.heartbeat_ms;
        Airmesh__V1__ApplianceMessage out = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
        out.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_HELLO_ACK;
        out.hello_ack = &ack;
        send_msg(s, &out);
        break;
    }
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_HEARTBEAT:
        am_hub_runner_heartbeat(r->hub, s->runner_id);
        break;
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_POD_STATUS:
        /* A final state also ends the live terminal: viewers get `exit` after all output. */
        if (am_ops_pod_status(o, &p, m->pod_status) != 0)
            am_log_warn("rpc", "pod status refused", "runner=%s pod=%.20s error=\"%s\"",
                        s->runner_id, m->pod_status->pod_id, am_err_last());
        break;
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_OUTPUT:
        if (am_ops_pod_output(o, &p, m->output) != 0)
            am_log_debug("rpc", "terminal output dropped", "runner=%s pod=%.20s error=\"%s\"",
                         s->runner_id, m->output->pod_id, am_err_last());
        break;
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_RECORDING:
        if (am_ops_pod_recording(o, &p, m->recording) != 0)
            am_log_warn("rpc", "recording chunk refused", "runner=%s pod=%.20s error=\"%s\"",
                        s->runner_id, m->recording->pod_id, am_err_last());
        break;
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_AGENT_STATE:
        if (am_ops_pod_agent_state(o, &p, m->agent_state) != 0)
            am_log_warn("rpc", "agent state refused", "runner=%s pod=%.20s error=\"%s\"",
                        s->runner_id, m->agent_state->pod_id, am_err_last());
        break;
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_RENEW: {
        am_enrolled en;
        if (am_ops_runner_renew(o, &p, m->renew->csr_der.data, m->renew->csr_der.len, &en) != 0) {
            finish(s, GRPC_STATUS_INVALID_ARGUMENT, am_err_last());
            return;
        }
        Airmesh__V1__RenewResponse rr = AIRMESH__V1__RENEW_RESPONSE__INIT;
        rr.cert_chain_pem = en.chain_pem;
        rr.cert_not_after_ms = en.not_after_ms;
        Airmesh__V1__ApplianceMessage out = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
        out.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_RENEW;
        out.renew = &rr;
        send_msg(s, &out);
        free(en.chain_pem);
        break;
    }
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_EGRESS:
        if (am_ops_pod_egress(o, &p, m->egress) != 0)
            am_log_warn("rpc", "egress event refused", "runner=%s pod=%.20s error=\"%s\"",
                        s->runner_id, m->egress->pod_id, am_err_last());
        break;
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_GATEWAY_REQUEST:
        /* A pod's model request: the gateway thread decides and answers (never here). */
        if (r->app->gw)
            am_gw_submit(r->app->gw, &p, m->gateway_request);
        break;
    case AIRMESH__V1__RUNNER_MESSAGE__MSG_MCP_REQUEST:
        /* A line from a pod's MCP socket: the MCP workers answer (never here). */
        if (r->app->mcp)
            am_mcp_submit(r->app->mcp, &p, m->mcp_request);
        break;
    default:
        break; /* pod and terminal messages arrive with their issues */
    }
}

static void on_recv(stream *s, int ok) {
    if (!ok || s->status_sent)
        return;
    if (!s->recv_buf) { /* the runner half-closed: a clean goodbye */
        finish(s, GRPC_STATUS_OK, "");
        return;
    }
    Airmesh__V1__RunnerMessage *m = (Airmesh__V1__RunnerMessage *)am_grpc_unpack(
        s->recv_buf, &airmesh__v1__runner_message__descriptor);
    grpc_byte_buffer_destroy(s->recv_buf);
    s->recv_buf = NULL;
    if (!m) {
        am_ops_peer p = stream_peer(s);
        am_ops_runner_refused(s->rpc->app->ops, &p, "malformed RunnerMessage");
        finish(s, GRPC_STATUS_INVALID_ARGUMENT, "malformed RunnerMessage");
        return;
    }
    on_message(s, m);
    protobuf_c_message_free_unpacked(&m->base, NULL);
    if (!s->status_sent)
        post_recv(s);
}

static void on_close(stream *s) {
    am_rpc *r = s->rpc;
    if (s->online) {
        /* Leave the hub first: after this no other thread can reach the stream. */
        am_hub_runner_offline(r->hub, s->runner_id, s);
        s->online = 0;
        if (r->app->gw) /* its pods' model requests stop */
            am_gw_runner_gone(r->app->gw, s->runner_id);
        if (r->app->mcp) /* and its pods' MCP calls */
            am_mcp_runner_gone(r->app->mcp, s->runner_id);
        am_ops_peer p = stream_peer(s);
        am_ops_runner_disconnect(r->app->ops, &p);
    }
    finish(s, GRPC_STATUS_CANCELLED, "stream closed");
    pthread_mutex_lock(&s->mu);
    s->closed = 1;
    pthread_mutex_unlock(&s->mu);
}

/* ---------- the rpc thread's entry points ---------- */

void am_rpc_stream_started(am_rpc *r, void *obj, int success) {
    stream *s = obj;
    if (!success || r->stopping) {
        r->live_streams++; /* balanced by stream_free */
        stream_free(s);
        return;
    }
    am_rpc_request_connect(r);
    on_connect(s);
}

void am_rpc_stream_event(void *obj, tag_kind kind, int success) {
    stream *s = obj;
    pthread_mutex_lock(&s->mu);
    s->pending--;
    pthread_mutex_unlock(&s->mu);
    if (kind == T_C_RECV)
        on_recv(s, success);
    else if (kind == T_C_SEND) {
        pthread_mutex_lock(&s->mu);
        grpc_byte_buffer_destroy(s->sending);
        s->sending = NULL;
        s->q_bytes -= s->sending_len;
        s->sending_len = 0;
        if (success)
            send_next(s);
        pthread_mutex_unlock(&s->mu);
    } else if (kind == T_C_CLOSE)
        on_close(s);
    pthread_mutex_lock(&s->mu);
    int done = s->closed && s->pending == 0;
    pthread_mutex_unlock(&s->mu);
    if (done)
        stream_free(s);
}

typedef struct {
    Airmesh__V1__ApplianceMessage *m;
    int rc;
} send_ctx;

static void send_cb(void *stream_ptr, void *arg) {
    send_ctx *c = arg;
    c->rc = send_msg(stream_ptr, c->m);
}

int am_rpc_send(am_rpc *r, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    send_ctx c = {m, -1};
    if (!am_hub_runner_with(r->hub, runner_id, send_cb, &c))
        return am_err_set(AM_ESTATE, "runner %s is not connected", runner_id);
    if (c.rc != 0)
        return am_err_set(AM_EFULL, "runner %s: stream ending or send queue full", runner_id);
    return 0;
}

typedef struct {
    size_t bytes, msgs;
} queued_ctx;

static void queued_cb(void *stream_ptr, void *arg) {
    stream *s = stream_ptr;
    queued_ctx *c = arg;
    pthread_mutex_lock(&s->mu);
    c->bytes = s->q_bytes;
    c->msgs = s->qlen;
    pthread_mutex_unlock(&s->mu);
}

int am_rpc_queued(void *rpc, const char *runner_id, size_t *bytes, size_t *msgs) {
    am_rpc *r = rpc;
    queued_ctx c = {0, 0};
    if (!r || !am_hub_runner_with(r->hub, runner_id, queued_cb, &c))
        return am_err_set(AM_ESTATE, "runner %s is not connected", runner_id);
    *bytes = c.bytes;
    *msgs = c.msgs;
    return 0;
}
