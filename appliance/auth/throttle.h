/*
 * appliance/auth/throttle — login throttling keyed on the source address and on the
 * (org, user, address) triple, in memory, so a flood from one address slows and then refuses
 * that address while the real owner logging in from elsewhere still gets in.
 *
 * Rules (constants in throttle.c):
 *  - per (org, user, address): from the 5th failure in a row, that triple is locked for 30 s,
 *    doubling per further failure up to 15 min; a success clears it. The name need not exist:
 *    unknown and real names are counted and answered the same way, so the lock reveals nothing.
 *  - per address: failures fill a leaky bucket (20 deep, one drains every 3 s); a full bucket
 *    refuses every login from that address until it drains below the top;
 *  - per address: at most 4 logins in progress (waiting for the password check) at once.
 * Memory is bounded: a fixed table of entries; when it is full the stalest entry is reused.
 * Keys are stored as 64-bit hashes (a collision merely shares a counter).
 *
 * Threads: none of its own; every call on the http thread (or one thread per table).
 * Times are passed in (ms), so the rules are testable without sleeping.
 */
#ifndef AM_APPLIANCE_AUTH_THROTTLE_H
#define AM_APPLIANCE_AUTH_THROTTLE_H

#include <stdint.h>

typedef struct am_throttle am_throttle;

int am_throttle_new(am_throttle **out);
void am_throttle_free(am_throttle *t);

/* May a login for (org, user) from addr start now? 0: yes, and it is counted as in progress
 * (end it with am_throttle_end). Otherwise -AM_EFULL with *retry_s (>= 1) seconds to wait and
 * *why: "locked" (the triple), "address" (the address' bucket) or "busy" (too many in progress
 * from the address). */
int am_throttle_begin(am_throttle *t, const char *org, const char *user, const char *addr,
                      uint64_t now_ms, unsigned *retry_s, const char **why);
/* The login started by am_throttle_begin ended. result: 1 the password was right (clears the
 * triple), 0 it was wrong (counts a failure), -1 no verdict (e.g. refused as busy). */
void am_throttle_end(am_throttle *t, const char *org, const char *user, const char *addr,
                     int result, uint64_t now_ms);
/* Forget every lock on (org, user) (its password was reset by an administrator). */
void am_throttle_forget_user(am_throttle *t, const char *org, const char *user);

#endif
