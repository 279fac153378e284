/*
 * appliance/gateway/usage.c — the usage parser: token counts exactly as the model server
 * reported them, from a JSON body or from each event of an SSE stream (see core.h for the
 * fields read). It sees the bytes the pod gets, in the pieces they arrive in; it never changes
 * them. An SSE event is parsed only when its data mentions "usage" (most chunks do not), a JSON
 * body once at the end. Bounded: a body or event larger than AM_GW_USAGE_MAX is not kept (its
 * usage is not read; the request is still answered).
 * Threads: an am_gw_usage belongs to one request (the gateway thread). Ownership: the buffers
 * are freed by am_gw_usage_free.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/gateway/core.h"

void am_gw_usage_init(am_gw_usage *u, int sse) {
    memset(u, 0, sizeof *u);
    u->sse = sse;
}

void am_gw_usage_free(am_gw_usage *u) {
    free(u->buf);
    free(u->line);
    u->buf = u->line = NULL;
    u->len = u->cap = u->llen = u->lcap = 0;
}

/* Append to a bounded growing buffer; 0, or -1 when it would pass AM_GW_USAGE_MAX. */
static int append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    if (*len + n + 1 > AM_GW_USAGE_MAX)
        return -1;
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n + 1)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p)
            return -1;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

/* A non-negative integer field of o, or -1. */
static json_int_t count(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_integer(v) && json_integer_value(v) >= 0 ? json_integer_value(v) : -1;
}

static int take(am_gw_usage *u, json_t *usage) {
    if (!json_is_object(usage))
        return 0;
    json_int_t in = count(usage, "input_tokens"), out = count(usage, "output_tokens");
    if (in < 0)
        in = count(usage, "prompt_tokens");
    if (out < 0)
        out = count(usage, "completion_tokens");
    if (in >= 0)
        u->tokens_in = (uint64_t)in;
    if (out >= 0)
        u->tokens_out = (uint64_t)out;
    if (in >= 0 || out >= 0)
        u->seen = 1;
    return in >= 0 || out >= 0;
}

int am_gw_usage_from_json(am_gw_usage *u, const char *text, size_t n) {
    json_t *d = json_loadb(text, n, 0, NULL);
    if (!json_is_object(d)) {
        json_decref(d);
        return 0;
    }
    int found = take(u, json_object_get(d, "usage"));
    json_t *m = json_object_get(d, "message"); /* Anthropic message_start */
    if (json_is_object(m))
        found |= take(u, json_object_get(m, "usage"));
    json_t *r = json_object_get(d, "response"); /* Responses API events */
    if (json_is_object(r))
        found |= take(u, json_object_get(r, "usage"));
    json_decref(d);
    return found;
}

/* One complete event: its data lines joined by '\n'. */
static void event_end(am_gw_usage *u) {
    if (!u->overflow && u->len && memmem(u->buf, u->len, "usage", 5))
        am_gw_usage_from_json(u, u->buf, u->len);
    u->len = 0;
    u->overflow = 0;
}

/* One SSE line (without its end of line). */
static void sse_line(am_gw_usage *u, const char *l, size_t n) {
    if (n == 0) {
        event_end(u);
        return;
    }
    if (n < 5 || memcmp(l, "data:", 5) != 0)
        return; /* event:, id:, retry:, comments */
    l += 5;
    n -= 5;
    if (n && *l == ' ') {
        l++;
        n--;
    }
    if (u->overflow)
        return;
    if ((u->len && append(&u->buf, &u->len, &u->cap, "\n", 1) != 0) ||
        append(&u->buf, &u->len, &u->cap, l, n) != 0)
        u->overflow = 1;
}

void am_gw_usage_feed(am_gw_usage *u, const char *data, size_t n) {
    if (!u->sse) {
        if (!u->overflow && append(&u->buf, &u->len, &u->cap, data, n) != 0)
            u->overflow = 1;
        return;
    }
    while (n) {
        const char *nl = memchr(data, '\n', n);
        size_t k = nl ? (size_t)(nl - data) : n;
        if (!u->line_overflow && append(&u->line, &u->llen, &u->lcap, data, k) != 0)
            u->line_overflow = 1;
        if (!nl)
            return;
        size_t ll = u->llen;
        if (ll && u->line[ll - 1] == '\r')
            ll--;
        if (u->line_overflow)
            u->overflow = 1; /* the event this line belongs to is not read */
        else
            sse_line(u, u->line ? u->line : "", ll);
        u->llen = 0;
        u->line_overflow = 0;
        data = nl + 1;
        n -= k + 1;
    }
}

void am_gw_usage_finish(am_gw_usage *u) {
    if (!u->sse) {
        if (!u->overflow && u->len)
            am_gw_usage_from_json(u, u->buf, u->len);
        u->len = 0;
        return;
    }
    if (u->llen && !u->line_overflow)
        sse_line(u, u->line, u->llen);
    u->llen = 0;
    event_end(u);
}
