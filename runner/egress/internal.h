/*
 * runner/egress/internal.h — what egress.c, gateway.c and proxy.c share. Not for use outside
 * runner/egress.
 *
 * Ownership: am_egress owns the list of requests waiting for GatewayResponse messages (each
 * request's queue of copied responses); a pod owns its listeners, its stop pipe and its list
 * of live connections; each connection thread owns its eg_conn and frees it when it ends.
 */
#ifndef AM_RUNNER_EGRESS_INTERNAL_H
#define AM_RUNNER_EGRESS_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "runner/egress/egress.h"
#include "runner/egress/http1.h"

/* A request waiting for the appliance's answer (registered by a gateway connection). */
typedef struct eg_resp {
    struct eg_resp *next;
    Airmesh__V1__GatewayResponse *msg; /* a deep copy */
} eg_resp;

typedef struct eg_req {
    struct eg_req *next;
    uint64_t id;
    const char *pod_id;
    int wake_fd;          /* eventfd: a response arrived, or the link went down */
    eg_resp *head, *tail; /* under am_egress.mu */
    size_t queued_bytes;
    int link_down, overflow;
} eg_req;

#define EG_QUEUE_MAX (64u << 20) /* response bytes queued for one slow pod client at most */

struct am_egress {
    am_egress_emit_fn emit;
    void *ud;
    pthread_mutex_t mu; /* guards reqs, next_id and every request's queue */
    eg_req *reqs;
    uint64_t next_id;
    uint32_t answer_timeout_ms;
};

enum { EG_GATEWAY = 1, EG_PROXY = 2 };

typedef struct eg_conn {
    struct eg_conn *next, *prev;
    am_egress_pod *pod;
    int fd; /* the pod's client (accepted in the pod's netns) */
    int kind;
} eg_conn;

struct am_egress_pod {
    am_egress *e;
    char pod_id[64];
    int gw_fd, proxy_fd;
    char **allow;
    size_t n_allow;
    int stop_rd, stop_wr; /* a pipe: closing stop_wr wakes every poller with POLLHUP */
    pthread_t gw_thread, proxy_thread;
    int have_gw_thread, have_proxy_thread;
    pthread_mutex_t mu; /* guards conns, n_conns, stopping */
    pthread_cond_t cv;  /* n_conns dropped */
    eg_conn *conns;
    size_t n_conns;
    int stopping;
};

#define EG_MAX_CONNS 128 /* per pod and listener kind together */

/* egress.c */
/* Wait until fd is readable (1), timeout_ms passed (0) or the pod stops (-1). */
int eg_wait(am_egress_pod *p, int fd, int timeout_ms);
/* Write all of buf (blocking; the pod's stop shuts the socket down). 0 or -1. */
int eg_write_all(int fd, const void *buf, size_t len);
/* Read the next request head into in[0..*have) (cap bytes of room): returns the head's
 * length once complete (parsed into r, on a copy kept in *head_copy, which the caller
 * frees), 0 when the client closed or went idle before a first byte, -1 with *status and *why
 * on a bad head or a timeout mid-head (status 408), -2 when the pod stops. */
int eg_read_head(am_egress_pod *p, int fd, char *in, size_t cap, size_t *have, am_h1_req *r,
                 char **head_copy, int *status, const char **why, int idle_ms);
/* Send an EgressEvent for this pod. */
void eg_event(am_egress_pod *p, const char *kind, const char *host, uint32_t port,
              const char *reason, uint64_t up, uint64_t down, uint64_t duration_ms);
/* Register / unregister a gateway request (wake_fd made here). */
eg_req *eg_req_new(am_egress *e, const char *pod_id);
void eg_req_free(am_egress *e, eg_req *r);
/* Take the next queued response (NULL if none); *link_down / *overflow report those. */
Airmesh__V1__GatewayResponse *eg_req_pop(am_egress *e, eg_req *r, int *link_down, int *overflow);

/* gateway.c, proxy.c: the connection threads' bodies. */
void eg_gateway_serve(eg_conn *c);
void eg_proxy_serve(eg_conn *c);

#endif
