/*
 * appliance/http/api_models.c — REST endpoints for the org's model endpoints:
 *   GET    /api/v1/models              list (any role)
 *   POST   /api/v1/models              add {name, api, url, key?, ca_pem?, models?} (admin+):
 *                                      runs the self-test, answers 201 with the endpoint and it
 *   GET    /api/v1/models/{name}       one endpoint (any role)
 *   DELETE /api/v1/models/{name}       remove (admin+)
 *   POST   /api/v1/models/{name}/test  re-run the self-test (admin+), answers the endpoint
 * Every answer is rendered from ops' redacted records: the key is never in one ("has_key"
 * says whether there is one); ca_pem is not echoed either ("has_ca").
 *
 * add and test wait on the network, so they run on the models worker pool (app->models) and
 * answer from there; the http thread only parses and renders. The job owns copies of its
 * inputs; the key's copy is wiped before the job is freed.
 * Threads: the http thread, except model_run (a worker).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "appliance/work/work.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define MAX_MODELS 64

/* ---- rendering ---- */

static json_t *test_json(const Airmesh__V1__ModelSelfTest *t) {
    if (!t)
        return json_null();
    json_t *listed = json_array(), *checks = json_array();
    for (size_t i = 0; i < t->n_models_listed; i++)
        json_array_append_new(listed, json_string(t->models_listed[i]));
    for (size_t i = 0; i < t->n_checks; i++) {
        const Airmesh__V1__ModelCheck *c = t->checks[i];
        json_array_append_new(checks, json_pack("{s:s,s:b,s:b,s:s,s:I}", "model", c->model,
                                                "completion", c->completion, "tool_call",
                                                c->tool_call, "error", c->error ? c->error : "",
                                                "latency_ms", (json_int_t)c->latency_ms));
    }
    return json_pack("{s:I,s:b,s:s,s:o,s:o}", "time_ms", (json_int_t)t->time_ms, "reachable",
                     t->reachable, "error", t->error ? t->error : "", "models_listed", listed,
                     "checks", checks);
}

static json_t *model_json(const Airmesh__V1__ModelEndpoint *e, int has_key) {
    json_t *models = json_array();
    for (size_t i = 0; i < e->n_models; i++)
        json_array_append_new(models, json_string(e->models[i]));
    return json_pack("{s:s,s:s,s:s,s:o,s:b,s:b,s:I,s:s,s:o}", "name", e->name, "api", e->api, "url",
                     e->url, "models", models, "has_key", has_key, "has_ca",
                     e->ca_pem && e->ca_pem[0], "created_ms", (json_int_t)e->created_ms,
                     "created_by", e->created_by ? e->created_by : "", "last_test",
                     test_json(e->last_test));
}

/* ---- reads ---- */

static int list_row(void *ud, const Airmesh__V1__ModelEndpoint *e, int has_key) {
    json_array_append_new(ud, model_json(e, has_key));
    return 0;
}

int am_api_model_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *rows = json_array();
    int rc = am_ops_model_list(h->app->ops, &who, list_row, rows);
    if (rc) {
        json_decref(rows);
        return am_api_send_rc(req, rc);
    }
    am_http_send_json(req, 200, json_pack("{s:o}", "models", rows));
    return 0;
}

int am_api_model_show(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    Airmesh__V1__ModelEndpoint *e = NULL;
    int has_key = 0;
    int rc = am_ops_model_get(h->app->ops, &who, param[0], &e, &has_key);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, model_json(e, has_key));
    protobuf_c_message_free_unpacked(&e->base, NULL);
    return 0;
}

int am_api_model_delete(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[64];
    int rc = am_ops_model_rm(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0]);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, json_pack("{s:b,s:s}", "ok", 1, "removed", param[0]));
    return 0;
}

/* ---- add and test, on the models pool ---- */

typedef struct {
    am_work_job job; /* first: the pool's part */
    am_http_handler *h;
    am_principal who;
    char peer[64];
    int is_test;
    char *name, *api, *url, *key, *ca_pem; /* malloc'd copies */
    char *models[MAX_MODELS];
    size_t n_models;
    /* results (written by the worker) */
    int rc;
    char err[300];
    Airmesh__V1__ModelEndpoint *out;
    int has_key;
} model_job;

static void job_free(model_job *j) {
    if (j->key) {
        am_wipe(j->key, strlen(j->key));
        free(j->key);
    }
    free(j->name);
    free(j->api);
    free(j->url);
    free(j->ca_pem);
    for (size_t i = 0; i < j->n_models; i++)
        free(j->models[i]);
    if (j->out)
        protobuf_c_message_free_unpacked(&j->out->base, NULL);
    free(j);
}

static void model_run(am_work_job *job) {
    model_job *j = (model_job *)job;
    am_ops *o = j->h->app->ops;
    if (j->is_test) {
        j->rc = am_ops_model_test(o, &j->who, j->peer, j->name, &j->out, &j->has_key);
    } else {
        am_model_spec s = {.name = j->name,
                           .api = j->api,
                           .url = j->url,
                           .key = j->key,
                           .ca_pem = j->ca_pem,
                           .models = (const char *const *)j->models,
                           .n_models = j->n_models};
        j->rc = am_ops_model_add(o, &j->who, j->peer, &s, &j->out, &j->has_key);
    }
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last());
    if (j->key)
        am_wipe(j->key, strlen(j->key));
}

static void busy(model_job *j) {
    char target[80];
    snprintf(target, sizeof target, "model:%.64s", j->name ? j->name : "");
    am_ops_refused(j->h->app->ops, &j->who, j->peer, j->is_test ? "model.test" : "model.add",
                   target, "busy");
}

static void model_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    model_job *j = (model_job *)job;
    if (cancelled)
        busy(j);
    if (req) {
        if (cancelled) {
            am_http_send_error(req, 503, "busy", "the appliance is shutting down: try again");
        } else if (j->rc) {
            am_err_set(j->rc, "%s", j->err);
            am_api_send_rc(req, j->rc);
        } else {
            am_http_send_json(req, j->is_test ? 200 : 201, model_json(j->out, j->has_key));
        }
    }
    job_free(j);
}

static int submit(am_http_handler *h, h2o_req_t *req, model_job *j) {
    am_work *pool = h->app->models ? h->app->models : h->app->work;
    if (am_work_submit(pool, req, &j->job, model_run, model_done) != 0) {
        busy(j);
        job_free(j);
        am_http_send_error(req, 503, "busy",
                           "too many model endpoint self-tests in progress: try again shortly");
    }
    return 0;
}

static char *dup_or_null(const char *s) {
    return s ? strdup(s) : NULL;
}

int am_api_model_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *name = NULL, *api = NULL, *url = NULL, *key = NULL, *ca = NULL;
    json_t *models = NULL;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s:s,s:s,s:s,s?s,s?s,s?o}", "name", &name, "api",
                       &api, "url", &url, "key", &key, "ca_pem", &ca, "models", &models) != 0 ||
        (models && !json_is_array(models))) {
        char msg[400];
        snprintf(msg, sizeof msg,
                 "expected {\"name\": string, \"api\": \"openai\"|\"anthropic\", \"url\": "
                 "string, \"key\"?: string, \"ca_pem\"?: string, \"models\"?: [string]}: %s",
                 models && !json_is_array(models) ? "models must be a list" : jerr.text);
        json_decref(body);
        am_http_send_error(req, 400, "bad_request", msg);
        return 0;
    }
    if (models && json_array_size(models) > MAX_MODELS) {
        json_decref(body);
        am_http_send_error(req, 400, "bad_request", "models: at most 64");
        return 0;
    }
    model_job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(body);
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->h = h;
    j->who = who;
    am_http_peer(req, j->peer, sizeof j->peer);
    j->name = dup_or_null(name);
    j->api = dup_or_null(api);
    j->url = dup_or_null(url);
    j->key = key && key[0] ? strdup(key) : NULL;
    j->ca_pem = ca && ca[0] ? strdup(ca) : NULL;
    int bad = 0, oom = !j->name || !j->api || !j->url || (key && key[0] && !j->key) ||
                       (ca && ca[0] && !j->ca_pem);
    size_t i;
    json_t *m;
    json_array_foreach(models, i, m) {
        if (!json_is_string(m)) {
            bad = 1;
            break;
        }
        if (!(j->models[j->n_models++] = strdup(json_string_value(m))))
            oom = 1;
    }
    json_decref(body);
    if (bad || oom) {
        job_free(j);
        if (oom)
            am_http_send_error(req, 500, "internal", "out of memory");
        else
            am_http_send_error(req, 400, "bad_request", "models: a list of model names");
        return 0;
    }
    return submit(h, req, j);
}

int am_api_model_test(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    model_job *j = calloc(1, sizeof *j);
    if (!j || !(j->name = strdup(param[0]))) {
        free(j);
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->h = h;
    j->who = who;
    j->is_test = 1;
    am_http_peer(req, j->peer, sizeof j->peer);
    return submit(h, req, j);
}
