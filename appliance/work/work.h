/*
 * appliance/work — a small bounded worker pool for anything too slow for the h2o thread
 * (argon2id hashing and verification, ...): the h2o handler hands a job to the pool and returns;
 * the job runs on a worker thread; its completion comes back to the h2o thread through an
 * h2o_multithread queue, where the handler answers the request.
 *
 * Bounded: at most `queue` jobs wait for a worker. am_work_submit on a full queue fails at once
 * with -AM_EFULL (the caller answers 503 with Retry-After); nothing ever blocks the h2o thread.
 * Workers run at a lower CPU priority (nice +`nice`), so a burst of hashing cannot starve the h2o
 * and rpc threads on a small machine.
 *
 * A request whose client goes away while its job is queued or running: the pool hangs a guard on
 * req->pool (h2o_mem_alloc_shared with a dispose hook). When h2o disposes the request (stream
 * reset, connection closed), the hook clears job->req. The job still runs to its end (its inputs
 * are its own copies); `done` is then called with req == NULL and must only free the job. So a
 * job never touches a freed request.
 *
 * Ownership: the caller allocates the job (its struct starts with an am_work_job) and copies
 * into it everything `run` needs; nothing in it may point into req->pool. After a successful
 * submit the pool holds the job until `done` has run; `done` frees it. A failed submit leaves the
 * job with the caller.
 * Threads: am_work_new/free from main (before/after the http thread runs); am_work_attach
 * and am_work_detach on the http thread only; am_work_submit on the http thread, or on any
 * thread with req NULL (the model gateway's metering: nothing to guard, `done` only frees); `run`
 * on a worker thread (it may use the store and the audit log, which are thread-safe, and must not
 * touch h2o or the request); `done` on the http thread.
 */
#ifndef AM_APPLIANCE_WORK_H
#define AM_APPLIANCE_WORK_H

#include <h2o.h>
#include <h2o/multithread.h>
#include <stddef.h>

typedef struct am_work am_work;
typedef struct am_work_job am_work_job;

typedef void (*am_work_run_fn)(am_work_job *job);
/* req: the request, or NULL when its client went away meanwhile. cancelled: the pool stopped
 * before the job could run (answer 503). `done` must free the job. */
typedef void (*am_work_done_fn)(am_work_job *job, h2o_req_t *req, int cancelled);

struct am_work_job {
    /* Private to the pool. */
    h2o_multithread_message_t _msg;
    am_work_job *_next;
    h2o_req_t *_req;
    struct am_work_guard *_guard;
    am_work_run_fn _run;
    am_work_done_fn _done;
    int _cancelled;
};

typedef struct {
    unsigned threads; /* worker threads (default 2) */
    unsigned queue;   /* jobs that may wait for a worker (default 64) */
    int nice;         /* worker nice increment (default 10; 0 keeps the caller's) */
} am_work_opts;

/* Start the workers. Errors: -AM_ENOMEM, -AM_EIO (thread creation). */
int am_work_new(const am_work_opts *o, am_work **out);
/* Deliver completions on loop (the http thread's). Before any submit. */
void am_work_attach(am_work *w, h2o_loop_t *loop);
/* Queue job for req. 0: queued (the pool owns job until done). -AM_EFULL: the queue is full;
 * -AM_ESTATE: the pool is not attached or is stopping. Either way the caller keeps job. */
int am_work_submit(am_work *w, h2o_req_t *req, am_work_job *job, am_work_run_fn run,
                   am_work_done_fn done);
/* Jobs submitted and not yet done (queued, running or waiting for delivery). */
size_t am_work_inflight(const am_work *w);
/* Stop the workers (the running jobs finish), cancel queued jobs and deliver every completion on
 * this thread; then stop delivering. */
void am_work_detach(am_work *w);
/* Join and free (after am_work_detach, or when it was never attached). */
void am_work_free(am_work *w);

#endif
