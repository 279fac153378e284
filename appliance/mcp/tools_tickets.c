/*
 * appliance/mcp/tools_tickets.c — the ticket tools (tools.h): search_tickets, get_ticket,
 * create_ticket, update_ticket, post_comment. Thin wrappers over am_ops_ticket_* (ops decides:
 * the member role of the pod's starter, the status table, the field rules; and audits
 * ticket.create / ticket.update / ticket.comment with the pod as actor); here only the
 * arguments are read and the ticket rendered as JSON.
 *
 * "me" as an assignee (and as the search filter) means the calling pod ("pod:<its id>"), so an
 * agent can take a ticket without knowing its own id.
 * Threads: any worker (mcp.c). Memory: arguments are borrowed from args; tickets from ops are
 * freed here.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/mcp/tools.h"
#include "common/err.h"

#define SEARCH_MAX 200
#define LIST_MAX 64

static json_t *strv(char *const *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *ticket_json(const Airmesh__V1__Ticket *t, int full) {
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I}", "key", t->key, "title", t->title, "status",
                          t->status, "priority", t->priority, "assignee", t->assignee, "updated_ms",
                          (json_int_t)t->updated_ms);
    if (!o)
        return json_object();
    json_object_set_new(o, "labels", strv(t->labels, t->n_labels));
    if (!full)
        return o;
    json_object_set_new(o, "description", json_string(t->description));
    json_object_set_new(o, "parent", json_string(t->parent));
    json_object_set_new(o, "blocks", strv(t->blocks, t->n_blocks));
    json_object_set_new(o, "blocked_by", strv(t->blocked_by, t->n_blocked_by));
    json_object_set_new(o, "created_by", json_string(t->created_by));
    json_object_set_new(o, "created_ms", json_integer((json_int_t)t->created_ms));
    json_object_set_new(o, "branch", json_string(t->branch));
    json_object_set_new(o, "pods", strv(t->pod_ids, t->n_pod_ids));
    json_t *comments = json_array();
    for (size_t i = 0; i < t->n_comments; i++)
        json_array_append_new(comments, json_pack("{s:s,s:I,s:s}", "author", t->comments[i]->author,
                                                  "time_ms", (json_int_t)t->comments[i]->time_ms,
                                                  "body", t->comments[i]->body));
    json_object_set_new(o, "comments", comments);
    return o;
}

/* "me" → "pod:<caller>" into buf; anything else as given. */
static const char *who_is(am_mcp_call *c, const char *v, char *buf, size_t cap) {
    if (v && strcmp(v, "me") == 0) {
        snprintf(buf, cap, "pod:%s", c->who.pod_id);
        return buf;
    }
    return v;
}

/* A string array argument into v (borrowed), at most LIST_MAX. 1 if present. */
static int arg_strv(json_t *args, const char *name, const char **v, size_t *n) {
    json_t *a = json_object_get(args, name);
    *n = 0;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > LIST_MAX)
        return am_err_set(AM_EINVAL, "%s: an array of at most %d strings", name, LIST_MAX);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        if (!json_is_string(e))
            return am_err_set(AM_EINVAL, "%s: an array of strings", name);
        v[i] = json_string_value(e);
    }
    *n = json_array_size(a);
    return 1;
}

/* The fields create and update share (strings borrowed from args). */
static int read_spec(am_mcp_call *c, json_t *args, am_ticket_spec *s, const char **labels,
                     const char **blocks, char *me, size_t me_cap) {
    memset(s, 0, sizeof *s);
    int rc;
    if ((rc = am_mcp_arg_str(args, "title", 0, &s->title)) ||
        (rc = am_mcp_arg_str(args, "description", 0, &s->description)) ||
        (rc = am_mcp_arg_str(args, "status", 0, &s->status)) ||
        (rc = am_mcp_arg_str(args, "priority", 0, &s->priority)) ||
        (rc = am_mcp_arg_str(args, "assignee", 0, &s->assignee)) ||
        (rc = am_mcp_arg_str(args, "parent", 0, &s->parent)))
        return rc;
    s->assignee = who_is(c, s->assignee, me, me_cap);
    rc = arg_strv(args, "labels", labels, &s->n_labels);
    if (rc < 0)
        return rc;
    s->set_labels = rc;
    s->labels = labels;
    rc = arg_strv(args, "blocks", blocks, &s->n_blocks);
    if (rc < 0)
        return rc;
    s->set_blocks = rc;
    s->blocks = blocks;
    return 0;
}

static int answer(int rc, Airmesh__V1__Ticket *t, json_t **result) {
    if (rc == 0 && t)
        *result = json_pack("{s:o}", "ticket", ticket_json(t, 1));
    if (t)
        protobuf_c_message_free_unpacked(&t->base, NULL);
    return rc;
}

/* ---- the tools ---- */

typedef struct {
    json_t *rows;
    size_t total;
} search_ctx;

static int search_row(void *ud, const Airmesh__V1__Ticket *t) {
    search_ctx *s = ud;
    s->total++;
    json_array_append_new(s->rows, ticket_json(t, 0));
    return 0;
}

static int by_number(const void *a, const void *b) {
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "key"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "key"));
    const char *dx = strrchr(x, '-'), *dy = strrchr(y, '-');
    long nx = dx ? atol(dx + 1) : 0, ny = dy ? atol(dy + 1) : 0;
    return nx < ny ? -1 : nx > ny;
}

static int t_search(am_mcp_call *c, json_t *args, json_t **result) {
    const char *status, *assignee, *label, *text;
    json_int_t limit = 50;
    char me[160];
    int rc;
    if ((rc = am_mcp_arg_str(args, "status", 0, &status)) ||
        (rc = am_mcp_arg_str(args, "assignee", 0, &assignee)) ||
        (rc = am_mcp_arg_str(args, "label", 0, &label)) ||
        (rc = am_mcp_arg_str(args, "text", 0, &text)) ||
        (rc = am_mcp_arg_int(args, "limit", 0, 1, SEARCH_MAX, &limit)))
        return rc;
    am_ticket_filter f = {status, who_is(c, assignee, me, sizeof me), label, text};
    search_ctx s = {json_array(), 0};
    rc = am_ops_ticket_list(c->ops, &c->who, &f, search_row, &s);
    if (rc) {
        json_decref(s.rows);
        return rc;
    }
    size_t n = json_array_size(s.rows);
    json_t **v = calloc(n + 1, sizeof *v);
    json_t *out = json_array();
    if (v) {
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(s.rows, i);
        qsort(v, n, sizeof *v, by_number);
        for (size_t i = 0; i < n && i < (size_t)limit; i++)
            json_array_append(out, v[i]);
    }
    free(v);
    json_decref(s.rows);
    *result = json_pack("{s:o,s:I,s:b}", "tickets", out, "total", (json_int_t)s.total, "truncated",
                        s.total > (size_t)limit);
    return 0;
}

static int t_get(am_mcp_call *c, json_t *args, json_t **result) {
    const char *key;
    int rc = am_mcp_arg_str(args, "key", 1, &key);
    if (rc)
        return rc;
    Airmesh__V1__Ticket *t = NULL;
    rc = am_ops_ticket_get(c->ops, &c->who, key, &t);
    return answer(rc, t, result);
}

static int t_create(am_mcp_call *c, json_t *args, json_t **result) {
    am_ticket_spec s;
    const char *labels[LIST_MAX], *blocks[LIST_MAX];
    char me[160];
    int rc = read_spec(c, args, &s, labels, blocks, me, sizeof me);
    if (rc)
        return rc;
    if (!s.title)
        return am_err_set(AM_EINVAL, "title: required (a string)");
    Airmesh__V1__Ticket *t = NULL;
    rc = am_ops_ticket_create(c->ops, &c->who, c->source, &s, &t);
    return answer(rc, t, result);
}

static int t_update(am_mcp_call *c, json_t *args, json_t **result) {
    const char *key;
    am_ticket_spec s;
    const char *labels[LIST_MAX], *blocks[LIST_MAX];
    char me[160];
    int rc = am_mcp_arg_str(args, "key", 1, &key);
    if (rc || (rc = read_spec(c, args, &s, labels, blocks, me, sizeof me)))
        return rc;
    Airmesh__V1__Ticket *t = NULL;
    rc = am_ops_ticket_update(c->ops, &c->who, c->source, key, &s, &t);
    return answer(rc, t, result);
}

static int t_comment(am_mcp_call *c, json_t *args, json_t **result) {
    const char *key, *body;
    int rc;
    if ((rc = am_mcp_arg_str(args, "key", 1, &key)) ||
        (rc = am_mcp_arg_str(args, "body", 1, &body)))
        return rc;
    Airmesh__V1__Ticket *t = NULL;
    rc = am_ops_ticket_comment(c->ops, &c->who, c->source, key, body, &t);
    return answer(rc, t, result);
}

/* ---- schemas ---- */

#define S_KEY "\"key\":{\"type\":\"string\",\"description\":\"the ticket's key, e.g. DEFAULT-12\"}"
#define S_STATUS                                                                                   \
    "\"status\":{\"type\":\"string\",\"enum\":[\"backlog\",\"todo\",\"in_progress\","              \
    "\"in_review\",\"done\"],\"description\":\"moves are validated: forward one or more steps "    \
    "(done only from in_review), back todo->backlog, in_progress->todo, in_review->in_progress|"   \
    "todo; done->todo reopens\"}"
#define S_FIELDS                                                                                   \
    "\"title\":{\"type\":\"string\",\"maxLength\":200},"                                           \
    "\"description\":{\"type\":\"string\",\"description\":\"markdown\"},"                          \
    "\"priority\":{\"type\":\"string\",\"enum\":[\"none\",\"low\",\"medium\",\"high\","            \
    "\"urgent\"]},"                                                                                \
    "\"assignee\":{\"type\":\"string\",\"description\":\"\\\"user:<name>\\\", \\\"pod:<id>\\\", "  \
    "\\\"me\\\" (this pod) or \\\"\\\" (nobody)\"},"                                               \
    "\"labels\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":16},"             \
    "\"parent\":{\"type\":\"string\",\"description\":\"a ticket key, or \\\"\\\" for none\"}"

const am_mcp_tool am_mcp_tools_tickets[] = {
    {"search_tickets", "Search tickets",
     "List the organization's tickets, oldest first, filtered by status, assignee (\"me\" = "
     "this pod), label and text (in key, title and description). Returns summaries; use "
     "get_ticket for the description and comments.",
     "{\"type\":\"object\",\"properties\":{" S_STATUS ","
     "\"assignee\":{\"type\":\"string\"},\"label\":{\"type\":\"string\"},"
     "\"text\":{\"type\":\"string\"},"
     "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":200,\"default\":50}},"
     "\"additionalProperties\":false}",
     t_search, 1},
    {"get_ticket", "Get a ticket",
     "One ticket of the organization with its description, links and comments.",
     "{\"type\":\"object\",\"properties\":{" S_KEY "},\"required\":[\"key\"],"
     "\"additionalProperties\":false}",
     t_get, 1},
    {"create_ticket", "Create a ticket",
     "Create a ticket in the organization (status backlog unless given: backlog, todo or "
     "in_progress). Needs the member role of the user who started this pod. Returns the ticket "
     "with its key.",
     "{\"type\":\"object\",\"properties\":{" S_FIELDS "," S_STATUS "},"
     "\"required\":[\"title\"],\"additionalProperties\":false}",
     t_create, 0},
    {"update_ticket", "Update a ticket",
     "Change a ticket's status, title, description, priority, assignee, labels, parent or the "
     "tickets it blocks; only the fields given change. A status move the workflow does not allow "
     "is refused, naming the allowed ones.",
     "{\"type\":\"object\",\"properties\":{" S_KEY "," S_FIELDS "," S_STATUS ","
     "\"blocks\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"description\":\"replaces "
     "the keys this ticket blocks\"}},\"required\":[\"key\"],\"additionalProperties\":false}",
     t_update, 0},
    {"post_comment", "Comment on a ticket", "Add a markdown comment to a ticket, as this pod.",
     "{\"type\":\"object\",\"properties\":{" S_KEY ","
     "\"body\":{\"type\":\"string\",\"minLength\":1,\"description\":\"markdown\"}},"
     "\"required\":[\"key\",\"body\"],\"additionalProperties\":false}",
     t_comment, 0},
    {0},
};
