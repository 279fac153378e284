/*
 * appliance/work/work.c — the bounded worker pool (see work.h for the contract).
 *
 * One mutex guards the FIFO of waiting jobs and the counters; workers sleep on a condition
 * variable. A finished job is posted to the http thread with h2o_multithread_send_message (the
 * job embeds the message), so the pool allocates nothing per job. The guard hung on req->pool
 * is the only link between a request and its job: both sides clear it, on the http thread
 * only, so there is no race between "client went away" and "job done".
 */
#include "appliance/work/work.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

struct am_work_guard {
    am_work_job *job;
};

struct am_work {
    am_work_opts o;
    pthread_t *threads;
    unsigned nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    am_work_job *head, *tail; /* waiting for a worker */
    unsigned waiting;
    int stopping, joined;
    /* http thread only */
    h2o_loop_t *loop;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    size_t inflight; /* atomic: jobs with req NULL may be submitted from any thread */
};

static void *worker(void *arg) {
    am_work *w = arg;
    if (w->o.nice > 0)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), w->o.nice);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stopping)
            break; /* jobs still waiting are cancelled by am_work_detach */
        am_work_job *job = w->head;
        w->head = job->_next;
        if (!w->head)
            w->tail = NULL;
        w->waiting--;
        pthread_mutex_unlock(&w->mu);
        job->_run(job);
        h2o_multithread_send_message(&w->receiver, &job->_msg);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int am_work_new(const am_work_opts *o, am_work **out) {
    am_work *w = calloc(1, sizeof *w);
    if (!w)
        return am_err_set(AM_ENOMEM, "work: out of memory");
    w->o = *o;
    if (!w->o.threads)
        w->o.threads = 2;
    if (!w->o.queue)
        w->o.queue = 64;
    w->threads = calloc(w->o.threads, sizeof *w->threads);
    if (!w->threads) {
        free(w);
        return am_err_set(AM_ENOMEM, "work: out of memory");
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    for (unsigned i = 0; i < w->o.threads; i++) {
        int e = pthread_create(&w->threads[i], NULL, worker, w);
        if (e) {
            am_work_free(w);
            return am_err_set(AM_EIO, "work: start worker thread %u: %s", i, strerror(e));
        }
        w->nthreads++;
    }
    *out = w;
    return 0;
}

static void guard_dispose(void *p) {
    struct am_work_guard *g = p;
    if (g->job) { /* the client went away first */
        g->job->_req = NULL;
        g->job->_guard = NULL;
        g->job = NULL;
    }
}

static void deliver(am_work *w, am_work_job *job) {
    __atomic_sub_fetch(&w->inflight, 1, __ATOMIC_SEQ_CST);
    h2o_req_t *req = job->_req;
    if (job->_guard) {
        job->_guard->job = NULL; /* the request outlives the job: its dispose is a no-op now */
        job->_guard = NULL;
    }
    job->_req = NULL;
    job->_done(job, req, job->_cancelled);
}

static void on_done(h2o_multithread_receiver_t *rcv, h2o_linklist_t *messages) {
    am_work *w = H2O_STRUCT_FROM_MEMBER(am_work, receiver, rcv);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *m =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&m->link);
        deliver(w, H2O_STRUCT_FROM_MEMBER(am_work_job, _msg, m));
    }
}

void am_work_attach(am_work *w, h2o_loop_t *loop) {
    w->loop = loop;
    w->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(w->queue, &w->receiver, on_done);
}

int am_work_submit(am_work *w, h2o_req_t *req, am_work_job *job, am_work_run_fn run,
                   am_work_done_fn done) {
    if (!w || !w->queue)
        return am_err_set(AM_ESTATE, "work: pool not running");
    memset(job, 0, sizeof *job);
    job->_run = run;
    job->_done = done;
    pthread_mutex_lock(&w->mu);
    if (w->stopping) {
        pthread_mutex_unlock(&w->mu);
        return am_err_set(AM_ESTATE, "work: pool stopping");
    }
    if (w->waiting >= w->o.queue) {
        pthread_mutex_unlock(&w->mu);
        return am_err_set(AM_EFULL, "work: queue full (%u jobs waiting)", w->o.queue);
    }
    /* The guard is set before the job can run; both are touched only on this thread. */
    if (req) {
        struct am_work_guard *g = h2o_mem_alloc_shared(&req->pool, sizeof *g, guard_dispose);
        g->job = job;
        job->_guard = g;
        job->_req = req;
    }
    if (w->tail)
        w->tail->_next = job;
    else
        w->head = job;
    w->tail = job;
    w->waiting++;
    __atomic_add_fetch(&w->inflight, 1, __ATOMIC_SEQ_CST);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

size_t am_work_inflight(const am_work *w) {
    return w ? __atomic_load_n(&w->inflight, __ATOMIC_SEQ_CST) : 0;
}

static void join_all(am_work *w) {
    if (w->joined)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    w->joined = 1;
}

void am_work_detach(am_work *w) {
    if (!w || !w->queue)
        return;
    join_all(w);
    /* Queued jobs never ran: cancel them here. */
    am_work_job *job = w->head;
    w->head = w->tail = NULL;
    w->waiting = 0;
    while (job) {
        am_work_job *next = job->_next;
        job->_cancelled = 1;
        deliver(w, job);
        job = next;
    }
    /* Completions already posted: let the loop deliver them (bounded). */
    uint64_t deadline = am_mono_ns() + 5000000000u;
    while (am_work_inflight(w) > 0 && am_mono_ns() < deadline)
        h2o_evloop_run(w->loop, 10);
    if (am_work_inflight(w) > 0)
        am_log_warn("work", "completions not delivered at stop", "jobs=%zu", am_work_inflight(w));
    else {
        h2o_multithread_unregister_receiver(w->queue, &w->receiver);
        h2o_multithread_destroy_queue(w->queue);
        free(w->queue); /* the evloop build of h2o 2.2.5's destroy does not free the struct */
    }
    w->queue = NULL;
}

void am_work_free(am_work *w) {
    if (!w)
        return;
    join_all(w);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->threads);
    free(w);
}
