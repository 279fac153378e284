/*
 * appliance/rpc internals shared by rpc.c (server, Enroll, the rpc thread) and stream.c (the
 * Connect stream). Not a public header.
 */
#ifndef AM_APPLIANCE_RPC_INTERNAL_H
#define AM_APPLIANCE_RPC_INTERNAL_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <pthread.h>

#include "appliance/ops/ops.h"
#include "appliance/rpc/rpc.h"
#include "common/grpc_pb.h" /* am_grpc_pack / am_grpc_unpack */

#define METHOD_ENROLL "/airmesh.v1.EnrollService/Enroll"
#define METHOD_CONNECT "/airmesh.v1.RunnerService/Connect"

typedef enum {
    T_NEW_ENROLL,
    T_ENROLL_DONE,
    T_NEW_CONNECT,
    T_C_START,
    T_C_RECV,
    T_C_SEND,
    T_C_CLOSE,
    T_C_STATUS,
    T_SHUTDOWN,
    T_NEW_UNKNOWN,
    T_UNKNOWN_DONE
} tag_kind;

typedef struct {
    tag_kind kind;
    void *obj;
} tag;

struct am_rpc {
    am_app *app;
    am_hub *hub;
    am_rpc_opts o;
    grpc_server *server;
    grpc_completion_queue *cq;
    void *m_enroll, *m_connect;
    pthread_t thread;
    int port;
    int stopping;
    int live_streams;
    tag t_shutdown;
};

/* Protobuf-c bytes in and out of gRPC byte buffers (unpack: NULL when malformed). */
/* Map entries (key/value) of a message into an am_labels view (bounded, oversized skipped). */
void am_rpc_labels_from(void **entries, size_t n, const char **keys, const char **vals, size_t cap,
                        am_labels *out);
void am_rpc_peer_addr(grpc_call *call, char *buf, size_t cap);

/* rpc.c */
void am_rpc_request_enroll(am_rpc *r);

/* stream.c: the Connect stream, driven by the rpc thread */
void am_rpc_request_connect(am_rpc *r);
void am_rpc_stream_started(am_rpc *r, void *stream, int success);
void am_rpc_stream_event(void *stream, tag_kind kind, int success);

#endif
