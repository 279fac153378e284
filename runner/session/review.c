/*
 * runner/session/review.c — the runner's half of a review (issue 13): a ReviewRequest becomes a
 * detached thread that
 *   1. brings a RUNNING pod's branch back into the mirror first (am_podmgr_fetch_branch: what
 *      the agent committed so far, packed by the same sandboxed helper as at its end; an ended
 *      pod's branch is in the mirror already), so the review shows the pod's commits, never its
 *      uncommitted files;
 *   2. kind "diff": am_wt_review_diff (commits + patch against the merge base with base_ref);
 *      kind "push": am_wt_push (the branch to the repository's remote with the credentials this
 *      runner holds, --git-credentials; read_only when it holds none);
 *   3. answers with one ReviewResult (request_id echoed) through the session's emit, which
 *      drops it if the stream is down (the appliance's wait then times out).
 * At most AM_REVIEW_THREADS_MAX run at once; more are answered "busy" at once.
 * Threads: am_sess_review_start on the stream's thread; the work on its own thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/log.h"
#include "runner/session/review.h"
#include "runner/worktree/worktree.h"

static atomic_int g_running;

typedef struct {
    am_podmgr *pods;
    const char *data_dir;
    am_pod_emit_fn emit;
    void *ud;
    Airmesh__V1__ReviewRequest *rq; /* our own copy */
} job;

static void answer(job *j, Airmesh__V1__ReviewResult *rr) {
    rr->request_id = j->rq->request_id;
    rr->pod_id = j->rq->pod_id;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_REVIEW_RESULT;
    m.review_result = rr;
    if (j->emit(j->ud, &m) != 0)
        am_log_warn("review", "answer dropped (stream down)", "pod=%s request=%llu", j->rq->pod_id,
                    (unsigned long long)j->rq->request_id);
}

static void fail(job *j, const char *why) {
    Airmesh__V1__ReviewResult rr = AIRMESH__V1__REVIEW_RESULT__INIT;
    rr.ok = 0;
    rr.error = (char *)why;
    answer(j, &rr);
}

static void do_diff(job *j) {
    am_wt_review r;
    const Airmesh__V1__ReviewRequest *rq = j->rq;
    if (am_wt_review_diff(j->data_dir, rq->repo, rq->base_ref, rq->branch, rq->max_bytes, &r) !=
        0) {
        fail(j, am_err_last());
        return;
    }
    Airmesh__V1__ReviewResult rr = AIRMESH__V1__REVIEW_RESULT__INIT;
    Airmesh__V1__ReviewCommit *cs = calloc(r.n_commits ? r.n_commits : 1, sizeof *cs);
    Airmesh__V1__ReviewCommit **cp = calloc(r.n_commits ? r.n_commits : 1, sizeof *cp);
    if (!cs || !cp) {
        free(cs);
        free(cp);
        am_wt_review_free(&r);
        fail(j, "review: out of memory");
        return;
    }
    for (size_t i = 0; i < r.n_commits; i++) {
        airmesh__v1__review_commit__init(&cs[i]);
        cs[i].id = r.commits[i].id;
        cs[i].author = r.commits[i].author;
        cs[i].time_ms = r.commits[i].time_ms;
        cs[i].summary = r.commits[i].summary;
        cp[i] = &cs[i];
    }
    rr.ok = 1;
    rr.commits = cp;
    rr.n_commits = r.n_commits;
    rr.diff.data = (uint8_t *)r.diff;
    rr.diff.len = r.diff_len;
    rr.truncated = r.truncated || r.commits_truncated;
    rr.base_commit = r.base_commit;
    rr.head_commit = r.head_commit;
    rr.files = r.files;
    rr.additions = r.additions;
    rr.deletions = r.deletions;
    answer(j, &rr);
    free(cs);
    free(cp);
    am_wt_review_free(&r);
}

static void do_push(job *j) {
    char to[1024], commit[41];
    int ro = 0;
    const Airmesh__V1__ReviewRequest *rq = j->rq;
    if (am_wt_push(j->data_dir, rq->repo, rq->branch, to, sizeof to, commit, &ro) != 0) {
        fail(j, am_err_last());
        return;
    }
    Airmesh__V1__ReviewResult rr = AIRMESH__V1__REVIEW_RESULT__INIT;
    rr.ok = 1;
    rr.read_only = ro;
    rr.pushed_to = to;
    rr.head_commit = commit;
    am_log_info("review", ro ? "no credentials for the remote: not pushed" : "branch pushed",
                "pod=%s branch=%s remote=%s commit=%s", rq->pod_id, rq->branch, to, commit);
    answer(j, &rr);
}

static void *review_main(void *arg) {
    job *j = arg;
    int kind_push = strcmp(j->rq->kind, "push") == 0;
    if (!kind_push && strcmp(j->rq->kind, "diff") != 0) {
        fail(j, "review: unknown request kind");
    } else if (am_podmgr_fetch_branch(j->pods, j->rq->pod_id) < 0) {
        char why[600];
        snprintf(why, sizeof why, "review: bringing the running pod's branch back failed: %s",
                 am_err_last());
        fail(j, why);
    } else if (kind_push) {
        do_push(j);
    } else {
        do_diff(j);
    }
    protobuf_c_message_free_unpacked(&j->rq->base, NULL);
    free(j);
    atomic_fetch_sub(&g_running, 1);
    return NULL;
}

void am_sess_review_start(am_podmgr *pods, const char *data_dir, am_pod_emit_fn emit, void *ud,
                          const Airmesh__V1__ReviewRequest *rq) {
    job tmp = {pods, data_dir, emit, ud, (Airmesh__V1__ReviewRequest *)rq};
    if (atomic_fetch_add(&g_running, 1) >= AM_REVIEW_THREADS_MAX) {
        atomic_fetch_sub(&g_running, 1);
        fail(&tmp, "review: the runner is busy with other review requests; try again");
        return;
    }
    job *j = calloc(1, sizeof *j);
    size_t len = protobuf_c_message_get_packed_size(&rq->base);
    uint8_t *buf = malloc(len ? len : 1);
    if (j && buf) {
        protobuf_c_message_pack(&rq->base, buf);
        j->rq = (Airmesh__V1__ReviewRequest *)protobuf_c_message_unpack(
            &airmesh__v1__review_request__descriptor, NULL, len, buf);
    }
    free(buf);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (j && j->rq) {
        j->pods = pods;
        j->data_dir = data_dir;
        j->emit = emit;
        j->ud = ud;
        if (pthread_create(&t, &at, review_main, j) == 0) {
            pthread_attr_destroy(&at);
            return;
        }
    }
    pthread_attr_destroy(&at);
    if (j && j->rq)
        protobuf_c_message_free_unpacked(&j->rq->base, NULL);
    free(j);
    atomic_fetch_sub(&g_running, 1);
    fail(&tmp, "review: cannot start a thread");
}

void am_sess_review_drain(unsigned timeout_ms) {
    for (unsigned waited = 0; atomic_load(&g_running) > 0 && waited < timeout_ms; waited += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}
