/*
 * runner/session/run.c — the live stream: connect (mTLS), Hello, heartbeats, certificate
 * renewal over the stream, and reconnection with jittered exponential backoff.
 *
 * One completion queue per connection; the loop wakes at least every 200 ms to check the stop
 * flag and the heartbeat/renewal timers. Only one SEND_MESSAGE is in flight; others wait in a
 * small queue. A final status of PERMISSION_DENIED or UNAUTHENTICATED is the appliance saying
 * "this runner may not connect" (revoked, unknown): the runner stops with AM_SESS_REVOKED rather
 * than retry forever. Anything else (appliance restarting, network) is retried.
 */
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "airmesh/v1/runner.pb-c.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "pki/pki.h"
#include "runner/egress/egress.h"
#include "runner/mcp/relay.h"
#include "runner/pod/pod.h"
#include "runner/session/client.h"
#include "runner/session/identity.h"
#include "runner/session/review.h"

/* How long a stopping runner waits for the appliance to end the stream after its half-close. */
#define SESS_CLOSE_WAIT_MS 5000
#include "runner/session/session.h"
#include <pthread.h>

enum { T_START = 1, T_RECV, T_SEND, T_STATUS, T_CLOSE };
typedef struct {
    int kind;
} rtag;

#define QCAP 8192

typedef struct sess sess;

typedef struct {
    sess *ss;
    const am_sess_run_opts *o;
    am_identity *id;
    grpc_call *call;
    grpc_completion_queue *cq;
    rtag t_start, t_recv, t_send, t_status, t_close;
    grpc_byte_buffer **q; /* ring of QCAP, guarded by ss->mu (pod threads enqueue too) */
    size_t qh, qn;
    grpc_byte_buffer *sending, *recv_buf;
    int status_done, close_sent, acked;
    uint64_t close_by_ms; /* after close_sent: stop waiting for the status then */
    uint32_t hb_ms;
    uint64_t next_hb_ms, renew_at_ms, loaded_ms;
    char *renew_key_pem; /* key waiting for its RenewResponse */
} conn;

/* What outlives one connection: the pods, and the pointer pod threads send through. */
struct sess {
    pthread_mutex_t mu; /* guards conn and the conn's send queue */
    conn *conn;         /* the live connection, NULL between connections */
    am_podmgr *pods;
    am_egress *egress; /* the pods' gateway requests wait here for their answers */
    am_mcprelay *mcp;  /* the pods' MCP sockets (runner/mcp) */
};

static uint64_t renew_due(const am_sess_run_opts *o, const am_identity *id, uint64_t loaded_ms) {
    if (o->renew_after_ms)
        return loaded_ms + o->renew_after_ms;
    return id->not_before_ms + (id->not_after_ms - id->not_before_ms) * 2 / 3;
}

/* Caller holds c->ss->mu. */
static void pump(conn *c) {
    if (c->sending || c->qn == 0 || c->status_done)
        return;
    c->sending = c->q[c->qh];
    c->qh = (c->qh + 1) % QCAP;
    c->qn--;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = c->sending;
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_send, NULL) != GRPC_CALL_OK) {
        grpc_byte_buffer_destroy(c->sending);
        c->sending = NULL;
    }
}

/* Caller holds c->ss->mu. -1 when the queue is full (a stuck stream: keepalive ends it). */
static int enqueue_locked(conn *c, Airmesh__V1__RunnerMessage *m) {
    if (c->qn == QCAP || c->status_done)
        return -1;
    m->time_ms = am_now_ms();
    c->q[(c->qh + c->qn) % QCAP] = am_grpc_pack(&m->base);
    c->qn++;
    pump(c);
    return 0;
}

static void enqueue(conn *c, Airmesh__V1__RunnerMessage *m) {
    pthread_mutex_lock(&c->ss->mu);
    enqueue_locked(c, m);
    pthread_mutex_unlock(&c->ss->mu);
}

/* am_pod_emit_fn: pod threads send through whatever connection is live. */
static int sess_emit(void *ud, Airmesh__V1__RunnerMessage *m) {
    sess *ss = ud;
    pthread_mutex_lock(&ss->mu);
    int rc = ss->conn && ss->conn->acked ? enqueue_locked(ss->conn, m) : -1;
    pthread_mutex_unlock(&ss->mu);
    return rc;
}

static void post_recv(conn *c) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_buf;
    grpc_call_start_batch(c->call, &op, 1, &c->t_recv, NULL);
}

static void send_hello(conn *c) {
    Airmesh__V1__Hello h = AIRMESH__V1__HELLO__INIT;
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    struct utsname u;
    uname(&u);
    h.version = AM_RUNNER_VERSION;
    h.hostname = host;
    h.capacity = c->o->capacity;
    h.os = u.sysname;
    h.arch = u.machine;
    Airmesh__V1__Hello__LabelsEntry ents[32], *arr[32];
    size_t n = c->o->n_labels < 32 ? c->o->n_labels : 32;
    for (size_t i = 0; i < n; i++) {
        airmesh__v1__hello__labels_entry__init(&ents[i]);
        ents[i].key = (char *)c->o->label_keys[i];
        ents[i].value = (char *)c->o->label_values[i];
        arr[i] = &ents[i];
    }
    h.labels = arr;
    h.n_labels = n;
    const am_pod_agent *found; /* the agent CLIs its pods can run (runner/pod/agents.c) */
    size_t na = am_pod_agents(&found);
    Airmesh__V1__AgentInfo ai[16], *aip[16];
    for (size_t i = 0; i < na && i < 16; i++) {
        airmesh__v1__agent_info__init(&ai[i]);
        ai[i].name = (char *)found[i].name;
        ai[i].version = (char *)found[i].version;
        ai[i].path = (char *)found[i].path;
        aip[i] = &ai[i];
    }
    h.agents = aip;
    h.n_agents = na < 16 ? na : 16;
    char *running[256];
    h.n_running_pods = am_podmgr_list(c->ss->pods, running, 256);
    h.running_pods = running;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_HELLO;
    m.hello = &h;
    enqueue(c, &m);
    for (size_t i = 0; i < h.n_running_pods; i++)
        free(running[i]);
}

static void send_heartbeat(conn *c) {
    Airmesh__V1__Heartbeat hb = AIRMESH__V1__HEARTBEAT__INIT;
    hb.time_ms = am_now_ms();
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_HEARTBEAT;
    m.heartbeat = &hb;
    enqueue(c, &m);
}

static void start_renewal(conn *c) {
    am_pki_key *key = NULL;
    uint8_t *csr = NULL;
    size_t len = 0;
    if (am_pki_key_generate(&key) || am_pki_csr_make(key, c->id->runner_id, &csr, &len) ||
        am_pki_key_to_pem(key, &c->renew_key_pem)) {
        am_log_warn("session", "cannot prepare certificate renewal", "error=\"%s\"", am_err_last());
        am_pki_key_free(key);
        free(csr);
        c->renew_at_ms = am_now_ms() + 60000;
        return;
    }
    am_pki_key_free(key);
    Airmesh__V1__RenewRequest rr = AIRMESH__V1__RENEW_REQUEST__INIT;
    rr.csr_der.data = csr;
    rr.csr_der.len = len;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_RENEW;
    m.renew = &rr;
    enqueue(c, &m);
    free(csr);
    c->renew_at_ms = UINT64_MAX; /* until the response arrives */
    am_log_info("session", "renewing certificate", "serial=%016llx",
                (unsigned long long)c->id->serial);
}

static void finish_renewal(conn *c, const Airmesh__V1__RenewResponse *r) {
    if (!c->renew_key_pem)
        return;
    uint64_t nb, na, serial;
    if (am_pki_verify_chain(c->id->ca_pem, r->cert_chain_pem) != 0 ||
        am_identity_cert_times(r->cert_chain_pem, &nb, &na, &serial) != 0 ||
        am_identity_save_pem(c->o->data_dir, c->renew_key_pem, r->cert_chain_pem) != 0) {
        am_log_warn("session", "renewal response rejected", "error=\"%s\"", am_err_last());
        c->renew_at_ms = am_now_ms() + 60000;
    } else {
        am_wipe(c->id->key_pem, strlen(c->id->key_pem));
        free(c->id->key_pem);
        free(c->id->chain_pem);
        c->id->key_pem = c->renew_key_pem;
        c->renew_key_pem = NULL;
        c->id->chain_pem = strdup(r->cert_chain_pem);
        c->id->not_before_ms = nb;
        c->id->not_after_ms = na;
        c->id->serial = serial;
        c->loaded_ms = am_now_ms();
        c->renew_at_ms = renew_due(c->o, c->id, c->loaded_ms);
        am_log_info("session", "certificate renewed", "serial=%016llx not_after_ms=%llu",
                    (unsigned long long)serial, (unsigned long long)na);
    }
    if (c->renew_key_pem) {
        am_wipe(c->renew_key_pem, strlen(c->renew_key_pem));
        free(c->renew_key_pem);
        c->renew_key_pem = NULL;
    }
}

static void on_message(conn *c, Airmesh__V1__ApplianceMessage *m) {
    switch (m->msg_case) {
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_HELLO_ACK:
        pthread_mutex_lock(&c->ss->mu);
        c->acked = 1;
        pthread_mutex_unlock(&c->ss->mu);
        am_podmgr_resync(c->ss->pods);
        c->hb_ms = m->hello_ack->heartbeat_interval_ms ? m->hello_ack->heartbeat_interval_ms : 5000;
        c->next_hb_ms = am_now_ms() + c->hb_ms;
        am_log_info("session", "connected", "runner=%s appliance=%s server_version=%s",
                    c->id->runner_id, c->id->appliance, m->hello_ack->server_version);
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_RENEW:
        finish_renewal(c, m->renew);
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_CREATE_POD:
        if (am_podmgr_create(c->ss->pods, m->create_pod) != 0) {
            Airmesh__V1__PodStatus st = AIRMESH__V1__POD_STATUS__INIT;
            st.pod_id = m->create_pod->pod_id;
            st.state = "failed";
            st.reason = (char *)am_err_last();
            Airmesh__V1__RunnerMessage out = AIRMESH__V1__RUNNER_MESSAGE__INIT;
            out.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_POD_STATUS;
            out.pod_status = &st;
            enqueue(c, &out);
        }
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_STOP_POD:
        am_podmgr_stop(c->ss->pods, m->stop_pod->pod_id, m->stop_pod->grace_ms);
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_INPUT:
        am_podmgr_input(c->ss->pods, m->input->pod_id, m->input->data.data, m->input->data.len);
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_GATEWAY_RESPONSE:
        /* Queued for the pod connection waiting for it (never blocks this thread). */
        am_egress_on_response(c->ss->egress, m->gateway_response);
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_MCP_RESPONSE:
        /* Queued for the pod's connection (never blocks this thread). */
        am_mcprelay_on_response(c->ss->mcp, m->mcp_response);
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_REVIEW_REQUEST:
        /* A diff or a push of a pod's branch: on a thread of its own (review.c). */
        am_sess_review_start(c->ss->pods, c->o->data_dir, sess_emit, c->ss, m->review_request);
        break;
    case AIRMESH__V1__APPLIANCE_MESSAGE__MSG_RESIZE:
        am_podmgr_resize(c->ss->pods, m->resize->pod_id, (uint16_t)m->resize->cols,
                         (uint16_t)m->resize->rows);
        break;
    default:
        break;
    }
}

/* One connection: returns when the stream ends; status and msg say why. */
static void connect_once(sess *ss, const am_sess_run_opts *o, am_identity *id,
                         volatile sig_atomic_t *stop, uint64_t *loaded_ms, grpc_status_code *status,
                         char *msg, size_t cap, int *acked) {
    conn c = {.ss = ss, .o = o, .id = id};
    c.q = calloc(QCAP, sizeof *c.q);
    if (!c.q) {
        *status = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(msg, cap, "out of memory");
        return;
    }
    c.t_start.kind = T_START;
    c.t_recv.kind = T_RECV;
    c.t_send.kind = T_SEND;
    c.t_status.kind = T_STATUS;
    c.t_close.kind = T_CLOSE;
    c.loaded_ms = *loaded_ms;
    c.renew_at_ms = renew_due(o, id, c.loaded_ms);
    grpc_channel *ch = am_client_channel(id->appliance, id->ca_pem, id->key_pem, id->chain_pem);
    c.cq = grpc_completion_queue_create_for_next(NULL);
    c.call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, c.cq,
                                      grpc_slice_from_static_string(AM_METHOD_CONNECT), NULL,
                                      gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_metadata_array md_init, md_trail;
    grpc_metadata_array_init(&md_init);
    grpc_metadata_array_init(&md_trail);
    grpc_slice details = grpc_empty_slice();
    *status = GRPC_STATUS_UNKNOWN;
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &md_init;
    grpc_call_start_batch(c.call, ops, 2, &c.t_start, NULL);
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &md_trail;
    ops[0].data.recv_status_on_client.status = status;
    ops[0].data.recv_status_on_client.status_details = &details;
    grpc_call_start_batch(c.call, ops, 1, &c.t_status, NULL);
    pthread_mutex_lock(&ss->mu);
    ss->conn = &c;
    pthread_mutex_unlock(&ss->mu);
    send_hello(&c);
    post_recv(&c);

    while (!c.status_done) {
        if (*stop && !c.close_sent) {
            grpc_op op;
            memset(&op, 0, sizeof op);
            op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
            grpc_call_start_batch(c.call, &op, 1, &c.t_close, NULL);
            c.close_sent = 1;
            c.close_by_ms = am_now_ms() + SESS_CLOSE_WAIT_MS;
        }
        uint64_t now = am_now_ms();
        if (c.close_sent && now >= c.close_by_ms) {
            /* The appliance did not end the stream after our half-close: stopping must not
             * depend on it (the drain below cancels the call). */
            am_log_warn("session", "the appliance did not close the stream; cancelling it",
                        "waited_ms=%d", SESS_CLOSE_WAIT_MS);
            break;
        }
        if (c.acked && !c.close_sent && now >= c.next_hb_ms) {
            send_heartbeat(&c);
            c.next_hb_ms = now + c.hb_ms;
        }
        if (c.acked && !c.close_sent && now >= c.renew_at_ms)
            start_renewal(&c);
        grpc_event ev = grpc_completion_queue_next(
            c.cq,
            gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(200, GPR_TIMESPAN)),
            NULL);
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        rtag *t = ev.tag;
        if (t->kind == T_STATUS) {
            pthread_mutex_lock(&ss->mu);
            c.status_done = 1;
            pthread_mutex_unlock(&ss->mu);
        } else if (t->kind == T_SEND) {
            pthread_mutex_lock(&ss->mu);
            grpc_byte_buffer_destroy(c.sending);
            c.sending = NULL;
            if (ev.success)
                pump(&c);
            pthread_mutex_unlock(&ss->mu);
        } else if (t->kind == T_RECV) {
            if (!ev.success || !c.recv_buf)
                continue; /* the stream is ending; the status follows */
            Airmesh__V1__ApplianceMessage *m = (Airmesh__V1__ApplianceMessage *)am_grpc_unpack(
                c.recv_buf, &airmesh__v1__appliance_message__descriptor);
            grpc_byte_buffer_destroy(c.recv_buf);
            c.recv_buf = NULL;
            if (m) {
                on_message(&c, m);
                protobuf_c_message_free_unpacked(&m->base, NULL);
            }
            post_recv(&c);
        }
    }
    pthread_mutex_lock(&ss->mu);
    ss->conn = NULL; /* pod threads stop sending through this connection */
    pthread_mutex_unlock(&ss->mu);
    am_egress_link_down(ss->egress); /* their answers will not come on this stream: 502 */
    am_mcprelay_link_down(ss->mcp);  /* nor the MCP answers: those connections close */
    am_client_details(details, msg, cap);
    *acked = c.acked;
    *loaded_ms = c.loaded_ms;
    /* Drain: cancel whatever is still outstanding, then empty the queue. */
    grpc_call_cancel(c.call, NULL);
    grpc_call_unref(c.call);
    grpc_channel_destroy(ch);
    grpc_completion_queue_shutdown(c.cq);
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(c.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    grpc_completion_queue_destroy(c.cq);
    if (c.sending)
        grpc_byte_buffer_destroy(c.sending);
    if (c.recv_buf)
        grpc_byte_buffer_destroy(c.recv_buf);
    while (c.qn) {
        grpc_byte_buffer_destroy(c.q[c.qh]);
        c.qh = (c.qh + 1) % QCAP;
        c.qn--;
    }
    free(c.q);
    if (c.renew_key_pem) {
        am_wipe(c.renew_key_pem, strlen(c.renew_key_pem));
        free(c.renew_key_pem);
    }
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_init);
    grpc_metadata_array_destroy(&md_trail);
}

int am_sess_run(const am_sess_run_opts *o, volatile sig_atomic_t *stop) {
    am_identity id;
    int rc = am_identity_load(o->data_dir, &id);
    if (rc)
        return AM_SESS_FATAL;
    uint32_t max_backoff = o->max_backoff_ms ? o->max_backoff_ms : 30000;
    uint64_t loaded_ms = am_now_ms();
    unsigned attempt = 0;
    sess ss = {0};
    pthread_mutex_init(&ss.mu, NULL);
    if (am_egress_new(sess_emit, &ss, &ss.egress) != 0 ||
        am_mcprelay_new(sess_emit, &ss, &ss.mcp) != 0 ||
        am_podmgr_new(o->data_dir, sess_emit, &ss, &ss.pods) != 0) {
        am_egress_free(ss.egress);
        am_mcprelay_free(ss.mcp);
        am_identity_free(&id);
        return AM_SESS_FATAL;
    }
    am_podmgr_set_egress(ss.pods, ss.egress);
    am_podmgr_set_mcp(ss.pods, ss.mcp);
    am_podmgr_set_runner_id(ss.pods, id.runner_id);
    int result = AM_SESS_STOPPED;
    am_log_info("session", "starting", "runner=%s appliance=%s", id.runner_id, id.appliance);
    while (!*stop) {
        grpc_status_code status;
        char msg[512];
        int acked = 0;
        connect_once(&ss, o, &id, stop, &loaded_ms, &status, msg, sizeof msg, &acked);
        if (*stop)
            break;
        if (status == GRPC_STATUS_PERMISSION_DENIED || status == GRPC_STATUS_UNAUTHENTICATED) {
            am_err_set(AM_EAUTH, "the appliance refused this runner: %s", msg);
            result = AM_SESS_REVOKED;
            break;
        }
        if (acked)
            attempt = 0;
        /* Equal-jitter exponential backoff: half the window fixed, half random. */
        uint64_t window = 500ull << (attempt < 10 ? attempt : 10);
        if (window > max_backoff)
            window = max_backoff;
        uint32_t r;
        am_random(&r, sizeof r);
        uint64_t wait_ms = window / 2 + (window / 2 ? r % (window / 2 + 1) : 0);
        attempt++;
        am_log_warn("session", "disconnected; will retry", "status=%d reason=\"%s\" retry_ms=%llu",
                    (int)status, msg, (unsigned long long)wait_ms);
        for (uint64_t waited = 0; waited < wait_ms && !*stop; waited += 100)
            usleep(100000);
    }
    am_sess_review_drain(130000); /* a review's fetch-back/push uses the pods and mirrors */
    am_podmgr_free(ss.pods);      /* stops what still runs: pods do not outlive their runner */
    am_egress_free(ss.egress);
    am_mcprelay_free(ss.mcp);
    pthread_mutex_destroy(&ss.mu);
    am_identity_free(&id);
    return result;
}

int am_sess_status(const char *data_dir) {
    am_identity id;
    int rc = am_identity_load(data_dir, &id);
    if (rc)
        return rc;
    time_t na = (time_t)(id.not_after_ms / 1000);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&na));
    printf("runner:      %s\norg:         %s\nappliance:   %s\ncertificate: serial %016llx, "
           "valid until %s\n",
           id.runner_id, id.org, id.appliance, (unsigned long long)id.serial, when);
    am_identity_free(&id);
    return 0;
}
