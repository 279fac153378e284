/*
 * runner/session — the runner's side of the protocol: enrollment and the live stream.
 *
 * Enrollment (am_sess_enroll): fetch the appliance's certificate chain with a plain TLS
 * handshake, find in it the CA whose SHA-256 matches the pinned fingerprint, verify the chain
 * against it, then call EnrollService.Enroll over gRPC trusting only that CA, with a CSR for a
 * P-256 key generated here (the key never leaves the host). Writes DIR/identity.pem (key +
 * certificate chain, mode 0600), DIR/ca.pem and DIR/runner.json.
 * Run (am_sess_run): connect with mTLS, send Hello, heartbeat, renew the certificate over the
 * stream at 2/3 of its lifetime, reconnect with jittered exponential backoff, and return a
 * distinct code when the appliance says this runner is revoked or unknown.
 * Threads: the caller's only (gRPC runs its own threads underneath). Call grpc_init() first.
 */
#ifndef AM_RUNNER_SESSION_H
#define AM_RUNNER_SESSION_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "common/version.h"
#define AM_RUNNER_VERSION AM_VERSION

typedef struct {
    const char *appliance;  /* host:port */
    const char *token;
    const char *ca_sha256;  /* 64 hex, colons allowed */
    const char *data_dir;
    const char *const *label_keys;
    const char *const *label_values;
    size_t n_labels;
} am_sess_enroll_opts;

/* 0 on success (runner id printed by the caller from *runner_id_out, >= 64 bytes). */
int am_sess_enroll(const am_sess_enroll_opts *o, char *runner_id_out, size_t cap);

typedef struct {
    const char *data_dir;
    uint32_t capacity;
    uint64_t renew_after_ms;    /* 0: at 2/3 of the certificate's lifetime */
    uint32_t max_backoff_ms;    /* default 30000 */
    const char *const *label_keys;
    const char *const *label_values;
    size_t n_labels;
} am_sess_run_opts;

enum { AM_SESS_STOPPED = 0, AM_SESS_REVOKED = 3, AM_SESS_FATAL = 1 };

/* Runs until *stop (→ AM_SESS_STOPPED), revocation (→ AM_SESS_REVOKED) or a local fatal error
 * such as a missing identity (→ AM_SESS_FATAL, message in am_err_last()). */
int am_sess_run(const am_sess_run_opts *o, volatile sig_atomic_t *stop);

/* Print what DIR holds: runner id, org, appliance, certificate serial and expiry. */
int am_sess_status(const char *data_dir);

#endif
