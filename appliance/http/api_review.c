/*
 * appliance/http/api_review.c — review of a pod's branch over REST (issue 13):
 *   GET  /api/v1/pods/{id}/review[?max_bytes=N]   {pod, branch, base_ref, base_commit,
 *        head_commit, commits: [{id, author, time_ms, summary}], diff, files, additions,
 *        deletions, truncated, review_state, pushed_to, pushed_commit, state}
 *   POST /api/v1/pods/{id}/review/comments  {comments: [{file, line, side?, text}], summary?}
 *        → {delivered: "prompt" | "new_pod", pod, new_pod?: {pod record}}
 *   POST /api/v1/pods/{id}/review/approve   → {review_state, pushed_to, pushed_commit, pod}
 * Each of them waits for the pod's runner (appliance/ops/review.c asks it over the stream), so
 * the work runs on the review worker pool (app->review) and answers from there: the h2o thread
 * parses, reads the terminal's input-control holder (comments), submits and returns.
 * The diff is the runner's bytes; JSON carries text, so bytes that are not UTF-8 (a binary-ish
 * line) become U+FFFD.
 * Threads: the http thread, except the *_run functions (a worker).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/http/internal.h"
#include "appliance/http/ws.h"
#include "appliance/ops/ops.h"
#include "appliance/work/work.h"
#include "common/display_name.h"
#include "common/err.h"

enum { K_GET, K_COMMENTS, K_APPROVE };

typedef struct {
    am_work_job job; /* first */
    am_http_handler *h;
    int kind;
    am_principal who;
    char peer[64], pod[64], holder[130];
    uint32_t max_bytes;
    json_t *body; /* comments: owns the strings c points into */
    am_review_comment *c;
    size_t n;
    const char *summary;
    /* results */
    int rc;
    char err[700];
    Airmesh__V1__ReviewResult *r;
    Airmesh__V1__Pod *p, *np;
} review_job;

static void job_free(review_job *j) {
    if (j->r)
        protobuf_c_message_free_unpacked(&j->r->base, NULL);
    if (j->p)
        protobuf_c_message_free_unpacked(&j->p->base, NULL);
    if (j->np)
        protobuf_c_message_free_unpacked(&j->np->base, NULL);
    json_decref(j->body);
    free(j->c);
    free(j);
}

/* s[0..len) as a JSON string, each byte that is not part of valid UTF-8 replaced by U+FFFD. */
static json_t *utf8_string(const char *s, size_t len) {
    size_t bad;
    if (am_utf8_check(s, len, &bad) == 0)
        return json_stringn(s, len);
    char *o = malloc(len * 3 + 1);
    if (!o)
        return json_string("");
    size_t u = 0, i = 0;
    while (i < len) {
        if (am_utf8_check(s + i, len - i, &bad) == 0)
            bad = len - i;
        memcpy(o + u, s + i, bad);
        u += bad;
        i += bad;
        if (i < len) {
            memcpy(o + u, "\xEF\xBF\xBD", 3);
            u += 3;
            i++;
        }
    }
    json_t *j = json_stringn(o, u);
    free(o);
    return j ? j : json_string("");
}

static json_t *review_json(const Airmesh__V1__ReviewResult *r, const Airmesh__V1__Pod *p) {
    json_t *commits = json_array();
    for (size_t i = 0; i < r->n_commits; i++) {
        const Airmesh__V1__ReviewCommit *c = r->commits[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(c->id));
        json_object_set_new(o, "author", utf8_string(c->author, strlen(c->author)));
        json_object_set_new(o, "time_ms", json_integer((json_int_t)c->time_ms));
        json_object_set_new(o, "summary", utf8_string(c->summary, strlen(c->summary)));
        json_array_append_new(commits, o);
    }
    json_t *o =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:b,s:s,s:s,s:s}", "pod", p->id,
                  "state", p->state, "branch", p->branch, "base_ref", p->base_ref, "base_commit",
                  r->base_commit, "head_commit", r->head_commit, "commits", commits, "files",
                  (json_int_t)r->files, "additions", (json_int_t)r->additions, "deletions",
                  (json_int_t)r->deletions, "truncated", r->truncated, "review_state",
                  p->review_state, "pushed_to", p->pushed_to, "pushed_commit", p->pushed_commit);
    if (o)
        json_object_set_new(o, "diff", utf8_string((const char *)r->diff.data, r->diff.len));
    return o;
}

static void review_run(am_work_job *job) {
    review_job *j = (review_job *)job;
    am_ops *o = j->h->app->ops;
    switch (j->kind) {
    case K_GET:
        j->rc = am_ops_review_get(o, &j->who, j->pod, j->max_bytes, &j->r, &j->p);
        break;
    case K_COMMENTS:
        j->rc = am_ops_review_comment(o, &j->who, j->peer, j->pod, j->holder[0] ? j->holder : NULL,
                                      j->c, j->n, j->summary, &j->np);
        break;
    default:
        j->rc = am_ops_review_approve(o, &j->who, j->peer, j->pod, &j->p);
        break;
    }
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last());
}

static void review_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    review_job *j = (review_job *)job;
    if (!req) {
        job_free(j);
        return;
    }
    if (cancelled) {
        am_http_send_error(req, 503, "busy", "the appliance is shutting down: try again");
    } else if (j->rc) {
        am_err_set(-j->rc, "%s", j->err);
        am_api_send_rc(req, j->rc);
    } else if (j->kind == K_GET) {
        am_http_send_json(req, 200, review_json(j->r, j->p));
    } else if (j->kind == K_COMMENTS) {
        json_t *d = json_pack("{s:s,s:s,s:I}", "delivered", j->np ? "new_pod" : "prompt", "pod",
                              j->pod, "count", (json_int_t)j->n);
        if (j->np)
            json_object_set_new(d, "new_pod", am_api_pod_json(j->np));
        am_http_send_json(req, 200, d);
    } else {
        json_t *d =
            json_pack("{s:s,s:s,s:s,s:s}", "pod", j->p->id, "review_state", j->p->review_state,
                      "pushed_to", j->p->pushed_to, "pushed_commit", j->p->pushed_commit);
        json_object_set_new(d, "read_only", json_boolean(!strcmp(j->p->review_state, "ready")));
        am_http_send_json(req, 200, d);
    }
    job_free(j);
}

static int submit(am_http_handler *h, h2o_req_t *req, review_job *j) {
    am_work *pool = h->app->review ? h->app->review : h->app->models;
    j->h = h;
    if (am_work_submit(pool, req, &j->job, review_run, review_done) != 0) {
        job_free(j);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("2"));
        am_http_send_error(req, 503, "busy", "too many reviews in progress: try again shortly");
    }
    return 0;
}

static review_job *job_new(h2o_req_t *req, const am_principal *who, const char *pod, int kind) {
    review_job *j = calloc(1, sizeof *j);
    if (!j) {
        am_http_send_error(req, 500, "internal", "out of memory");
        return NULL;
    }
    j->who = *who;
    j->kind = kind;
    snprintf(j->pod, sizeof j->pod, "%s", pod);
    am_http_peer(req, j->peer, sizeof j->peer);
    return j;
}

int am_api_review_get(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char mb[32] = "";
    unsigned long max = 0;
    int q = am_api_query_param(req, 0, "max_bytes", mb, sizeof mb);
    if (q != 0) {
        char *end = mb;
        max = q > 0 ? strtoul(mb, &end, 10) : 0;
        if (q < 0 || !mb[0] || *end || max == 0 || max > (3u << 20)) {
            am_http_send_error(req, 400, "bad_request", "max_bytes: 1 to 3145728");
            return 0;
        }
    }
    review_job *j = job_new(req, &who, param[0], K_GET);
    if (!j)
        return 0;
    j->max_bytes = (uint32_t)max;
    return submit(h, req, j);
}

static int bad(h2o_req_t *req, review_job *j, const char *msg) {
    job_free(j);
    am_http_send_error(req, 400, "bad_request", msg);
    return 0;
}

int am_api_review_comments(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    review_job *j = job_new(req, &who, param[0], K_COMMENTS);
    if (!j) {
        json_decref(body);
        return 0;
    }
    j->body = body;
    json_t *cs = json_object_get(body, "comments"), *sum = json_object_get(body, "summary");
    const char *want = "expected {\"comments\": [{\"file\", \"line\", \"side\"?, \"text\"}], "
                       "\"summary\"?}";
    if (!json_is_array(cs) || (sum && !json_is_string(sum)))
        return bad(req, j, want);
    size_t n = json_array_size(cs);
    if (n == 0 || n > AM_OPS_REVIEW_COMMENTS_MAX)
        return bad(req, j, "comments: 1 to 200 line comments");
    if (!(j->c = calloc(n, sizeof *j->c)))
        return bad(req, j, "out of memory");
    size_t i;
    json_t *v;
    json_array_foreach(cs, i, v) {
        json_t *f = json_object_get(v, "file"), *l = json_object_get(v, "line"),
               *s = json_object_get(v, "side"), *t = json_object_get(v, "text");
        if (!json_is_string(f) || !json_is_integer(l) || !json_is_string(t) ||
            (s && !json_is_string(s)) || json_integer_value(l) < 1 ||
            json_integer_value(l) > 100000000)
            return bad(req, j, want);
        j->c[i] = (am_review_comment){json_string_value(f), (uint32_t)json_integer_value(l),
                                      s ? json_string_value(s) : NULL, json_string_value(t)};
    }
    j->n = n;
    j->summary = sum ? json_string_value(sum) : NULL;
    /* Who holds the pod's input control right now (the prompt's rule, ops/prompt.c). */
    room *r = am_ws_room_find(param[0]);
    if (r && r->holder && strcmp(r->org, who.org_id) == 0)
        snprintf(j->holder, sizeof j->holder, "%s", r->holder->user);
    return submit(h, req, j);
}

int am_api_review_approve(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    review_job *j = job_new(req, &who, param[0], K_APPROVE);
    return j ? submit(h, req, j) : 0;
}
