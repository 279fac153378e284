/*
 * appliance/store — the appliance's state store: one LMDB environment in DIR/state with one named
 * database per entity (see ARCHITECTURE.md §5).
 *
 * What it owns: the LMDB environment, its named databases and the "schema" record in the meta
 * database (StoreMeta: schema version, random store id, creation time, app = "airmesh"). Records
 * are keyed "org_id/entity_id" so every read is org-scoped by construction; org "" holds global
 * records (e.g. sessions keyed by token hash). Values are protobuf-c packed messages. Ids are
 * validated: id non-empty, org and id at most 128 printable ASCII bytes without '/'.
 *
 * Writing: every writer should write through am_store_update(). It runs the callback in one write
 * transaction and, when the map is full, grows it (doubling) and runs the callback again from the
 * start, so callbacks must be re-runnable (no side effects outside the transaction, or idempotent
 * ones). Commits keep LMDB's default durability (fsync on commit).
 *
 * Threads: every call may be made from any thread. A store is shared by all threads of a process;
 * open it once. A write transaction belongs to the thread that began it (LMDB's writer lock) and
 * only one is open at a time (others wait in am_store_begin). Read transactions are not tied to a
 * thread (the environment uses MDB_NOTLS) but one transaction must not be used by two threads at
 * the same time. Do not call am_store_update()/am_store_put() or begin a write transaction while
 * the same thread holds another transaction: a nested write is refused with -AM_ESTATE (LMDB's
 * writer lock is not recursive), and map growth waits for every open transaction of the process
 * (it gives up after 10 s with -AM_EFULL).
 *
 * Ownership: am_store_open/am_store_close; am_store_begin's transaction is freed by
 * am_txn_commit/am_txn_abort (never by am_store_update's callback). Messages returned by
 * am_txn_get/am_store_get belong to the caller: protobuf_c_message_free_unpacked(m, NULL). Messages
 * passed to list callbacks are freed by the store when the callback returns.
 *
 * Errors: 0 or -AM_E* with am_err_last() describing what failed: -AM_EINVAL bad argument or id,
 * -AM_ENOTFOUND no such record, -AM_ECORRUPT not an airmesh store / not an LMDB file / a record
 * that does not decode / a newer schema, -AM_EFULL map could not grow or reader table full,
 * -AM_ESTATE misuse (write in a read transaction), -AM_EIO operating-system or LMDB failure.
 */
#ifndef AM_APPLIANCE_STORE_H
#define AM_APPLIANCE_STORE_H

#include <protobuf-c/protobuf-c.h>

typedef struct am_store am_store;

typedef enum {
    AM_DB_META,
    AM_DB_ORGS,
    AM_DB_TEAMS,
    AM_DB_USERS,
    AM_DB_SESSIONS,
    AM_DB_RUNNERS,
    AM_DB_TOKENS,
    AM_DB_REVOKED,
    AM_DB_PODS,
    AM_DB_TICKETS,
    AM_DB_CHANNELS,
    AM_DB_MESSAGES,
    AM_DB_BINDINGS,
    AM_DB_MODELS, /* ModelEndpoint, "org/<name>" */
    AM_DB_USAGE,  /* ModelUsage, "org/<scope>" */
    AM_DB__COUNT
} am_db;

/* The schema this binary writes. Older stores are migrated at open; newer ones are refused. */
#define AM_STORE_SCHEMA_VERSION 1

/* Longest org or entity id, in bytes. */
#define AM_STORE_ID_MAX 128

/* Open (creating if needed, mode 0700) the store in DIR/state. *created (may be NULL) is set to 1
 * when a new store was initialised. Refuses an environment that is not an airmesh store, was
 * written by a newer airmesh, or is not an LMDB file; never re-initialises existing data. */
int am_store_open(const char *dir, am_store **out, int *created);
/* Close the store. Every transaction must have been ended. NULL is ignored. */
void am_store_close(am_store *s);
/* The store's random id (32 hex characters), fixed at creation. Valid until am_store_close. */
const char *am_store_id(const am_store *s);

typedef struct am_txn am_txn;

/* Begin a transaction: write != 0 for a write transaction (waits for the single writer), else a
 * read-only snapshot (MDB_RDONLY; MDB_NOTLS so it is not tied to the thread). */
int am_store_begin(am_store *s, int write, am_txn **out);
/* Commit and free t. A failed commit is rolled back and t is still freed. */
int am_txn_commit(am_txn *t);
/* Roll back and free t. NULL is ignored. */
void am_txn_abort(am_txn *t);

/* Store msg (packed) under "org/id" in db, replacing any previous value. Write transactions only.
 */
int am_txn_put(am_txn *t, am_db db, const char *org, const char *id, const ProtobufCMessage *msg);
/* Read and unpack "org/id" from db as desc. -AM_ENOTFOUND when absent. The caller frees *out with
 * protobuf_c_message_free_unpacked(*out, NULL). */
int am_txn_get(am_txn *t, am_db db, const char *org, const char *id,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
/* Delete "org/id" from db. -AM_ENOTFOUND when absent. Write transactions only. */
int am_txn_del(am_txn *t, am_db db, const char *org, const char *id);

/* Called once per record of one org, in key order. msg is freed by the store after the call. Return
 * 0 to continue, a positive value to stop (am_txn_list returns 0), or a negative -AM_E* code to
 * stop with that error (am_txn_list returns it). The callback may write through the same write
 * transaction. */
typedef int (*am_store_list_fn)(void *ud, const char *id, const ProtobufCMessage *msg);
/* Visit every record of org (only org: "a" never sees "ab/..." or "b/...") in db. */
int am_txn_list(am_txn *t, am_db db, const char *org, const ProtobufCMessageDescriptor *desc,
                am_store_list_fn fn, void *ud);

/* Run fn inside one write transaction: commits when fn returns 0, otherwise aborts and returns
 * fn's code. When LMDB reports a full map (at a put, a delete or the commit) the store grows the
 * map (doubling) and runs fn again from the start, so fn must be re-runnable. fn must not commit
 * or abort t itself. This is how every writer should write. */
typedef int (*am_store_update_fn)(am_txn *t, void *ud);
int am_store_update(am_store *s, am_store_update_fn fn, void *ud);

/* A step a domain module runs last inside its write transaction, on success only (appliance/ops
 * appends the audit record there, so a failed append aborts the whole change). It runs again
 * when am_store_update re-runs the transaction, so it must be re-runnable too. NULL = none. */
typedef struct {
    int (*fn)(am_txn *t, void *ud);
    void *ud;
} am_txn_hook;
static inline int am_txn_hook_run(const am_txn_hook *h, am_txn *t) {
    return h && h->fn ? h->fn(t, h->ud) : 0;
}

/* Single-record convenience wrappers: one write transaction (through am_store_update) or one read
 * transaction each. */
int am_store_put(am_store *s, am_db db, const char *org, const char *id,
                 const ProtobufCMessage *msg);
int am_store_get(am_store *s, am_db db, const char *org, const char *id,
                 const ProtobufCMessageDescriptor *d, ProtobufCMessage **out);

/* Migrations: appliance/store/store.c holds the table (k_migrations) of steps from schema N to N+1.
 * At open, a store older than AM_STORE_SCHEMA_VERSION runs them all in the opening write
 * transaction (each step is logged); a failing step leaves the store untouched and fails the open.
 */

#endif
