/*
 * appliance/store/txn.c — transactions, records and map growth.
 *
 * How it works: a record lives under the key "org/id" in one named database; its value is the
 * protobuf-c packed message, written straight into the map with MDB_RESERVE. Listing an org is a
 * cursor range scan over the prefix "org/". am_store_update() wraps a callback in a write
 * transaction and, when LMDB reports MDB_MAP_FULL, aborts, doubles the map through the gate (see
 * private.h) and runs the callback again. MDB_MAP_RESIZED at begin (another process grew the map)
 * adopts the new size through the same gate.
 *
 * Ownership: am_txn is malloc'd by am_store_begin and freed by commit/abort. Unpacked messages
 * from get belong to the caller; those passed to list callbacks are freed here.
 * Threads: any thread; see store.h for which thread may use which transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "appliance/store/private.h"
#include "common/err.h"
#include "common/log.h"

#define KEY_MAX (2 * AM_STORE_ID_MAX + 2)
#define MAX_GROWTHS 16 /* 64 MiB doubled 16 times is far past AM_STORE_MAX_MAP */

/* The store whose write transaction this thread holds: LMDB's writer lock is not recursive, so a
 * second write begin on the same thread would deadlock; we refuse it instead. */
static _Thread_local const am_store *tl_writing;

/* ---- the gate ---- */

/* Take the gate shared; returns the map generation seen. Waits while a resize runs. */
static uint64_t gate_enter(am_store *s) {
    pthread_mutex_lock(&s->mu);
    while (s->growing)
        pthread_cond_wait(&s->cv, &s->mu);
    s->active++;
    uint64_t gen = s->map_gen;
    pthread_mutex_unlock(&s->mu);
    return gen;
}

static void gate_leave(am_store *s) {
    pthread_mutex_lock(&s->mu);
    if (--s->active == 0)
        pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Resize the map with no transaction of this process open: double it (adopt == 0) or take the size
 * another process recorded (adopt == 1, mdb_env_set_mapsize(env, 0)). If a resize already happened
 * since seen_gen, there is nothing to do: the caller just retries. */
static int gate_resize(am_store *s, uint64_t seen_gen, int adopt) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += AM_STORE_GROW_WAIT_MS / 1000;

    pthread_mutex_lock(&s->mu);
    while (s->growing)
        pthread_cond_wait(&s->cv, &s->mu);
    if (s->map_gen != seen_gen) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    s->growing = 1;
    while (s->active > 0) {
        int wrc = pthread_cond_timedwait(&s->cv, &s->mu, &deadline);
        if (wrc == ETIMEDOUT && s->active > 0) {
            s->growing = 0;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            return am_err_set(AM_EFULL,
                              "store: %s: map full and %u transaction(s) stayed open for %d s; "
                              "cannot grow (is a transaction held across am_store_update?)",
                              s->path, s->active, AM_STORE_GROW_WAIT_MS / 1000);
        }
    }

    int rc = 0;
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    size_t from = info.me_mapsize, to = 0;
    if (adopt) {
        rc = mdb_env_set_mapsize(s->env, 0);
    } else if (from >= AM_STORE_MAX_MAP) {
        rc = -1;
    } else {
        to = from * 2 > AM_STORE_MAX_MAP ? AM_STORE_MAX_MAP : from * 2;
        rc = mdb_env_set_mapsize(s->env, to);
    }
    if (rc == 0)
        s->map_gen++;
    s->growing = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);

    if (rc == -1)
        return am_err_set(AM_EFULL, "store: %s: map full at the %zu MiB limit", s->path,
                          (size_t)AM_STORE_MAX_MAP >> 20);
    if (rc)
        return am_store__mdb_err(s, rc, adopt ? "adopt map size" : "grow map");
    if (adopt) {
        mdb_env_info(s->env, &info);
        to = info.me_mapsize;
    }
    am_log_info("store", adopt ? "map size adopted" : "map grown",
                "path=%s from_mib=%zu to_mib=%zu", s->path, from >> 20, to >> 20);
    return 0;
}

/* ---- keys ---- */

static int check_part(const char *what, const char *v, int allow_empty) {
    if (!v)
        return am_err_set(AM_EINVAL, "store: %s is NULL", what);
    size_t n = strnlen(v, AM_STORE_ID_MAX + 1);
    if (n == 0 && !allow_empty)
        return am_err_set(AM_EINVAL, "store: %s is empty", what);
    if (n > AM_STORE_ID_MAX)
        return am_err_set(AM_EINVAL, "store: %s is longer than %d bytes", what, AM_STORE_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e)
            return am_err_set(AM_EINVAL, "store: %s has a non-printable byte 0x%02x at offset %zu",
                              what, c, i);
    }
    if (memchr(v, '/', n)) /* printable and short: safe to quote */
        return am_err_set(AM_EINVAL, "store: %s \"%s\" contains '/'", what, v);
    return 0;
}

/* Validate t/db/org/id and build "org/id" into key (KEY_MAX bytes). */
static int make_key(const am_txn *t, am_db db, const char *org, const char *id, char *key,
                    MDB_val *k) {
    if (!t)
        return am_err_set(AM_EINVAL, "store: transaction is NULL");
    if ((int)db < 0 || (int)db >= AM_DB__COUNT)
        return am_err_set(AM_EINVAL, "store: no database %d", (int)db);
    int rc = check_part("org id", org, 1);
    if (rc == 0 && id != NULL)
        rc = check_part("id", id, 0);
    else if (rc == 0)
        rc = am_err_set(AM_EINVAL, "store: id is NULL");
    if (rc)
        return rc;
    int n = snprintf(key, KEY_MAX, "%s/%s", org, id);
    if (n < 0 || n >= KEY_MAX)
        return am_err_set(AM_EINVAL, "store: key too long");
    k->mv_data = key;
    k->mv_size = (size_t)n;
    return 0;
}

static int check_desc(const ProtobufCMessageDescriptor *d) {
    if (!d || d->magic != PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC)
        return am_err_set(AM_EINVAL, "store: message descriptor is NULL or not a descriptor");
    return 0;
}

/* Map an LMDB error inside t, remembering MDB_MAP_FULL so am_store_update grows and re-runs. */
static int txn_err(am_txn *t, int rc, const char *what) {
    if (rc == MDB_MAP_FULL)
        t->map_full = 1;
    return am_store__mdb_err(t->s, rc, what);
}

/* ---- transactions ---- */

int am_store_begin(am_store *s, int write, am_txn **out) {
    if (out)
        *out = NULL;
    if (!s || !out)
        return am_err_set(AM_EINVAL, "store: begin: store or out is NULL");
    if (write && tl_writing == s)
        return am_err_set(AM_ESTATE,
                          "store: %s: a write transaction is already open on this "
                          "thread (nested am_store_update/am_store_put?)",
                          s->path);
    am_txn *t = calloc(1, sizeof *t);
    if (!t)
        return am_err_set(AM_ENOMEM, "store: begin: out of memory");
    t->s = s;
    t->write = write != 0;
    for (int tries = 0;; tries++) {
        t->gen = gate_enter(s);
        int rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
        if (rc == 0)
            break;
        gate_leave(s);
        if (rc == MDB_MAP_RESIZED && tries < 3) {
            int grc = gate_resize(s, t->gen, 1);
            if (grc == 0)
                continue;
            free(t);
            return grc;
        }
        free(t);
        return am_store__mdb_err(s, rc,
                                 write ? "begin write transaction" : "begin read transaction");
    }
    t->gated = 1;
    if (write)
        tl_writing = s;
    *out = t;
    return 0;
}

/* Commit (commit != 0) or abort t and free it; returns LMDB's code. */
static int txn_finish(am_txn *t, int commit) {
    int rc = 0;
    if (commit)
        rc = mdb_txn_commit(t->txn); /* frees the LMDB txn even when it fails */
    else
        mdb_txn_abort(t->txn);
    if (t->gated) {
        if (t->write)
            tl_writing = NULL;
        gate_leave(t->s);
    }
    free(t);
    return rc;
}

int am_txn_commit(am_txn *t) {
    if (!t)
        return am_err_set(AM_EINVAL, "store: commit: transaction is NULL");
    if (t->in_update)
        return am_err_set(AM_ESTATE, "store: commit inside am_store_update (return 0 instead)");
    am_store *s = t->s;
    int rc = txn_finish(t, 1);
    return rc ? am_store__mdb_err(s, rc, "commit") : 0;
}

void am_txn_abort(am_txn *t) {
    if (!t)
        return;
    if (t->in_update) {
        t->want_abort = 1; /* am_store_update aborts it when the callback returns */
        return;
    }
    txn_finish(t, 0);
}

/* ---- records ---- */

int am_txn_put(am_txn *t, am_db db, const char *org, const char *id, const ProtobufCMessage *msg) {
    char key[KEY_MAX];
    MDB_val k, v;
    int rc = make_key(t, db, org, id, key, &k);
    if (rc)
        return rc;
    if (!t->write)
        return am_err_set(AM_ESTATE, "store: put %s %s in a read transaction",
                          am_store__db_name(db), key);
    if (!msg || check_desc(msg->descriptor))
        return am_err_set(AM_EINVAL, "store: put %s %s: message is NULL or has no descriptor",
                          am_store__db_name(db), key);
    if (!protobuf_c_message_check(msg))
        return am_err_set(AM_EINVAL, "store: put %s %s: %s message is malformed",
                          am_store__db_name(db), key, msg->descriptor->name);
    size_t n = protobuf_c_message_get_packed_size(msg);
    v.mv_size = n;
    v.mv_data = NULL;
    rc = mdb_put(t->txn, t->s->dbi[db], &k, &v, MDB_RESERVE);
    if (rc) {
        char what[KEY_MAX + 32];
        snprintf(what, sizeof what, "put %s %s", am_store__db_name(db), key);
        return txn_err(t, rc, what);
    }
    if (n > 0 && protobuf_c_message_pack(msg, v.mv_data) != n)
        return am_err_set(AM_EIO, "store: put %s %s: packed size changed", am_store__db_name(db),
                          key);
    return 0;
}

int am_txn_get(am_txn *t, am_db db, const char *org, const char *id,
               const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out) {
    char key[KEY_MAX];
    MDB_val k, v;
    if (out)
        *out = NULL;
    int rc = make_key(t, db, org, id, key, &k);
    if (rc)
        return rc;
    if (!out)
        return am_err_set(AM_EINVAL, "store: get %s %s: out is NULL", am_store__db_name(db), key);
    if ((rc = check_desc(desc)) != 0)
        return rc;
    rc = mdb_get(t->txn, t->s->dbi[db], &k, &v);
    if (rc == MDB_NOTFOUND)
        return am_err_set(AM_ENOTFOUND, "store: %s %s not found", am_store__db_name(db), key);
    if (rc) {
        char what[KEY_MAX + 32];
        snprintf(what, sizeof what, "get %s %s", am_store__db_name(db), key);
        return txn_err(t, rc, what);
    }
    *out = protobuf_c_message_unpack(desc, NULL, v.mv_size, v.mv_data);
    if (!*out)
        return am_err_set(AM_ECORRUPT, "store: %s %s does not decode as %s", am_store__db_name(db),
                          key, desc->name);
    return 0;
}

int am_txn_del(am_txn *t, am_db db, const char *org, const char *id) {
    char key[KEY_MAX];
    MDB_val k;
    int rc = make_key(t, db, org, id, key, &k);
    if (rc)
        return rc;
    if (!t->write)
        return am_err_set(AM_ESTATE, "store: delete %s %s in a read transaction",
                          am_store__db_name(db), key);
    rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return am_err_set(AM_ENOTFOUND, "store: %s %s not found", am_store__db_name(db), key);
    if (rc) {
        char what[KEY_MAX + 32];
        snprintf(what, sizeof what, "delete %s %s", am_store__db_name(db), key);
        return txn_err(t, rc, what);
    }
    return 0;
}

int am_txn_list(am_txn *t, am_db db, const char *org, const ProtobufCMessageDescriptor *desc,
                am_store_list_fn fn, void *ud) {
    char prefix[KEY_MAX];
    MDB_val k, v;
    /* make_key validates org with a placeholder id; then the prefix is "org/". */
    int rc = make_key(t, db, org, "x", prefix, &k);
    if (rc)
        return rc;
    if ((rc = check_desc(desc)) != 0)
        return rc;
    if (!fn)
        return am_err_set(AM_EINVAL, "store: list %s: callback is NULL", am_store__db_name(db));
    size_t plen = k.mv_size - 1;
    prefix[plen] = '\0'; /* "org/" */

    MDB_cursor *c;
    rc = mdb_cursor_open(t->txn, t->s->dbi[db], &c);
    if (rc)
        return txn_err(t, rc, "open cursor");
    k.mv_data = prefix;
    k.mv_size = plen;
    int op = MDB_SET_RANGE;
    for (;;) {
        rc = mdb_cursor_get(c, &k, &v, op);
        op = MDB_NEXT;
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc) {
            rc = txn_err(t, rc, "list");
            break;
        }
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break; /* past this org */
        char id[AM_STORE_ID_MAX + 1];
        size_t idlen = k.mv_size - plen;
        if (idlen == 0 || idlen > AM_STORE_ID_MAX) {
            rc = am_err_set(AM_ECORRUPT, "store: %s: a key under \"%s\" has a bad id length %zu",
                            am_store__db_name(db), prefix, idlen);
            break;
        }
        memcpy(id, (const char *)k.mv_data + plen, idlen);
        id[idlen] = '\0';
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, v.mv_size, v.mv_data);
        if (!m) {
            rc = am_err_set(AM_ECORRUPT, "store: %s %s%s does not decode as %s",
                            am_store__db_name(db), prefix, id, desc->name);
            break;
        }
        int frc = fn(ud, id, m);
        protobuf_c_message_free_unpacked(m, NULL);
        if (frc) {
            rc = frc < 0 ? frc : 0;
            break;
        }
    }
    mdb_cursor_close(c);
    return rc;
}

/* ---- update ---- */

int am_store_update(am_store *s, am_store_update_fn fn, void *ud) {
    if (!s || !fn)
        return am_err_set(AM_EINVAL, "store: update: store or callback is NULL");
    for (int growths = 0;; growths++) {
        am_txn *t;
        int rc = am_store_begin(s, 1, &t);
        if (rc)
            return rc;
        uint64_t gen = t->gen;
        t->in_update = 1;
        int frc = fn(t, ud);
        int full = t->map_full, want_abort = t->want_abort;
        if (frc == 0 && !full && !want_abort) {
            int mrc = txn_finish(t, 1);
            if (mrc == 0)
                return 0;
            if (mrc != MDB_MAP_FULL)
                return am_store__mdb_err(s, mrc, "commit");
        } else {
            txn_finish(t, 0);
            if (!full && frc)
                return frc;
            if (!full)
                return am_err_set(AM_ESTATE, "store: update callback aborted its transaction "
                                             "but returned 0");
        }
        if (growths >= MAX_GROWTHS)
            return am_err_set(AM_EFULL, "store: %s: still full after %d growths", s->path, growths);
        if ((rc = gate_resize(s, gen, 0)) != 0)
            return rc;
    }
}

typedef struct {
    am_db db;
    const char *org, *id;
    const ProtobufCMessage *msg;
} put_ctx;

static int put_one(am_txn *t, void *ud) {
    put_ctx *p = ud;
    return am_txn_put(t, p->db, p->org, p->id, p->msg);
}

int am_store_put(am_store *s, am_db db, const char *org, const char *id,
                 const ProtobufCMessage *msg) {
    put_ctx p = {db, org, id, msg};
    return am_store_update(s, put_one, &p);
}

int am_store_get(am_store *s, am_db db, const char *org, const char *id,
                 const ProtobufCMessageDescriptor *d, ProtobufCMessage **out) {
    if (out)
        *out = NULL;
    am_txn *t;
    int rc = am_store_begin(s, 0, &t);
    if (rc)
        return rc;
    rc = am_txn_get(t, db, org, id, d, out);
    am_txn_abort(t);
    return rc;
}
