/*
 * appliance/store/private.h — what store.c (environment, meta, migrations) and txn.c
 * (transactions, records, map growth) share. Not installed for other modules.
 *
 * The gate: mdb_env_set_mapsize() may only run when no transaction of this process is open. Every
 * transaction holds the gate shared from begin to end; growing the map takes it exclusive. It is a
 * mutex + condition variable rather than a pthread rwlock because read transactions (MDB_NOTLS)
 * may legitimately end on another thread than the one that began them, which a rwlock forbids, and
 * because growth must be able to give up (timed wait) instead of deadlocking when a thread that
 * holds a transaction asks for growth.
 */
#ifndef AM_APPLIANCE_STORE_PRIVATE_H
#define AM_APPLIANCE_STORE_PRIVATE_H

#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>

#include "appliance/store/store.h"

#define AM_STORE_INITIAL_MAP ((size_t)64 << 20) /* 64 MiB */
#define AM_STORE_MAX_MAP ((size_t)1 << 40)      /* 1 TiB: past this, growth reports -AM_EFULL */
#define AM_STORE_MAX_READERS 256
#define AM_STORE_GROW_WAIT_MS 10000 /* how long growth waits for open transactions to end */

struct am_store {
    MDB_env *env;
    MDB_dbi dbi[AM_DB__COUNT];
    char path[PATH_MAX]; /* DIR/state, for messages */
    char store_id[65];

    pthread_mutex_t mu; /* guards the gate fields below */
    pthread_cond_t cv;  /* signalled when active drops to 0 or growing ends */
    unsigned active;    /* transactions open in this process */
    int growing;        /* a resize is waiting for, or running with, active == 0 */
    uint64_t map_gen;   /* bumped after every resize */
};

struct am_txn {
    am_store *s;
    MDB_txn *txn;
    uint64_t gen;   /* map_gen when the transaction began */
    int write;      /* 1 for a write transaction */
    int in_update;  /* owned by am_store_update / the opening migration: no commit/abort */
    int map_full;   /* an LMDB call reported MDB_MAP_FULL: the txn is dead, grow and re-run */
    int want_abort; /* am_txn_abort was called inside am_store_update */
    int gated;      /* holds the gate (0 for the migration txn built by store.c) */
};

/* Name of a database ("users"), or "?" for an out-of-range value. */
const char *am_store__db_name(am_db db);

/* Map an LMDB return code to -AM_E* with "store: <path>: <what>: <mdb_strerror>". */
int am_store__mdb_err(const am_store *s, int rc, const char *what);

#endif
