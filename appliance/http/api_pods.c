/*
 * appliance/http/api_pods.c — REST endpoints for pods: create, list, show, stop, delete, and the
 * recording download: parse, call appliance/ops, render. Members and above may
 * create/stop/delete, viewers may read (appliance/auth/can.c). Pods of another org answer 404.
 * ops records the pod and hands it to its runner through the runner link; a pod whose runner
 * cannot be reached is marked failed (503). That create runs on the I/O worker pool
 * (appliance/work), not on the h2o thread: a store commit's fsync can take hundreds of ms on a
 * busy disk, which froze every terminal.
 * Threads: the http thread.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "appliance/work/work.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define MAX_ITEMS 256

static json_t *pod_json(const Airmesh__V1__Pod *p) {
    json_t *cmd = json_array(), *env = json_object();
    for (size_t i = 0; i < p->n_command; i++)
        json_array_append_new(cmd, json_string(p->command[i]));
    for (size_t i = 0; i < p->n_env; i++)
        json_object_set_new(env, p->env[i]->key, json_string(p->env[i]->value));
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:o,s:{s:I,s:i,s:i},s:s,s:b,s:s,s:s,s:s,s:s,s:I,s:I,s:I,"
        "s:s,s:b}",
        "id", p->id, "org", p->org_id, "runner", p->runner_id, "repo", p->repo, "base_ref",
        p->base_ref, "branch", p->branch, "command", cmd, "env", env, "limits", "memory",
        (json_int_t)p->memory_bytes, "pids", (int)p->pids, "cpu_millis", (int)p->cpu_millis,
        "network", p->network, "keep_worktree", p->keep_worktree, "state", p->state, "reason",
        p->reason, "limits_note", p->limits_note, "created_by", p->created_by, "created_ms",
        (json_int_t)p->created_ms, "started_ms", (json_int_t)p->started_ms, "ended_ms",
        (json_int_t)p->ended_ms, "commit", p->commit, "recording", p->recording);
    json_object_set_new(o, "shared", json_boolean(p->shared));
    json_object_set_new(o, "agent", json_string(p->agent ? p->agent : ""));
    json_object_set_new(o, "display_name", json_string(p->display_name ? p->display_name : ""));
    /* working | waiting | idle, "" unknown; what the agent does only while the pod runs */
    json_object_set_new(o, "agent_state", json_string(am_pods_ended(p) ? "" : p->agent_state));
    json_object_set_new(o, "agent_state_ms", json_integer((json_int_t)p->agent_state_ms));
    json_t *allow = json_array(); /* what its CONNECT proxy may reach (network "allow") */
    for (size_t i = 0; i < p->n_egress_allow; i++)
        json_array_append_new(allow, json_string(p->egress_allow[i]));
    json_object_set_new(o, "egress_allow", allow);
    json_t *lim = json_object_get(o, "limits");
    json_object_set_new(lim, "tmp", json_integer((json_int_t)p->tmp_bytes));
    json_object_set_new(lim, "shm", json_integer((json_int_t)p->shm_bytes));
    json_object_set_new(lim, "workspace", json_integer((json_int_t)p->workspace_bytes));
    if (strcmp(p->state, am_pod_state_name(AM_POD_EXITED)) == 0)
        json_object_set_new(o, "exit_code", json_integer(p->exit_code));
    json_object_set_new(o, "first_output_ms", json_integer((json_int_t)p->first_output_ms));
    /* review (issue 13; api_review.c) */
    json_object_set_new(o, "review_state", json_string(p->review_state ? p->review_state : ""));
    json_object_set_new(o, "pushed_to", json_string(p->pushed_to ? p->pushed_to : ""));
    json_object_set_new(o, "pushed_commit", json_string(p->pushed_commit ? p->pushed_commit : ""));
    json_object_set_new(o, "continue_branch", json_boolean(p->continue_branch));
    return o;
}

json_t *am_api_pod_json(const Airmesh__V1__Pod *p) {
    return pod_json(p);
}

static int parse_size(json_t *v, uint64_t *out) {
    if (!v) {
        *out = 0;
        return 0;
    }
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *out = (uint64_t)json_integer_value(v);
        return 0;
    }
    if (!json_is_string(v))
        return -1;
    char *end;
    const char *s = json_string_value(v);
    unsigned long long n = strtoull(s, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k')
        mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm')
        mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g')
        mul = 1ull << 30, end++;
    if (*end == 'i')
        end++;
    if (*end == 'B')
        end++;
    if (end == s || *end || n > (1ull << 40) / mul)
        return -1;
    *out = n * mul;
    return 0;
}

static int bad(h2o_req_t *req, json_t *body, const char *msg) {
    json_decref(body);
    am_http_send_error(req, 400, "bad_request", msg);
    return 0;
}

/* A pod create on the I/O pool (see am_api_pod_create). */
typedef struct {
    am_work_job job; /* first: the pool's part */
    am_http_handler *h;
    json_t *body;
    am_pod_spec spec;
    const char *argv[MAX_ITEMS], *ek[MAX_ITEMS], *ev[MAX_ITEMS], *lk[32], *lv[32];
    am_principal who;
    char peer[64];
    /* results */
    Airmesh__V1__Pod *pod;
    int rc;
    char err[256];
} create_job;

static void create_run(am_work_job *job) {
    create_job *j = (create_job *)job;
    j->rc = am_ops_pod_create(j->h->app->ops, &j->who, j->peer, &j->spec, &j->pod);
    if (j->rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last()); /* (the worker's thread-local) */
}

static void create_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    create_job *j = (create_job *)job;
    if (req && cancelled) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        am_http_send_error(req, 503, "busy", "the appliance is shutting down: try again");
    } else if (req && j->rc) {
        am_err_set(j->rc, "%s", j->err);
        am_api_send_rc(req, j->rc);
    } else if (req) {
        am_http_send_json(req, 201, pod_json(j->pod));
    }
    if (j->pod)
        protobuf_c_message_free_unpacked(&j->pod->base, NULL);
    json_decref(j->body);
    free(j);
}

int am_api_pod_create(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    const char *runner = NULL, *repo = NULL, *base_ref = NULL, *branch = NULL, *network = NULL;
    json_t *labels = NULL, *command = NULL, *env = NULL, *limits = NULL;
    int keep = 0, shared = 0;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, 0, "{s?s,s?o,s:s,s?s,s?s,s?o,s?o,s?o,s?s,s?b,s?b}", "runner",
                       &runner, "labels", &labels, "repo", &repo, "base_ref", &base_ref, "branch",
                       &branch, "command", &command, "env", &env, "limits", &limits, "network",
                       &network, "keep_worktree", &keep, "shared", &shared) != 0)
        return bad(req, body,
                   "expected {\"repo\": string, \"command\": [string, ...] (or \"agent\"), "
                   "\"agent\"?, \"prompt\"?, \"runner\"?, "
                   "\"labels\"?: {}, \"base_ref\"?, \"branch\"?, \"env\"?: {}, \"limits\"?: "
                   "{\"memory\", \"pids\", \"cpu\"}, \"network\"?: "
                   "\"none\"|\"models\"|\"allow\"|\"host\", "
                   "\"keep_worktree\"?: bool, \"shared\"?: bool, \"display_name\"?}");
    const char *display_name = NULL;
    if (am_api_display_name_arg(req, body, &display_name) != 0) {
        json_decref(body);
        return 0;
    }
    /* The agent catalog: a preset name and an initial prompt; the command is then optional. */
    json_t *agent = json_object_get(body, "agent"), *prompt = json_object_get(body, "prompt");
    if ((agent && !json_is_string(agent)) || (prompt && !json_is_string(prompt)))
        return bad(req, body, "agent, prompt: strings");
    if (!command && !(agent && json_string_length(agent)))
        return bad(req, body, "command: required unless an agent is given");
    if (command && (!json_is_array(command) || json_array_size(command) == 0 ||
                    json_array_size(command) > MAX_ITEMS))
        return bad(req, body, "command: a non-empty array of strings");
    if ((labels && (!json_is_object(labels) || json_object_size(labels) > 32)) ||
        (env && (!json_is_object(env) || json_object_size(env) > MAX_ITEMS)) ||
        (limits && !json_is_object(limits)))
        return bad(req, body, "labels/env must be objects of strings, limits an object");
    const char *argv[MAX_ITEMS], *ek[MAX_ITEMS], *ev[MAX_ITEMS], *lk[32], *lv[32];
    size_t i;
    json_t *v;
    json_array_foreach(command, i, v) {
        if (!json_is_string(v))
            return bad(req, body, "command: every element must be a string");
        argv[i] = json_string_value(v);
    }
    size_t ne = 0, nl = 0;
    const char *k;
    json_object_foreach(env, k, v) {
        if (!json_is_string(v))
            return bad(req, body, "env: values must be strings");
        ek[ne] = k;
        ev[ne++] = json_string_value(v);
    }
    json_object_foreach(labels, k, v) {
        if (!json_is_string(v))
            return bad(req, body, "labels: values must be strings");
        lk[nl] = k;
        lv[nl++] = json_string_value(v);
    }
    uint64_t memory = 0, tmp = 0, shm = 0, workspace = 0;
    json_t *pids = json_object_get(limits, "pids"), *cpu = json_object_get(limits, "cpu");
    if (parse_size(json_object_get(limits, "memory"), &memory) != 0 ||
        parse_size(json_object_get(limits, "tmp"), &tmp) != 0 ||
        parse_size(json_object_get(limits, "shm"), &shm) != 0 ||
        parse_size(json_object_get(limits, "workspace"), &workspace) != 0 ||
        (pids && (!json_is_integer(pids) || json_integer_value(pids) < 0)) ||
        (cpu && !json_is_number(cpu)))
        return bad(req, body,
                   "limits: memory, tmp, shm, workspace as bytes or \"512M\"/\"2G\", pids as a "
                   "count, cpu in cores");
    double cores = cpu ? json_number_value(cpu) : 0;
    if (cores < 0 || cores > 256)
        return bad(req, body, "limits.cpu: 0 to 256 cores");
    am_pod_spec spec = {.runner_id = runner,
                        .sel_keys = lk,
                        .sel_values = lv,
                        .n_sel = nl,
                        .repo = repo,
                        .base_ref = base_ref,
                        .branch = branch,
                        .argv = argv,
                        .argc = json_array_size(command),
                        .env_keys = ek,
                        .env_values = ev,
                        .n_env = ne,
                        .memory_bytes = memory,
                        .pids = pids ? (uint32_t)json_integer_value(pids) : 0,
                        .cpu_millis = (uint32_t)(cores * 1000),
                        .tmp_bytes = tmp,
                        .shm_bytes = shm,
                        .workspace_bytes = workspace,
                        .network = network,
                        .keep_worktree = keep,
                        .shared = shared,
                        .agent = json_string_value(agent),
                        .prompt = json_string_value(prompt),
                        .display_name = display_name};
    /* The store write (an fsync, up to hundreds of ms on a busy disk) and the hand-off to the
     * runner run on the I/O worker pool (am_ops_pod_create); the answer comes from create_done. */
    create_job *j = calloc(1, sizeof *j);
    if (!j) {
        json_decref(body);
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->h = h;
    j->body = body; /* owns every string spec points into; only the job touches it now */
    j->spec = spec;
    memcpy(j->argv, argv, sizeof argv);
    memcpy(j->ek, ek, sizeof ek);
    memcpy(j->ev, ev, sizeof ev);
    memcpy(j->lk, lk, sizeof lk);
    memcpy(j->lv, lv, sizeof lv);
    j->spec.argv = j->argv;
    j->spec.env_keys = j->ek;
    j->spec.env_values = j->ev;
    j->spec.sel_keys = j->lk;
    j->spec.sel_values = j->lv;
    j->who = who;
    am_http_peer(req, j->peer, sizeof j->peer);
    if (am_work_submit(h->app->io, req, &j->job, create_run, create_done) != 0) {
        json_decref(body);
        free(j);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        am_http_send_error(req, 503, "busy", "the appliance is busy: try again in a second");
    }
    return 0;
}

static json_t *pod_row(void *ud, const ProtobufCMessage *m) {
    (void)ud;
    return pod_json((const Airmesh__V1__Pod *)m);
}

int am_api_pod_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_api_send_rows(h, req, AM_DB_PODS, who.org_id, &airmesh__v1__pod__descriptor, "pods", pod_row,
                     NULL);
    return 0;
}

/* Authenticate and load the pod named in param[0]; sends 401/404 itself. */
static Airmesh__V1__Pod *load(am_http_handler *h, h2o_req_t *req, char **param, am_principal *who) {
    if (am_api_require_auth(h, req, who))
        return NULL;
    Airmesh__V1__Pod *p = NULL;
    if (am_ops_get(h->app->ops, AM_DB_PODS, who->org_id, param[0], &airmesh__v1__pod__descriptor,
                   (ProtobufCMessage **)&p) != 0) {
        am_http_send_error(req, 404, "not_found", "no such pod");
        return NULL;
    }
    return p;
}

int am_api_pod_show(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    Airmesh__V1__Pod *p = load(h, req, param, &who);
    if (!p)
        return 0;
    json_t *doc = pod_json(p);
    json_object_set_new(doc, "usage", am_api_pod_usage(h, who.org_id, p->id)); /* model tokens */
    am_http_send_json(req, 200, doc);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return 0;
}

int am_api_pod_stop(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[64];
    int rc = am_ops_pod_stop(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0]);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 202, json_pack("{s:b,s:s}", "ok", 1, "id", param[0]));
    return 0;
}

/* POST /api/v1/pods/{id}/share {"shared": bool}: its starter or an admin (issue 14). */
int am_api_pod_share(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    int shared = 0;
    json_error_t jerr;
    if (json_unpack_ex(body, &jerr, JSON_STRICT, "{s:b}", "shared", &shared) != 0)
        return bad(req, body, "expected {\"shared\": bool}");
    json_decref(body);
    char peer[64];
    int rc =
        am_ops_pod_share(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0], shared);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200,
                      json_pack("{s:b,s:s,s:b}", "ok", 1, "id", param[0], "shared", shared));
    return 0;
}

int am_api_pod_delete(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    char peer[64];
    int rc = am_ops_pod_delete(h->app->ops, &who, am_http_peer(req, peer, sizeof peer), param[0]);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, json_pack("{s:b}", "ok", 1));
    return 0;
}

int am_api_pod_recording(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    Airmesh__V1__Pod *p = load(h, req, param, &who);
    if (!p)
        return 0;
    int have = p->recording;
    protobuf_c_message_free_unpacked(&p->base, NULL);
    char path[PATH_MAX];
    am_ops_recording_path(h->app->ops, who.org_id, param[0], path, sizeof path);
    uint8_t *z = NULL;
    size_t zlen = 0;
    if (!have || am_read_file(path, 256u << 20, &z, &zlen) != 0) {
        am_http_send_error(req, 404, "no_recording",
                           "no recording yet: it is uploaded by the runner when the pod ends");
        return 0;
    }
    /* Decompress into the request pool (bounded: 1 GiB of terminal output at most). */
    ZSTD_DStream *ds = ZSTD_createDStream();
    size_t cap = zlen * 8 + 4096, len = 0;
    char *out = malloc(cap);
    ZSTD_inBuffer in = {z, zlen, 0};
    int err = !ds || !out;
    while (!err && in.pos < in.size) {
        if (cap - len < ZSTD_DStreamOutSize()) {
            if (cap > (1u << 30)) {
                err = 1;
                break;
            }
            char *n = realloc(out, cap * 2);
            if (!n) {
                err = 1;
                break;
            }
            out = n;
            cap *= 2;
        }
        ZSTD_outBuffer ob = {out + len, cap - len, 0};
        size_t r = ZSTD_decompressStream(ds, &ob, &in);
        len += ob.pos;
        if (ZSTD_isError(r) || (r != 0 && ob.pos == 0 && in.pos == in.size))
            err = 1;
    }
    ZSTD_freeDStream(ds);
    free(z);
    if (err) {
        free(out);
        am_http_send_error(req, 500, "corrupt_recording", "the stored recording is unreadable");
        return 0;
    }
    h2o_iovec_t body = h2o_strdup(&req->pool, out, len);
    free(out);
    char disp[200];
    snprintf(disp, sizeof disp, "attachment; filename=\"%s.cast\"", param[0]);
    h2o_iovec_t d = h2o_strdup(&req->pool, disp, strlen(disp));
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/x-asciicast"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL, d.base,
                   d.len);
    h2o_send_inline(req, body.base, body.len);
    return 0;
}

/* ---- an org's pod limit policy ---- */

static json_t *limits_obj(const am_pod_defaults *d) {
    json_t *o = json_object();
    if (d->memory_bytes)
        json_object_set_new(o, "memory", json_integer((json_int_t)d->memory_bytes));
    if (d->cpu_millis)
        json_object_set_new(o, "cpu", json_real(d->cpu_millis / 1000.0));
    if (d->pids)
        json_object_set_new(o, "pids", json_integer(d->pids));
    if (d->tmp_bytes)
        json_object_set_new(o, "tmp", json_integer((json_int_t)d->tmp_bytes));
    if (d->shm_bytes)
        json_object_set_new(o, "shm", json_integer((json_int_t)d->shm_bytes));
    if (d->workspace_bytes)
        json_object_set_new(o, "workspace", json_integer((json_int_t)d->workspace_bytes));
    return o;
}

static json_t *org_limits_json(const char *org, const am_org_limits *l) {
    return json_pack("{s:s,s:o,s:o}", "org", org, "defaults", limits_obj(&l->def), "max",
                     limits_obj(&l->max));
}

int am_api_org_limits_get(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    am_org_limits l;
    int rc = am_ops_org_limits_get(h->app->ops, &who, param[0], &l);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, org_limits_json(param[0], &l));
    return 0;
}

/* One limits object ({"memory", "cpu", "pids", "tmp", "shm", "workspace"}, each optional) into
 * d; a message naming the field on bad input. */
static int parse_limits(json_t *o, const char *name, am_pod_defaults *d, char *err, size_t cap) {
    memset(d, 0, sizeof *d);
    if (!o)
        return 0;
    if (!json_is_object(o)) {
        snprintf(err, cap, "%s: an object", name);
        return -1;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        if (strcmp(k, "memory") && strcmp(k, "cpu") && strcmp(k, "pids") && strcmp(k, "tmp") &&
            strcmp(k, "shm") && strcmp(k, "workspace")) {
            snprintf(err, cap, "%s.%.32s: unknown limit (memory, cpu, pids, tmp, shm, workspace)",
                     name, k);
            return -1;
        }
    }
    static const char *const sizes[] = {"memory", "tmp", "shm", "workspace"};
    uint64_t *dst[] = {&d->memory_bytes, &d->tmp_bytes, &d->shm_bytes, &d->workspace_bytes};
    for (size_t i = 0; i < 4; i++)
        if (parse_size(json_object_get(o, sizes[i]), dst[i]) != 0) {
            snprintf(err, cap, "%s.%s: bytes or a size like \"512M\" or \"2G\"", name, sizes[i]);
            return -1;
        }
    json_t *pids = json_object_get(o, "pids"), *cpu = json_object_get(o, "cpu");
    if (pids && (!json_is_integer(pids) || json_integer_value(pids) < 0 ||
                 json_integer_value(pids) > 65536)) {
        snprintf(err, cap, "%s.pids: a count, 16 to 65536", name);
        return -1;
    }
    d->pids = pids ? (uint32_t)json_integer_value(pids) : 0;
    double cores = cpu && json_is_number(cpu) ? json_number_value(cpu) : 0;
    if (cpu && (!json_is_number(cpu) || cores < 0 || cores > 256)) {
        snprintf(err, cap, "%s.cpu: 0 to 256 cores", name);
        return -1;
    }
    d->cpu_millis = (uint32_t)(cores * 1000 + 0.5);
    return 0;
}

int am_api_org_limits_put(am_http_handler *h, h2o_req_t *req, char **param) {
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    json_t *body = am_api_parse_body(req);
    if (!body)
        return 0;
    char err[200];
    am_org_limits l;
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v) {
        if (strcmp(k, "defaults") && strcmp(k, "max"))
            return bad(req, body, "expected {\"defaults\"?: {…}, \"max\"?: {…}}");
    }
    if (parse_limits(json_object_get(body, "defaults"), "defaults", &l.def, err, sizeof err) ||
        parse_limits(json_object_get(body, "max"), "max", &l.max, err, sizeof err))
        return bad(req, body, err);
    json_decref(body);
    char peer[130];
    int rc = am_ops_org_limits_set(h->app->ops, &who, am_http_peer(req, peer, sizeof peer),
                                   param[0], &l);
    if (rc)
        return am_api_send_rc(req, rc);
    am_http_send_json(req, 200, org_limits_json(param[0], &l));
    return 0;
}
