/*
 * appliance/gateway/selftest/selftest.c — the model endpoint self-test (see selftest.h for
 * the steps and their rules).
 *
 * How: one libcurl easy handle per request (blocking, CURLOPT_NOSIGNAL for threads), bodies
 * built and parsed with jansson, answers capped at 1 MiB. The result is collected in plain
 * structs on the stack and turned into a ModelSelfTest by packing and unpacking it, so the
 * caller gets a message that frees like any unpacked one.
 * Threads: any (no shared state besides libcurl's one-time global init). Memory: every
 * request's buffers are freed before the next; the key's header line is wiped after use.
 */
#include "appliance/gateway/selftest/selftest.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

#define MAX_BODY (1 << 20)
#define MAX_LISTED 64
#define ERR_MAX 300
#define TOOL "get_time"
#define TOOL_PROMPT                                                                                \
    "What time is it in UTC? Call the get_time tool to find out, then tell me the time."
#define TOOL_RESULT "{\"utc\":\"2026-01-01T12:00:00Z\"}"

typedef struct {
    char model[129];
    int completion, tool_call;
    char error[ERR_MAX];
    uint64_t latency_ms;
} check;

typedef struct {
    int reachable;
    char error[ERR_MAX];
    char listed[MAX_LISTED][129];
    size_t n_listed;
    check checks[AM_GW_SELFTEST_MODELS];
    size_t n_checks;
} result;

typedef struct {
    const Airmesh__V1__ModelEndpoint *e;
    int anthropic;
    long connect_ms, request_ms;
    uint64_t deadline_ms;
} ctx;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void global_init(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- one HTTP request ---- */

typedef struct {
    char *data;
    size_t len;
    int over;
} buf;

static size_t on_data(char *p, size_t sz, size_t n, void *ud) {
    buf *b = ud;
    size_t add = sz * n;
    if (b->len + add > MAX_BODY) {
        b->over = 1;
        return 0;
    }
    char *nd = realloc(b->data, b->len + add + 1);
    if (!nd)
        return 0;
    memcpy(nd + b->len, p, add);
    b->data = nd;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

/* printable ASCII of s (at most max bytes) into out. */
static void printable(char *out, size_t cap, const char *s, size_t max) {
    size_t j = 0;
    for (size_t i = 0; s && s[i] && i < max && j + 1 < cap; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : ' ';
    out[j] = '\0';
}

/* The words of a non-2xx answer: "HTTP 401: <error.message>" (both APIs nest it there). */
static void http_error(char *err, size_t cap, long status, const json_t *resp, const char *raw) {
    const char *msg = NULL;
    json_t *e = resp ? json_object_get(resp, "error") : NULL;
    if (json_is_object(e))
        msg = json_string_value(json_object_get(e, "message"));
    else if (json_is_string(e))
        msg = json_string_value(e);
    else if (resp)
        msg = json_string_value(json_object_get(resp, "message"));
    char words[160];
    printable(words, sizeof words, msg ? msg : raw, 150);
    if (words[0])
        snprintf(err, cap, "HTTP %ld: %s", status, words);
    else
        snprintf(err, cap, "HTTP %ld", status);
}

/* method GET when body is NULL, else POST of body. Returns the HTTP status (*resp: the parsed
 * JSON answer or NULL), or -1 when no HTTP answer came (err says why). */
static long call(ctx *c, const char *path, json_t *body, json_t **resp, char *err, size_t cap,
                 uint64_t *ms) {
    *resp = NULL;
    err[0] = '\0';
    uint64_t now = am_now_ms();
    if (now >= c->deadline_ms) {
        snprintf(err, cap, "skipped: the self-test's time budget was spent");
        return -1;
    }
    long timeout = c->request_ms;
    if ((uint64_t)timeout > c->deadline_ms - now)
        timeout = (long)(c->deadline_ms - now);
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, cap, "libcurl: cannot make a handle");
        return -1;
    }
    char url[700];
    snprintf(url, sizeof url, "%s%s", c->e->url, path);
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, "Accept: application/json");
    if (body)
        hdr = curl_slist_append(hdr, "Content-Type: application/json");
    if (c->anthropic)
        hdr = curl_slist_append(hdr, "anthropic-version: 2023-06-01");
    if (c->e->key.len) {
        size_t n = c->e->key.len + 32;
        char *line = malloc(n);
        if (line) {
            snprintf(line, n, "%s%.*s", c->anthropic ? "x-api-key: " : "Authorization: Bearer ",
                     (int)c->e->key.len, (const char *)c->e->key.data);
            hdr = curl_slist_append(hdr, line);
            am_wipe(line, n);
            free(line);
        }
    }
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    buf b = {0};
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never a proxy from the environment */
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout > 0 ? timeout : 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "airmesh-selftest/1");
    if (c->e->ca_pem && c->e->ca_pem[0]) {
        struct curl_blob blob = {(void *)c->e->ca_pem, strlen(c->e->ca_pem), CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
    }
    if (text) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    uint64_t t0 = am_now_ms();
    CURLcode cc = curl_easy_perform(h);
    if (ms)
        *ms = am_now_ms() - t0;
    long status = -1;
    if (cc != CURLE_OK) {
        if (b.over)
            snprintf(err, cap, "the answer is larger than 1 MiB");
        else
            snprintf(err, cap, "%s%s%s", curl_easy_strerror(cc), cerr[0] ? ": " : "", cerr);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (b.data)
            *resp = json_loadb(b.data, b.len, 0, NULL);
        if (status < 200 || status > 299)
            http_error(err, cap, status, *resp, b.data);
        else if (!*resp)
            snprintf(err, cap, "HTTP %ld but the answer is not JSON", status);
    }
    for (struct curl_slist *s = hdr; s; s = s->next)
        am_wipe(s->data, strlen(s->data));
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(text);
    free(b.data);
    return status;
}

/* ---- the steps ---- */

static void list_models(ctx *c, result *r) {
    json_t *resp = NULL;
    char err[200];
    long st = call(c, c->anthropic ? "/v1/models" : "/models", NULL, &resp, err, sizeof err, NULL);
    if (st < 0) {
        snprintf(r->error, sizeof r->error, "cannot reach %.80s: %.190s", c->e->url, err);
        return;
    }
    r->reachable = 1;
    if (st == 200 && resp) {
        json_t *data = json_object_get(resp, "data"), *m;
        size_t i;
        json_array_foreach(data, i, m) {
            const char *id = json_string_value(json_object_get(m, "id"));
            if (id && id[0] && r->n_listed < MAX_LISTED)
                printable(r->listed[r->n_listed++], sizeof r->listed[0], id, 128);
        }
    } else if (!(st == 404 && c->anthropic)) {
        if (st == 404)
            snprintf(r->error, sizeof r->error,
                     "listing models: %s (an openai URL is the base including /v1)", err);
        else
            snprintf(r->error, sizeof r->error, "listing models: %s", err);
    }
    json_decref(resp);
}

static json_t *tool_def(int anthropic) {
    json_t *params =
        json_pack("{s:s,s:{s:{s:s,s:s}},s:[]}", "type", "object", "properties", "timezone", "type",
                  "string", "description", "an IANA time zone, e.g. UTC", "required");
    if (anthropic)
        return json_pack("{s:s,s:s,s:o}", "name", TOOL, "description",
                         "Get the current time in a time zone", "input_schema", params);
    return json_pack("{s:s,s:{s:s,s:s,s:o}}", "type", "function", "function", "name", TOOL,
                     "description", "Get the current time in a time zone", "parameters", params);
}

static json_t *request(ctx *c, const char *model, json_t *messages, int with_tool) {
    json_t *b = json_pack("{s:s,s:o,s:i}", "model", model, "messages", messages,
                          "max_tokens", with_tool ? 256 : 16);
    if (with_tool)
        json_object_set_new(b, "tools", json_pack("[o]", tool_def(c->anthropic)));
    if (!c->anthropic)
        json_object_set_new(b, "stream", json_false());
    return b;
}

static const char *path_of(ctx *c) {
    return c->anthropic ? "/v1/messages" : "/chat/completions";
}

/* The assistant's text of an answer ("" when there is none), or NULL when the answer has not
 * the API's shape. */
static const char *answer_text(ctx *c, json_t *resp, json_t **msg_out) {
    if (c->anthropic) {
        json_t *content = json_object_get(resp, "content"), *blk;
        if (!json_is_array(content))
            return NULL;
        size_t i;
        json_array_foreach(content, i, blk) {
            if (json_is_string(json_object_get(blk, "text")) &&
                json_string_length(json_object_get(blk, "text")) > 0)
                return json_string_value(json_object_get(blk, "text"));
        }
        return "";
    }
    json_t *msg = json_object_get(json_array_get(json_object_get(resp, "choices"), 0), "message");
    if (!json_is_object(msg))
        return NULL;
    if (msg_out)
        *msg_out = msg;
    const char *t = json_string_value(json_object_get(msg, "content"));
    return t ? t : "";
}

static void completion(ctx *c, check *k) {
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content", "Say OK.");
    json_t *b = request(c, k->model, msgs, 0), *resp = NULL;
    char err[200];
    long st = call(c, path_of(c), b, &resp, err, sizeof err, &k->latency_ms);
    json_decref(b);
    if (st != 200 || !resp)
        snprintf(k->error, sizeof k->error, "completion: %s", err);
    else if (!answer_text(c, resp, NULL))
        snprintf(k->error, sizeof k->error, "completion: HTTP 200 but not a %s answer",
                 c->anthropic ? "Messages" : "Chat Completions");
    else
        k->completion = 1;
    json_decref(resp);
}

/* Find the model's call of TOOL in resp: 0 with *id, *call (openai: the tool_calls entry;
 * anthropic: the content array) set, else the reason in k->error. */
static int find_call(ctx *c, check *k, json_t *resp, const char **id, json_t **call_out) {
    const char *text = answer_text(c, resp, NULL);
    if (!text) {
        snprintf(k->error, sizeof k->error, "tool call: HTTP 200 but not a %s answer",
                 c->anthropic ? "Messages" : "Chat Completions");
        return -1;
    }
    const char *other = NULL;
    if (c->anthropic) {
        json_t *content = json_object_get(resp, "content"), *blk;
        size_t i;
        json_array_foreach(content, i, blk) {
            if (!json_is_string(json_object_get(blk, "type")) ||
                strcmp(json_string_value(json_object_get(blk, "type")), "tool_use") != 0)
                continue;
            const char *name = json_string_value(json_object_get(blk, "name"));
            if (!name || strcmp(name, TOOL) != 0) {
                other = name ? name : "(no name)";
                continue;
            }
            *id = json_string_value(json_object_get(blk, "id"));
            if (!*id || !json_is_object(json_object_get(blk, "input"))) {
                snprintf(k->error, sizeof k->error,
                         "tool call: the get_time call has no id or its input is not a JSON "
                         "object");
                return -1;
            }
            *call_out = content;
            return 0;
        }
    } else {
        json_t *msg = NULL;
        answer_text(c, resp, &msg);
        json_t *calls = json_object_get(msg, "tool_calls"), *tc;
        size_t i;
        json_array_foreach(calls, i, tc) {
            json_t *fn = json_object_get(tc, "function");
            const char *name = json_string_value(json_object_get(fn, "name"));
            if (!name || strcmp(name, TOOL) != 0) {
                other = name ? name : "(no name)";
                continue;
            }
            *id = json_string_value(json_object_get(tc, "id"));
            const char *args = json_string_value(json_object_get(fn, "arguments"));
            json_t *parsed = args ? json_loads(args, 0, NULL) : NULL;
            int ok = json_is_object(parsed);
            json_decref(parsed);
            if (!ok) {
                char shown[60];
                printable(shown, sizeof shown, args ? args : "(none)", 50);
                snprintf(k->error, sizeof k->error,
                         "tool call: the arguments of get_time are not a JSON object: %s", shown);
                return -1;
            }
            if (!*id) {
                snprintf(k->error, sizeof k->error, "tool call: the get_time call has no id");
                return -1;
            }
            *call_out = tc;
            return 0;
        }
    }
    if (other) {
        char shown[70];
        printable(shown, sizeof shown, other, 64);
        snprintf(k->error, sizeof k->error, "tool call: the model called \"%s\" instead of %s",
                 shown, TOOL);
    } else {
        char shown[70];
        printable(shown, sizeof shown, text, 60);
        snprintf(k->error, sizeof k->error,
                 "tool call: the model answered with text instead of calling %s%s%s%s", TOOL,
                 shown[0] ? " (\"" : "", shown, shown[0] ? "\")" : "");
    }
    return -1;
}

static void tool_round_trip(ctx *c, check *k) {
    json_t *user = json_pack("{s:s,s:s}", "role", "user", "content", TOOL_PROMPT);
    json_t *b = request(c, k->model, json_pack("[O]", user), 1), *resp = NULL, *resp2 = NULL;
    char err[200];
    long st = call(c, path_of(c), b, &resp, err, sizeof err, NULL);
    json_decref(b);
    b = NULL;
    const char *id = NULL;
    json_t *callv = NULL;
    if (st != 200 || !resp) {
        snprintf(k->error, sizeof k->error, "tool call: %s", err);
        goto out;
    }
    if (find_call(c, k, resp, &id, &callv) != 0)
        goto out;
    /* Round two: the tool's result goes back; a text answer must follow. */
    json_t *msgs;
    if (c->anthropic) {
        msgs = json_pack("[O,{s:s,s:O},{s:s,s:[{s:s,s:s,s:s}]}]", user, "role", "assistant",
                         "content", callv, "role", "user", "content", "type", "tool_result",
                         "tool_use_id", id, "content", TOOL_RESULT);
    } else {
        msgs = json_pack("[O,{s:s,s:n,s:[O]},{s:s,s:s,s:s}]", user, "role", "assistant", "content",
                         "tool_calls", callv, "role", "tool", "tool_call_id", id, "content",
                         TOOL_RESULT);
    }
    b = request(c, k->model, msgs, 1);
    st = call(c, path_of(c), b, &resp2, err, sizeof err, NULL);
    if (st != 200 || !resp2) {
        snprintf(k->error, sizeof k->error, "tool result: %s", err);
        goto out;
    }
    const char *text = answer_text(c, resp2, NULL);
    if (!text || !text[0]) {
        snprintf(k->error, sizeof k->error,
                 "tool result: the model gave no text answer after the get_time result");
        goto out;
    }
    k->tool_call = 1;
out:
    json_decref(b);
    json_decref(user);
    json_decref(resp);
    json_decref(resp2);
}

/* ---- the result as a message ---- */

static int to_message(const result *r, Airmesh__V1__ModelSelfTest **out) {
    Airmesh__V1__ModelSelfTest t = AIRMESH__V1__MODEL_SELF_TEST__INIT;
    Airmesh__V1__ModelCheck cs[AM_GW_SELFTEST_MODELS], *cp[AM_GW_SELFTEST_MODELS];
    char *listed[MAX_LISTED];
    t.time_ms = am_now_ms();
    t.reachable = r->reachable;
    t.error = (char *)r->error;
    for (size_t i = 0; i < r->n_listed; i++)
        listed[i] = (char *)r->listed[i];
    t.models_listed = listed;
    t.n_models_listed = r->n_listed;
    for (size_t i = 0; i < r->n_checks; i++) {
        airmesh__v1__model_check__init(&cs[i]);
        cs[i].model = (char *)r->checks[i].model;
        cs[i].completion = r->checks[i].completion;
        cs[i].tool_call = r->checks[i].tool_call;
        cs[i].error = (char *)r->checks[i].error;
        cs[i].latency_ms = r->checks[i].latency_ms;
        cp[i] = &cs[i];
    }
    t.checks = cp;
    t.n_checks = r->n_checks;
    size_t n = protobuf_c_message_get_packed_size(&t.base);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return am_err_set(AM_ENOMEM, "model self-test: out of memory");
    protobuf_c_message_pack(&t.base, b);
    *out = airmesh__v1__model_self_test__unpack(NULL, n, b);
    free(b);
    return *out ? 0 : am_err_set(AM_ENOMEM, "model self-test: out of memory");
}

int am_gw_selftest_run(void *vctx, const Airmesh__V1__ModelEndpoint *e,
                       Airmesh__V1__ModelSelfTest **out) {
    const am_gw_selftest_opts *o = vctx;
    pthread_once(&g_once, global_init);
    result *r = calloc(1, sizeof *r);
    if (!r)
        return am_err_set(AM_ENOMEM, "model self-test: out of memory");
    ctx c = {.e = e,
             .anthropic = e->api && strcmp(e->api, "anthropic") == 0,
             .connect_ms = o && o->connect_timeout_ms ? o->connect_timeout_ms : 3000,
             .request_ms = o && o->request_timeout_ms ? o->request_timeout_ms : 20000};
    c.deadline_ms = am_now_ms() + (o && o->budget_ms ? (uint64_t)o->budget_ms
                                                     : (uint64_t)AM_GW_SELFTEST_BUDGET_MS);
    list_models(&c, r);
    if (r->reachable) {
        /* the configured models, else the listed ones */
        size_t n = e->n_models ? e->n_models : r->n_listed;
        for (size_t i = 0; i < n && r->n_checks < AM_GW_SELFTEST_MODELS; i++) {
            check *k = &r->checks[r->n_checks++];
            printable(k->model, sizeof k->model, e->n_models ? e->models[i] : r->listed[i], 128);
            completion(&c, k);
            if (k->completion)
                tool_round_trip(&c, k);
        }
        if (r->n_checks == 0 && !r->error[0])
            snprintf(r->error, sizeof r->error,
                     "no model to test: the server lists none and the endpoint names none "
                     "(--models)");
    }
    int rc = to_message(r, out);
    free(r);
    return rc;
}
