/*
 * runner/session/client.c — channel creation (mTLS or server-auth TLS), keepalive and message
 * size limits, and protobuf-c ⇄ byte buffer helpers.
 */
#include "runner/session/client.h"

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc_security.h>
#include <stdio.h>
#include <string.h>

grpc_channel *am_client_channel(const char *target, const char *ca_pem, const char *key_pem,
                                const char *chain_pem) {
    grpc_ssl_pem_key_cert_pair pair = {key_pem, chain_pem};
    grpc_channel_credentials *creds =
        grpc_ssl_credentials_create(ca_pem, key_pem ? &pair : NULL, NULL, NULL);
    grpc_arg args[4];
    args[0] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                         .value.integer = 4 << 20};
    args[1] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIME_MS, .value.integer = 10000};
    args[2] = (grpc_arg){
        .type = GRPC_ARG_INTEGER, .key = GRPC_ARG_KEEPALIVE_TIMEOUT_MS, .value.integer = 5000};
    /* Each connection attempt is ours to pace (jittered backoff), not gRPC's. */
    args[3] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                         .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                         .value.integer = 200};
    grpc_channel_args cargs = {4, args};
    grpc_channel *ch = grpc_channel_create(target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    return ch;
}

const char *am_client_details(grpc_slice details, char *buf, size_t cap) {
    size_t n = GRPC_SLICE_LENGTH(details);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, GRPC_SLICE_START_PTR(details), n);
    buf[n] = '\0';
    return buf;
}
