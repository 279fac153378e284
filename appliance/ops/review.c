/*
 * appliance/ops/review.c — review of a pod's branch (issue 13): the diff (read), line comments
 * (a follow-up prompt, or a new pod on the branch), and approval (the runner pushes).
 *
 * The git work is the runner's (runner/worktree/review.c, in its mirror): ops sends a
 * ReviewRequest with a fresh request_id over the runner link and waits on a condition variable
 * for the ReviewResult that rpc hands to am_ops_review_result. Correlation: the waiter is found
 * by (ops, request_id) and must match the runner the request went to and the pod it named, so a
 * runner can only answer its own requests. Deadlines: AM_OPS_REVIEW_WAIT_MS (diff),
 * AM_OPS_REVIEW_PUSH_WAIT_MS (push: the runner may first fetch a running pod's branch back, up
 * to 120 s); a late answer finds no waiter and is dropped. The waiters are a process-wide list
 * (one mutex; entries live on the waiting threads' stacks), shared by every am_ops.
 *
 * Comments → ONE prompt, "Review of your branch B:\n- file:line: text\n…\n\nsummary", typed
 * through am_ops_pod_prompt (its rules and its pod.prompt record) when the pod runs, else the
 * initial prompt of a new pod made from the ended pod's record with continue_branch (the runner
 * starts it at the branch's tip in its mirror; base_ref stays the original base, so the new pod's
 * review shows the whole branch). Approve writes review_state/review_by/review_ms/pushed_to/
 * pushed_commit in one transaction with its audit record.
 *
 * Threads: any, but the calls that ask the runner block (worker threads only);
 * am_ops_review_result on the rpc thread (never blocks).
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/agents/catalog.h"
#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* ---- asking the runner ---- */

typedef struct waiter {
    struct waiter *next;
    am_ops *o;
    uint64_t id;
    char runner[129], pod[64];
    pthread_cond_t cv;
    Airmesh__V1__ReviewResult *res; /* set by am_ops_review_result (own copy) */
} waiter;

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static waiter *g_waiters;
static uint64_t g_next_id;
static uint64_t g_wait_ms; /* am_ops_review_set_wait_ms (tests); 0 = the defaults */

void am_ops_review_set_wait_ms(uint64_t ms) {
    g_wait_ms = ms;
}

static void unlink_waiter(waiter *w) {
    for (waiter **pp = &g_waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            return;
        }
}

static Airmesh__V1__ReviewResult *copy_result(const Airmesh__V1__ReviewResult *r) {
    size_t len = protobuf_c_message_get_packed_size(&r->base);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    protobuf_c_message_pack(&r->base, buf);
    Airmesh__V1__ReviewResult *c = (Airmesh__V1__ReviewResult *)protobuf_c_message_unpack(
        &airmesh__v1__review_result__descriptor, NULL, len, buf);
    free(buf);
    return c;
}

int am_ops_review_result(am_ops *o, const am_ops_peer *peer, const Airmesh__V1__ReviewResult *r) {
    int rc = am_err_set(AM_ENOTFOUND, "review: nobody waits for request %llu",
                        (unsigned long long)r->request_id);
    pthread_mutex_lock(&g_mu);
    for (waiter *w = g_waiters; w; w = w->next) {
        if (w->o != o || w->id != r->request_id)
            continue;
        if (strcmp(w->runner, peer->runner_id ? peer->runner_id : "") != 0 ||
            strcmp(w->pod, r->pod_id ? r->pod_id : "") != 0 || w->res)
            break; /* not this runner's request, or answered already */
        w->res = copy_result(r);
        if (w->res) {
            pthread_cond_signal(&w->cv);
            rc = 0;
        }
        break;
    }
    pthread_mutex_unlock(&g_mu);
    return rc;
}

/* Send a ReviewRequest for pod p and wait for its answer. 0 with *out (the runner's answer,
 * ok or not), or -AM_EUNAVAIL (offline, no answer in time). */
static int ask(am_ops *o, const Airmesh__V1__Pod *p, const char *kind, uint32_t max_bytes,
               uint64_t wait_ms, Airmesh__V1__ReviewResult **out) {
    *out = NULL;
    if (g_wait_ms)
        wait_ms = g_wait_ms;
    waiter w;
    memset(&w, 0, sizeof w);
    w.o = o;
    snprintf(w.runner, sizeof w.runner, "%s", p->runner_id);
    snprintf(w.pod, sizeof w.pod, "%s", p->id);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&g_mu);
    w.id = ++g_next_id;
    w.next = g_waiters;
    g_waiters = &w;
    pthread_mutex_unlock(&g_mu);

    Airmesh__V1__ReviewRequest rq = AIRMESH__V1__REVIEW_REQUEST__INIT;
    rq.request_id = w.id;
    rq.pod_id = p->id;
    rq.kind = (char *)kind;
    rq.repo = p->repo;
    rq.base_ref = p->base_ref;
    rq.branch = p->branch;
    rq.max_bytes = max_bytes;
    Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_REVIEW_REQUEST;
    m.review_request = &rq;
    int rc = ops_send(o, p->runner_id, &m);
    if (rc) {
        char why[300];
        snprintf(why, sizeof why, "%s", am_err_last());
        rc = am_err_set(AM_EUNAVAIL,
                        "runner %s is offline: the review of pod %s needs it (its mirror holds "
                        "the branch) (%s)",
                        p->runner_id, p->id, why);
    }
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    dl.tv_sec += (time_t)(wait_ms / 1000);
    dl.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g_mu);
    while (rc == 0 && !w.res)
        if (pthread_cond_timedwait(&w.cv, &g_mu, &dl) == ETIMEDOUT && !w.res)
            rc = am_err_set(AM_EUNAVAIL,
                            "runner %s did not answer the review request for pod %s within %.1f "
                            "s (busy or disconnected): try again",
                            p->runner_id, p->id, (double)wait_ms / 1000.0);
    unlink_waiter(&w);
    pthread_mutex_unlock(&g_mu);
    pthread_cond_destroy(&w.cv);
    if (rc == 0)
        *out = w.res;
    else if (w.res)
        protobuf_c_message_free_unpacked(&w.res->base, NULL);
    return rc;
}

/* ---- helpers ---- */

static int load_pod(am_ops *o, const am_principal *who, const char *id, Airmesh__V1__Pod **p) {
    *p = NULL;
    if (!id || am_pods_get(o->c.store, who->org_id, id, p) != 0)
        return am_err_set(AM_ENOTFOUND, "no such pod");
    return 0;
}

static int is_own(const am_principal *who, const Airmesh__V1__Pod *p) {
    const char *by = p->created_by ? p->created_by : "";
    return strcmp(strncmp(by, "user:", 5) == 0 ? by + 5 : by, who->user_id) == 0;
}

static void set_details(ops_act *a, json_t *d) {
    char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    snprintf(a->details, sizeof a->details, "%s",
             s && strlen(s) < sizeof a->details ? s : "{\"truncated\":true}");
    free(s);
}

/* ---- diff ---- */

int am_ops_review_get(am_ops *o, const am_principal *who, const char *pod_id, uint32_t max_bytes,
                      Airmesh__V1__ReviewResult **out, Airmesh__V1__Pod **pod) {
    *out = NULL;
    *pod = NULL;
    int rc = am_auth_can(who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    Airmesh__V1__Pod *p = NULL;
    if ((rc = load_pod(o, who, pod_id, &p)) != 0)
        return rc;
    if (max_bytes == 0)
        max_bytes = 1u << 20;
    if (max_bytes > (3u << 20))
        max_bytes = 3u << 20;
    if (!strcmp(p->state, "pending")) {
        rc = am_err_set(AM_ESTATE, "pod %s has not started: its branch does not exist yet", p->id);
        goto out;
    }
    Airmesh__V1__ReviewResult *r = NULL;
    if ((rc = ask(o, p, "diff", max_bytes, AM_OPS_REVIEW_WAIT_MS, &r)) != 0)
        goto out;
    if (!r->ok) {
        const char *why = r->error && *r->error ? r->error : "the runner could not diff the branch";
        rc = am_err_set(strstr(why, "not in this runner") || strstr(why, "no mirror") ||
                                strstr(why, "not found")
                            ? AM_ENOTFOUND
                            : AM_EIO,
                        "%s", why);
        protobuf_c_message_free_unpacked(&r->base, NULL);
        goto out;
    }
    *out = r;
    *pod = p;
    p = NULL;
out:
    if (p)
        protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

/* ---- comments ---- */

static int valid_comment(const am_review_comment *c, size_t i) {
    if (!c->file || !*c->file || strlen(c->file) > 1024)
        return am_err_set(AM_EINVAL, "comments[%zu].file: a path in the diff", i);
    for (const char *s = c->file; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return am_err_set(AM_EINVAL, "comments[%zu].file: no control characters", i);
    if (c->line < 1 || c->line > 100000000u)
        return am_err_set(AM_EINVAL, "comments[%zu].line: a line number from 1", i);
    if (c->side && *c->side && strcmp(c->side, "new") && strcmp(c->side, "old"))
        return am_err_set(AM_EINVAL, "comments[%zu].side: \"new\" or \"old\"", i);
    if (!c->text || !*c->text || strlen(c->text) > 8192)
        return am_err_set(AM_EINVAL, "comments[%zu].text: 1 to 8192 bytes", i);
    return 0;
}

/* The one prompt; malloc'd. */
static char *build_prompt(const Airmesh__V1__Pod *p, const am_review_comment *c, size_t n,
                          const char *summary) {
    size_t cap = 256 + strlen(p->branch) + (summary ? strlen(summary) : 0);
    for (size_t i = 0; i < n; i++)
        cap += strlen(c[i].file) + strlen(c[i].text) + 48;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t u = (size_t)snprintf(s, cap, "Review of your branch %s:\n", p->branch);
    for (size_t i = 0; i < n && u < cap; i++)
        u += (size_t)snprintf(s + u, cap - u, "- %s:%u%s: %s\n", c[i].file, c[i].line,
                              c[i].side && !strcmp(c[i].side, "old") ? " (old side)" : "",
                              c[i].text);
    if (summary && *summary && u < cap)
        u += (size_t)snprintf(s + u, cap - u, "\n%s\n", summary);
    if (u < cap)
        snprintf(s + u, cap - u, "\nPlease address these comments and commit the result.");
    return s;
}

typedef struct {
    const Airmesh__V1__Pod *old;
    char busy[AM_POD_ID_LEN + 1];
} busy_ctx;

static int find_busy(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    busy_ctx *c = ud;
    const Airmesh__V1__Pod *q = (const Airmesh__V1__Pod *)m;
    if (strcmp(q->id, c->old->id) && !strcmp(q->repo, c->old->repo) &&
        !strcmp(q->branch, c->old->branch) && !am_pods_ended(q)) {
        snprintf(c->busy, sizeof c->busy, "%s", q->id);
        return 1;
    }
    return 0;
}

/* A new pod like p (ended) that continues its branch, with prompt as its initial prompt. */
static int continue_pod(am_ops *o, const am_principal *who, const char *source,
                        const Airmesh__V1__Pod *p, const char *prompt, Airmesh__V1__Pod **out) {
    busy_ctx bc = {p, ""};
    int rc = am_ops_list(o, AM_DB_PODS, who->org_id, &airmesh__v1__pod__descriptor, find_busy, &bc);
    if (rc)
        return rc;
    if (bc.busy[0])
        return am_err_set(AM_ESTATE,
                          "pod %s is working on branch %s now: comment on it instead (or stop it)",
                          bc.busy, p->branch);
    const char **ek = calloc(p->n_env + 1, sizeof *ek), **ev = calloc(p->n_env + 1, sizeof *ev);
    if (!ek || !ev) {
        free(ek);
        free(ev);
        return am_err_set(AM_ENOMEM, "review: out of memory");
    }
    for (size_t i = 0; i < p->n_env; i++) {
        ek[i] = p->env[i]->key;
        ev[i] = p->env[i]->value;
    }
    int agent = p->agent && *p->agent;
    am_pod_spec s = {.runner_id = p->runner_id,
                     .repo = p->repo,
                     .base_ref = p->base_ref,
                     .branch = p->branch,
                     .continue_branch = 1,
                     .argv = agent ? NULL : (const char *const *)p->command,
                     .argc = agent ? 0 : p->n_command,
                     .env_keys = ek,
                     .env_values = ev,
                     .n_env = p->n_env,
                     .memory_bytes = p->memory_bytes,
                     .pids = p->pids,
                     .cpu_millis = p->cpu_millis,
                     .tmp_bytes = p->tmp_bytes,
                     .shm_bytes = p->shm_bytes,
                     .workspace_bytes = p->workspace_bytes,
                     .network = p->network,
                     .keep_worktree = p->keep_worktree,
                     .shared = p->shared,
                     .agent = agent ? p->agent : NULL,
                     .prompt = prompt};
    rc = am_ops_pod_create(o, who, source, &s, out);
    free(ek);
    free(ev);
    return rc;
}

int am_ops_review_comment(am_ops *o, const am_principal *who, const char *source,
                          const char *pod_id, const char *holder, const am_review_comment *c,
                          size_t n, const char *summary, Airmesh__V1__Pod **new_pod) {
    *new_pod = NULL;
    Airmesh__V1__Pod *p = NULL;
    char *prompt = NULL;
    int rc = load_pod(o, who, pod_id, &p);
    if (rc)
        return rc;
    char target[48];
    snprintf(target, sizeof target, "pod:%.32s", p->id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.review.comment", target, source);
    ops_act_details(&a, "{\"count\":%zu}", n);
    if ((rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL)) != 0)
        goto out;
    if (n == 0 || n > AM_OPS_REVIEW_COMMENTS_MAX) {
        rc = am_err_set(AM_EINVAL, "comments: 1 to %d line comments", AM_OPS_REVIEW_COMMENTS_MAX);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = valid_comment(&c[i], i)) != 0)
            goto out;
    if (summary && strlen(summary) > 16384) {
        rc = am_err_set(AM_EINVAL, "summary: at most 16384 bytes");
        goto out;
    }
    if (!(prompt = build_prompt(p, c, n, summary))) {
        rc = am_err_set(AM_ENOMEM, "review: out of memory");
        goto out;
    }
    if (strlen(prompt) > AM_AGENT_PROMPT_MAX) {
        rc = am_err_set(AM_EINVAL, "comments: the prompt they make is over %u bytes",
                        AM_AGENT_PROMPT_MAX);
        goto out;
    }
    if (!am_pods_ended(p)) {
        size_t sent = 0; /* its own rules and pod.prompt record (prompt.c) */
        if ((rc = am_ops_pod_prompt(o, who, source, p->id, holder, prompt, strlen(prompt),
                                    &sent)) != 0)
            goto out;
        set_details(&a, json_pack("{s:I,s:s}", "count", (json_int_t)n, "delivered", "prompt"));
    } else {
        /* A new pod writes to this pod's branch: its starter, if shared any member, or an
         * admin (as taking control of it would need). */
        if (!is_own(who, p) && !p->shared && (rc = ops_check(&a, who, AM_CAN_POD_OTHERS, NULL)))
            goto out;
        if ((rc = continue_pod(o, who, source, p, prompt, new_pod)) != 0)
            goto out;
        set_details(&a, json_pack("{s:I,s:s,s:s,s:s}", "count", (json_int_t)n, "delivered",
                                  "new_pod", "new_pod", (*new_pod)->id, "branch", p->branch));
    }
    rc = ops_record(&a, "ok");
out:
    free(prompt);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

/* ---- approve ---- */

typedef struct {
    ops_act *a;
    const char *org, *id, *state, *by, *to, *commit;
} approve_ctx;

static int approve_txn(am_txn *t, void *ud) {
    approve_ctx *c = ud;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_PODS, c->org, c->id, &airmesh__v1__pod__descriptor, &m);
    if (rc)
        return rc;
    Airmesh__V1__Pod *p = (Airmesh__V1__Pod *)m;
    char *s0 = p->review_state, *s1 = p->review_by, *s2 = p->pushed_to, *s3 = p->pushed_commit;
    p->review_state = (char *)c->state;
    p->review_by = (char *)c->by;
    p->review_ms = am_now_ms();
    p->pushed_to = (char *)c->to;
    p->pushed_commit = (char *)c->commit;
    rc = am_txn_put(t, AM_DB_PODS, c->org, c->id, &p->base);
    p->review_state = s0; /* back to what the unpack allocated, for the free */
    p->review_by = s1;
    p->pushed_to = s2;
    p->pushed_commit = s3;
    protobuf_c_message_free_unpacked(m, NULL);
    if (rc == 0)
        rc = am_txn_hook_run(&c->a->hook, t);
    return rc;
}

int am_ops_review_approve(am_ops *o, const am_principal *who, const char *source,
                          const char *pod_id, Airmesh__V1__Pod **out) {
    *out = NULL;
    Airmesh__V1__Pod *p = NULL;
    Airmesh__V1__ReviewResult *r = NULL;
    int rc = load_pod(o, who, pod_id, &p);
    if (rc)
        return rc;
    char target[48], by[160];
    snprintf(target, sizeof target, "pod:%.32s", p->id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.review.approve", target, source);
    snprintf(by, sizeof by, "%s", a.actor); /* "user:<id>" (or "pod:<id>" through MCP) */
    if ((rc = ops_check(&a, who, AM_CAN_POD_WRITE, NULL)) != 0)
        goto out;
    if (!is_own(who, p) && (rc = ops_check(&a, who, AM_CAN_POD_OTHERS, NULL)) != 0)
        goto out;
    if (!strcmp(p->state, "pending")) {
        rc = am_err_set(AM_ESTATE, "pod %s has not started: nothing to approve", p->id);
        goto out;
    }
    if ((rc = ask(o, p, "push", 0, AM_OPS_REVIEW_PUSH_WAIT_MS, &r)) != 0 || !r->ok) {
        if (rc == 0)
            rc = am_err_set(AM_EIO, "%s",
                            r->error && *r->error ? r->error : "the runner could not push");
        set_details(&a, json_pack("{s:s,s:s}", "result", "error", "error", am_err_last()));
        char why[600];
        snprintf(why, sizeof why, "%s", am_err_last());
        ops_record(&a, "error");
        am_err_set(-rc, "%s", why);
        goto out;
    }
    const char *state = r->read_only ? "ready" : "approved";
    const char *to = r->pushed_to ? r->pushed_to : "";
    const char *commit = r->read_only ? "" : (r->head_commit ? r->head_commit : "");
    set_details(&a, json_pack("{s:s,s:s,s:s,s:s}", "result", r->read_only ? "read_only" : "pushed",
                              "pushed_to", r->read_only ? "" : to, "commit", commit, "review_state",
                              state));
    approve_ctx c = {&a, who->org_id, p->id, state, by, r->read_only ? "" : to, commit};
    rc = ops_act_done(&a, am_store_update(o->c.store, approve_txn, &c));
    if (rc == 0)
        rc = am_pods_get(o->c.store, who->org_id, p->id, out);
out:
    if (r)
        protobuf_c_message_free_unpacked(&r->base, NULL);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}
