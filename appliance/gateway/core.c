/*
 * appliance/gateway/core.c — which API a path speaks, the error bodies in each API's own format,
 * which endpoint serves a model and where a request goes upstream (see core.h). Pure functions.
 * Threads: any. Ownership: am_gw_error_body's text is the caller's.
 */
#include "appliance/gateway/core.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

const char *am_gw_api_name(am_gw_api api) {
    return api == AM_GW_ANTHROPIC ? "anthropic" : "openai";
}

am_gw_api am_gw_api_of_path(const char *path) {
    if (!path || strncmp(path, "/v1/", 4) != 0)
        return 0;
    if (strncmp(path, "/v1/messages", 12) == 0 &&
        (path[12] == '\0' || path[12] == '/' || path[12] == '?'))
        return AM_GW_ANTHROPIC;
    return AM_GW_OPENAI;
}

/* OpenAI's error type and code for a status. */
static void openai_kind(int status, const char **type, const char **code) {
    *type = status >= 500 ? "server_error" : "invalid_request_error";
    switch (status) {
    case 400:
        *code = "invalid_request_error";
        break;
    case 401:
        *code = "invalid_api_key";
        break;
    case 403:
        *code = "permission_denied";
        break;
    case 404:
        *code = "model_not_found";
        break;
    case 413:
        *code = "request_too_large";
        break;
    case 429:
        *type = "insufficient_quota";
        *code = "insufficient_quota";
        break;
    case 504:
        *code = "timeout";
        break;
    case 503:
        *code = "unavailable";
        break;
    default:
        *code = status >= 500 ? "upstream_error" : "invalid_request_error";
        break;
    }
}

static const char *anthropic_kind(int status) {
    switch (status) {
    case 400:
        return "invalid_request_error";
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 413:
        return "request_too_large";
    case 429:
        return "rate_limit_error";
    case 504:
        return "timeout_error";
    case 529:
        return "overloaded_error";
    default:
        return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

char *am_gw_error_body(am_gw_api api, int status, const char *message) {
    json_t *d;
    if (!message)
        message = "";
    if (api == AM_GW_ANTHROPIC) {
        d = json_pack("{s:s,s:{s:s,s:s}}", "type", "error", "error", "type", anthropic_kind(status),
                      "message", message);
    } else {
        const char *type, *code;
        openai_kind(status, &type, &code);
        d = json_pack("{s:{s:s,s:s,s:n,s:s}}", "error", "message", message, "type", type, "param",
                      "code", code);
    }
    char *s = d ? json_dumps(d, JSON_COMPACT) : NULL;
    json_decref(d);
    return s;
}

int am_gw_endpoint_serves(const Airmesh__V1__ModelEndpoint *ep, const char *api,
                          const char *model) {
    if (!ep || !ep->api || !api || strcmp(ep->api, api) != 0)
        return 0;
    if (ep->n_models == 0)
        return 1;
    for (size_t i = 0; model && i < ep->n_models; i++)
        if (ep->models[i] && strcmp(ep->models[i], model) == 0)
            return 2;
    return 0;
}

int am_gw_upstream_url(const Airmesh__V1__ModelEndpoint *ep, const char *path, char *out,
                       size_t cap) {
    const char *url = ep && ep->url ? ep->url : "";
    size_t ul = strlen(url);
    while (ul && url[ul - 1] == '/')
        ul--;
    const char *rest = path ? path : "";
    if (!(ep->api && strcmp(ep->api, "anthropic") == 0) && strncmp(rest, "/v1", 3) == 0 &&
        (rest[3] == '/' || rest[3] == '\0' || rest[3] == '?'))
        rest += 3;
    int n = snprintf(out, cap, "%.*s%s", (int)ul, url, rest);
    if (n < 0 || (size_t)n >= cap)
        return am_err_set(AM_EFULL, "gateway: upstream URL too long");
    return 0;
}
