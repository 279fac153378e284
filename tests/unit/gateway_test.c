/*
 * tests/unit/gateway_test.c — the model gateway's engine (appliance/gateway) end to end below
 * the runner: GatewayRequest messages go in through am_gw_submit as the rpc thread hands them
 * over, GatewayResponse messages come out through a fake runner link, and the upstream is the
 * real scripted test model server (tests/model_server/server.py) on loopback. A real store and
 * ops, an audit writer that keeps what it is given.
 * Proves: OpenAI chat (stream and not), Responses (stream and not) and Anthropic Messages
 * (stream and not) pass through with status and headers first and `last` at the end; tokens
 * are metered exactly as the server reported (counters and the model.request record, which
 * holds no prompt text and no key); streaming chat gets stream_options.include_usage; the model
 * server sees the endpoint's real key and never the virtual one; a held stream's first chunk
 * reaches the runner before the server sends its last; refusals (no key, another pod's key,
 * another runner's pod, an ended pod, network none, an unknown model) answer in the API's own
 * format and are counted refused; the quota answers 429 in both formats; GET /v1/models in
 * both formats; the runner's cancel stops a transfer; a server that never answers is a 504
 * after the idle timeout; back-pressure pauses a transfer while the runner's queue is full.
 * argv[1]: tests/model_server/server.py.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "airmesh/v1/runner.pb-c.h"
#include "airmesh/v1/store.pb-c.h"
#include "appliance/gateway/gateway.h"
#include "appliance/ops/ops.h"
#include "common/err.h"
#include "common/util.h"

#define ORG "acme"
#define RUNNER "r-0000000000000001"
#define POD "p-000000000001"
#define POD2 "p-000000000002"
#define KEY "amk_1111111111111111111111111111111111111111111111111111111111111111"
#define KEY2 "amk_2222222222222222222222222222222222222222222222222222222222222222"
#define REAL_OAI "sk-real-openai-key"
#define REAL_ANT "sk-ant-real-anthropic-key"

static const char *g_server_py;
static am_gw *g_gw; /* the gateway of the running case */

typedef struct {
    uint64_t id;
    int status, nmsgs, last, head_first, after_last;
    char ctype[64];
    char *body;
    size_t len;
} resp;

typedef struct {
    char action[64], result[16], actor[160], details[1024];
} rec;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    resp r[256];
    size_t nr;
    rec recs[256];
    size_t nrec;
    int busy;
    size_t queued_calls;
} W = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

typedef struct {
    char dir[64];
    am_store *store;
    am_ops *ops;
    am_gw *gw;
    pid_t server;
    int port;
    char url[64], log[128];
    uint64_t next_id;
} env;

/* ---- fakes ---- */

static int fake_audit(void *ctx, const Airmesh__V1__AuditRecord *r, uint64_t *seq) {
    (void)ctx;
    pthread_mutex_lock(&W.mu);
    rec *x = &W.recs[W.nrec < 255 ? W.nrec++ : 255];
    snprintf(x->action, sizeof x->action, "%s", r->action);
    snprintf(x->result, sizeof x->result, "%s", r->result);
    snprintf(x->actor, sizeof x->actor, "%s", r->actor);
    snprintf(x->details, sizeof x->details, "%s", r->details);
    *seq = W.nrec;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    return 0;
}

static resp *find(uint64_t id) {
    for (size_t i = 0; i < W.nr; i++)
        if (W.r[i].id == id)
            return &W.r[i];
    return NULL;
}

static int fake_send(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    (void)ctx;
    assert_string_equal(runner_id, RUNNER);
    assert_int_equal(m->msg_case, AIRMESH__V1__APPLIANCE_MESSAGE__MSG_GATEWAY_RESPONSE);
    const Airmesh__V1__GatewayResponse *g = m->gateway_response;
    pthread_mutex_lock(&W.mu);
    resp *r = find(g->request_id);
    if (!r) {
        r = &W.r[W.nr++];
        memset(r, 0, sizeof *r);
        r->id = g->request_id;
        r->head_first = g->status != 0;
        r->status = (int)g->status;
        for (size_t i = 0; i < g->n_headers; i++)
            if (strcmp(g->headers[i]->name, "content-type") == 0)
                snprintf(r->ctype, sizeof r->ctype, "%s", g->headers[i]->value);
    }
    if (r->last)
        r->after_last++;
    r->nmsgs++;
    if (g->data.len) {
        r->body = realloc(r->body, r->len + g->data.len + 1);
        memcpy(r->body + r->len, g->data.data, g->data.len);
        r->len += g->data.len;
        r->body[r->len] = '\0';
    }
    if (g->last)
        r->last = 1;
    pthread_cond_broadcast(&W.cv);
    pthread_mutex_unlock(&W.mu);
    return 0;
}

static int fake_queued(void *ctx, const char *runner_id, size_t *bytes, size_t *msgs) {
    (void)ctx;
    (void)runner_id;
    pthread_mutex_lock(&W.mu);
    *bytes = W.busy ? (64u << 20) : 0;
    *msgs = 0;
    W.queued_calls++;
    pthread_mutex_unlock(&W.mu);
    return 0;
}

/* Wait (deadline 30 s) until pred holds; the mutex is held while it is checked. */
static int wait_until(int (*pred)(void *), void *arg) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    pthread_mutex_lock(&W.mu);
    int ok;
    while (!(ok = pred(arg)))
        if (pthread_cond_timedwait(&W.cv, &W.mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&W.mu);
    return ok;
}

static int is_last(void *arg) {
    resp *r = find(*(uint64_t *)arg);
    return r && r->last;
}

static int has_text(void *arg) {
    const char **a = arg;
    resp *r = find(strtoull(a[0], NULL, 10));
    return r && r->body && strstr(r->body, a[1]);
}

static size_t g_want_recs;
static int recs_at_least(void *arg) {
    (void)arg;
    return W.nrec >= g_want_recs;
}

/* ---- the world ---- */

static void put(env *e, am_db db, const char *org, const char *id, const ProtobufCMessage *m) {
    assert_int_equal(am_store_put(e->store, db, org, id, m), 0);
}

static void put_pod(env *e, const char *id, const char *runner, const char *state,
                    const char *network, const char *key) {
    Airmesh__V1__Pod p = AIRMESH__V1__POD__INIT;
    uint8_t d[32];
    unsigned n = 0;
    EVP_Digest(key, strlen(key), d, &n, EVP_sha256(), NULL);
    p.id = (char *)id;
    p.org_id = ORG;
    p.runner_id = (char *)runner;
    p.state = (char *)state;
    p.network = (char *)network;
    p.created_by = "user:alice";
    p.gateway_key_sha256.data = d;
    p.gateway_key_sha256.len = 32;
    put(e, AM_DB_PODS, ORG, id, &p.base);
}

static void put_endpoint(env *e, const char *name, const char *api, const char *url,
                         const char *key, char **models, size_t n_models) {
    Airmesh__V1__ModelEndpoint m = AIRMESH__V1__MODEL_ENDPOINT__INIT;
    m.name = (char *)name;
    m.org_id = ORG;
    m.api = (char *)api;
    m.url = (char *)url;
    m.key.data = (uint8_t *)key;
    m.key.len = strlen(key);
    m.models = models;
    m.n_models = n_models;
    put(e, AM_DB_MODELS, ORG, name, &m.base);
}

static const char *SCRIPT =
    "{\"models\":[\"test-model\"],\"rules\":["
    "{\"when\":{\"contains\":\"hold\"},\"reply\":{\"text\":\"one two three four\",\"chunks\":4,"
    "\"hold\":true,\"usage\":{\"input_tokens\":21,\"output_tokens\":4}}},"
    "{\"when\":{\"api\":\"chat\"},\"reply\":{\"text\":\"chat answer\",\"usage\":{"
    "\"input_tokens\":11,\"output_tokens\":7}}},"
    "{\"when\":{\"api\":\"responses\"},\"reply\":{\"text\":\"resp answer\",\"usage\":{"
    "\"input_tokens\":13,\"output_tokens\":5}}},"
    "{\"when\":{\"api\":\"messages\"},\"reply\":{\"text\":\"msg answer\",\"usage\":{"
    "\"input_tokens\":17,\"output_tokens\":3}}}]}";

static void start_server(env *e) {
    char script[128], portf[128];
    snprintf(script, sizeof script, "%s/script.json", e->dir);
    snprintf(portf, sizeof portf, "%s/port", e->dir);
    snprintf(e->log, sizeof e->log, "%s/requests.jsonl", e->dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs(SCRIPT, f);
    fclose(f);
    e->server = fork();
    assert_true(e->server >= 0);
    if (e->server == 0) {
        execlp("python3", "python3", g_server_py, "--script", script, "--log", e->log,
               "--port-file", portf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        FILE *p = fopen(portf, "r");
        if (p) {
            int ok = fscanf(p, "%d", &e->port) == 1;
            fclose(p);
            if (ok)
                break;
        }
        usleep(50000);
    }
    assert_true(e->port > 0);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->port);
}

static int setup(void **state) {
    env *e = calloc(1, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/gateway_test_XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    assert_int_equal(am_store_open(e->dir, &e->store, NULL), 0);
    am_ops_config c = {.store = e->store, .data_dir = e->dir, .audit_fn = fake_audit};
    assert_int_equal(am_ops_new(&c, &e->ops), 0);
    start_server(e);
    Airmesh__V1__Org o = AIRMESH__V1__ORG__INIT;
    o.id = o.name = ORG;
    put(e, AM_DB_ORGS, "", ORG, &o.base);
    put_pod(e, POD, RUNNER, "running", "models", KEY);
    put_pod(e, POD2, RUNNER, "running", "models", KEY2);
    put_pod(e, "p-other-runner", "r-0000000000000002", "running", "models", KEY);
    put_pod(e, "p-ended", RUNNER, "exited", "models", KEY);
    put_pod(e, "p-no-net", RUNNER, "running", "none", KEY);
    char oai[96];
    snprintf(oai, sizeof oai, "%s/v1", e->url);
    char *tm[] = {"test-model"};
    put_endpoint(e, "oai", "openai", oai, REAL_OAI, tm, 1);
    put_endpoint(e, "ant", "anthropic", e->url, REAL_ANT, tm, 1);
    am_gw_opts go = {.ops = e->ops, .idle_timeout_ms = 2000};
    assert_int_equal(am_gw_start(&go, &e->gw), 0);
    am_gw_set_link(e->gw, fake_send, fake_queued, e);
    g_gw = e->gw;
    *state = e;
    return 0;
}

static int teardown(void **state) {
    env *e = *state;
    am_gw_free(e->gw);
    am_ops_free(e->ops);
    am_store_close(e->store);
    if (e->server > 0) {
        kill(e->server, SIGTERM);
        waitpid(e->server, NULL, 0);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    assert_int_equal(system(cmd), 0);
    for (size_t i = 0; i < W.nr; i++)
        free(W.r[i].body);
    free(e);
    return 0;
}

/* ---- driving it ---- */

/* Submit a request (headers "name: value" strings, NULL-terminated); returns its id. The body
 * goes in two messages (more = true, then the rest) to exercise assembly. */
static uint64_t submit(env *e, const char *pod, const char *method, const char *path,
                       const char *body, const char *const *hdrs) {
    uint64_t id = ++e->next_id + 1000;
    Airmesh__V1__HttpHeader hv[8], *hp[8];
    char names[8][64], vals[8][256];
    size_t n = 0;
    for (; hdrs && hdrs[n] && n < 8; n++) {
        const char *colon = strchr(hdrs[n], ':');
        snprintf(names[n], sizeof names[n], "%.*s", (int)(colon - hdrs[n]), hdrs[n]);
        snprintf(vals[n], sizeof vals[n], "%s", colon + 2);
        airmesh__v1__http_header__init(&hv[n]);
        hv[n].name = names[n];
        hv[n].value = vals[n];
        hp[n] = &hv[n];
    }
    Airmesh__V1__GatewayRequest r = AIRMESH__V1__GATEWAY_REQUEST__INIT;
    r.pod_id = (char *)pod;
    r.request_id = id;
    r.method = (char *)method;
    r.path = (char *)path;
    r.headers = hp;
    r.n_headers = n;
    size_t bl = body ? strlen(body) : 0, half = bl / 2;
    r.body.data = (uint8_t *)body;
    r.body.len = half;
    r.more = bl > 0;
    am_ops_peer peer = {RUNNER, ORG, "127.0.0.1"};
    am_gw_submit(e->gw, &peer, &r);
    if (bl) {
        Airmesh__V1__GatewayRequest c = AIRMESH__V1__GATEWAY_REQUEST__INIT;
        c.pod_id = (char *)pod;
        c.request_id = id;
        c.body.data = (uint8_t *)body + half;
        c.body.len = bl - half;
        am_gw_submit(e->gw, &peer, &c);
    }
    return id;
}

static resp *done(uint64_t id) {
    assert_true(wait_until(is_last, &id));
    /* ...and recorded: a request leaves the gateway after its metering commit. */
    for (int i = 0; i < 30000 && am_gw_active(g_gw) != 0; i++)
        usleep(1000);
    pthread_mutex_lock(&W.mu);
    resp *r = find(id);
    pthread_mutex_unlock(&W.mu);
    assert_true(r->head_first);
    return r;
}

/* The newest model.request record (waits until n records exist). */
static rec *record_n(size_t n) {
    g_want_recs = n;
    assert_true(wait_until(recs_at_least, NULL));
    /* The record is appended inside the metering transaction: the request leaves the
     * gateway only after the commit. */
    for (int i = 0; i < 30000 && am_gw_active(g_gw) != 0; i++)
        usleep(1000);
    return &W.recs[n - 1];
}

static json_t *details(rec *r) {
    json_t *d = json_loads(r->details, 0, NULL);
    assert_non_null(d);
    return d;
}

static long long dint(json_t *d, const char *k) {
    return json_integer_value(json_object_get(d, k));
}

/* The model server's log, as one string (one JSON object per line). */
static char *server_log(env *e) {
    uint8_t *buf = NULL;
    size_t len = 0;
    for (int i = 0; i < 100; i++) { /* a request is logged just after its reply */
        free(buf);
        buf = NULL;
        if (am_read_file(e->log, 1 << 24, &buf, &len) == 0 && len)
            break;
        usleep(50000);
    }
    return (char *)buf;
}

static void usage_of(env *e, const char *scope, am_gw_counts *c) {
    assert_int_equal(am_gw_meter_get(e->store, ORG, scope, c), 0);
}

#define OAI_AUTH "authorization: Bearer " KEY
#define CT_JSON "content-type: application/json"

/* ---- cases ---- */

static void test_openai_chat_non_stream_is_forwarded_with_the_real_key_and_metered(void **state) {
    env *e = *state;
    size_t n0 = W.nrec;
    const char *h[] = {OAI_AUTH, CT_JSON, "x-api-key: amk_stray", "connection: close", NULL};
    uint64_t id = submit(e, POD, "POST", "/v1/chat/completions",
                         "{\"model\":\"test-model\",\"messages\":[{\"role\":\"user\",\"content\":"
                         "\"a secret prompt\"}]}",
                         h);
    resp *r = done(id);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "chat answer"));
    assert_non_null(strstr(r->body, "\"prompt_tokens\": 11"));
    rec *x = record_n(n0 + 1);
    assert_string_equal(x->action, "model.request");
    assert_string_equal(x->result, "ok");
    assert_string_equal(x->actor, "pod:" POD);
    json_t *d = details(x);
    assert_int_equal(dint(d, "tokens_in"), 11);
    assert_int_equal(dint(d, "tokens_out"), 7);
    assert_int_equal(dint(d, "status"), 200);
    assert_string_equal(json_string_value(json_object_get(d, "endpoint")), "oai");
    assert_string_equal(json_string_value(json_object_get(d, "model")), "test-model");
    json_decref(d);
    assert_null(strstr(x->details, "secret prompt"));
    assert_null(strstr(x->details, "sk-real"));
    assert_null(strstr(x->details, "amk_"));
    /* The server got the real key, not the virtual one or the stray credential. */
    char *log = server_log(e);
    assert_non_null(strstr(log, "\"authorization\": \"Bearer " REAL_OAI "\""));
    assert_null(strstr(log, KEY));
    assert_null(strstr(log, "amk_stray"));
    free(log);
    am_gw_counts c;
    usage_of(e, "pod:" POD, &c);
    assert_int_equal(c.tokens_in, 11);
    assert_int_equal(c.tokens_out, 7);
    assert_int_equal(c.requests, 1);
    char day[11], scope[64];
    am_gw_day(am_now_ms(), day);
    snprintf(scope, sizeof scope, "user:alice:%s", day);
    usage_of(e, scope, &c);
    assert_int_equal(c.tokens_in + c.tokens_out, 18);
}

static void test_streams_of_all_three_apis_are_metered_as_reported(void **state) {
    env *e = *state;
    struct {
        const char *path, *body, *auth, *want;
        long long in, out;
    } k[] = {
        {"/v1/chat/completions",
         "{\"model\":\"test-model\",\"stream\":true,\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         OAI_AUTH, "data: [DONE]", 11, 7},
        {"/v1/responses", "{\"model\":\"test-model\",\"stream\":true,\"input\":\"hi\"}", OAI_AUTH,
         "response.completed", 13, 5},
        {"/v1/responses", "{\"model\":\"test-model\",\"input\":\"hi\"}", OAI_AUTH, "resp answer",
         13, 5},
        {"/v1/messages",
         "{\"model\":\"test-model\",\"stream\":true,\"max_tokens\":10,\"messages\":[{\"role\":"
         "\"user\",\"content\":\"hi\"}]}",
         "x-api-key: " KEY, "message_stop", 17, 3},
        {"/v1/messages",
         "{\"model\":\"test-model\",\"max_tokens\":10,\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         "x-api-key: " KEY, "msg answer", 17, 3},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        size_t n0 = W.nrec;
        const char *h[] = {k[i].auth, CT_JSON, "anthropic-version: 2023-06-01", NULL};
        uint64_t id = submit(e, POD, "POST", k[i].path, k[i].body, h);
        resp *r = done(id);
        assert_int_equal(r->status, 200);
        assert_non_null(strstr(r->body, k[i].want));
        if (strstr(k[i].body, "\"stream\":true"))
            assert_string_equal(r->ctype, "text/event-stream");
        json_t *d = details(record_n(n0 + 1));
        if (dint(d, "tokens_in") != k[i].in || dint(d, "tokens_out") != k[i].out)
            fail_msg("%s: %s", k[i].path, W.recs[n0].details);
        json_decref(d);
    }
    /* The streaming chat request asked for the usage chunk (the client did not). */
    char *log = server_log(e);
    assert_non_null(strstr(log, "\"include_usage\": true"));
    /* Anthropic requests carried the Anthropic key in x-api-key. */
    assert_non_null(strstr(log, "\"x-api-key\": \"" REAL_ANT "\""));
    free(log);
}

static void test_held_stream_reaches_the_runner_before_its_last_chunk_is_sent(void **state) {
    env *e = *state;
    const char *h[] = {"x-api-key: " KEY, CT_JSON, NULL};
    uint64_t id = submit(e, POD, "POST", "/v1/messages",
                         "{\"model\":\"test-model\",\"stream\":true,\"max_tokens\":5,\"messages\":"
                         "[{\"role\":\"user\",\"content\":\"please hold\"}]}",
                         h);
    char ids[32];
    snprintf(ids, sizeof ids, "%llu", (unsigned long long)id);
    const char *a[] = {ids, "one "};
    assert_true(wait_until(has_text, (void *)a)); /* the first piece is here... */
    pthread_mutex_lock(&W.mu);
    resp *r = find(id);
    int last = r->last, stop = strstr(r->body, "message_stop") != NULL;
    pthread_mutex_unlock(&W.mu);
    assert_false(last); /* ...while the server still holds the rest */
    assert_false(stop);
    char cmd[160];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import urllib.request as u; u.urlopen(u.Request("
             "'%s/_test/release', data=b'{}'))\"",
             e->url);
    assert_int_equal(system(cmd), 0);
    r = done(id);
    assert_non_null(strstr(r->body, "message_stop"));
    assert_non_null(strstr(r->body, "our"));
}

static void expect_refusal_as(env *e, const char *pod, const char *path, const char *const *h,
                              const char *body, int status, const char *fragment,
                              const char *result) {
    size_t n0 = W.nrec;
    uint64_t id = submit(e, pod, "POST", path, body, h);
    resp *r = done(id);
    if (r->status != status || !strstr(r->body, fragment))
        fail_msg("%s %s: %d %s", pod, path, r->status, r->body);
    assert_string_equal(r->ctype, "application/json");
    rec *x = record_n(n0 + 1);
    assert_string_equal(x->action, "model.request");
    assert_string_equal(x->result, result);
}

static void expect_refusal(env *e, const char *pod, const char *path, const char *const *h,
                           const char *body, int status, const char *fragment) {
    expect_refusal_as(e, pod, path, h, body, status, fragment,
                      status == 404 || status == 400 ? "error" : "denied");
}

static void test_refusals_answer_in_the_apis_own_format(void **state) {
    env *e = *state;
    const char *chat = "{\"model\":\"test-model\",\"messages\":[]}";
    const char *msgs = "{\"model\":\"test-model\",\"max_tokens\":1,\"messages\":[]}";
    char *log0 = server_log(e);
    size_t before = log0 ? strlen(log0) : 0;
    free(log0);
    am_gw_counts c0, c1;
    char day[11], scope[32];
    am_gw_day(am_now_ms(), day);
    snprintf(scope, sizeof scope, "day:%s", day);
    usage_of(e, scope, &c0);
    const char *nokey[] = {CT_JSON, NULL};
    expect_refusal(e, POD, "/v1/chat/completions", nokey, chat, 401, "\"invalid_api_key\"");
    expect_refusal(e, POD, "/v1/messages", nokey, msgs, 401, "\"authentication_error\"");
    const char *other[] = {"authorization: Bearer " KEY2, NULL}; /* POD2's key on POD */
    expect_refusal(e, POD, "/v1/chat/completions", other, chat, 401, "invalid API key");
    const char *ok[] = {OAI_AUTH, NULL};
    expect_refusal(e, "p-other-runner", "/v1/chat/completions", ok, chat, 403,
                   "not one of this runner's");
    expect_refusal(e, "p-ended", "/v1/chat/completions", ok, chat, 403, "exited");
    expect_refusal(e, "p-no-net", "/v1/chat/completions", ok, chat, 403, "network");
    expect_refusal(e, "p-unknown", "/v1/chat/completions", ok, chat, 403, "runner");
    const char *ak[] = {"x-api-key: " KEY, NULL};
    expect_refusal(e, POD, "/v1/messages", ak, "{\"model\":\"nope\"}", 404, "\"not_found_error\"");
    expect_refusal(e, POD, "/v1/chat/completions", ok, "not json", 400, "JSON object");
    expect_refusal_as(e, POD, "/v1/../admin", ok, chat, 400, "bad request path", "denied");
    usage_of(e, scope, &c1);
    assert_int_equal(c1.refused - c0.refused, 8); /* 401 x3, 403 x4, the path */
    /* None of them reached the model server. */
    char *log = server_log(e);
    assert_int_equal(log ? strlen(log) : 0, before);
    free(log);
}

static void test_quota_answers_429_in_both_formats(void **state) {
    env *e = *state;
    am_principal admin = {.user_id = "admin", .org_id = ORG, .role = 3};
    char day[11], scope[32];
    am_gw_day(am_now_ms(), day);
    snprintf(scope, sizeof scope, "day:%s", day);
    am_gw_counts c;
    usage_of(e, scope, &c);
    assert_true(c.tokens_in + c.tokens_out > 0);
    /* Positive control: just above today's usage, a request still goes through. */
    assert_int_equal(
        am_ops_model_quota_set(e->ops, &admin, "t", ORG, c.tokens_in + c.tokens_out + 1), 0);
    const char *ok[] = {OAI_AUTH, NULL};
    uint64_t id = submit(e, POD, "POST", "/v1/chat/completions",
                         "{\"model\":\"test-model\",\"messages\":[]}", ok);
    assert_int_equal(done(id)->status, 200);
    /* Now today's usage is above the quota. */
    expect_refusal(e, POD, "/v1/chat/completions", ok, "{\"model\":\"test-model\"}", 429,
                   "\"insufficient_quota\"");
    const char *ak[] = {"x-api-key: " KEY, NULL};
    expect_refusal(e, POD, "/v1/messages", ak, "{\"model\":\"test-model\"}", 429,
                   "\"rate_limit_error\"");
    am_gw_counts c2;
    usage_of(e, scope, &c2);
    assert_int_equal(c2.refused - c.refused, 2);
    assert_int_equal(am_ops_model_quota_set(e->ops, &admin, "t", ORG, 0), 0);
    /* A member may not change it. */
    am_principal member = {.user_id = "bob", .org_id = ORG, .role = 2};
    assert_int_equal(am_ops_model_quota_set(e->ops, &member, "t", ORG, 5), -AM_EPERM);
}

static void test_models_are_listed_in_both_formats(void **state) {
    env *e = *state;
    const char *o[] = {OAI_AUTH, NULL};
    resp *r = done(submit(e, POD, "GET", "/v1/models", NULL, o));
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"object\":\"list\""));
    assert_non_null(strstr(r->body, "\"id\":\"test-model\""));
    const char *a[] = {"x-api-key: " KEY, "anthropic-version: 2023-06-01", NULL};
    r = done(submit(e, POD, "GET", "/v1/models", NULL, a));
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"type\":\"model\""));
    assert_non_null(strstr(r->body, "\"has_more\":false"));
    const char *none[] = {NULL};
    r = done(submit(e, POD, "GET", "/v1/models", NULL, none));
    assert_int_equal(r->status, 401);
}

static void test_cancel_stops_the_transfer_and_nothing_more_is_sent(void **state) {
    env *e = *state;
    size_t n0 = W.nrec;
    /* The runner's queue is "full": the transfer pauses after the headers, so the cancel
     * finds it in progress. */
    pthread_mutex_lock(&W.mu);
    W.busy = 1;
    pthread_mutex_unlock(&W.mu);
    const char *h[] = {OAI_AUTH, NULL};
    uint64_t id = submit(e, POD, "POST", "/v1/chat/completions",
                         "{\"model\":\"test-model\",\"stream\":true,\"messages\":[]}", h);
    for (int i = 0; i < 3000 && am_gw_active(e->gw) == 0; i++)
        usleep(1000);
    assert_int_equal(am_gw_active(e->gw), 1);
    Airmesh__V1__GatewayRequest c = AIRMESH__V1__GATEWAY_REQUEST__INIT;
    c.pod_id = POD;
    c.request_id = id;
    c.cancel = 1;
    am_ops_peer peer = {RUNNER, ORG, "127.0.0.1"};
    am_gw_submit(e->gw, &peer, &c);
    rec *x = record_n(n0 + 1);
    json_t *d = details(x);
    assert_int_equal(dint(d, "status"), 499);
    json_decref(d);
    for (int i = 0; i < 3000 && am_gw_active(e->gw) != 0; i++)
        usleep(1000);
    assert_int_equal(am_gw_active(e->gw), 0);
    pthread_mutex_lock(&W.mu);
    W.busy = 0;
    resp *r = find(id);
    int last = r ? r->last : 0;
    size_t len = r ? r->len : 0;
    pthread_mutex_unlock(&W.mu);
    assert_false(last);
    assert_int_equal(len, 0);
}

static void test_a_server_that_never_answers_is_a_504_after_the_idle_timeout(void **state) {
    env *e = *state;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(s, 4), 0); /* accepts (backlog), never answers */
    socklen_t sl = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &sl);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", ntohs(sa.sin_port));
    char *sm[] = {"silent-model"};
    put_endpoint(e, "silent", "openai", url, "k", sm, 1);
    const char *h[] = {OAI_AUTH, NULL};
    resp *r = done(submit(e, POD, "POST", "/v1/chat/completions",
                          "{\"model\":\"silent-model\",\"messages\":[]}", h));
    assert_int_equal(r->status, 504);
    assert_non_null(strstr(r->body, "\"code\":\"timeout\""));
    close(s);
    /* Connection refused: 502 */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", ntohs(sa.sin_port));
    r = done(submit(e, POD, "POST", "/v1/chat/completions",
                    "{\"model\":\"silent-model\",\"messages\":[]}", h));
    assert_int_equal(r->status, 502);
}

static void test_back_pressure_pauses_while_the_runners_queue_is_full(void **state) {
    env *e = *state;
    pthread_mutex_lock(&W.mu);
    W.busy = 1;
    pthread_mutex_unlock(&W.mu);
    const char *h[] = {OAI_AUTH, NULL};
    uint64_t id = submit(e, POD, "POST", "/v1/chat/completions",
                         "{\"model\":\"test-model\",\"messages\":[]}", h);
    /* Headers go out; body bytes wait while the queue is "full" (checked repeatedly). */
    pthread_mutex_lock(&W.mu);
    size_t q0 = W.queued_calls;
    pthread_mutex_unlock(&W.mu);
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&W.mu);
        size_t q = W.queued_calls;
        pthread_mutex_unlock(&W.mu);
        if (q > q0 + 5)
            break;
        usleep(10000);
    }
    pthread_mutex_lock(&W.mu);
    resp *r = find(id);
    assert_true(W.queued_calls > q0 + 5);
    assert_true(r == NULL || r->len == 0);
    assert_true(r == NULL || !r->last);
    W.busy = 0;
    pthread_mutex_unlock(&W.mu);
    r = done(id);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "chat answer"));
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: gateway_test tests/model_server/server.py\n");
        return 2;
    }
    g_server_py = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_chat_non_stream_is_forwarded_with_the_real_key_and_metered),
        cmocka_unit_test(test_streams_of_all_three_apis_are_metered_as_reported),
        cmocka_unit_test(test_held_stream_reaches_the_runner_before_its_last_chunk_is_sent),
        cmocka_unit_test(test_refusals_answer_in_the_apis_own_format),
        cmocka_unit_test(test_quota_answers_429_in_both_formats),
        cmocka_unit_test(test_models_are_listed_in_both_formats),
        cmocka_unit_test(test_cancel_stops_the_transfer_and_nothing_more_is_sent),
        cmocka_unit_test(test_a_server_that_never_answers_is_a_504_after_the_idle_timeout),
        cmocka_unit_test(test_back_pressure_pauses_while_the_runners_queue_is_full),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
