/*
 * appliance/gateway/core.h — the model gateway's pure parts, shared by appliance/ops (policy and
 * metering) and the gateway thread (gateway.h): which API a request speaks, the error bodies in
 * each API's own format, which endpoint serves a model, the usage parser that reads token counts
 * out of responses (streamed or not), and the usage counters in the store.
 *
 * Usage counters (AM_DB_USAGE, ModelUsage) are keyed "org/<scope>", scope one of
 *   "day:<YYYY-MM-DD>"            the org per UTC day (the quota reads this one)
 *   "pod:<pod id>"                one pod, all time
 *   "user:<user id>:<YYYY-MM-DD>" the user who started the pod, per UTC day
 * (store ids cannot hold '/', so ':' separates the parts; store.proto's comment says so).
 *
 * Threads: every function may be called from any thread; an am_gw_usage belongs to one request.
 * Ownership: am_gw_error_body returns malloc'd text (free); am_gw_usage_free frees the parser's
 * buffer.
 */
#ifndef AM_APPLIANCE_GATEWAY_CORE_H
#define AM_APPLIANCE_GATEWAY_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/store/store.h"

typedef enum { AM_GW_OPENAI = 1, AM_GW_ANTHROPIC = 2 } am_gw_api;

const char *am_gw_api_name(am_gw_api api); /* "openai" | "anthropic" */
/* The API a pod's request path speaks: /v1/messages... is Anthropic's, any other /v1/ path
 * OpenAI's. 0 when the path is not under /v1/. */
am_gw_api am_gw_api_of_path(const char *path);

/* The body of an error answer in the API's own error format (malloc'd JSON text, NULL on
 * allocation failure). OpenAI: {"error":{"message","type","param":null,"code"}}; Anthropic:
 * {"type":"error","error":{"type","message"}}. The type/code follow the status (401 invalid key /
 * authentication_error, 403 permission, 404 model not found, 429 insufficient_quota /
 * rate_limit_error, 504 timeout, other 5xx server/api errors). */
char *am_gw_error_body(am_gw_api api, int status, const char *message);

/* 2 when ep is of api and lists model, 1 when it is of api and lists no models (it takes any),
 * 0 otherwise. */
int am_gw_endpoint_serves(const Airmesh__V1__ModelEndpoint *ep, const char *api, const char *model);
/* Upstream URL for a pod's path on ep (the BRIEF's convention): openai: ep->url + path without
 * its "/v1" (the URL includes /v1); anthropic: ep->url + path. Trailing '/' of the URL dropped.
 * -AM_EFULL when it does not fit. */
int am_gw_upstream_url(const Airmesh__V1__ModelEndpoint *ep, const char *path, char *out,
                       size_t cap);

/* ---- the usage parser ---- */

/* Token counts as the server reported them, read from the JSON body or from each SSE event:
 * a "usage" object at the top (chat, chat stream's final chunk, Anthropic message_delta and
 * non-stream bodies), under "message" (Anthropic message_start) or under "response" (Responses
 * API, e.g. response.completed). prompt_tokens/input_tokens set tokens_in, completion_tokens/
 * output_tokens set tokens_out; a later report replaces an earlier one (the APIs report
 * cumulative counts). */
typedef struct {
    int sse;   /* text/event-stream: parse event by event */
    char *buf; /* SSE: the current event's data; JSON: the body so far */
    size_t len, cap;
    char *line; /* SSE: the current line */
    size_t llen, lcap;
    int overflow; /* the body or an event outgrew the cap: its usage is not read */
    int line_overflow;
    uint64_t tokens_in, tokens_out;
    int seen; /* some usage was reported */
} am_gw_usage;

#define AM_GW_USAGE_MAX (16u << 20) /* largest body / event the parser keeps */

void am_gw_usage_init(am_gw_usage *u, int sse);
void am_gw_usage_feed(am_gw_usage *u, const char *data, size_t n);
/* End of the response: a JSON body is parsed now (an SSE stream's last event without its blank
 * line too). */
void am_gw_usage_finish(am_gw_usage *u);
void am_gw_usage_free(am_gw_usage *u);
/* Read usage from one JSON document's text (the rules above); 1 when some was found. */
int am_gw_usage_from_json(am_gw_usage *u, const char *text, size_t n);

/* ---- usage counters ---- */

typedef struct {
    uint64_t requests, tokens_in, tokens_out, errors, refused;
} am_gw_counts;

/* "YYYY-MM-DD" (UTC) of a time in ms. */
void am_gw_day(uint64_t ms, char out[11]);
/* Add d to the org's day counter, the pod's (pod non-empty) and the user's day counter (user
 * non-empty), inside t. */
int am_gw_meter_add(am_txn *t, const char *org, const char *day, const char *pod, const char *user,
                    const am_gw_counts *d, uint64_t now_ms);
/* The counter of one scope ("day:…", "pod:…", "user:…:…"); zeros when none. */
int am_gw_meter_get(am_store *s, const char *org, const char *scope, am_gw_counts *out);

#endif
