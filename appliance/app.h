/*
 * appliance/app — the objects airmeshd's handlers share, owned by main.c.
 *
 * main.c creates each of them in start order (store → pki → audit → http) and closes them in
 * reverse. Handlers receive a pointer to this struct and never free what it holds. Every pointer
 * is safe to use from the http thread; store and audit are also safe from any thread.
 */
#ifndef AM_APPLIANCE_APP_H
#define AM_APPLIANCE_APP_H

#include "appliance/audit/audit.h"
#include "appliance/hub/hub.h"
#include "appliance/store/store.h"
#include "pki/pki.h"

#include "common/version.h"

/* Limits a pod gets when its create request leaves them out (config file pod_* keys). */
typedef struct {
    uint64_t memory_bytes, tmp_bytes, shm_bytes, workspace_bytes;
    uint32_t cpu_millis, pids;
} am_pod_defaults;

typedef struct am_app {
    const char *data_dir;  /* e.g. ./var/airmesh */
    am_store *store;
    am_audit *audit;
    am_ca *ca;
    am_hub *hub;             /* live state (connected runners) */
    struct am_rpc *rpc;      /* runner protocol server; NULL until started */
    struct am_work *work;    /* worker pool for slow jobs (argon2id); see appliance/work */
    struct am_work *io;      /* worker pool for store writes off the h2o thread (fsync) */
    const char *grpc_addr;   /* host:port runners dial, shown in enrollment commands */
    uint64_t session_ttl_ms;  /* absolute session lifetime */
    uint64_t session_idle_ms; /* idle timeout */
    am_pod_defaults pod_defaults;
} am_app;

#endif
