/*
 * runner/session/review.h — ReviewRequest from the appliance (runner/session/review.c): the diff
 * of a pod's branch or its push, each on a thread of its own (the stream's thread never waits
 * for git), answered with one ReviewResult through emit. Private to runner/session.
 */
#ifndef AM_RUNNER_SESSION_REVIEW_H
#define AM_RUNNER_SESSION_REVIEW_H

#include "airmesh/v1/runner.pb-c.h"
#include "runner/pod/pod.h"

#define AM_REVIEW_THREADS_MAX 4 /* more at once are answered "busy" at once */

/* Start the work for rq (copied); returns at once. pods and data_dir outlive the work (see
 * am_sess_review_drain). */
void am_sess_review_start(am_podmgr *pods, const char *data_dir, am_pod_emit_fn emit, void *ud,
                          const Airmesh__V1__ReviewRequest *rq);
/* Wait (at most timeout_ms) until no review work runs: before the pods are freed. */
void am_sess_review_drain(unsigned timeout_ms);

#endif
