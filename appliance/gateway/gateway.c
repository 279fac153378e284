/*
 * appliance/gateway/gateway.c — the model gateway's thread: GatewayRequest in, the org's model
 * endpoint called with libcurl's multi interface, GatewayResponse out as bytes arrive (see
 * gateway.h for the contract).
 *
 * How it works: am_gw_submit (rpc thread) packs the message into an inbox item and wakes the
 * multi handle (curl_multi_wakeup). The gateway thread loops: take the inbox, run the transfers
 * (curl_multi_perform), finish what completed, resume paused transfers whose runner's send queue
 * drained, and wait in curl_multi_poll. A request's life: receiving (body parts until more =
 * false) → admitted (ops) → transfer (curl easy handle) → recorded (io pool job). Everything a
 * request owns hangs off its gw_req and is freed in req_free, on this thread only.
 * Ownership: the inbox items (malloc'd by the submitter, freed here); the grant's endpoint (its
 * real key) is wiped and freed with the request.
 */
#include "appliance/gateway/gateway.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "appliance/gateway/core.h"
#include "appliance/work/work.h"
#include "common/egress.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define INBOX_MAX_BYTES (96u << 20) /* queued GatewayRequest bytes before refusing */
#define PATH_MAX_LEN 2048
#define MODEL_MAX 200

typedef struct item {
    struct item *next;
    int gone; /* the runner's stream ended (no message) */
    char runner[64], org[130], source[130];
    uint8_t *packed;
    size_t len;
} item;

typedef struct hdr {
    char *name, *value;
} hdr;

typedef struct gw_req {
    struct gw_req *next;
    am_gw *g;
    char runner[64], org[130], source[130];
    uint64_t id;
    char pod[AM_STORE_ID_MAX + 1];
    char *method, *path;
    hdr *hdrs;
    size_t n_hdrs;
    char *body;
    size_t blen, bcap;
    int receiving; /* more body parts to come */
    /* decided */
    am_gw_api api;
    char model[MODEL_MAX + 1];
    int stream;
    am_ops_gw_grant grant;
    int pod_known;
    /* the transfer */
    CURL *easy;
    struct curl_slist *hl;
    int status;
    int headers_sent;
    hdr *rh; /* response headers of the current block */
    size_t n_rh, cap_rh;
    am_gw_usage usage;
    int paused;
    int send_failed;
    uint64_t t0_ns, start_ms;
    char err[CURL_ERROR_SIZE];
} gw_req;

struct am_gw {
    am_gw_opts o;
    pthread_t thread;
    int started;
    CURLM *multi;
    pthread_mutex_t mu; /* inbox, link, stopping */
    item *in_head, *in_tail;
    size_t in_bytes;
    int stopping;
    am_gw_send_fn send;
    am_gw_queued_fn queued;
    void *link_ctx;
    int batch_busy; /* atomic: a metering batch is on the io pool */
    /* gateway thread only */
    struct meter_rec *pend_head, *pend_tail;
    size_t n_pend;
    gw_req *reqs;
    size_t n_reqs;
    size_t active_pub; /* atomic copy of n_reqs for am_gw_active */
};

/* ---------- small helpers ---------- */

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static char *dup0(const char *s) {
    return dupn(s ? s : "", strlen(s ? s : ""));
}

/* Header names and values must not break the request line they go into. */
static int header_ok(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 && *p != '\t')
            return 0;
    return 1;
}

static int name_ok(const char *s) {
    if (!*s)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == ':')
            return 0;
    return 1;
}

/* An origin-form path a model API uses: no dot segments, no encoded dots or slashes, no
 * backslashes or control bytes (the upstream URL is endpoint URL + path). */
static int path_ok(const char *p) {
    size_t n = strlen(p);
    if (n == 0 || n > PATH_MAX_LEN || p[0] != '/')
        return 0;
    if (strstr(p, "..") || strstr(p, "//") || strstr(p, "/./") || strcasestr(p, "%2e") ||
        strcasestr(p, "%2f") || strcasestr(p, "%5c") || strchr(p, '\\') || strchr(p, '#'))
        return 0;
    for (const unsigned char *c = (const unsigned char *)p; *c; c++)
        if (*c <= 0x20 || *c >= 0x7f)
            return 0;
    return 1;
}

static const char *req_header(const gw_req *r, const char *name) {
    for (size_t i = 0; i < r->n_hdrs; i++)
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    return NULL;
}

/* Path without its query, compared with s. */
static int path_is(const char *path, const char *s) {
    size_t n = strcspn(path, "?");
    return strlen(s) == n && strncmp(path, s, n) == 0;
}

static int path_starts(const char *path, const char *s) {
    size_t n = strlen(s);
    return strncmp(path, s, n) == 0 && (path[n] == '\0' || path[n] == '?' || path[n] == '/');
}

/* Hop-by-hop and framing headers, never passed on (either way). */
static int hop_by_hop(const char *n) {
    static const char *const k[] = {"connection",        "keep-alive",
                                    "proxy-connection",  "te",
                                    "trailer",           "transfer-encoding",
                                    "upgrade",           "host",
                                    "content-length",    "expect",
                                    "proxy-authenticate"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcasecmp(n, k[i]) == 0)
            return 1;
    return 0;
}

/* Credentials a pod may send: never forwarded (the real key replaces them). */
static int credential(const char *n) {
    static const char *const k[] = {"authorization", "x-api-key", "api-key", "proxy-authorization",
                                    "x-goog-api-key"};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (strcasecmp(n, k[i]) == 0)
            return 1;
    return 0;
}

/* ---------- sending to the runner ---------- */

static int link_send(am_gw *g, const char *runner, Airmesh__V1__GatewayResponse *gr) {
    pthread_mutex_lock(&g->mu);
    am_gw_send_fn send = g->send;
    void *ctx = g->link_ctx;
    pthread_mutex_unlock(&g->mu);
    if (!send)
        return am_err_set(AM_EUNAVAIL, "gateway: no runner link");
    Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_GATEWAY_RESPONSE;
    m.gateway_response = gr;
    return send(ctx, runner, &m);
}

/* Status and headers (the first message of an answer). */
static int send_head(gw_req *r, int status, hdr *h, size_t n) {
    Airmesh__V1__GatewayResponse gr = AIRMESH__V1__GATEWAY_RESPONSE__INIT;
    Airmesh__V1__HttpHeader *hv = n ? calloc(n, sizeof *hv) : NULL;
    Airmesh__V1__HttpHeader **hp = n ? calloc(n, sizeof *hp) : NULL;
    size_t k = 0;
    for (size_t i = 0; hv && hp && i < n; i++) {
        airmesh__v1__http_header__init(&hv[k]);
        hv[k].name = h[i].name;
        hv[k].value = h[i].value;
        hp[k] = &hv[k];
        k++;
    }
    gr.pod_id = r->pod;
    gr.request_id = r->id;
    gr.status = (uint32_t)status;
    gr.n_headers = k;
    gr.headers = hp;
    int rc = link_send(r->g, r->runner, &gr);
    free(hv);
    free(hp);
    r->headers_sent = 1;
    r->status = status;
    if (rc)
        r->send_failed = 1;
    return rc;
}

static int send_data(gw_req *r, const char *data, size_t n, int last) {
    do {
        size_t k = n > AM_EGRESS_CHUNK ? AM_EGRESS_CHUNK : n;
        Airmesh__V1__GatewayResponse gr = AIRMESH__V1__GATEWAY_RESPONSE__INIT;
        gr.pod_id = r->pod;
        gr.request_id = r->id;
        gr.data.data = (uint8_t *)data;
        gr.data.len = k;
        gr.last = last && k == n;
        if (link_send(r->g, r->runner, &gr) != 0) {
            r->send_failed = 1;
            return -1;
        }
        data += k;
        n -= k;
    } while (n);
    return 0;
}

/* A whole answer made here (refusals, listings, errors). */
static void answer(gw_req *r, int status, const char *body) {
    hdr h[1] = {{"content-type", "application/json"}};
    if (send_head(r, status, h, 1) == 0)
        send_data(r, body ? body : "", body ? strlen(body) : 0, 1);
}

static void answer_error(gw_req *r, int status, const char *msg) {
    char *b = am_gw_error_body(r->api ? r->api : AM_GW_OPENAI, status, msg);
    answer(r, status, b ? b : "{}");
    free(b);
}

/* ---------- recording (io pool) ---------- */

/* What finished meanwhile is recorded in batches: one io job (one transaction, one fsync) for
 * up to BATCH_MAX requests, one job at a time; the next batch goes when it is done. */
#define BATCH_MAX 256
#define PENDING_MAX 4096 /* beyond: record on this thread (back-pressure on the gateway) */

typedef struct meter_rec {
    struct meter_rec *next;
    am_ops_gw_done d;
    char org[130], pod[AM_STORE_ID_MAX + 1], user[AM_STORE_ID_MAX + 1], source[130];
    char endpoint[130], model[MODEL_MAX + 1], path[PATH_MAX_LEN + 1], result[16], reason[300];
} meter_rec;

typedef struct {
    am_work_job job; /* first */
    am_gw *g;
    meter_rec *recs;
    size_t n;
} meter_batch;

static void record_list(am_ops *ops, meter_rec *list, size_t n) {
    am_ops_gw_done *d = calloc(n ? n : 1, sizeof *d);
    size_t k = 0;
    for (meter_rec *m = list; d && m && k < n; m = m->next)
        d[k++] = m->d;
    if (!d || am_ops_gateway_record_many(ops, d, k) != 0)
        am_log_warn("gateway", "usage not recorded", "requests=%zu error=\"%s\"", n,
                    d ? am_err_last() : "out of memory");
    free(d);
}

static void free_list(meter_rec *m) {
    while (m) {
        meter_rec *next = m->next;
        free(m);
        m = next;
    }
}

static void batch_run(am_work_job *job) {
    meter_batch *b = (meter_batch *)job;
    record_list(b->g->o.ops, b->recs, b->n);
    __atomic_store_n(&b->g->batch_busy, 0, __ATOMIC_SEQ_CST);
    curl_multi_wakeup(b->g->multi); /* the next batch may go */
}

static void batch_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    (void)req;
    meter_batch *b = (meter_batch *)job;
    if (cancelled) /* the pool stopped before it ran: record it here, late but kept */
        batch_run(job);
    free_list(b->recs);
    free(b);
}

/* Hand what is pending to the io pool (or record it here: sync, no pool, or the pool full). */
static void flush(am_gw *g, int sync) {
    while (g->pend_head) {
        if (!sync && g->o.io && __atomic_load_n(&g->batch_busy, __ATOMIC_SEQ_CST))
            return; /* batch_run wakes us when it is done */
        meter_rec *head = g->pend_head, *m = head;
        size_t n = 1;
        while (m->next && n < BATCH_MAX) {
            m = m->next;
            n++;
        }
        g->pend_head = m->next;
        if (!g->pend_head)
            g->pend_tail = NULL;
        g->n_pend -= n;
        m->next = NULL;
        meter_batch *b = !sync && g->o.io ? calloc(1, sizeof *b) : NULL;
        if (b) {
            b->g = g;
            b->recs = head;
            b->n = n;
            __atomic_store_n(&g->batch_busy, 1, __ATOMIC_SEQ_CST);
            if (am_work_submit(g->o.io, NULL, &b->job, batch_run, batch_done) == 0)
                return;
            __atomic_store_n(&g->batch_busy, 0, __ATOMIC_SEQ_CST);
            free(b);
        }
        record_list(g->o.ops, head, n);
        free_list(head);
    }
}

static void record(gw_req *r, const char *result, int status, const char *reason) {
    am_gw *g = r->g;
    meter_rec *m = calloc(1, sizeof *m);
    if (!m) {
        am_log_error("gateway", "usage not recorded: out of memory", "pod=%s", r->pod);
        return;
    }
    snprintf(m->org, sizeof m->org, "%s", r->grant.org[0] ? r->grant.org : r->org);
    snprintf(m->pod, sizeof m->pod, "%s", r->pod);
    snprintf(m->user, sizeof m->user, "%s", r->grant.user);
    snprintf(m->source, sizeof m->source, "runner:%s", r->runner);
    snprintf(m->endpoint, sizeof m->endpoint, "%s",
             r->grant.endpoint && r->grant.endpoint->name ? r->grant.endpoint->name : "");
    snprintf(m->model, sizeof m->model, "%s", r->model);
    snprintf(m->path, sizeof m->path, "%.*s", (int)strcspn(r->path ? r->path : "", "?"),
             r->path ? r->path : "");
    snprintf(m->result, sizeof m->result, "%s", result);
    snprintf(m->reason, sizeof m->reason, "%s", reason ? reason : "");
    m->d = (am_ops_gw_done){.org = m->org,
                            .pod_id = m->pod,
                            .user_id = m->user,
                            .source = m->source,
                            .pod_known = r->pod_known,
                            .endpoint = m->endpoint,
                            .model = m->model,
                            .path = m->path,
                            .tokens_in = r->usage.tokens_in,
                            .tokens_out = r->usage.tokens_out,
                            .duration_ms = (am_mono_ns() - r->t0_ns) / 1000000u,
                            .start_ms = r->start_ms,
                            .status = (uint32_t)status,
                            .stream = r->stream,
                            .result = m->result,
                            .reason = m->reason[0] ? m->reason : NULL};
    if (g->pend_tail)
        g->pend_tail->next = m;
    else
        g->pend_head = m;
    g->pend_tail = m;
    g->n_pend++;
    /* Without a pool (tests), or too much waiting: now, on this thread. */
    if (!g->o.io || g->n_pend > PENDING_MAX)
        flush(g, 1);
}

/* ---------- request objects ---------- */

static void req_free(gw_req *r) {
    if (r->easy) {
        curl_multi_remove_handle(r->g->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    for (struct curl_slist *l = r->hl; l; l = l->next) /* holds the real key */
        if (l->data)
            am_wipe(l->data, strlen(l->data));
    curl_slist_free_all(r->hl);
    for (size_t i = 0; i < r->n_hdrs; i++) {
        free(r->hdrs[i].name);
        free(r->hdrs[i].value);
    }
    free(r->hdrs);
    for (size_t i = 0; i < r->n_rh; i++) {
        free(r->rh[i].name);
        free(r->rh[i].value);
    }
    free(r->rh);
    free(r->method);
    free(r->path);
    if (r->body)
        am_wipe(r->body, r->blen);
    free(r->body);
    am_gw_usage_free(&r->usage);
    am_ops_gateway_grant_free(&r->grant);
    free(r);
}

static gw_req *req_find(am_gw *g, const char *runner, uint64_t id) {
    for (gw_req *r = g->reqs; r; r = r->next)
        if (r->id == id && strcmp(r->runner, runner) == 0)
            return r;
    return NULL;
}

static void req_unlink(am_gw *g, gw_req *r) {
    for (gw_req **p = &g->reqs; *p; p = &(*p)->next)
        if (*p == r) {
            *p = r->next;
            g->n_reqs--;
            __atomic_store_n(&g->active_pub, g->n_reqs, __ATOMIC_SEQ_CST);
            return;
        }
}

static void req_end(gw_req *r) {
    req_unlink(r->g, r);
    req_free(r);
}

/* Refuse before any transfer: answer in the API's format, record, end. */
static void refuse(gw_req *r, int status, const char *result, const char *msg) {
    answer_error(r, status, msg);
    record(r, result, status, msg);
    req_end(r);
}

static int status_of(int rc) {
    switch (rc) {
    case -AM_EAUTH:
        return 401;
    case -AM_EPERM:
        return 403;
    case -AM_ENOTFOUND:
        return 404;
    case -AM_ELIMIT:
        return 429;
    case -AM_EINVAL:
        return 400;
    case -AM_EFULL:
        return 413;
    case -AM_EUNAVAIL:
        return 503;
    default:
        return 500;
    }
}

/* ---------- GET /v1/models ---------- */

typedef struct {
    const char *api;
    json_t *seen, *data;
    int anthropic;
} list_ctx;

static void list_add(list_ctx *c, const char *model, const char *owner) {
    if (!model || !*model || json_object_get(c->seen, model))
        return;
    json_object_set_new(c->seen, model, json_true());
    if (c->anthropic)
        json_array_append_new(c->data, json_pack("{s:s,s:s,s:s,s:s}", "type", "model", "id", model,
                                                 "display_name", model, "created_at",
                                                 "1970-01-01T00:00:00Z"));
    else
        json_array_append_new(c->data, json_pack("{s:s,s:s,s:i,s:s}", "id", model, "object",
                                                 "model", "created", 0, "owned_by", owner));
}

static int list_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    list_ctx *c = ud;
    const Airmesh__V1__ModelEndpoint *ep = (const Airmesh__V1__ModelEndpoint *)m;
    if (!ep->api || strcmp(ep->api, c->api) != 0)
        return 0;
    const char *owner = ep->name ? ep->name : "";
    for (size_t i = 0; i < ep->n_models; i++)
        list_add(c, ep->models[i], owner);
    if (ep->n_models == 0 && ep->last_test)
        for (size_t i = 0; i < ep->last_test->n_models_listed; i++)
            list_add(c, ep->last_test->models_listed[i], owner);
    return 0;
}

static void answer_models(gw_req *r) {
    list_ctx c = {am_gw_api_name(r->api), json_object(), json_array(), r->api == AM_GW_ANTHROPIC};
    int rc = am_ops_list(r->g->o.ops, AM_DB_MODELS, r->grant.org,
                         &airmesh__v1__model_endpoint__descriptor, list_cb, &c);
    if (rc) {
        json_decref(c.seen);
        json_decref(c.data);
        refuse(r, 500, "error", "could not read the model endpoints");
        return;
    }
    json_t *doc;
    size_t n = json_array_size(c.data);
    if (c.anthropic) {
        json_t *first = n ? json_object_get(json_array_get(c.data, 0), "id") : NULL;
        json_t *last = n ? json_object_get(json_array_get(c.data, n - 1), "id") : NULL;
        doc = json_pack("{s:o,s:b,s:O?,s:O?}", "data", c.data, "has_more", 0, "first_id", first,
                        "last_id", last);
    } else {
        doc = json_pack("{s:s,s:o}", "object", "list", "data", c.data);
    }
    json_decref(c.seen);
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    answer(r, 200, s ? s : "{}");
    free(s);
    record(r, "ok", 200, NULL);
    req_end(r);
}

/* ---------- the upstream transfer ---------- */

static void clear_rh(gw_req *r) {
    for (size_t i = 0; i < r->n_rh; i++) {
        free(r->rh[i].name);
        free(r->rh[i].value);
    }
    r->n_rh = 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud) {
    gw_req *r = ud;
    size_t n = size * nitems;
    if (r->headers_sent)
        return n;                                  /* trailers */
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) { /* a new block (1xx, then the final) */
        clear_rh(r);
        return n;
    }
    size_t l = n;
    while (l && (buf[l - 1] == '\n' || buf[l - 1] == '\r'))
        l--;
    if (l == 0) { /* end of a block */
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code < 200)
            return n;
        const char *ct = NULL;
        for (size_t i = 0; i < r->n_rh; i++)
            if (strcasecmp(r->rh[i].name, "content-type") == 0)
                ct = r->rh[i].value;
        am_gw_usage_init(&r->usage, ct && strncasecmp(ct, "text/event-stream", 17) == 0);
        return send_head(r, (int)code, r->rh, r->n_rh) == 0 ? n : 0;
    }
    const char *colon = memchr(buf, ':', l);
    if (!colon)
        return n;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    while (v < buf + l && (*v == ' ' || *v == '\t'))
        v++;
    char *name = dupn(buf, nl);
    if (!name)
        return 0;
    for (char *p = name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (hop_by_hop(name) || r->n_rh >= 100) {
        free(name);
        return n;
    }
    if (r->n_rh == r->cap_rh) {
        size_t c = r->cap_rh ? r->cap_rh * 2 : 16;
        hdr *p = realloc(r->rh, c * sizeof *p);
        if (!p) {
            free(name);
            return 0;
        }
        r->rh = p;
        r->cap_rh = c;
    }
    r->rh[r->n_rh].name = name;
    r->rh[r->n_rh].value = dupn(v, (size_t)(buf + l - v));
    if (!r->rh[r->n_rh].value) {
        free(name);
        return 0;
    }
    r->n_rh++;
    return n;
}

/* Over the runner's queue limit (or the runner gone: -1). */
static int runner_busy(am_gw *g, const char *runner) {
    pthread_mutex_lock(&g->mu);
    am_gw_queued_fn q = g->queued;
    void *ctx = g->link_ctx;
    pthread_mutex_unlock(&g->mu);
    size_t bytes = 0, msgs = 0;
    if (!q)
        return 0;
    if (q(ctx, runner, &bytes, &msgs) != 0)
        return -1;
    return bytes > g->o.queue_bytes || msgs > 1024;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *ud) {
    gw_req *r = ud;
    size_t n = size * nmemb;
    if (!r->headers_sent)
        return 0;
    int busy = runner_busy(r->g, r->runner);
    if (busy < 0) {
        r->send_failed = 1;
        return 0;
    }
    if (busy) {
        r->paused = 1;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (send_data(r, data, n, 0) != 0)
        return 0;
    am_gw_usage_feed(&r->usage, data, n);
    return n;
}

/* For a streaming Chat Completions request, ask for the usage chunk when the client did not:
 * the body is rewritten only then. 0, or -1 when the body could not be rewritten. */
static int ask_stream_usage(gw_req *r, json_t *doc) {
    json_t *so = json_object_get(doc, "stream_options");
    if (json_is_object(so) && json_is_true(json_object_get(so, "include_usage")))
        return 0;
    if (!json_is_object(so)) {
        so = json_object();
        json_object_set_new(doc, "stream_options", so);
    }
    json_object_set_new(so, "include_usage", json_true());
    char *s = json_dumps(doc, JSON_COMPACT);
    if (!s)
        return -1;
    am_wipe(r->body, r->blen);
    free(r->body);
    r->body = s;
    r->blen = r->bcap = strlen(s);
    return 0;
}

static int add_header(struct curl_slist **l, const char *name, const char *value) {
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line)
        return -1;
    snprintf(line, n, "%s: %s", name, value);
    struct curl_slist *nl = curl_slist_append(*l, line);
    am_wipe(line, n);
    free(line);
    if (!nl)
        return -1;
    *l = nl;
    return 0;
}

static int start_transfer(gw_req *r) {
    am_gw *g = r->g;
    const Airmesh__V1__ModelEndpoint *ep = r->grant.endpoint;
    char url[4096];
    if (am_gw_upstream_url(ep, r->path, url, sizeof url) != 0)
        return am_err_set(AM_EINVAL, "the upstream URL is too long");
    /* Headers: the pod's, less hop-by-hop, host, length and credentials; the real key. */
    int has_ct = 0;
    for (size_t i = 0; i < r->n_hdrs; i++) {
        const char *n = r->hdrs[i].name;
        if (hop_by_hop(n) || credential(n) || strcasecmp(n, "accept-encoding") == 0)
            continue;
        if (strcasecmp(n, "content-type") == 0)
            has_ct = 1;
        if (add_header(&r->hl, n, r->hdrs[i].value) != 0)
            return am_err_set(AM_ENOMEM, "out of memory");
    }
    if (!has_ct && add_header(&r->hl, "Content-Type", "application/json") != 0)
        return am_err_set(AM_ENOMEM, "out of memory");
    struct curl_slist *e = curl_slist_append(r->hl, "Expect:");
    if (!e)
        return am_err_set(AM_ENOMEM, "out of memory");
    r->hl = e;
    if (ep->key.len) {
        char *key = dupn((const char *)ep->key.data, ep->key.len);
        if (!key)
            return am_err_set(AM_ENOMEM, "out of memory");
        int rc = 0;
        if (!header_ok(key)) {
            rc = am_err_set(AM_EINVAL, "endpoint %s: its key has control characters",
                            ep->name ? ep->name : "");
        } else if (r->api == AM_GW_ANTHROPIC) {
            if (add_header(&r->hl, "x-api-key", key) != 0)
                rc = am_err_set(AM_ENOMEM, "out of memory");
        } else {
            size_t n = strlen(key) + 8;
            char *bearer = malloc(n);
            if (bearer) {
                snprintf(bearer, n, "Bearer %s", key);
                if (add_header(&r->hl, "Authorization", bearer) != 0)
                    rc = am_err_set(AM_ENOMEM, "out of memory");
                am_wipe(bearer, n);
                free(bearer);
            } else {
                rc = am_err_set(AM_ENOMEM, "out of memory");
            }
        }
        am_wipe(key, ep->key.len);
        free(key);
        if (rc)
            return rc;
    }
    CURL *c = curl_easy_init();
    if (!c)
        return am_err_set(AM_ENOMEM, "curl_easy_init failed");
    r->easy = c;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PRIVATE, r);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* never the daemon's environment's proxy */
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body ? r->body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->blen);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, r->hl);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, r->err);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)g->o.connect_timeout_ms);
    /* Idle: less than 1 byte/s for the idle time. */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(
        c, CURLOPT_LOW_SPEED_TIME,
        (long)((g->o.idle_timeout_ms + 999) / 1000 ? (g->o.idle_timeout_ms + 999) / 1000 : 1));
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    if (ep->ca_pem && *ep->ca_pem) {
        struct curl_blob blob = {(void *)ep->ca_pem, strlen(ep->ca_pem), CURL_BLOB_COPY};
        curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (curl_multi_add_handle(g->multi, c) != CURLM_OK)
        return am_err_set(AM_EIO, "curl_multi_add_handle failed");
    return 0;
}

/* The whole request is here: decide, then answer or go upstream. */
static void begin(gw_req *r) {
    am_gw *g = r->g;
    const char *path = r->path;
    r->api = am_gw_api_of_path(path);
    int listing = strcmp(r->method, "GET") == 0 && path_is(path, "/v1/models");
    if (listing)
        r->api = req_header(r, "anthropic-version") ? AM_GW_ANTHROPIC : AM_GW_OPENAI;
    if (!r->api) {
        refuse(r, 404, "denied",
               "the model gateway serves the OpenAI and Anthropic APIs under /v1/");
        return;
    }
    /* The virtual key: Authorization: Bearer, else x-api-key. */
    const char *key = "";
    const char *auth = req_header(r, "authorization");
    if (auth && strncasecmp(auth, "bearer ", 7) == 0)
        key = auth + 7;
    else if (req_header(r, "x-api-key"))
        key = req_header(r, "x-api-key");
    json_t *doc = NULL;
    if (!listing) {
        if (strcmp(r->method, "POST") != 0) {
            refuse(r, 404, "denied",
                   "the model gateway forwards POST requests and answers GET /v1/models");
            return;
        }
        json_error_t je;
        doc = json_loadb(r->body ? r->body : "", r->blen, 0, &je);
        json_t *m = json_object_get(doc, "model");
        if (!json_is_object(doc) || !json_is_string(m) || !*json_string_value(m) ||
            strlen(json_string_value(m)) > MODEL_MAX) {
            json_decref(doc);
            refuse(r, 400, "error",
                   "the request body must be a JSON object with a \"model\" (a name of at "
                   "most 200 bytes)");
            return;
        }
        snprintf(r->model, sizeof r->model, "%s", json_string_value(m));
        r->stream = json_is_true(json_object_get(doc, "stream"));
    }
    am_ops_peer peer = {r->runner, r->org, r->source};
    am_ops_gw_ask ask = {r->pod, key, am_gw_api_name(r->api), listing ? NULL : r->model};
    int rc = am_ops_gateway_admit(g->o.ops, &peer, &ask, &r->grant);
    r->pod_known = r->grant.pod[0] != '\0';
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "%s", am_err_last());
        json_decref(doc);
        int st = status_of(rc);
        refuse(r, st, st == 401 || st == 403 || st == 429 ? "denied" : "error", msg);
        return;
    }
    if (listing) {
        answer_models(r);
        return;
    }
    if (r->api == AM_GW_OPENAI && r->stream && path_starts(path, "/v1/chat/completions") &&
        ask_stream_usage(r, doc) != 0) {
        json_decref(doc);
        refuse(r, 500, "error", "out of memory");
        return;
    }
    json_decref(doc);
    if (start_transfer(r) != 0) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", am_err_last());
        refuse(r, 502, "error", msg);
        return;
    }
}

/* A transfer ended (curl says how). */
static void finished(gw_req *r, CURLcode res) {
    const char *name = r->grant.endpoint && r->grant.endpoint->name ? r->grant.endpoint->name : "";
    if (res == CURLE_OK && r->headers_sent) {
        am_gw_usage_finish(&r->usage);
        send_data(r, "", 0, 1);
        record(r, r->status >= 400 ? "error" : "ok", r->status, NULL);
        req_end(r);
        return;
    }
    char msg[600];
    int st = res == CURLE_OPERATION_TIMEDOUT ? 504 : 502;
    if (r->send_failed)
        snprintf(msg, sizeof msg, "the runner's stream ended or its queue is full");
    else if (res == CURLE_OPERATION_TIMEDOUT)
        snprintf(msg, sizeof msg, "model endpoint %s did not answer in time: %s", name,
                 r->err[0] ? r->err : curl_easy_strerror(res));
    else
        snprintf(msg, sizeof msg, "model endpoint %s failed: %s", name,
                 r->err[0] ? r->err : curl_easy_strerror(res));
    am_log_warn("gateway", "upstream failed", "pod=%s endpoint=%s error=\"%s\"", r->pod, name, msg);
    if (!r->send_failed) {
        if (!r->headers_sent)
            answer_error(r, st, msg);
        else
            send_data(r, "", 0, 1); /* the answer is cut short: the pod sees it end */
    }
    am_gw_usage_finish(&r->usage);
    record(r, "error", r->headers_sent ? r->status : st, msg);
    req_end(r);
}

/* ---------- the inbox ---------- */

static void on_message(am_gw *g, item *it) {
    Airmesh__V1__GatewayRequest *m =
        airmesh__v1__gateway_request__unpack(NULL, it->len, it->packed);
    if (!m)
        return;
    gw_req *r = req_find(g, it->runner, m->request_id);
    if (m->cancel) {
        if (r) {
            am_gw_usage_finish(&r->usage);
            record(r, "error", 499, "cancelled: the pod's client went away");
            req_end(r); /* nothing more is sent for it */
        }
        goto out;
    }
    if (r && !r->receiving) {
        am_log_warn("gateway", "request id reused while in progress", "runner=%s id=%llu",
                    it->runner, (unsigned long long)m->request_id);
        goto out;
    }
    if (!r) {
        if (!m->method || !*m->method) /* a continuation of a request refused or ended */
            goto out;
        r = calloc(1, sizeof *r);
        if (!r)
            goto out;
        r->g = g;
        snprintf(r->runner, sizeof r->runner, "%s", it->runner);
        snprintf(r->org, sizeof r->org, "%s", it->org);
        snprintf(r->source, sizeof r->source, "%s", it->source);
        snprintf(r->pod, sizeof r->pod, "%.128s", m->pod_id ? m->pod_id : "");
        r->id = m->request_id;
        r->t0_ns = am_mono_ns();
        r->start_ms = am_now_ms();
        r->method = dup0(m->method);
        r->path = dup0(m->path);
        r->receiving = 1;
        r->next = g->reqs;
        g->reqs = r;
        g->n_reqs++;
        __atomic_store_n(&g->active_pub, g->n_reqs, __ATOMIC_SEQ_CST);
        if (!r->method || !r->path) {
            req_end(r);
            goto out;
        }
        if (g->n_reqs > g->o.max_requests) {
            refuse(r, 503, "error", "the model gateway is busy: try again");
            goto out;
        }
        if (!path_ok(r->path)) {
            refuse(r, 400, "denied", "bad request path");
            goto out;
        }
        r->hdrs = m->n_headers ? calloc(m->n_headers, sizeof *r->hdrs) : NULL;
        for (size_t i = 0; i < m->n_headers && i < 200; i++) {
            const char *n = m->headers[i]->name ? m->headers[i]->name : "";
            const char *v = m->headers[i]->value ? m->headers[i]->value : "";
            if (!r->hdrs || !name_ok(n) || !header_ok(v) || strlen(n) + strlen(v) > 16384)
                continue;
            r->hdrs[r->n_hdrs].name = dup0(n);
            r->hdrs[r->n_hdrs].value = dup0(v);
            for (char *p = r->hdrs[r->n_hdrs].name; p && *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a');
            if (r->hdrs[r->n_hdrs].name && r->hdrs[r->n_hdrs].value)
                r->n_hdrs++;
        }
        /* The API's error format is known from the path from now on. */
        r->api = am_gw_api_of_path(r->path);
    }
    if (m->body.len) {
        if (r->blen + m->body.len > AM_EGRESS_MAX_BODY) {
            refuse(r, 413, "error", "the request body is larger than 32 MiB");
            goto out;
        }
        if (r->blen + m->body.len + 1 > r->bcap) {
            size_t c = r->bcap ? r->bcap : 4096;
            while (c < r->blen + m->body.len + 1)
                c *= 2;
            char *p = realloc(r->body, c);
            if (!p) {
                refuse(r, 500, "error", "out of memory");
                goto out;
            }
            r->body = p;
            r->bcap = c;
        }
        memcpy(r->body + r->blen, m->body.data, m->body.len);
        r->blen += m->body.len;
        r->body[r->blen] = '\0';
    }
    if (!m->more) {
        r->receiving = 0;
        begin(r);
    }
out:
    airmesh__v1__gateway_request__free_unpacked(m, NULL);
}

static void on_gone(am_gw *g, const char *runner) {
    for (gw_req *r = g->reqs, *next; r; r = next) {
        next = r->next;
        if (strcmp(r->runner, runner) != 0)
            continue;
        am_gw_usage_finish(&r->usage);
        record(r, "error", r->headers_sent ? r->status : 0, "the runner's stream ended");
        req_end(r);
    }
}

static item *take_inbox(am_gw *g, int *stopping) {
    pthread_mutex_lock(&g->mu);
    item *it = g->in_head;
    g->in_head = g->in_tail = NULL;
    g->in_bytes = 0;
    *stopping = g->stopping;
    pthread_mutex_unlock(&g->mu);
    return it;
}

static void resume_paused(am_gw *g) {
    for (gw_req *r = g->reqs, *next; r; r = next) {
        next = r->next;
        if (!r->paused || !r->easy)
            continue;
        int busy = runner_busy(g, r->runner);
        if (busy == 0) {
            r->paused = 0;
            curl_easy_pause(r->easy, CURLPAUSE_CONT); /* may deliver (and pause) at once */
        } else if (busy < 0) {
            r->send_failed = 1;
            finished(r, CURLE_WRITE_ERROR);
        }
    }
}

static int any_paused(am_gw *g) {
    for (gw_req *r = g->reqs; r; r = r->next)
        if (r->paused)
            return 1;
    return 0;
}

static void *gw_main(void *arg) {
    am_gw *g = arg;
    int stopping = 0;
    while (!stopping) {
        item *it = take_inbox(g, &stopping);
        while (it) {
            item *next = it->next;
            if (it->gone)
                on_gone(g, it->runner);
            else
                on_message(g, it);
            free(it->packed);
            free(it);
            it = next;
        }
        if (stopping)
            break;
        resume_paused(g);
        int running = 0;
        curl_multi_perform(g->multi, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(g->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            gw_req *r = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            if (r)
                finished(r, msg->data.result);
        }
        flush(g, 0);
        curl_multi_poll(g->multi, NULL, 0, any_paused(g) ? 10 : 1000, NULL);
    }
    while (g->reqs) {
        gw_req *r = g->reqs;
        if (!r->headers_sent && !r->send_failed)
            answer_error(r, 503, "the appliance is stopping");
        else if (!r->send_failed)
            send_data(r, "", 0, 1);
        am_gw_usage_finish(&r->usage);
        record(r, "error", r->headers_sent ? r->status : 503, "the appliance stopped");
        req_end(r);
    }
    /* The batch in flight first (order), then the rest here. */
    for (int i = 0; i < 10000 && __atomic_load_n(&g->batch_busy, __ATOMIC_SEQ_CST); i++)
        usleep(1000);
    flush(g, 1);
    return NULL;
}

/* ---------- the public calls ---------- */

int am_gw_start(const am_gw_opts *o, am_gw **out) {
    am_gw *g = calloc(1, sizeof *g);
    if (!g)
        return am_err_set(AM_ENOMEM, "gateway: out of memory");
    g->o = *o;
    if (!g->o.connect_timeout_ms)
        g->o.connect_timeout_ms = 10000;
    if (!g->o.idle_timeout_ms)
        g->o.idle_timeout_ms = 300000;
    if (!g->o.max_requests)
        g->o.max_requests = 256;
    if (!g->o.queue_bytes)
        g->o.queue_bytes = 4u << 20;
    pthread_mutex_init(&g->mu, NULL);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(g->multi = curl_multi_init())) {
        pthread_mutex_destroy(&g->mu);
        free(g);
        return am_err_set(AM_EIO, "gateway: libcurl init failed");
    }
    int e = pthread_create(&g->thread, NULL, gw_main, g);
    if (e) {
        curl_multi_cleanup(g->multi);
        pthread_mutex_destroy(&g->mu);
        free(g);
        return am_err_set(AM_EIO, "gateway: start thread: %s", strerror(e));
    }
    g->started = 1;
    *out = g;
    return 0;
}

void am_gw_set_link(am_gw *g, am_gw_send_fn send, am_gw_queued_fn queued, void *ctx) {
    if (!g)
        return;
    pthread_mutex_lock(&g->mu);
    g->send = send;
    g->queued = queued;
    g->link_ctx = ctx;
    pthread_mutex_unlock(&g->mu);
}

static void push(am_gw *g, item *it) {
    if (g->in_tail)
        g->in_tail->next = it;
    else
        g->in_head = it;
    g->in_tail = it;
    g->in_bytes += it->len;
}

/* Answer 503 from the caller's thread (the gateway cannot take the request). */
static void refuse_now(am_gw *g, const char *runner, const Airmesh__V1__GatewayRequest *m,
                       const char *msg) {
    if (m->cancel || !m->method || !*m->method)
        return;
    gw_req r = {.g = g, .id = m->request_id, .api = am_gw_api_of_path(m->path)};
    snprintf(r.runner, sizeof r.runner, "%s", runner);
    snprintf(r.pod, sizeof r.pod, "%.128s", m->pod_id ? m->pod_id : "");
    answer_error(&r, 503, msg);
}

void am_gw_submit(am_gw *g, const am_ops_peer *peer, const Airmesh__V1__GatewayRequest *m) {
    size_t n = airmesh__v1__gateway_request__get_packed_size(m);
    item *it = calloc(1, sizeof *it);
    uint8_t *buf = malloc(n ? n : 1);
    if (!it || !buf) {
        free(it);
        free(buf);
        refuse_now(g, peer->runner_id, m, "the model gateway is out of memory");
        return;
    }
    airmesh__v1__gateway_request__pack(m, buf);
    it->packed = buf;
    it->len = n;
    snprintf(it->runner, sizeof it->runner, "%s", peer->runner_id ? peer->runner_id : "");
    snprintf(it->org, sizeof it->org, "%s", peer->org ? peer->org : "");
    snprintf(it->source, sizeof it->source, "%s", peer->source ? peer->source : "");
    pthread_mutex_lock(&g->mu);
    int full = g->in_bytes + n > INBOX_MAX_BYTES, stopping = g->stopping;
    if (!full && !stopping)
        push(g, it);
    pthread_mutex_unlock(&g->mu);
    if (full || stopping) {
        free(buf);
        free(it);
        refuse_now(g, peer->runner_id, m,
                   stopping ? "the appliance is stopping" : "the model gateway is busy");
        return;
    }
    curl_multi_wakeup(g->multi);
}

void am_gw_runner_gone(am_gw *g, const char *runner_id) {
    item *it = calloc(1, sizeof *it);
    if (!g || !it) {
        free(it);
        return;
    }
    it->gone = 1;
    snprintf(it->runner, sizeof it->runner, "%s", runner_id ? runner_id : "");
    pthread_mutex_lock(&g->mu);
    int stopping = g->stopping; /* stopped: its requests already ended */
    if (!stopping)
        push(g, it);
    pthread_mutex_unlock(&g->mu);
    if (stopping)
        free(it);
    else
        curl_multi_wakeup(g->multi);
}

size_t am_gw_active(am_gw *g) {
    return g ? __atomic_load_n(&g->active_pub, __ATOMIC_SEQ_CST) : 0;
}

void am_gw_stop(am_gw *g) {
    if (!g || !g->started)
        return;
    pthread_mutex_lock(&g->mu);
    g->stopping = 1;
    pthread_mutex_unlock(&g->mu);
    curl_multi_wakeup(g->multi);
    pthread_join(g->thread, NULL);
    g->started = 0;
    /* Items that arrived after the last take (none come later: stopping refuses them). */
    pthread_mutex_lock(&g->mu);
    item *it = g->in_head;
    g->in_head = g->in_tail = NULL;
    pthread_mutex_unlock(&g->mu);
    while (it) {
        item *next = it->next;
        free(it->packed);
        free(it);
        it = next;
    }
}

void am_gw_free(am_gw *g) {
    if (!g)
        return;
    am_gw_stop(g);
    curl_multi_cleanup(g->multi);
    pthread_mutex_destroy(&g->mu);
    free(g);
}
