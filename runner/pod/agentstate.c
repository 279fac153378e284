/*
 * runner/pod/agentstate.c — the agent-state scanner fed from a pod's PTY output (what and why
 * in agentstate.h). A small VT parser that knows just enough to find the ends of escape
 * sequences (CSI, OSC, DCS/SOS/PM/APC strings), keeps an OSC's text in a fixed buffer and
 * reads four kinds of OSC (777 notify, 9, 0, 2); everything else only counts as output or not.
 * Ownership: the caller's struct, no allocation. Threads: the owning pod thread only.
 */
#include "runner/pod/agentstate.h"

#include <stdio.h>
#include <string.h>

enum { GROUND, ESC, CSI, OSC, OSC_ESC, STR, STR_ESC };

#define BEL 0x07
#define CAN 0x18
#define SUB 0x1a
#define ESCB 0x1b

int am_agentstate_valid(const char *s) {
    return s && (!strcmp(s, "working") || !strcmp(s, "waiting") || !strcmp(s, "idle"));
}

/* Length of the valid UTF-8 sequence at p (n bytes left) and its code point, 0 if invalid. */
static size_t utf8_seq(const unsigned char *p, size_t n, unsigned *cp) {
    unsigned c = p[0];
    size_t len;
    unsigned min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, c &= 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, c &= 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (p[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

void am_agentstate_sanitize(const char *src, size_t len, char *out, size_t cap) {
    size_t o = 0;
    const unsigned char *p = (const unsigned char *)src;
    if (!cap)
        return;
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t l = utf8_seq(p + i, len - i, &cp);
        if (l == 0) { /* invalid byte: dropped */
            i++;
            continue;
        }
        if (cp == '\t' || cp == '\n' || cp == '\r')
            cp = ' ', l = 1;
        if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f)) {
            i += l;
            continue;
        }
        if (o + l > cap - 1)
            break; /* cut at a character boundary */
        if (cp == ' ' && p[i] != ' ')
            out[o++] = ' ';
        else
            memcpy(out + o, p + i, l), o += l;
        i += l;
    }
    out[o] = '\0';
}

static void change(am_agentstate *a, const char *state, const char *source, const char *msg) {
    if (!strcmp(a->state, state) && (!msg || !strcmp(a->message, msg)))
        return; /* no change */
    snprintf(a->state, sizeof a->state, "%s", state);
    snprintf(a->source, sizeof a->source, "%s", source);
    snprintf(a->message, sizeof a->message, "%s", msg ? msg : "");
    a->printable = 0;
    a->input_seen = 0;
    if (a->on_change)
        a->on_change(a->ud, a->state, a->source, a->message);
}

/* The state a Claude-Code-style title announces, or NULL. */
static const char *title_state(const char *t) {
    const unsigned char *u = (const unsigned char *)t;
    size_t n = strlen(t);
    unsigned cp;
    size_t l = n ? utf8_seq(u, n, &cp) : 0;
    if (l == 0 || l >= n || u[l] != ' ')
        return NULL;
    if ((cp >= 0x2800 && cp <= 0x28ff) || (cp >= 0x25d0 && cp <= 0x25d3))
        return "working"; /* the spinner's frames */
    if (cp == 0x2733)
        return "idle"; /* ✳: the turn ended, its prompt is ready */
    return NULL;
}

/* "9;..." is a notification unless it is ConEmu's 9;N[;...] (4 = progress, 9 = cwd, ...). */
static int conemu_command(const char *t) {
    size_t i = 0;
    while (t[i] >= '0' && t[i] <= '9')
        i++;
    return i > 0 && (t[i] == ';' || t[i] == '\0');
}

static void osc_done(am_agentstate *a) {
    char *s = a->osc, msg[AM_AGENTSTATE_MSG_MAX + 1];
    s[a->osc_len] = '\0';
    if (!strncmp(s, "777;notify;", 11)) {
        char *title = s + 11, *semi = strchr(title, ';');
        if (!semi)
            return;
        *semi = '\0';
        char *rest = semi + 1;
        if (!strcmp(title, "airmesh")) {
            char *st = rest, *m = strchr(rest, ';');
            if (m)
                *m++ = '\0';
            if (!am_agentstate_valid(st))
                return;
            am_agentstate_sanitize(m ? m : "", m ? strlen(m) : 0, msg, sizeof msg);
            if (!strcmp(st, "working"))
                a->structured = 1;
            change(a, st, "notify", msg);
            return;
        }
        char both[AM_AGENTSTATE_OSC_MAX + 4];
        snprintf(both, sizeof both, "%s%s%s", title, *title && *rest ? ": " : "", rest);
        am_agentstate_sanitize(both, strlen(both), msg, sizeof msg);
        change(a, "waiting", "osc777", msg);
    } else if (!strncmp(s, "9;", 2)) {
        if (conemu_command(s + 2) || !s[2])
            return;
        am_agentstate_sanitize(s + 2, strlen(s + 2), msg, sizeof msg);
        change(a, "waiting", "osc9", msg);
    } else if (!strncmp(s, "0;", 2) || !strncmp(s, "2;", 2)) {
        am_agentstate_sanitize(s + 2, strlen(s + 2), a->title, sizeof a->title);
        const char *st = title_state(a->title);
        if (!st)
            return; /* not a state: kept as the message of the next change */
        if (!strcmp(st, "working")) {
            a->structured = 1;
            if (!strcmp(a->state, "working"))
                return; /* the next spinner frame */
        }
        /* The spinner's text changes with every frame: a title state changes on state only. */
        if (strcmp(a->state, st) != 0)
            change(a, st, "title", a->title);
    }
}

/* A printable byte: maybe the output that means the agent works again. */
static void printable(am_agentstate *a) {
    a->printable++;
    if (!strcmp(a->state, "working"))
        return;
    if ((a->input_seen && a->printable > 0) ||
        (!a->structured && a->printable >= AM_AGENTSTATE_OUTPUT_BYTES))
        change(a, "working", "output", a->title);
}

void am_agentstate_init(am_agentstate *a, uint64_t quiet_ms, uint64_t now_ms,
                        am_agentstate_fn on_change, void *ud) {
    memset(a, 0, sizeof *a);
    a->quiet_ms = quiet_ms ? quiet_ms : AM_AGENTSTATE_QUIET_DEFAULT_MS;
    a->last_output_ms = now_ms;
    a->on_change = on_change;
    a->ud = ud;
}

static void esc_byte(am_agentstate *a, unsigned char c) {
    if (c == ']') {
        a->ps = OSC;
        a->osc_len = 0;
    } else if (c == '[') {
        a->ps = CSI;
    } else if (c == 'P' || c == 'X' || c == '^' || c == '_') {
        a->ps = STR;
    } else if (c == ESCB) {
        a->ps = ESC;
    } else if (c >= 0x20 && c <= 0x2f) {
        a->ps = ESC; /* an intermediate (ESC ( B): the final byte follows */
    } else {
        a->ps = GROUND;
    }
}

void am_agentstate_output(am_agentstate *a, const uint8_t *data, size_t len, uint64_t now_ms) {
    if (len)
        a->last_output_ms = now_ms;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = data[i];
        switch (a->ps) {
        case GROUND:
            if (c == ESCB)
                a->ps = ESC;
            else if (c >= 0x20 && c != 0x7f)
                printable(a);
            break;
        case ESC:
            if (c == CAN || c == SUB)
                a->ps = GROUND;
            else
                esc_byte(a, c);
            break;
        case CSI:
            if (c == ESCB)
                a->ps = ESC;
            else if (c == CAN || c == SUB || (c >= 0x40 && c <= 0x7e))
                a->ps = GROUND;
            break;
        case OSC:
            if (c == BEL) {
                a->ps = GROUND;
                osc_done(a);
            } else if (c == ESCB) {
                a->ps = OSC_ESC;
            } else if (c == CAN || c == SUB) {
                a->ps = GROUND;
            } else if (a->osc_len < AM_AGENTSTATE_OSC_MAX) {
                a->osc[a->osc_len++] = (char)c;
            } else {
                /* Too long to be a signal: dropped, and what it held was just output. */
                a->ps = GROUND;
                a->osc_dropped++;
                for (size_t k = 0; k < a->osc_len; k++)
                    if ((unsigned char)a->osc[k] >= 0x20 && a->osc[k] != 0x7f)
                        printable(a);
                a->osc_len = 0;
                if (c >= 0x20 && c != 0x7f)
                    printable(a);
            }
            break;
        case OSC_ESC:
            if (c == '\\') {
                a->ps = GROUND;
                osc_done(a);
            } else {
                esc_byte(a, c); /* ESC + something else: the OSC was cut off */
            }
            break;
        case STR:
            if (c == ESCB)
                a->ps = STR_ESC;
            else if (c == BEL || c == CAN || c == SUB)
                a->ps = GROUND;
            break;
        case STR_ESC:
            if (c == '\\')
                a->ps = GROUND;
            else
                esc_byte(a, c);
            break;
        }
    }
}

void am_agentstate_input(am_agentstate *a) {
    a->input_seen = 1;
}

void am_agentstate_tick(am_agentstate *a, uint64_t now_ms) {
    if (strcmp(a->state, "") != 0 && strcmp(a->state, "working") != 0)
        return; /* waiting stays waiting; idle is idle */
    if (now_ms - a->last_output_ms >= a->quiet_ms)
        change(a, "idle", "quiet", a->title);
}
