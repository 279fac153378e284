/*
 * appliance/auth/throttle.c — the login throttle's table (see throttle.h for the rules).
 *
 * A fixed-size open-addressing table of entries keyed by a 64-bit FNV-1a hash: kind 'a' for an
 * address (bucket level, in-progress count), kind 'p' for an (org, user, address) triple
 * (consecutive failures, locked-until), which also keeps the hash of (org, user) so an
 * administrator's password reset can clear every address' lock on that user. Lookups probe a
 * short window; an insert takes a free slot there or evicts the stalest one.
 */
#include "appliance/auth/throttle.h"

#include <stdlib.h>
#include <string.h>

#include "appliance/auth/auth.h"
#include "common/err.h"

#define SLOTS 8192u
#define PROBE 16u
#define PAIR_AFTER AM_AUTH_LOCKOUT_AFTER /* failures in a row before the triple locks */
#define PAIR_LOCK_MS 30000ull            /* first lock, doubling per further failure */
#define PAIR_LOCK_MAX_MS 900000ull
#define ADDR_DEPTH 20u        /* failures an address may bank */
#define ADDR_DRAIN_MS 3000ull /* one failure forgiven per */
#define ADDR_INFLIGHT 4u      /* logins in progress per address */

typedef struct {
    uint64_t key;  /* 0 = free */
    uint64_t user; /* 'p' entries: hash of org/user */
    uint64_t last_ms;
    uint64_t locked_until_ms; /* 'p' */
    uint64_t level_ms;        /* 'a': bucket level as "full until", see bucket_level */
    uint32_t fails;           /* 'p': consecutive failures */
    uint32_t inflight;        /* 'a' */
} entry;

struct am_throttle {
    entry e[SLOTS];
};

static uint64_t fnv(uint64_t h, const char *s) {
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    h ^= 0xff; /* separator, so ("ab","c") != ("a","bc") */
    h *= 1099511628211ull;
    return h;
}

static uint64_t key_addr(const char *addr) {
    uint64_t h = fnv(fnv(14695981039346656037ull, "a"), addr);
    return h ? h : 1;
}

static uint64_t key_user(const char *org, const char *user) {
    return fnv(fnv(fnv(14695981039346656037ull, "u"), org), user);
}

static uint64_t key_pair(const char *org, const char *user, const char *addr) {
    uint64_t h = fnv(fnv(fnv(fnv(14695981039346656037ull, "p"), org), user), addr);
    return h ? h : 1;
}

int am_throttle_new(am_throttle **out) {
    am_throttle *t = calloc(1, sizeof *t);
    if (!t)
        return am_err_set(AM_ENOMEM, "throttle: out of memory");
    *out = t;
    return 0;
}

void am_throttle_free(am_throttle *t) {
    free(t);
}

/* The entry for key, or NULL. */
static entry *find(am_throttle *t, uint64_t key) {
    for (unsigned i = 0; i < PROBE; i++) {
        entry *e = &t->e[(key + i) % SLOTS];
        if (e->key == key)
            return e;
    }
    return NULL;
}

/* Is this entry still worth keeping? */
static int live(const entry *e, uint64_t now) {
    return e->key && (e->inflight || e->locked_until_ms > now || e->level_ms > now ||
                      (e->fails && now - e->last_ms < PAIR_LOCK_MAX_MS));
}

/* The entry for key, created if needed (reusing a dead or the stalest idle slot of its probe
 * window); NULL when every slot there has logins in progress. */
static entry *get(am_throttle *t, uint64_t key, uint64_t now) {
    entry *e = find(t, key);
    if (e)
        return e;
    entry *victim = NULL;
    for (unsigned i = 0; i < PROBE; i++) {
        entry *c = &t->e[(key + i) % SLOTS];
        if (!live(c, now)) {
            victim = c;
            break;
        }
        if (!c->inflight && (!victim || c->last_ms < victim->last_ms))
            victim = c;
    }
    if (!victim)
        return NULL;
    memset(victim, 0, sizeof *victim);
    victim->key = key;
    victim->last_ms = now;
    return victim;
}

/* The address bucket is kept as the time at which it would be empty: level = (level_ms - now)
 * / ADDR_DRAIN_MS failures. Adding a failure pushes level_ms by ADDR_DRAIN_MS. */
static uint64_t bucket_level(const entry *e, uint64_t now) {
    return e->level_ms > now ? (e->level_ms - now + ADDR_DRAIN_MS - 1) / ADDR_DRAIN_MS : 0;
}

int am_throttle_begin(am_throttle *t, const char *org, const char *user, const char *addr,
                      uint64_t now_ms, unsigned *retry_s, const char **why) {
    entry *p = find(t, key_pair(org, user, addr));
    if (p && p->locked_until_ms > now_ms) {
        *retry_s = (unsigned)((p->locked_until_ms - now_ms + 999) / 1000);
        *why = "locked";
        return -AM_EFULL;
    }
    entry *a = get(t, key_addr(addr), now_ms);
    if (!a) {
        *retry_s = 1;
        *why = "busy";
        return -AM_EFULL;
    }
    a->last_ms = now_ms;
    if (bucket_level(a, now_ms) >= ADDR_DEPTH) {
        uint64_t below = a->level_ms - (uint64_t)(ADDR_DEPTH - 1) * ADDR_DRAIN_MS;
        *retry_s = (unsigned)((below > now_ms ? below - now_ms + 999 : 1000) / 1000);
        *why = "address";
        return -AM_EFULL;
    }
    if (a->inflight >= ADDR_INFLIGHT) {
        *retry_s = 1;
        *why = "busy";
        return -AM_EFULL;
    }
    a->inflight++;
    return 0;
}

void am_throttle_end(am_throttle *t, const char *org, const char *user, const char *addr,
                     int result, uint64_t now_ms) {
    entry *a = find(t, key_addr(addr));
    if (a && a->inflight)
        a->inflight--;
    if (result < 0)
        return;
    uint64_t pk = key_pair(org, user, addr);
    if (result > 0) {
        entry *p = find(t, pk);
        if (p)
            memset(p, 0, sizeof *p);
        return;
    }
    if (a) {
        a->level_ms = (a->level_ms > now_ms ? a->level_ms : now_ms) + ADDR_DRAIN_MS;
        a->last_ms = now_ms;
    }
    entry *p = get(t, pk, now_ms);
    if (!p)
        return;
    p->user = key_user(org, user);
    p->last_ms = now_ms;
    p->fails++;
    if (p->fails >= PAIR_AFTER) {
        unsigned shift = p->fails - PAIR_AFTER;
        uint64_t ms = PAIR_LOCK_MS << (shift < 10 ? shift : 10);
        p->locked_until_ms = now_ms + (ms > PAIR_LOCK_MAX_MS ? PAIR_LOCK_MAX_MS : ms);
    }
}

void am_throttle_forget_user(am_throttle *t, const char *org, const char *user) {
    uint64_t u = key_user(org, user);
    for (unsigned i = 0; i < SLOTS; i++)
        if (t->e[i].key && t->e[i].user == u && !t->e[i].inflight)
            memset(&t->e[i], 0, sizeof t->e[i]);
}
