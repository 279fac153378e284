/*
 * appliance/gateway/selftest — the model endpoint self-test: what an admin sees after
 * `airmeshctl model add` / `model test` (README "Model endpoints").
 *
 * Against one ModelEndpoint (its real key, its ca_pem when set), in order:
 *   1. reachable + models listed: openai GET URL/models, anthropic GET URL/v1/models (a 404
 *      there is tolerated: not every Anthropic-compatible server lists models). Any HTTP answer
 *      means reachable; a transport failure (refused, DNS, TLS, timeout) ends the test with
 *      reachable false and the reason.
 *   2. per model (the configured ones, else the listed ones; at most AM_GW_SELFTEST_MODELS):
 *      a tiny completion (openai POST URL/chat/completions, anthropic POST URL/v1/messages with
 *      anthropic-version 2023-06-01), then a scripted tool-call round trip: one tool (get_time)
 *      and a user message asking to call it; tool_call is true only when the model answered
 *      with a well-formed call of get_time (arguments a JSON object) and, given the tool's
 *      result, answered with text. Each failure says which step and why.
 * The URL convention is the gateway's: an openai base includes /v1, an anthropic one does not.
 *
 * Safety: no redirects, http/https only, no proxy from the environment (the key must not go
 * anywhere but the endpoint), short timeouts (connect 3 s, each request 20 s, the whole test
 * AM_GW_SELFTEST_BUDGET_MS; checks beyond the budget are reported as skipped). Nothing is
 * logged; the key is never put in a result (ops scrubs it again before storing).
 *
 * Threads: any, blocking (ops calls it from a worker thread of appliance/work, never the h2o
 * thread). Each call has its own curl handle; libcurl's global init runs once.
 * Ownership: *out is built with one malloc per field; free it with
 * protobuf_c_message_free_unpacked(*out, NULL).
 */
#ifndef AM_APPLIANCE_GATEWAY_SELFTEST_H
#define AM_APPLIANCE_GATEWAY_SELFTEST_H

#include "airmesh/v1/store.pb-c.h"

#define AM_GW_SELFTEST_MODELS 8
#define AM_GW_SELFTEST_BUDGET_MS 45000

typedef struct {
    long connect_timeout_ms; /* 0 = 3000 */
    long request_timeout_ms; /* 0 = 20000 */
    long budget_ms;          /* 0 = AM_GW_SELFTEST_BUDGET_MS */
} am_gw_selftest_opts;

/* am_ops_model_test_fn: ctx is an am_gw_selftest_opts (NULL = defaults). Returns 0 with *out
 * set (a failed check is a result), or -AM_ENOMEM. */
int am_gw_selftest_run(void *ctx, const Airmesh__V1__ModelEndpoint *e,
                       Airmesh__V1__ModelSelfTest **out);

#endif
