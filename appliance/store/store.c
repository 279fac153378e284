/*
 * appliance/store/store.c — opening the LMDB environment, checking what it holds, migrations.
 *
 * Open is one linear sequence, each failure naming its step: create DIR/state (0700) → create and
 * open the environment (MDB_NOTLS, named databases, sane reader table) → clear reader slots left
 * by dead processes → make the map at least 64 MiB → in one write transaction, read meta "schema"
 * and decide: an empty environment is initialised; meta missing while anything else exists, a
 * foreign app or a newer schema is refused; an older schema runs the migration steps; then every
 * named database is opened. Existing data is never re-initialised.
 *
 * Ownership: am_store is malloc'd here and freed by am_store_close, which also closes the env.
 * Threads: open/close from one thread while no other thread uses the store (start-up/shutdown).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/store/migrate.h"
#include "appliance/store/private.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

#define APP_NAME "airmesh"
#define META_KEY "schema"

/* Schema migrations, oldest first: {from, "what it does", fn} takes a store at `from` to from + 1.
 * Schema 1 is the first: there are none yet. Keep the terminating entry. */
static const am_store_migration k_migrations[] = {
    {0, NULL, NULL},
};

static const char *const k_db_names[AM_DB__COUNT] = {
    [AM_DB_META] = "meta",         [AM_DB_ORGS] = "orgs",         [AM_DB_TEAMS] = "teams",
    [AM_DB_USERS] = "users",       [AM_DB_SESSIONS] = "sessions", [AM_DB_RUNNERS] = "runners",
    [AM_DB_TOKENS] = "tokens",     [AM_DB_REVOKED] = "revoked",   [AM_DB_PODS] = "pods",
    [AM_DB_TICKETS] = "tickets",   [AM_DB_CHANNELS] = "channels", [AM_DB_MESSAGES] = "messages",
    [AM_DB_BINDINGS] = "bindings", [AM_DB_MODELS] = "models",     [AM_DB_USAGE] = "usage",
};

const char *am_store__db_name(am_db db) {
    return (int)db >= 0 && (int)db < AM_DB__COUNT ? k_db_names[db] : "?";
}

int am_store__mdb_err(const am_store *s, int rc, const char *what) {
    int code = AM_EIO;
    switch (rc) {
    case MDB_NOTFOUND:
        code = AM_ENOTFOUND;
        break;
    case MDB_KEYEXIST:
        code = AM_EEXISTS;
        break;
    case MDB_MAP_FULL:
    case MDB_READERS_FULL:
    case MDB_DBS_FULL:
    case MDB_TXN_FULL:
        code = AM_EFULL;
        break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        code = AM_ECORRUPT;
        break;
    case ENOMEM:
        code = AM_ENOMEM;
        break;
    }
    return am_err_set(code, "store: %s: %s: %s", s->path, what, mdb_strerror(rc));
}

const char *am_store_id(const am_store *s) {
    return s ? s->store_id : "";
}

/* Copy untrusted text for a message: printable ASCII only, at most cap - 1 bytes. */
static const char *printable(char *buf, size_t cap, const char *s) {
    size_t i = 0;
    for (; s && s[i] && i + 1 < cap; i++)
        buf[i] = (s[i] >= 0x20 && s[i] <= 0x7e) ? s[i] : '?';
    buf[i] = '\0';
    return buf;
}

static int put_meta(am_store *s, MDB_txn *txn, const Airmesh__V1__StoreMeta *meta) {
    uint8_t buf[256];
    size_t n = airmesh__v1__store_meta__get_packed_size(meta);
    if (n > sizeof buf)
        return am_err_set(AM_EINVAL, "store: %s: meta record too large", s->path);
    airmesh__v1__store_meta__pack(meta, buf);
    MDB_val k = {strlen(META_KEY), META_KEY}, v = {n, buf};
    int rc = mdb_put(txn, s->dbi[AM_DB_META], &k, &v, 0);
    return rc ? am_store__mdb_err(s, rc, "write meta") : 0;
}

static int open_all_dbs(am_store *s, MDB_txn *txn) {
    for (int i = 0; i < AM_DB__COUNT; i++) {
        int rc = mdb_dbi_open(txn, k_db_names[i], MDB_CREATE, &s->dbi[i]);
        if (rc) {
            char what[64];
            snprintf(what, sizeof what, "open database %s", k_db_names[i]);
            return am_store__mdb_err(s, rc, what);
        }
    }
    return 0;
}

/* A new environment: create every database and write the meta record. */
static int init_new(am_store *s, MDB_txn *txn) {
    int rc = open_all_dbs(s, txn);
    if (rc)
        return rc;
    uint8_t raw[16];
    if ((rc = am_random(raw, sizeof raw)) != 0)
        return rc;
    am_hex(raw, sizeof raw, s->store_id);
    Airmesh__V1__StoreMeta meta = AIRMESH__V1__STORE_META__INIT;
    meta.schema_version = AM_STORE_SCHEMA_VERSION;
    meta.store_id = s->store_id;
    meta.created_ms = am_now_ms();
    meta.app = APP_NAME;
    return put_meta(s, txn, &meta);
}

/* Run the steps from meta->schema_version up to target inside txn, then record target. */
static int migrate(am_store *s, MDB_txn *txn, Airmesh__V1__StoreMeta *meta,
                   const am_store_migration *steps, uint32_t target, int *map_full) {
    am_txn mt = {.s = s, .txn = txn, .write = 1, .in_update = 1};
    for (uint32_t v = meta->schema_version; v < target; v++) {
        const am_store_migration *step = steps;
        while (step->run && step->from != v)
            step++;
        if (!step->run)
            return am_err_set(AM_ECORRUPT, "store: %s: no migration from schema %u to %u", s->path,
                              v, v + 1);
        am_log_info("store", "migrating schema", "path=%s from=%u to=%u step=\"%s\"", s->path, v,
                    v + 1, step->name ? step->name : "");
        int rc = step->run(&mt);
        if (mt.map_full) {
            *map_full = 1;
            return am_err_set(AM_EFULL, "store: %s: map full during migration", s->path);
        }
        if (rc || mt.want_abort) {
            char why[256];
            printable(why, sizeof why, rc ? am_err_last() : "step aborted");
            return am_err_set(rc ? -rc : AM_ESTATE, "store: %s: migration %u to %u (%s) failed: %s",
                              s->path, v, v + 1, step->name ? step->name : "", why);
        }
    }
    meta->schema_version = target;
    return put_meta(s, txn, meta);
}

/* Check (and if needed initialise or migrate) the environment in one write transaction. */
static int check_env(am_store *s, const am_store_migration *steps, uint32_t target, int *created,
                     int *map_full) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc)
        return am_store__mdb_err(s, rc, "begin open transaction");
    Airmesh__V1__StoreMeta *meta = NULL;
    MDB_dbi main_dbi;
    MDB_stat st;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
        (rc = mdb_stat(txn, main_dbi, &st)) != 0) {
        rc = am_store__mdb_err(s, rc, "read main database");
        goto out;
    }
    rc = mdb_dbi_open(txn, k_db_names[AM_DB_META], 0, &s->dbi[AM_DB_META]);
    if (rc == MDB_NOTFOUND && st.ms_entries == 0) {
        if ((rc = init_new(s, txn)) == 0)
            *created = 1;
        goto out;
    }
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
        rc = am_err_set(AM_ECORRUPT, "store: %s: not an airmesh store (meta missing)", s->path);
        goto out;
    }
    if (rc) {
        rc = am_store__mdb_err(s, rc, "open database meta");
        goto out;
    }
    MDB_val k = {strlen(META_KEY), META_KEY}, v;
    rc = mdb_get(txn, s->dbi[AM_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND) {
        rc = am_err_set(AM_ECORRUPT, "store: %s: not an airmesh store (meta missing)", s->path);
        goto out;
    }
    if (rc) {
        rc = am_store__mdb_err(s, rc, "read meta");
        goto out;
    }
    meta = airmesh__v1__store_meta__unpack(NULL, v.mv_size, v.mv_data);
    if (!meta) {
        rc = am_err_set(AM_ECORRUPT, "store: %s: not an airmesh store (meta unreadable)", s->path);
        goto out;
    }
    char text[64];
    if (!meta->app || strcmp(meta->app, APP_NAME) != 0) {
        rc = am_err_set(AM_ECORRUPT, "store: %s: not an airmesh store (app \"%s\")", s->path,
                        printable(text, sizeof text, meta->app));
        goto out;
    }
    if (meta->schema_version > target) {
        rc = am_err_set(AM_ECORRUPT, "store: %s: written by a newer airmesh (schema %u > %u)",
                        s->path, meta->schema_version, target);
        goto out;
    }
    printable(s->store_id, sizeof s->store_id, meta->store_id);
    if ((rc = open_all_dbs(s, txn)) != 0)
        goto out;
    if (meta->schema_version < target)
        rc = migrate(s, txn, meta, steps, target, map_full);

out:
    if (meta)
        airmesh__v1__store_meta__free_unpacked(meta, NULL);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    rc = mdb_txn_commit(txn);
    if (rc == MDB_MAP_FULL)
        *map_full = 1;
    return rc ? am_store__mdb_err(s, rc, "commit open transaction") : 0;
}

static int open_env(am_store *s) {
    int rc = mdb_env_create(&s->env);
    if (rc)
        return am_store__mdb_err(s, rc, "create environment");
    if ((rc = mdb_env_set_maxdbs(s->env, AM_DB__COUNT + 3)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, AM_STORE_MAX_READERS)) != 0)
        return am_store__mdb_err(s, rc, "configure environment");
    rc = mdb_env_open(s->env, s->path, MDB_NOTLS, 0600);
    if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
        return am_err_set(AM_ECORRUPT, "store: %s/data.mdb: not an LMDB file (corrupt or foreign)",
                          s->path);
    if (rc)
        return am_err_set(AM_EIO, "store: open %s: %s", s->path, mdb_strerror(rc));
    int dead = 0;
    mdb_reader_check(s->env, &dead);
    if (dead > 0)
        am_log_info("store", "cleared stale readers", "path=%s count=%d", s->path, dead);
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    if (info.me_mapsize < AM_STORE_INITIAL_MAP &&
        (rc = mdb_env_set_mapsize(s->env, AM_STORE_INITIAL_MAP)) != 0)
        return am_store__mdb_err(s, rc, "set map size");
    return 0;
}

int am_store_open_with_migrations(const char *dir, am_store **out, int *created,
                                  const am_store_migration *steps, uint32_t target_version) {
    int made = 0;
    if (created)
        *created = 0;
    if (out)
        *out = NULL;
    if (!dir || !*dir || !out || !steps)
        return am_err_set(AM_EINVAL, "store: open: dir, out or steps is NULL or empty");
    am_store *s = calloc(1, sizeof *s);
    if (!s)
        return am_err_set(AM_ENOMEM, "store: open: out of memory");
    int n = snprintf(s->path, sizeof s->path, "%s/state", dir);
    if (n < 0 || n >= (int)sizeof s->path) {
        free(s);
        return am_err_set(AM_EINVAL, "store: open %s: path too long", dir);
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);

    int rc = am_mkdir_p(s->path, 0700);
    if (rc) {
        char why[512];
        snprintf(why, sizeof why, "%s", am_err_last());
        rc = am_err_set(-rc, "store: %s", why);
        goto fail;
    }
    if ((rc = open_env(s)) != 0)
        goto fail;
    for (int growths = 0;; growths++) {
        int map_full = 0;
        rc = check_env(s, steps, target_version, &made, &map_full);
        if (rc == 0 || !map_full || growths >= 16)
            break;
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        int mrc = mdb_env_set_mapsize(s->env, info.me_mapsize * 2);
        if (mrc) {
            rc = am_store__mdb_err(s, mrc, "grow map");
            break;
        }
    }
    if (rc)
        goto fail;
    if (created)
        *created = made;
    *out = s;
    return 0;
fail:
    am_store_close(s);
    return rc;
}

int am_store_open(const char *dir, am_store **out, int *created) {
    return am_store_open_with_migrations(dir, out, created, k_migrations, AM_STORE_SCHEMA_VERSION);
}

void am_store_close(am_store *s) {
    if (!s)
        return;
    if (s->env)
        mdb_env_close(s->env);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
