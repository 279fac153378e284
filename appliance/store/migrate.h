/*
 * appliance/store/migrate.h — schema migration steps and an open entry that takes its own table.
 *
 * Not part of the public API: airmeshd opens the store with am_store_open(), which uses the
 * built-in table in store.c and AM_STORE_SCHEMA_VERSION. This header lets tests inject steps and a
 * target version to prove the migration hook runs (and rolls back) as designed. Visible only to
 * //appliance/store and //tests/unit.
 */
#ifndef AM_APPLIANCE_STORE_MIGRATE_H
#define AM_APPLIANCE_STORE_MIGRATE_H

#include <stdint.h>

#include "appliance/store/store.h"

/* One step: run on a store at schema `from`, leaving it at from + 1. It runs inside the opening
 * write transaction (am_txn_put/get/del/list work on t); return 0 or a -AM_E* code. Steps may run
 * more than once (the open is retried when the map has to grow), so they must be re-runnable. */
typedef struct {
    uint32_t from;
    const char *name; /* for the log: what the step does */
    int (*run)(am_txn *t);
} am_store_migration;

/* am_store_open() with an explicit migration table (terminated by an entry whose run is NULL) and
 * the schema version this caller supports. */
int am_store_open_with_migrations(const char *dir, am_store **out, int *created,
                                  const am_store_migration *steps, uint32_t target_version);

#endif
