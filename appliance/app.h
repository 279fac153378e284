/*
 * appliance/app — the objects airmeshd's handlers share, owned by main.c.
 *
 * main.c creates each of them in start order (store → pki → audit → http → hub → ops → rpc)
 * and closes them in reverse. Transports use ops for every state change and every store read.
 * Handlers receive a pointer to this struct and never free what it holds. Every pointer is safe to
 * use from the http thread; store and audit are also safe from any thread.
 */
#ifndef AM_APPLIANCE_APP_H
#define AM_APPLIANCE_APP_H

#include <stdint.h>

#include "appliance/audit/audit.h"
#include "appliance/hub/hub.h"
#include "pki/pki.h"

#include "common/version.h"

typedef struct am_app {
    const char *data_dir;   /* e.g. ./var/airmesh */
    struct am_store *store; /* main.c and ops only: transports go through ops */
    am_audit *audit;
    am_ca *ca;
    am_hub *hub;              /* live state (connected runners) */
    struct am_rpc *rpc;       /* runner protocol server; NULL until started */
    struct am_ops *ops;       /* the domain layer: every state change goes through it */
    struct am_work *work;     /* worker pool for slow jobs (argon2id); see appliance/work */
    struct am_work *io;       /* worker pool for store writes off the h2o thread (fsync) */
    struct am_work *models;   /* worker pool for model endpoint self-tests (network) */
    struct am_gw *gw;         /* the model gateway's thread (appliance/gateway) */
    struct am_mcp *mcp;       /* the MCP server's workers (appliance/mcp) */
    const char *grpc_addr;    /* host:port runners dial, shown in enrollment commands */
    uint64_t session_ttl_ms;  /* absolute session lifetime */
    uint64_t session_idle_ms; /* idle timeout */
    uint64_t control_idle_ms; /* a terminal's idle input-control holder loses it */
} am_app;

#endif
