/*
 * common/grpc_pb — protobuf-c messages in gRPC byte buffers, for the two sides of the runner
 * protocol (appliance/rpc and runner/session): there is no C code generator for gRPC services,
 * so each message is packed into / unpacked from a grpc_byte_buffer by hand, here, once.
 *
 * Ownership: am_grpc_pack returns a new buffer (grpc_byte_buffer_destroy); am_grpc_unpack returns
 * a message to free with protobuf_c_message_free_unpacked. Any thread.
 */
#ifndef AM_COMMON_GRPC_PB_H
#define AM_COMMON_GRPC_PB_H

#include <grpc/byte_buffer.h>
#include <protobuf-c/protobuf-c.h>

grpc_byte_buffer *am_grpc_pack(const ProtobufCMessage *m);
/* NULL when bb is NULL or does not hold a valid message of type d (untrusted input). */
ProtobufCMessage *am_grpc_unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d);

#endif
