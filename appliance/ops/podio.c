/*
 * appliance/ops/podio.c — one pod's screen and keyboard for another (issue 13): the snapshot
 * (the last lines of a pod's terminal as plain text, for get_pod_snapshot and GET
 * /api/v1/pods/{id}/snapshot) and input (send_pod_input: text and an optional Enter).
 *
 * Why here and enforced: on the reference platform any pod of an org can read and type into
 * any other (its bindings are stored, never checked). Here a pod principal (who.pod_id set,
 * appliance/mcp) needs an active binding: "read" for the snapshot, "write" for input
 * (ops_binding_find; a refusal is a denied audit record naming the missing binding). Users keep
 * the rules they have elsewhere: AM_CAN_READ to see a pod, the web terminal's input rules to
 * type (their own or a shared pod, or AM_CAN_POD_OTHERS).
 *
 * The snapshot reads the hub's output ring (the newest 256 KiB at most) and renders it as text
 * without a terminal emulator: CSI/OSC/DCS escape sequences removed, a cursor-position or
 * erase-display sequence ends the line, a CR makes the next printed byte restart the line
 * (a redrawn progress line shows its last state), backspace removes a byte, other control
 * characters dropped, runs of blank lines collapsed to one, invalid UTF-8 dropped. Input strips
 * control characters other than tab and newline, so a pod cannot send another pod's agent an escape
 * sequence or ^C. Threads: any.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appliance/ops/internal.h"
#include "common/err.h"
#include "common/util.h"

#define SNAP_BYTES (256u << 10)
#define SNAP_LINES_MAX 1000
#define INPUT_MAX (64u << 10)

typedef struct {
    char *b;
    size_t n, cap, line; /* line: where the current line starts */
} text_buf;

static int tb_put(text_buf *t, char c) {
    if (t->n + 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 4096;
        char *b = realloc(t->b, cap);
        if (!b)
            return -1;
        t->b = b;
        t->cap = cap;
    }
    t->b[t->n++] = c;
    return 0;
}

/* End the current line: trailing blanks trimmed, at most one empty line in a row. */
static int tb_newline(text_buf *t) {
    while (t->n > t->line && (t->b[t->n - 1] == ' ' || t->b[t->n - 1] == '\t'))
        t->n--;
    if (t->n == t->line && t->n >= 2 && t->b[t->n - 1] == '\n' && t->b[t->n - 2] == '\n')
        return 0; /* a second blank line */
    if (t->n == 0)
        return 0; /* no leading blank lines */
    if (tb_put(t, '\n'))
        return -1;
    t->line = t->n;
    return 0;
}

/* Terminal bytes → plain text lines (see the header). */
static int render(const uint8_t *s, size_t n, text_buf *t) {
    int cr = 0; /* a carriage return: the next printed byte starts the line again */
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == 0x1b) {
            /* ESC before a control or a non-ASCII byte is dropped alone (never half of a
             * UTF-8 character, never the newline after it) */
            if (i + 1 >= n || s[i + 1] < 0x20 || s[i + 1] >= 0x7f)
                continue;
            uint8_t k = s[++i];
            if (k == '[') { /* CSI: parameter/intermediate bytes 0x20-0x3f, a final 0x40-0x7e */
                while (i + 1 < n && s[i + 1] >= 0x20 && s[i + 1] <= 0x3f)
                    i++;
                if (i + 1 < n && s[i + 1] >= 0x40 && s[i + 1] <= 0x7e) {
                    uint8_t f = s[++i];
                    if ((f == 'H' || f == 'f' || f == 'J' || f == 'E' || f == 'B' || f == 'd') &&
                        t->n > t->line && tb_newline(t))
                        return -1;
                }
            } else if (k == ']' || k == 'P' || k == 'X' || k == '^' || k == '_') {
                /* OSC / DCS / SOS / PM / APC: up to BEL (OSC) or ST (ESC \) */
                while (i + 1 < n) {
                    i++;
                    if (s[i] == 0x07 && k == ']')
                        break;
                    if (s[i] == 0x1b && i + 1 < n && s[i + 1] == '\\') {
                        i++;
                        break;
                    }
                }
            } else if ((k == '(' || k == ')' || k == '*' || k == '+' || k == '#') && i + 1 < n &&
                       s[i + 1] >= 0x20 && s[i + 1] < 0x7f) {
                i++; /* charset designation: one more byte */
            }
            continue;
        }
        if (c == '\n') {
            cr = 0;
            if (tb_newline(t))
                return -1;
        } else if (c == '\r') {
            cr = 1;             /* "\r\r\n" (a PTY's onlcr after "\r\n") ends the line like "\n" */
        } else if (c == '\b') { /* one character back (all of a UTF-8 sequence) */
            while (t->n > t->line && ((uint8_t)t->b[t->n - 1] & 0xc0) == 0x80)
                t->n--;
            if (t->n > t->line)
                t->n--;
        } else if (c == '\t' || c >= 0x20) {
            if (c == 0x7f)
                continue;
            if (cr) {
                t->n = t->line; /* a redraw of the line */
                cr = 0;
            }
            if (tb_put(t, (char)c))
                return -1;
        }
    }
    return 0;
}

/* Drop what is not valid UTF-8 (the ring may begin inside a character). In place. */
static size_t utf8_clean(char *s, size_t n) {
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        size_t len = c < 0x80             ? 1
                     : (c & 0xe0) == 0xc0 ? 2
                     : (c & 0xf0) == 0xe0 ? 3
                     : (c & 0xf8) == 0xf0 ? 4
                                          : 0;
        int ok = len > 0 && i + len <= n && !(len == 2 && c < 0xc2) && !(c > 0xf4);
        for (size_t k = 1; ok && k < len; k++)
            ok = ((uint8_t)s[i + k] & 0xc0) == 0x80;
        if (ok && len == 3) {
            uint8_t c1 = (uint8_t)s[i + 1];
            ok = !(c == 0xe0 && c1 < 0xa0) && !(c == 0xed && c1 >= 0xa0);
        }
        if (ok && len == 4) {
            uint8_t c1 = (uint8_t)s[i + 1];
            ok = !(c == 0xf0 && c1 < 0x90) && !(c == 0xf4 && c1 >= 0x90);
        }
        if (!ok) {
            i++;
            continue;
        }
        memmove(s + w, s + i, len);
        w += len;
        i += len;
    }
    return w;
}

int am_ops_screen_text(const uint8_t *raw, size_t n, size_t lines, char **out) {
    *out = NULL;
    text_buf t = {0};
    /* invalid UTF-8 goes first, so what is rendered (and trimmed) is what is shown */
    char *clean = malloc(n + 1);
    if (!clean)
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    memcpy(clean, raw, n);
    size_t cn = utf8_clean(clean, n);
    int rc = render((const uint8_t *)clean, cn, &t) || tb_put(&t, '\0');
    free(clean);
    if (rc) {
        free(t.b);
        return am_err_set(AM_ENOMEM, "ops: out of memory");
    }
    t.n--;
    while (t.n && t.b[t.n - 1] == '\n')
        t.n--;
    t.b[t.n] = '\0';
    /* the last `lines` lines (0 = all) */
    size_t start = t.n, seen = 0;
    while (start > 0) {
        if (t.b[start - 1] == '\n' && lines && ++seen == lines)
            break;
        start--;
    }
    while (t.b[start] == '\n') /* a page never starts with the blank line before it */
        start++;
    *out = strdup(t.b + start);
    free(t.b);
    return *out ? 0 : am_err_set(AM_ENOMEM, "ops: out of memory");
}

static int load_pod(am_ops *o, const char *org, const char *id, Airmesh__V1__Pod **p) {
    *p = NULL;
    if (!id || !*id || strlen(id) > AM_STORE_ID_MAX || am_pods_get(o->c.store, org, id, p) != 0)
        return am_err_set(AM_ENOTFOUND, "no such pod '%.64s'", id ? id : "");
    return 0;
}

static int pod_is_own(const am_principal *who, const Airmesh__V1__Pod *p) {
    const char *by = p->created_by ? p->created_by : "";
    return strcmp(strncmp(by, "user:", 5) == 0 ? by + 5 : by, who->user_id) == 0;
}

int am_ops_pod_snapshot(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                        size_t lines, char **text) {
    *text = NULL;
    if (lines == 0)
        lines = 50;
    if (lines > SNAP_LINES_MAX)
        return am_err_set(AM_EINVAL, "lines: 1 to %d", SNAP_LINES_MAX);
    int rc = am_auth_can(who, AM_CAN_READ, NULL);
    if (rc)
        return rc;
    Airmesh__V1__Pod *p = NULL;
    if ((rc = load_pod(o, who->org_id, pod_id, &p)) != 0)
        return rc;
    char target[48];
    snprintf(target, sizeof target, "pod:%.32s", p->id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.snapshot", target, source);
    ops_act_details(&a, "{\"lines\":%zu}", lines);
    uint8_t *raw = NULL;
    if (who->pod_id[0] && strcmp(who->pod_id, p->id) != 0) {
        char bid[AM_STORE_ID_MAX + 1] = "";
        if (ops_binding_find(o, who->org_id, who->pod_id, p->id, "read", bid, sizeof bid) != 0) {
            ops_act_error_details(&a, am_err_last());
            rc = ops_deny(&a, -AM_EPERM);
            goto out;
        }
        ops_act_details(&a, "{\"lines\":%zu,\"by\":\"binding:%s\"}", lines, bid);
    }
    size_t n = 0;
    raw = malloc(SNAP_BYTES);
    if (!raw) {
        rc = am_err_set(AM_ENOMEM, "ops: out of memory");
        goto out;
    }
    am_hub_pod_view v;
    if (o->c.hub && am_hub_pod_read(o->c.hub, p->id, 0, raw, 0, &n, NULL, &v) == 0) {
        uint64_t from = v.end > SNAP_BYTES ? v.end - SNAP_BYTES : 0;
        am_hub_pod_read(o->c.hub, p->id, from, raw, SNAP_BYTES, &n, NULL, NULL);
    }
    if ((rc = am_ops_screen_text(raw, n, lines, text)) != 0)
        goto out;
    if (who->pod_id[0] && (rc = ops_record(&a, "ok")) != 0) {
        free(*text);
        *text = NULL;
    }
out:
    free(raw);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}

int am_ops_pod_input(am_ops *o, const am_principal *who, const char *source, const char *pod_id,
                     const char *text, size_t len, int enter, size_t *sent) {
    *sent = 0;
    Airmesh__V1__Pod *p = NULL;
    int rc = load_pod(o, who->org_id, pod_id, &p);
    if (rc)
        return rc;
    char target[48], by[AM_STORE_ID_MAX + 16] = "";
    snprintf(target, sizeof target, "pod:%.32s", p->id);
    ops_act a;
    ops_act_user(&a, o, who, "pod.input", target, source);
    ops_act_details(&a, "{\"length\":%zu}", len);
    uint8_t *bytes = NULL;
    if ((rc = ops_check(&a, who, AM_CAN_TERMINAL_INPUT, NULL)) != 0)
        goto out;
    if (who->pod_id[0]) {
        char bid[AM_STORE_ID_MAX + 1] = "";
        if (strcmp(who->pod_id, p->id) == 0) {
            am_err_set(AM_EPERM, "a pod does not type into itself through send_pod_input");
            ops_act_error_details(&a, am_err_last());
            rc = ops_deny(&a, -AM_EPERM);
            goto out;
        }
        if (ops_binding_find(o, who->org_id, who->pod_id, p->id, "write", bid, sizeof bid) != 0) {
            ops_act_error_details(&a, am_err_last());
            rc = ops_deny(&a, -AM_EPERM);
            goto out;
        }
        snprintf(by, sizeof by, "binding:%s", bid);
    } else if (pod_is_own(who, p)) {
        snprintf(by, sizeof by, "starter");
    } else if (p->shared) {
        snprintf(by, sizeof by, "shared");
    } else {
        if ((rc = ops_check(&a, who, AM_CAN_POD_OTHERS, NULL)) != 0)
            goto out;
        snprintf(by, sizeof by, "admin");
    }
    if (!text && len)
        len = 0;
    if (len > INPUT_MAX) {
        rc = am_err_set(AM_EINVAL, "text: at most %u bytes", INPUT_MAX);
        goto out;
    }
    if (len == 0 && !enter) {
        rc = am_err_set(AM_EINVAL, "text: empty (and no enter)");
        goto out;
    }
    if (strcmp(p->state, am_pod_state_name(AM_POD_RUNNING)) != 0) {
        rc = am_err_set(AM_ESTATE, "pod %s is %s, not running: it takes no input", p->id, p->state);
        goto out;
    }
    bytes = malloc(len + 1);
    if (!bytes) {
        rc = am_err_set(AM_ENOMEM, "ops: out of memory");
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)text[i];
        if (c >= 0x20 ? c != 0x7f : (c == '\t' || c == '\n'))
            bytes[n++] = c;
    }
    if (enter)
        bytes[n++] = '\r';
    if (n == 0) {
        rc = am_err_set(AM_EINVAL, "text: nothing left after removing control characters");
        goto out;
    }
    ops_act_details(&a, "{\"length\":%zu,\"by\":\"%s\",\"enter\":%s}", n, by,
                    enter ? "true" : "false");
    /* Audit first: input the log cannot record is not sent. */
    if ((rc = ops_record(&a, "ok")) != 0)
        goto out;
    if ((rc = ops_send_input(o, p->runner_id, p->id, bytes, n)) != 0)
        goto out;
    *sent = n;
out:
    free(bytes);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}
