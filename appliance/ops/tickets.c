/*
 * appliance/ops/tickets.c — the org's tickets (issue 13): create, update (fields and a validated
 * status move), comment, the reads, "start a pod" for a ticket, and the ticket's move to
 * in_review when that pod ends. The single write path of the tickets table (AM_DB_TICKETS,
 * "org/<KEY>", Ticket).
 *
 * Why here: every rule of a ticket lives in one place — keys only grow per org (the next number
 * is taken inside the creating write transaction, so two creates never share one), status moves
 * are checked against one table (am_ticket_transition_ok), blocks/blocked_by are written together
 * in one transaction (so they stay symmetric) and a cycle is refused, an assignee must exist in
 * the org. Every change is one audit record appended inside its transaction.
 *
 * Memory: records are built as shallow copies of the stored one (their strings borrowed from it,
 * the request or local buffers) and packed by am_txn_put; only arrays made here are freed here.
 * Records out of these calls belong to the caller (protobuf_c_message_free_unpacked).
 * Threads: any (the store serialises writers).
 */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define KEY_MAX 160
#define TITLE_MAX 200
#define DESC_MAX (64 * 1024)
#define COMMENT_MAX (16 * 1024)
#define COMMENTS_MAX 500
#define LABELS_MAX 16
#define LABEL_MAX 32
#define BLOCKS_MAX 32
#define PODS_MAX 64

static const char *const k_status[] = {"backlog", "todo", "in_progress", "in_review", "done"};
enum { ST_BACKLOG, ST_TODO, ST_PROGRESS, ST_REVIEW, ST_DONE, ST__N };
static const char *const k_priority[] = {"none", "low", "medium", "high", "urgent"};

static int status_of(const char *s) {
    for (int i = 0; s && i < ST__N; i++)
        if (strcmp(s, k_status[i]) == 0)
            return i;
    return -1;
}

/* The one table (README "Tickets"): any forward step, except that done is reached only from
 * in_review; back: todo → backlog, in_progress → todo, in_review → in_progress | todo; reopen:
 * done → todo (who may is checked by the caller). */
static int move_ok(int f, int t) {
    if (f < 0 || t < 0 || f == t)
        return 0;
    if (t == ST_DONE)
        return f == ST_REVIEW;
    if (f == ST_DONE)
        return t == ST_TODO;
    if (t > f)
        return 1;
    return (f == ST_TODO && t == ST_BACKLOG) || (f == ST_PROGRESS && t == ST_TODO) ||
           (f == ST_REVIEW && (t == ST_PROGRESS || t == ST_TODO));
}

int am_ticket_transition_ok(const char *from, const char *to) {
    return move_ok(status_of(from), status_of(to));
}

static int bad_move(const char *from, const char *to) {
    char allowed[128] = "";
    int f = status_of(from);
    for (int t = 0; t < ST__N; t++)
        if (move_ok(f, t)) {
            size_t n = strlen(allowed);
            snprintf(allowed + n, sizeof allowed - n, "%s%s", n ? ", " : "", k_status[t]);
        }
    return am_err_set(AM_EINVAL, "status: %s → %s is not allowed (from %s: %s)", from, to, from,
                      allowed[0] ? allowed : "none");
}

/* ---- field rules ---- */

/* Printable text (UTF-8 allowed), no control characters but newline and tab when multiline. */
static int text_ok(const char *s, size_t max, int multiline) {
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(multiline && (c == '\n' || c == '\t' || c == '\r'))) || c == 0x7f)
            return 0;
    }
    return 1;
}

static int label_ok(const char *l) {
    size_t n = strlen(l);
    if (n == 0 || n > LABEL_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)l[i] <= 0x20 || (unsigned char)l[i] == 0x7f || l[i] == ',')
            return 0;
    return 1;
}

/* Canonical KEY of s into out ("default-12" → "DEFAULT-12"), -AM_ENOTFOUND when s cannot be one. */
static int canon_key(const char *s, char out[KEY_MAX]) {
    size_t n = s ? strlen(s) : 0;
    if (n < 3 || n >= KEY_MAX)
        return am_err_set(AM_ENOTFOUND, "no such ticket");
    const char *dash = strrchr(s, '-');
    if (!dash || dash == s || !dash[1])
        return am_err_set(AM_ENOTFOUND, "no such ticket");
    for (const char *p = dash + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return am_err_set(AM_ENOTFOUND, "no such ticket");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isalnum(c) || c == '-' || c == '_' || c == '.'))
            return am_err_set(AM_ENOTFOUND, "no such ticket");
        out[i] = (char)toupper(c);
    }
    out[n] = '\0';
    return 0;
}

static void key_prefix(const char *org, char *out, size_t cap) {
    size_t i = 0;
    for (; org[i] && i + 1 < cap; i++)
        out[i] = (char)toupper((unsigned char)org[i]);
    out[i] = '\0';
}

static int validate(const am_ticket_spec *s, int creating) {
    if (creating && (!s->title || !s->title[0]))
        return am_err_set(AM_EINVAL, "title: required");
    if (s->title && (!s->title[0] || !text_ok(s->title, TITLE_MAX, 0)))
        return am_err_set(AM_EINVAL, "title: 1-%d bytes, no control characters", TITLE_MAX);
    if (s->description && !text_ok(s->description, DESC_MAX, 1))
        return am_err_set(AM_EINVAL, "description: at most 64 KiB of text");
    if (s->status && status_of(s->status) < 0)
        return am_err_set(AM_EINVAL, "status: one of backlog, todo, in_progress, in_review, done");
    if (creating && s->status && status_of(s->status) > ST_PROGRESS)
        return am_err_set(AM_EINVAL, "status: a new ticket starts in backlog, todo or "
                                     "in_progress");
    if (s->priority) {
        int ok = 0;
        for (size_t i = 0; i < 5; i++)
            ok |= strcmp(s->priority, k_priority[i]) == 0;
        if (!ok)
            return am_err_set(AM_EINVAL, "priority: one of none, low, medium, high, urgent");
    }
    if (s->set_labels) {
        if (s->n_labels > LABELS_MAX)
            return am_err_set(AM_EINVAL, "labels: at most %d", LABELS_MAX);
        for (size_t i = 0; i < s->n_labels; i++) {
            if (!s->labels[i] || !label_ok(s->labels[i]))
                return am_err_set(AM_EINVAL,
                                  "labels: each 1-%d characters without spaces or "
                                  "commas",
                                  LABEL_MAX);
            for (size_t j = 0; j < i; j++)
                if (strcmp(s->labels[i], s->labels[j]) == 0)
                    return am_err_set(AM_EINVAL, "labels: \"%s\" is listed twice", s->labels[i]);
        }
    }
    if (s->set_blocks && s->n_blocks > BLOCKS_MAX)
        return am_err_set(AM_EINVAL, "blocks: at most %d tickets", BLOCKS_MAX);
    return 0;
}

/* ---- helpers inside a transaction ---- */

static int load(am_txn *t, const char *org, const char *key, Airmesh__V1__Ticket **out) {
    *out = NULL;
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(t, AM_DB_TICKETS, org, key, &airmesh__v1__ticket__descriptor, &m);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND, "no such ticket %s", key);
    if (rc)
        return rc;
    *out = (Airmesh__V1__Ticket *)m;
    return 0;
}

/* An assignee the org has: "" | "user:<id>" | "pod:<id>". */
static int assignee_ok(am_txn *t, const char *org, const char *a) {
    if (!a[0])
        return 0;
    am_db db;
    const char *id, *desc_name;
    const ProtobufCMessageDescriptor *d;
    if (strncmp(a, "user:", 5) == 0) {
        db = AM_DB_USERS;
        id = a + 5;
        d = &airmesh__v1__user__descriptor;
        desc_name = "user";
    } else if (strncmp(a, "pod:", 4) == 0) {
        db = AM_DB_PODS;
        id = a + 4;
        d = &airmesh__v1__pod__descriptor;
        desc_name = "pod";
    } else {
        return am_err_set(AM_EINVAL, "assignee: \"user:<name>\", \"pod:<id>\" or \"\" (none)");
    }
    ProtobufCMessage *m = NULL;
    int rc =
        *id && strlen(id) < AM_STORE_ID_MAX ? am_txn_get(t, db, org, id, d, &m) : -AM_ENOTFOUND;
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_EINVAL, "assignee: no %s %.64s in this organization", desc_name, id);
    return rc;
}

static int has(char *const *v, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

typedef struct {
    const char *self; /* the ticket whose blocks are being replaced */
    int depth;        /* tickets visited (the walk is bounded) */
} cycle_ctx;

/* 1 when `from` reaches c->self through blocks (then self blocks from → a cycle). */
static int reaches(am_txn *t, const char *org, const char *from, cycle_ctx *c) {
    if (strcmp(from, c->self) == 0)
        return 1;
    if (++c->depth > 1000) /* a bound on the walk (a store bigger than that is refused) */
        return 1;
    Airmesh__V1__Ticket *x = NULL;
    if (load(t, org, from, &x) != 0)
        return 0;
    int r = 0;
    for (size_t i = 0; i < x->n_blocks && !r; i++)
        r = reaches(t, org, x->blocks[i], c);
    protobuf_c_message_free_unpacked(&x->base, NULL);
    return r;
}

/* Add (add=1) or remove key from other's blocked_by, written in t. */
static int link_other(am_txn *t, const char *org, const char *other, const char *key, int add,
                      uint64_t now) {
    Airmesh__V1__Ticket *x = NULL;
    int rc = load(t, org, other, &x);
    if (rc)
        return add ? am_err_set(AM_EINVAL, "blocks: no ticket %s", other) : 0;
    char **v = calloc(x->n_blocked_by + 1, sizeof *v);
    if (!v) {
        protobuf_c_message_free_unpacked(&x->base, NULL);
        return am_err_set(AM_ENOMEM, "tickets: out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < x->n_blocked_by; i++)
        if (strcmp(x->blocked_by[i], key) != 0)
            v[n++] = x->blocked_by[i];
    if (add)
        v[n++] = (char *)key;
    Airmesh__V1__Ticket y = *x;
    y.blocked_by = v;
    y.n_blocked_by = n;
    y.updated_ms = now;
    rc = am_txn_put(t, AM_DB_TICKETS, org, other, &y.base);
    free(v);
    protobuf_c_message_free_unpacked(&x->base, NULL);
    return rc;
}

/* ---- audit details ---- */

static void set_details(ops_act *a, json_t *doc) {
    char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    if (s && strlen(s) < sizeof a->details)
        snprintf(a->details, sizeof a->details, "%s", s);
    else if (doc) { /* too long: the field names only */
        json_object_del(doc, "title");
        free(s);
        s = json_dumps(doc, JSON_COMPACT);
        snprintf(a->details, sizeof a->details, "%s",
                 s && strlen(s) < sizeof a->details ? s : "{}");
    }
    free(s);
    json_decref(doc);
}

static void ticket_target(char *buf, size_t cap, const char *key) {
    snprintf(buf, cap, "ticket:%.150s", key ? key : "");
}

static int copy_out(const Airmesh__V1__Ticket *tk, Airmesh__V1__Ticket **out) {
    if (!out)
        return 0;
    size_t n = protobuf_c_message_get_packed_size(&tk->base);
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return am_err_set(AM_ENOMEM, "tickets: out of memory");
    protobuf_c_message_pack(&tk->base, b);
    *out = airmesh__v1__ticket__unpack(NULL, n, b);
    free(b);
    return *out ? 0 : am_err_set(AM_ENOMEM, "tickets: out of memory");
}

/* ---- create and update: one transaction each ---- */

typedef struct {
    am_ops *o;
    const am_principal *who; /* NULL: a system change (pod start/end) */
    const char *org, *key;   /* key NULL: create */
    const am_ticket_spec *s;
    ops_act *a;
    char actor[160];
    /* start */
    const char *add_pod, *branch;
    int pod_ended; /* the added pod had ended already / the end hook */
    /* out */
    char made_key[KEY_MAX];
    Airmesh__V1__Ticket **out;
    int changed;
} write_ctx;

typedef struct {
    uint64_t max;
} num_ctx;

static int max_number(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    num_ctx *c = ud;
    const Airmesh__V1__Ticket *t = (const Airmesh__V1__Ticket *)m;
    if (t->number > c->max)
        c->max = t->number;
    return 0;
}

static int write_txn(am_txn *t, void *ud) {
    write_ctx *c = ud;
    const am_ticket_spec *s = c->s;
    uint64_t now = am_now_ms();
    Airmesh__V1__Ticket *old = NULL, blank = AIRMESH__V1__TICKET__INIT;
    char key[KEY_MAX], number_key[KEY_MAX], pkey[KEY_MAX] = ""; /* n may point into them */
    char *blocks = NULL, **bv = NULL, **pods = NULL;
    json_t *d = json_object(), *fields = json_array();
    int rc;
    c->changed = 0;
    if (c->key) {
        snprintf(key, sizeof key, "%s", c->key);
        if ((rc = load(t, c->org, key, &old)) != 0)
            goto out;
    } else {
        num_ctx nc = {0};
        if ((rc = am_txn_list(t, AM_DB_TICKETS, c->org, &airmesh__v1__ticket__descriptor,
                              max_number, &nc)) != 0)
            goto out;
        char prefix[AM_STORE_ID_MAX + 1];
        key_prefix(c->org, prefix, sizeof prefix);
        snprintf(number_key, sizeof number_key, "%s-%llu", prefix,
                 (unsigned long long)(nc.max + 1));
        snprintf(key, sizeof key, "%s", number_key);
        blank.key = key;
        blank.org_id = (char *)c->org;
        blank.number = nc.max + 1;
        blank.title = "";
        blank.description = "";
        blank.status = (char *)k_status[ST_BACKLOG];
        blank.priority = (char *)k_priority[0];
        blank.assignee = "";
        blank.parent = "";
        blank.created_by = c->actor;
        blank.created_ms = now;
        blank.branch = "";
    }
    const Airmesh__V1__Ticket *cur = old ? old : &blank;
    Airmesh__V1__Ticket n = *cur;
    snprintf(c->made_key, sizeof c->made_key, "%s", key);

#define FIELD(name, val)                                                                           \
    do {                                                                                           \
        if ((val) && strcmp((val), cur->name ? cur->name : "") != 0) {                             \
            n.name = (char *)(val);                                                                \
            json_array_append_new(fields, json_string(#name));                                     \
        }                                                                                          \
    } while (0)
    if (s) {
        FIELD(title, s->title);
        FIELD(description, s->description);
        FIELD(priority, s->priority);
        if (s->assignee && strcmp(s->assignee, cur->assignee) != 0) {
            if ((rc = assignee_ok(t, c->org, s->assignee)) != 0)
                goto out;
            FIELD(assignee, s->assignee);
        }
        if (s->parent && s->parent[0]) {
            if (canon_key(s->parent, pkey) != 0 || strcmp(pkey, key) == 0) {
                rc = am_err_set(AM_EINVAL, "parent: no ticket %.64s (nor the ticket itself)",
                                s->parent);
                goto out;
            }
            /* the parent must exist and must not descend from this ticket */
            char walk[KEY_MAX];
            snprintf(walk, sizeof walk, "%s", pkey);
            for (int depth = 0; walk[0]; depth++) {
                Airmesh__V1__Ticket *p = NULL;
                if (load(t, c->org, walk, &p) != 0) {
                    rc = am_err_set(AM_EINVAL, "parent: no ticket %s", walk);
                    goto out;
                }
                snprintf(walk, sizeof walk, "%s", p->parent);
                protobuf_c_message_free_unpacked(&p->base, NULL);
                if (strcmp(walk, key) == 0 || depth > 1000) {
                    rc = am_err_set(AM_EINVAL, "parent: %s descends from %s (a cycle)", pkey, key);
                    goto out;
                }
            }
        }
        if (s->parent) {
            const char *pv = pkey;
            FIELD(parent, pv);
        }
        if (s->set_labels) {
            int same = s->n_labels == cur->n_labels;
            for (size_t i = 0; same && i < s->n_labels; i++)
                same = strcmp(s->labels[i], cur->labels[i]) == 0;
            if (!same) {
                n.labels = (char **)s->labels;
                n.n_labels = s->n_labels;
                json_array_append_new(fields, json_string("labels"));
            }
        }
        if (s->set_blocks) {
            blocks = calloc(s->n_blocks + 1, KEY_MAX);
            bv = calloc(s->n_blocks + 1, sizeof *bv);
            if (!blocks || !bv) {
                rc = am_err_set(AM_ENOMEM, "tickets: out of memory");
                goto out;
            }
            char(*bk)[KEY_MAX] = (char(*)[KEY_MAX])blocks;
            size_t nb = 0;
            for (size_t i = 0; i < s->n_blocks; i++) {
                char k[KEY_MAX];
                if (!s->blocks[i] || canon_key(s->blocks[i], k) != 0) {
                    rc = am_err_set(AM_EINVAL, "blocks: no ticket %.64s",
                                    s->blocks[i] ? s->blocks[i] : "");
                    goto out;
                }
                if (strcmp(k, key) == 0) {
                    rc = am_err_set(AM_EINVAL, "blocks: a ticket cannot block itself");
                    goto out;
                }
                if (has(bv, nb, k))
                    continue;
                snprintf(bk[nb], KEY_MAX, "%s", k);
                bv[nb] = bk[nb];
                nb++;
            }
            cycle_ctx cc = {key, 0};
            for (size_t i = 0; i < nb; i++) {
                Airmesh__V1__Ticket *x = NULL;
                if (load(t, c->org, bv[i], &x) != 0) {
                    rc = am_err_set(AM_EINVAL, "blocks: no ticket %s", bv[i]);
                    goto out;
                }
                protobuf_c_message_free_unpacked(&x->base, NULL);
                if (reaches(t, c->org, bv[i], &cc)) {
                    rc = am_err_set(AM_EINVAL,
                                    "blocks: %s already blocks %s (directly or "
                                    "through others): that would be a cycle",
                                    bv[i], key);
                    goto out;
                }
            }
            int same = nb == cur->n_blocks;
            for (size_t i = 0; same && i < nb; i++)
                same = has(cur->blocks, cur->n_blocks, bv[i]);
            if (!same) {
                for (size_t i = 0; i < cur->n_blocks && rc == 0; i++)
                    if (!has(bv, nb, cur->blocks[i]))
                        rc = link_other(t, c->org, cur->blocks[i], key, 0, now);
                for (size_t i = 0; i < nb && rc == 0; i++)
                    if (!has(cur->blocks, cur->n_blocks, bv[i]))
                        rc = link_other(t, c->org, bv[i], key, 1, now);
                if (rc) {
                    goto out;
                }
                n.blocks = bv;
                n.n_blocks = nb;
                json_array_append_new(fields, json_string("blocks"));
            }
        }
    }
    const char *to = s && s->status ? s->status : NULL;
    if (c->add_pod) {
        if (cur->n_pod_ids >= PODS_MAX) {
            rc = am_err_set(AM_ELIMIT, "ticket %s: at most %d pods", key, PODS_MAX);
            goto out;
        }
        pods = calloc(cur->n_pod_ids + 1, sizeof *pods);
        if (!pods) {
            rc = am_err_set(AM_ENOMEM, "tickets: out of memory");
            goto out;
        }
        if (cur->n_pod_ids)
            memcpy(pods, cur->pod_ids, cur->n_pod_ids * sizeof *pods);
        pods[cur->n_pod_ids] = (char *)c->add_pod;
        n.pod_ids = pods;
        n.n_pod_ids = cur->n_pod_ids + 1;
        json_object_set_new(d, "pod", json_string(c->add_pod));
        if (c->branch)
            json_object_set_new(d, "branch", json_string(c->branch));
        to = status_of(cur->status) < ST_PROGRESS || status_of(cur->status) == ST_REVIEW
                 ? k_status[ST_PROGRESS]
                 : NULL;
    }
    if (c->pod_ended) { /* the pod's work is there to review */
        int f = status_of(cur->status);
        to = f < ST_REVIEW ? k_status[ST_REVIEW] : NULL;
        if (c->branch && strcmp(c->branch, cur->branch) != 0) {
            n.branch = (char *)c->branch;
            json_array_append_new(fields, json_string("branch"));
            json_object_set_new(d, "branch", json_string(c->branch));
        }
    }
    if (to && strcmp(to, cur->status) != 0) {
        if (old && !c->add_pod && !c->pod_ended &&
            !move_ok(status_of(cur->status), status_of(to))) {
            rc = bad_move(cur->status, to);
            goto out;
        }
        if (old && status_of(cur->status) == ST_DONE && c->who) {
            /* reopen: the assignee, else the reopen rule (a refusal is a denied record) */
            char me[160];
            ops_actor_of(c->who, me, sizeof me); /* "pod:<id>" for a pod */
            if (strcmp(cur->assignee, me) != 0 &&
                (rc = am_auth_can(c->who, AM_CAN_TICKETS_REOPEN, NULL)) != 0)
                goto out;
        }
        json_object_set_new(d, "status",
                            json_pack("{s:s,s:s}", "from", old ? cur->status : "", "to", to));
        n.status = (char *)to;
    }
    if (!old) {
        json_object_set_new(d, "title", json_string(n.title));
        json_object_set_new(d, "status", json_string(n.status));
    }
    if (json_array_size(fields))
        json_object_set(d, "fields", fields);
    c->changed = !old || json_object_size(d) > 0;
    if (!c->changed) {
        rc = copy_out(cur, c->out);
        goto out;
    }
    if (!old && !n.title[0]) {
        rc = am_err_set(AM_EINVAL, "title: required");
        goto out;
    }
    n.updated_ms = now;
    if ((rc = am_txn_put(t, AM_DB_TICKETS, c->org, key, &n.base)) != 0)
        goto out;
    ticket_target(c->a->target, sizeof c->a->target, key);
    set_details(c->a, json_incref(d));
    if ((rc = am_txn_hook_run(&c->a->hook, t)) != 0)
        goto out;
    rc = copy_out(&n, c->out);
    if (c->out && rc == 0 && *c->out == NULL)
        rc = am_err_set(AM_ENOMEM, "tickets: out of memory");
out:
    free(blocks);
    free(bv);
    free(pods);
    json_decref(fields);
    json_decref(d);
    if (old)
        protobuf_c_message_free_unpacked(&old->base, NULL);
    return rc;
}

/* Run one write (c filled but for the act) as actor; who NULL = system. */
static int do_write(am_ops *o, const am_principal *who, const char *actor, const char *org,
                    const char *source, const char *action, write_ctx *c) {
    int rc;
    char target[200];
    ticket_target(target, sizeof target, c->key ? c->key : "");
    ops_act a;
    if (who) {
        ops_act_user(&a, o, who, action, target, source);
        if ((rc = ops_check(&a, who, AM_CAN_TICKETS_WRITE, NULL)) != 0)
            return rc;
        if (c->s && (rc = validate(c->s, c->key == NULL)) != 0)
            return rc;
        ops_actor_of(who, c->actor, sizeof c->actor);
    } else {
        ops_act_init(&a, o, actor, org, action, target, source ? source : "");
        snprintf(c->actor, sizeof c->actor, "%s", actor);
    }
    c->o = o;
    c->who = who;
    c->org = org;
    c->a = &a;
    if (c->out)
        *c->out = NULL;
    rc = am_store_update(o->c.store, write_txn, c);
    if (rc == -AM_EPERM && who) /* the reopen rule refused inside the transaction */
        return ops_deny(&a, rc);
    if (rc == 0 && !c->changed)
        return 0; /* nothing changed: nothing to record */
    return ops_act_done(&a, rc);
}

int am_ops_ticket_create(am_ops *o, const am_principal *who, const char *source,
                         const am_ticket_spec *s, Airmesh__V1__Ticket **out) {
    if (out)
        *out = NULL;
    if (!s)
        return am_err_set(AM_EINVAL, "title: required");
    write_ctx c = {.key = NULL, .s = s, .out = out};
    int rc = do_write(o, who, NULL, who->org_id, source, "ticket.create", &c);
    if (rc == 0)
        am_log_info("tickets", "created", "org=%s key=%s", who->org_id, c.made_key);
    return rc;
}

int am_ops_ticket_update(am_ops *o, const am_principal *who, const char *source, const char *key,
                         const am_ticket_spec *s, Airmesh__V1__Ticket **out) {
    if (out)
        *out = NULL;
    char k[KEY_MAX];
    int rc = canon_key(key, k);
    if (rc)
        return rc;
    if (!s)
        return am_err_set(AM_EINVAL, "nothing to change");
    write_ctx c = {.key = k, .s = s, .out = out};
    return do_write(o, who, NULL, who->org_id, source, "ticket.update", &c);
}

/* ---- comment ---- */

typedef struct {
    const char *org, *key, *author, *body;
    ops_act *a;
    Airmesh__V1__Ticket **out;
} comment_ctx;

static int comment_txn(am_txn *t, void *ud) {
    comment_ctx *c = ud;
    Airmesh__V1__Ticket *old = NULL;
    int rc = load(t, c->org, c->key, &old);
    if (rc)
        return rc;
    if (old->n_comments >= COMMENTS_MAX) {
        protobuf_c_message_free_unpacked(&old->base, NULL);
        return am_err_set(AM_ELIMIT, "ticket %s: at most %d comments", c->key, COMMENTS_MAX);
    }
    Airmesh__V1__TicketComment cm = AIRMESH__V1__TICKET_COMMENT__INIT;
    cm.author = (char *)c->author;
    cm.time_ms = am_now_ms();
    cm.body = (char *)c->body;
    Airmesh__V1__TicketComment **v = calloc(old->n_comments + 1, sizeof *v);
    if (!v) {
        protobuf_c_message_free_unpacked(&old->base, NULL);
        return am_err_set(AM_ENOMEM, "tickets: out of memory");
    }
    if (old->n_comments)
        memcpy(v, old->comments, old->n_comments * sizeof *v);
    v[old->n_comments] = &cm;
    Airmesh__V1__Ticket n = *old;
    n.comments = v;
    n.n_comments = old->n_comments + 1;
    n.updated_ms = cm.time_ms;
    rc = am_txn_put(t, AM_DB_TICKETS, c->org, c->key, &n.base);
    if (rc == 0)
        rc = am_txn_hook_run(&c->a->hook, t);
    if (rc == 0)
        rc = copy_out(&n, c->out);
    free(v);
    protobuf_c_message_free_unpacked(&old->base, NULL);
    return rc;
}

int am_ops_ticket_comment(am_ops *o, const am_principal *who, const char *source, const char *key,
                          const char *body, Airmesh__V1__Ticket **out) {
    if (out)
        *out = NULL;
    char k[KEY_MAX], target[200], author[160];
    int rc = canon_key(key, k);
    if (rc)
        return rc;
    ticket_target(target, sizeof target, k);
    ops_act a;
    ops_act_user(&a, o, who, "ticket.comment", target, source);
    if ((rc = ops_check(&a, who, AM_CAN_TICKETS_WRITE, NULL)) != 0)
        return rc;
    if (!body || !body[0] || !text_ok(body, COMMENT_MAX, 1))
        return am_err_set(AM_EINVAL, "body: 1 byte to 16 KiB of text");
    ops_actor_of(who, author, sizeof author);
    ops_act_details(&a, "{\"length\":%zu}", strlen(body));
    comment_ctx c = {who->org_id, k, author, body, &a, out};
    return ops_act_done(&a, am_store_update(o->c.store, comment_txn, &c));
}

/* ---- reads ---- */

int am_ops_ticket_get(am_ops *o, const am_principal *who, const char *key,
                      Airmesh__V1__Ticket **out) {
    *out = NULL;
    char k[KEY_MAX];
    int rc = canon_key(key, k);
    if (rc)
        return rc;
    if ((rc = am_auth_can(who, AM_CAN_READ, NULL)) != 0)
        return rc;
    ProtobufCMessage *m = NULL;
    rc = am_ops_get(o, AM_DB_TICKETS, who->org_id, k, &airmesh__v1__ticket__descriptor, &m);
    if (rc == -AM_ENOTFOUND)
        return am_err_set(AM_ENOTFOUND, "no such ticket %s", k);
    *out = (Airmesh__V1__Ticket *)m;
    return rc;
}

static int ci_contains(const char *hay, const char *needle) {
    size_t n = strlen(needle);
    if (!n)
        return 1;
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return 1;
    return 0;
}

typedef struct {
    const am_ticket_filter *f;
    am_ops_ticket_fn fn;
    void *ud;
} list_ctx;

static int list_row(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    list_ctx *c = ud;
    const Airmesh__V1__Ticket *t = (const Airmesh__V1__Ticket *)m;
    const am_ticket_filter *f = c->f;
    if (f) {
        if (f->status && f->status[0] && strcmp(f->status, t->status) != 0)
            return 0;
        if (f->assignee && f->assignee[0] && strcmp(f->assignee, t->assignee) != 0)
            return 0;
        if (f->label && f->label[0] && !has(t->labels, t->n_labels, f->label))
            return 0;
        if (f->text && f->text[0] && !ci_contains(t->key, f->text) &&
            !ci_contains(t->title, f->text) && !ci_contains(t->description, f->text))
            return 0;
    }
    return c->fn(c->ud, t);
}

int am_ops_ticket_list(am_ops *o, const am_principal *who, const am_ticket_filter *f,
                       am_ops_ticket_fn fn, void *ud) {
    int rc = am_auth_can(who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    list_ctx c = {f, fn, ud};
    return am_ops_list(o, AM_DB_TICKETS, who->org_id, &airmesh__v1__ticket__descriptor, list_row,
                       &c);
}

/* ---- start a pod, and its end ---- */

int am_ops_ticket_start(am_ops *o, const am_principal *who, const char *source, const char *key,
                        const am_pod_spec *spec, Airmesh__V1__Ticket **ticket_out,
                        Airmesh__V1__Pod **pod_out) {
    *pod_out = NULL;
    if (ticket_out)
        *ticket_out = NULL;
    Airmesh__V1__Ticket *tk = NULL;
    int rc = am_ops_ticket_get(o, who, key, &tk);
    if (rc)
        return rc;
    char target[200], branch[KEY_MAX], *prompt = NULL;
    ticket_target(target, sizeof target, tk->key);
    ops_act a;
    ops_act_user(&a, o, who, "ticket.update", target, source);
    if ((rc = ops_check(&a, who, AM_CAN_TICKETS_WRITE, NULL)) != 0)
        goto out;
    if (status_of(tk->status) == ST_DONE) {
        rc = am_err_set(AM_ESTATE, "ticket %s is done: reopen it (status todo) to start a pod",
                        tk->key);
        goto out;
    }
    size_t i = 0;
    for (; tk->key[i] && i + 1 < sizeof branch; i++)
        branch[i] = (char)tolower((unsigned char)tk->key[i]);
    branch[i] = '\0';
    size_t plen = strlen(tk->title) + strlen(tk->description) + strlen(tk->key) + 32;
    if (!(prompt = malloc(plen))) {
        rc = am_err_set(AM_ENOMEM, "tickets: out of memory");
        goto out;
    }
    snprintf(prompt, plen, "%s\n\n%s%s[ticket %s]", tk->title, tk->description,
             tk->description[0] ? "\n\n" : "", tk->key);
    am_pod_spec s = *spec;
    s.branch = branch;
    s.prompt = prompt;
    if ((rc = am_ops_pod_create(o, who, source, &s, pod_out)) != 0)
        goto out;
    /* Record it; when the pod ended meanwhile (its end hook found no ticket naming it yet), the
     * ticket goes straight to in_review. The pod's state is read in the same transaction. */
    Airmesh__V1__Pod *now = NULL;
    int ended =
        am_pods_get(o->c.store, who->org_id, (*pod_out)->id, &now) == 0 && am_pods_ended(now);
    if (now)
        protobuf_c_message_free_unpacked(&now->base, NULL);
    write_ctx c = {
        .key = tk->key, .add_pod = (*pod_out)->id, .branch = (*pod_out)->branch, .out = ticket_out};
    rc = do_write(o, who, NULL, who->org_id, source, "ticket.update", &c);
    if (rc == 0 && ended) /* (the hook may have run before the pod was recorded) */
        ops_ticket_pod_ended(o, "system", who->org_id, (*pod_out)->id);
    if (rc == 0 && ended && ticket_out && *ticket_out) {
        protobuf_c_message_free_unpacked(&(*ticket_out)->base, NULL);
        *ticket_out = NULL;
        rc = am_ops_ticket_get(o, who, tk->key, ticket_out);
    }
out:
    free(prompt);
    protobuf_c_message_free_unpacked(&tk->base, NULL);
    return rc;
}

typedef struct {
    const char *pod;
    char key[KEY_MAX];
} find_ctx;

static int find_pod(void *ud, const char *id, const ProtobufCMessage *m) {
    (void)id;
    find_ctx *c = ud;
    const Airmesh__V1__Ticket *t = (const Airmesh__V1__Ticket *)m;
    if (has(t->pod_ids, t->n_pod_ids, c->pod)) {
        snprintf(c->key, sizeof c->key, "%s", t->key);
        return 1;
    }
    return 0;
}

void ops_ticket_pod_ended(am_ops *o, const char *actor, const char *org, const char *pod_id) {
    find_ctx f = {pod_id, ""};
    if (!pod_id ||
        am_ops_list(o, AM_DB_TICKETS, org, &airmesh__v1__ticket__descriptor, find_pod, &f) != 0 ||
        !f.key[0])
        return;
    Airmesh__V1__Pod *p = NULL;
    if (am_pods_get(o->c.store, org, pod_id, &p) != 0)
        return;
    write_ctx c = {.key = f.key, .pod_ended = 1, .branch = p->branch};
    if (do_write(o, NULL, actor, org, "", "ticket.update", &c) != 0)
        am_log_warn("tickets", "ticket not moved to in_review", "org=%s key=%s pod=%s error=\"%s\"",
                    org, f.key, pod_id, am_err_last());
    protobuf_c_message_free_unpacked(&p->base, NULL);
}
