/*
 * runner/session/client — gRPC channel and message helpers shared by enroll.c and run.c
 * (private to runner/session).
 */
#ifndef AM_RUNNER_CLIENT_H
#define AM_RUNNER_CLIENT_H

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

#include "common/grpc_pb.h" /* am_grpc_pack / am_grpc_unpack */

#define AM_METHOD_ENROLL "/airmesh.v1.EnrollService/Enroll"
#define AM_METHOD_CONNECT "/airmesh.v1.RunnerService/Connect"

/* A TLS channel to host:port trusting only ca_pem; with key/chain it presents a client cert. */
grpc_channel *am_client_channel(const char *target, const char *ca_pem, const char *key_pem,
                                const char *chain_pem);
/* Status details as a NUL-terminated string into buf. */
const char *am_client_details(grpc_slice details, char *buf, size_t cap);

#endif
