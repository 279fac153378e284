/*
 * appliance/http/api_tickets.c — REST endpoints for the org's tickets (issue 13):
 *   GET   /api/v1/tickets                 list, by number; filters ?status= &assignee= &label= &q=
 *   POST  /api/v1/tickets                 create {title, description?, status?, priority?,
 *                                         assignee?, labels?, parent?, blocks?} (member+), 201
 *   GET   /api/v1/tickets/{key}           one ticket (key case-insensitive)
 *   PATCH /api/v1/tickets/{key}           the same fields, each optional (status: a validated move)
 *   POST  /api/v1/tickets/{key}/comments  {body} (member+), 201 with the ticket
 *   POST  /api/v1/tickets/{key}/start     {repo, agent?, command?, runner?, base_ref?, network?}:
 *                                         a pod on branch <key lower-cased>, 201 {ticket, pod}
 * Parse, one am_ops_* call, render; every rule is in appliance/ops/tickets.c.
 * Threads: the http thread (the writes are one small store transaction each), except start,
 * which runs on the I/O pool like POST /api/v1/pods (start_run on a worker).
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

#define QVAL_MAX 256
#define LIST_MAX 64

static json_t *strv(char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *ticket_json(const Airmesh__V1__Ticket *t) {
    json_t *comments = json_array();
    for (size_t i = 0; i < t->n_comments; i++)
        json_array_append_new(comments, json_pack("{s:s,s:I,s:s}", "author", t->comments[i]->author,
                                                  "time_ms", (json_int_t)t->comments[i]->time_ms,
                                                  "body", t->comments[i]->body));
    json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:s}", "key", t->key,
                          "org", t->org_id, "number", (json_int_t)t->number, "title", t->title,
                          "description", t->description, "status", t->status, "priority",
                          t->priority, "assignee", t->assignee, "parent", t->parent, "created_by",
                          t->created_by, "created_ms", (json_int_t)t->created_ms, "updated_ms",
                          (json_int_t)t->updated_ms, "branch", t->branch);
    json_object_set_new(o, "labels", strv(t->labels, t->n_labels));
    json_object_set_new(o, "blocks", strv(t->blocks, t->n_blocks));
    json_object_set_new(o, "blocked_by", strv(t->blocked_by, t->n_blocked_by));
    json_object_set_new(o, "pods", strv(t->pod_ids, t->n_pod_ids));
    json_object_set_new(o, "comments", comments);
    return o;
}

/* The value of query parameter `key` (percent-decoded, '+' a space) into out; 1 if present, -1
 * when it does not fit or is malformed. */
static int bad(h2o_req_t *req, json_t *body, const char *msg) {
    json_decref(body);
    am_http_send_error(req, 400, "bad_request", msg);
    return 0;
}

static int by_number(const void *a, const void *b) {
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "number"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "number"));
    return x < y ? -1 : x > y;
}

static int list_row(void *ud, const Airmesh__V1__Ticket *t) {
    json_array_append_new(ud, ticket_json(t));
    return 0;
}

int am_api_ticket_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char status[QVAL_MAX] = "", assignee[QVAL_MAX] = "", label[QVAL_MAX] = "", q[QVAL_MAX] = "";
    if (am_api_query_param(req, 1, "status", status, sizeof status) < 0 ||
        am_api_query_param(req, 1, "assignee", assignee, sizeof assignee) < 0 ||
        am_api_query_param(req, 1, "label", label, sizeof label) < 0 ||
        am_api_query_param(req, 1, "q", q, sizeof q) < 0)
        return bad(req, NULL, "a query parameter is malformed or longer than 255 bytes");
    am_ticket_filter f = {status, assignee, label, q};
    json_t *rows = json_array();
    int rc = am_ops_ticket_list(h->app->ops, &who, &f, list_row, rows);
    if (rc) {
        json_decref(rows);
        return am_api_send_rc(req, rc);
    }
    size_t n = json_array_size(rows);
    json_t **v = calloc(n + 1, sizeof *v);
    json_t *sorted = json_array();
    if (v) {
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(rows, i);
        qsort(v, n, sizeof *v, by_number);
        for (size_t i = 0; i < n; i++)
            json_array_append(sorted, v[i]);
    }
    free(v);
    json_decref(rows);
    am_http_send_json(req, 200, json_pack("{s:o}", "tickets", sorted));
    return 0;
}

/* The spec from a create/patch body (strings borrowed from body). NULL, or the error text. */
static const char *parse_spec(json_t *body, am_ticket_spec *s, const char **labels,
                              const char **blocks) {
    memset(s, 0, sizeof *s);
    static const char *const str_fields[] = {"title",    "description", "status",
                                             "priority", "assignee",    "parent"};
    const char **dst[] = {&s->title,    &s->description, &s->status,
                          &s->priority, &s->assignee,    &s->parent};
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        int known = 0;
        for (size_t i = 0; i < 6; i++)
            if (strcmp(key, str_fields[i]) == 0) {
                known = 1;
                if (!json_is_string(v))
                    return "title, description, status, priority, assignee and parent are "
                           "strings";
                *dst[i] = json_string_value(v);
            }
        if (strcmp(key, "labels") == 0 || strcmp(key, "blocks") == 0) {
            known = 1;
            int is_labels = key[0] == 'l';
            if (!json_is_array(v) || json_array_size(v) > LIST_MAX)
                return "labels and blocks are arrays of strings (at most 64)";
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                if (!json_is_string(e))
                    return "labels and blocks are arrays of strings (at most 64)";
                (is_labels ? labels : blocks)[i] = json_string_value(e);
            }
            if (is_labels) {
                s->set_labels = 1;
                s->labels = labels;
                s->n_labels = json_array_size(v);
            } else {
                s->set_blocks = 1;
                s->blocks = blocks;
                s->n_blocks = json_array_size(v);
            }
        }
        if (!known)
            return "unknown field (title, description, status, priority, assignee, labels, "
                   "parent, blocks)";
    }
    return NULL;
}

static int write_answer(h2o_req_t *req, int rc, Airmesh__V1__Ticket *t, int status) {
    if (rc) {
        if (t)
            protobuf_c_message_free_unpacked(&t->base, NULL);
        return am_api_send_rc(req, rc);
    }
    am_http_send_json(req, status, t ? ticket_json(t) : json_object());
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
    return 0;
}

int am_api_ticket_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body || !json_is_object(body))
        return bad(req, body, "expected a JSON object {title, description?, ...}");
    am_ticket_spec s;
    const char *labels[LIST_MAX], *blocks[LIST_MAX];
    const char *err = parse_spec(body, &s, labels, blocks);
    if (err)
        return bad(req, body, err);
    char peer[64];
    Airmesh__V1__Ticket *t = NULL;
    int rc = am_ops_ticket_create(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), &s, &t);
    json_decref(body);
    return write_answer(req, rc, t, 201);
}

int am_api_ticket_show(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    Airmesh__V1__Ticket *t = NULL;
    int rc = am_ops_ticket_get(h->app->ops, &who, param[0], &t);
    return write_answer(req, rc, t, 200);
}

int am_api_ticket_patch(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body || !json_is_object(body))
        return bad(req, body, "expected a JSON object with the fields to change");
    am_ticket_spec s;
    const char *labels[LIST_MAX], *blocks[LIST_MAX];
    const char *err = parse_spec(body, &s, labels, blocks);
    if (err)
        return bad(req, body, err);
    char peer[64];
    Airmesh__V1__Ticket *t = NULL;
    int rc = am_ops_ticket_update(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0],
                                  &s, &t);
    json_decref(body);
    return write_answer(req, rc, t, 200);
}

int am_api_ticket_comment(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    const char *text = NULL;
    if (!body || json_unpack(body, "{s:s}", "body", &text) != 0)
        return bad(req, body, "expected {\"body\": \"...\"}");
    char peer[64];
    Airmesh__V1__Ticket *t = NULL;
    int rc = am_ops_ticket_comment(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                   param[0], text, &t);
    json_decref(body);
    return write_answer(req, rc, t, 201);
}

/* A start on the I/O pool: the pod create writes the store (an fsync) and hands the pod to its
 * runner, like POST /api/v1/pods (see am_api_pod_create). The job owns the parsed body. */
typedef struct {
    am_work_job job; /* first: the pool's part */
    am_http_handler *h;
    json_t *body;
    am_pod_spec spec;
    const char *argv[LIST_MAX];
    char key[200];
    am_principal who;
    char peer[64];
    Airmesh__V1__Ticket *t;
    Airmesh__V1__Pod *p;
    int rc;
    char err[256];
} start_job;

static void start_run(am_work_job *job) {
    start_job *j = (start_job *)job;
    j->rc = am_ops_ticket_start(j->h->app->ops, &j->who, j->peer, j->key, &j->spec, &j->t, &j->p);
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last()); /* (the worker's thread-local) */
}

static void start_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    start_job *j = (start_job *)job;
    if (req && cancelled) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        am_http_send_error(req, 503, "busy", "the appliance is shutting down: try again");
    } else if (req && j->rc) {
        am_err_set(j->rc, "%s", j->err);
        am_api_send_rc(req, j->rc);
    } else if (req) {
        json_t *pod = json_pack("{s:s,s:s,s:s,s:s}", "id", j->p->id, "branch", j->p->branch,
                                "state", j->p->state, "runner", j->p->runner_id);
        am_http_send_json(
            req, 201,
            json_pack("{s:o,s:o}", "ticket", j->t ? ticket_json(j->t) : json_object(), "pod", pod));
    }
    if (j->t)
        protobuf_c_message_free_unpacked(&j->t->base, NULL);
    if (j->p)
        protobuf_c_message_free_unpacked(&j->p->base, NULL);
    json_decref(j->body);
    free(j);
}

int am_api_ticket_start(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    const char *repo = NULL, *agent = NULL, *runner = NULL, *base_ref = NULL, *network = NULL;
    json_t *command = NULL;
    json_error_t jerr;
    if (!body || json_unpack_ex(body, &jerr, 0, "{s:s,s?s,s?s,s?s,s?s,s?o}", "repo", &repo, "agent",
                                &agent, "runner", &runner, "base_ref", &base_ref, "network",
                                &network, "command", &command) != 0)
        return bad(req, body,
                   "expected {\"repo\", \"agent\"?, \"command\"?, \"runner\"?, \"base_ref\"?, "
                   "\"network\"?}");
    start_job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(body);
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    size_t argc = 0;
    if (command) {
        if (!json_is_array(command) || json_array_size(command) == 0 ||
            json_array_size(command) > LIST_MAX) {
            free(j);
            return bad(req, body, "command: a non-empty array of strings (at most 64)");
        }
        size_t i;
        json_t *v;
        json_array_foreach(command, i, v) {
            if (!json_is_string(v)) {
                free(j);
                return bad(req, body, "command: a non-empty array of strings (at most 64)");
            }
            j->argv[argc++] = json_string_value(v);
        }
    }
    if (!argc && !(agent && *agent)) {
        free(j);
        return bad(req, body, "agent or command: say what runs in the pod");
    }
    j->h = h;
    j->body = body; /* owns every string spec points into; only the job touches it now */
    j->spec = (am_pod_spec){.runner_id = runner,
                            .repo = repo,
                            .base_ref = base_ref,
                            .argv = j->argv,
                            .argc = argc,
                            .network = network,
                            .agent = agent};
    snprintf(j->key, sizeof j->key, "%s", param[0]);
    j->who = who;
    am_http_peer(req, j->peer, sizeof j->peer);
    if (am_work_submit(h->app->io, req, &j->job, start_run, start_done) != 0) {
        json_decref(body);
        free(j);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        am_http_send_error(req, 503, "busy", "the appliance is busy: try again in a second");
    }
    return 0;
}
