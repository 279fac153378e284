/*
 * tests/unit/store_test.c — unit tests for appliance/store (the LMDB state store).
 *
 * Each test opens a store in its own directory under $TEST_TMPDIR (fallback /tmp) and removes it
 * afterwards. Foreign and damaged environments are built with raw LMDB calls so the refusals are
 * tested against real files. The crash test lives in store_crash_test.c.
 * Threads: single-threaded except test_map_grows_when_full, which holds a read snapshot on a
 * second thread while the map grows.
 */
/* cmocka.h needs these first, in this order. */
// clang-format off
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
// clang-format on

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/store/migrate.h"
#include "appliance/store/store.h"
#include "common/err.h"

/* ---- helpers ---- */

static void make_tmpdir(char *out, size_t cap) {
    const char *base = getenv("TEST_TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    int n = snprintf(out, cap, "%s/store_test.XXXXXX", base);
    assert_true(n > 0 && (size_t)n < cap);
    assert_non_null(mkdtemp(out));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

static void rm_tree(const char *dir) {
    chmod(dir, 0700);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Fail with the store's message when `rc` is not `want`. */
#define expect_rc(rc, want)                                                                        \
    do {                                                                                           \
        int rc_ = (rc);                                                                            \
        if (rc_ != (want))                                                                         \
            fail_msg("%s = %d (%s), want %d; last error: %s", #rc, rc_, am_err_name(rc_), (want),  \
                     am_err_last());                                                               \
    } while (0)

#define expect_msg(needle)                                                                         \
    do {                                                                                           \
        if (!strstr(am_err_last(), (needle)))                                                      \
            fail_msg("error \"%s\" does not contain \"%s\"", am_err_last(), (needle));             \
    } while (0)

static void put_kv(am_store *s, am_db db, const char *org, const char *id, const char *value) {
    Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
    kv.id = (char *)id;
    kv.value.data = (uint8_t *)value;
    kv.value.len = strlen(value);
    expect_rc(am_store_put(s, db, org, id, &kv.base), 0);
}

/* Read a KV's value as a string into buf ("" when empty). */
static int get_kv(am_store *s, am_db db, const char *org, const char *id, char *buf, size_t cap) {
    ProtobufCMessage *m = NULL;
    int rc = am_store_get(s, db, org, id, &airmesh__v1__kv__descriptor, &m);
    if (rc) {
        assert_null(m);
        return rc;
    }
    Airmesh__V1__KV *kv = (Airmesh__V1__KV *)m;
    assert_true(kv->value.len < cap);
    if (kv->value.len)
        memcpy(buf, kv->value.data, kv->value.len);
    buf[kv->value.len] = '\0';
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}

/* Write a raw record into an LMDB environment at dir/state (creating it), outside the store. */
static void raw_put(const char *dir, const char *dbname, const char *key, const void *val,
                    size_t len) {
    char path[512];
    snprintf(path, sizeof path, "%s/state", dir);
    mkdir(path, 0700);
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
    assert_int_equal(mdb_env_open(env, path, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, dbname, MDB_CREATE, &dbi), 0);
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void raw_put_meta(const char *dir, const char *app, uint32_t version) {
    Airmesh__V1__StoreMeta meta = AIRMESH__V1__STORE_META__INIT;
    meta.schema_version = version;
    meta.store_id = "00112233445566778899aabbccddeeff";
    meta.app = (char *)app;
    uint8_t buf[128];
    size_t n = airmesh__v1__store_meta__pack(&meta, buf);
    raw_put(dir, "meta", "schema", buf, n);
}

/* ---- tests ---- */

static void test_put_get_roundtrip(void **state) {
    (void)state;
    char dir[512], val[64];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    int created = -1;
    expect_rc(am_store_open(dir, &s, &created), 0);
    assert_int_equal(created, 1);

    Airmesh__V1__User u = AIRMESH__V1__USER__INIT;
    u.id = "alice";
    u.org_id = "acme";
    u.name = "Alice";
    u.role = AIRMESH__V1__ROLE__ROLE_ADMIN;
    u.created_ms = 1234567890123u;
    u.failed_logins = 3;
    expect_rc(am_store_put(s, AM_DB_USERS, "acme", "alice", &u.base), 0);
    ProtobufCMessage *m = NULL;
    expect_rc(am_store_get(s, AM_DB_USERS, "acme", "alice", &airmesh__v1__user__descriptor, &m), 0);
    Airmesh__V1__User *got = (Airmesh__V1__User *)m;
    assert_string_equal(got->id, "alice");
    assert_string_equal(got->org_id, "acme");
    assert_string_equal(got->name, "Alice");
    assert_int_equal(got->role, AIRMESH__V1__ROLE__ROLE_ADMIN);
    assert_int_equal(got->created_ms, 1234567890123u);
    assert_int_equal(got->failed_logins, 3);
    protobuf_c_message_free_unpacked(m, NULL);

    /* Overwrite replaces; an all-default message packs to zero bytes and still round-trips. */
    put_kv(s, AM_DB_PODS, "acme", "p1", "first");
    put_kv(s, AM_DB_PODS, "acme", "p1", "second");
    expect_rc(get_kv(s, AM_DB_PODS, "acme", "p1", val, sizeof val), 0);
    assert_string_equal(val, "second");
    Airmesh__V1__KV empty = AIRMESH__V1__KV__INIT;
    expect_rc(am_store_put(s, AM_DB_PODS, "", "empty", &empty.base), 0);
    expect_rc(get_kv(s, AM_DB_PODS, "", "empty", val, sizeof val), 0);
    assert_string_equal(val, "");

    /* Same key in another database is another record. */
    expect_rc(get_kv(s, AM_DB_TICKETS, "acme", "p1", val, sizeof val), -AM_ENOTFOUND);

    /* Explicit transactions: delete, and a read transaction refuses writes. */
    am_txn *t;
    expect_rc(am_store_begin(s, 1, &t), 0);
    expect_rc(am_txn_del(t, AM_DB_PODS, "acme", "p1"), 0);
    expect_rc(am_txn_commit(t), 0);
    expect_rc(get_kv(s, AM_DB_PODS, "acme", "p1", val, sizeof val), -AM_ENOTFOUND);
    expect_rc(am_store_begin(s, 0, &t), 0);
    expect_rc(am_txn_put(t, AM_DB_PODS, "acme", "p2", &empty.base), -AM_ESTATE);
    expect_rc(am_txn_del(t, AM_DB_PODS, "", "empty"), -AM_ESTATE);
    am_txn_abort(t);

    am_store_close(s);
    rm_tree(dir);
}

typedef struct {
    char ids[16][32];
    int n;
    int stop_at; /* stop after this many records, returning stop_rc */
    int stop_rc;
} collect_ctx;

static int collect(void *ud, const char *id, const ProtobufCMessage *msg) {
    collect_ctx *c = ud;
    const Airmesh__V1__KV *kv = (const Airmesh__V1__KV *)msg;
    assert_string_equal(kv->id, id);
    assert_true(c->n < 16);
    snprintf(c->ids[c->n++], sizeof c->ids[0], "%s", id);
    if (c->stop_at && c->n == c->stop_at)
        return c->stop_rc;
    return 0;
}

static void list_org(am_store *s, const char *org, collect_ctx *c) {
    am_txn *t;
    expect_rc(am_store_begin(s, 0, &t), 0);
    expect_rc(am_txn_list(t, AM_DB_CHANNELS, org, &airmesh__v1__kv__descriptor, collect, c), 0);
    am_txn_abort(t);
}

static void test_keys_are_org_scoped(void **state) {
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    put_kv(s, AM_DB_CHANNELS, "a", "x2", "v");
    put_kv(s, AM_DB_CHANNELS, "a", "x1", "v");
    put_kv(s, AM_DB_CHANNELS, "ab", "y1", "v");
    put_kv(s, AM_DB_CHANNELS, "b", "z1", "v");
    put_kv(s, AM_DB_CHANNELS, "", "g1", "v");
    put_kv(s, AM_DB_USERS, "a", "other-db", "v");

    collect_ctx c = {0};
    list_org(s, "a", &c);
    assert_int_equal(c.n, 2); /* not "ab/y1", not "b/z1", not the users db */
    assert_string_equal(c.ids[0], "x1");
    assert_string_equal(c.ids[1], "x2");

    memset(&c, 0, sizeof c);
    list_org(s, "ab", &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "y1");

    memset(&c, 0, sizeof c);
    list_org(s, "", &c);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.ids[0], "g1");

    memset(&c, 0, sizeof c);
    list_org(s, "nobody", &c);
    assert_int_equal(c.n, 0);

    /* A positive return stops quietly; a negative one stops with that error. */
    memset(&c, 0, sizeof c);
    c.stop_at = 1;
    c.stop_rc = 1;
    list_org(s, "a", &c);
    assert_int_equal(c.n, 1);
    memset(&c, 0, sizeof c);
    c.stop_at = 1;
    c.stop_rc = -AM_EAUTH;
    am_txn *t;
    expect_rc(am_store_begin(s, 0, &t), 0);
    expect_rc(am_txn_list(t, AM_DB_CHANNELS, "a", &airmesh__v1__kv__descriptor, collect, &c),
              -AM_EAUTH);
    assert_int_equal(c.n, 1);
    am_txn_abort(t);

    /* Same id under two orgs: two records. */
    char val[16];
    put_kv(s, AM_DB_CHANNELS, "b", "x1", "from-b");
    expect_rc(get_kv(s, AM_DB_CHANNELS, "a", "x1", val, sizeof val), 0);
    assert_string_equal(val, "v");
    expect_rc(get_kv(s, AM_DB_CHANNELS, "b", "x1", val, sizeof val), 0);
    assert_string_equal(val, "from-b");

    am_store_close(s);
    rm_tree(dir);
}

static void test_get_missing_is_notfound(void **state) {
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    ProtobufCMessage *m = (ProtobufCMessage *)&m; /* must be reset to NULL */
    expect_rc(am_store_get(s, AM_DB_ORGS, "", "nope", &airmesh__v1__org__descriptor, &m),
              -AM_ENOTFOUND);
    assert_null(m);
    expect_msg("not found");
    am_txn *t;
    expect_rc(am_store_begin(s, 1, &t), 0);
    expect_rc(am_txn_del(t, AM_DB_ORGS, "", "nope"), -AM_ENOTFOUND);
    expect_rc(am_txn_commit(t), 0);
    am_store_close(s);
    rm_tree(dir);
}

static void test_bad_ids_are_refused(void **state) {
    (void)state;
    char dir[512], long_id[AM_STORE_ID_MAX + 2];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
    ProtobufCMessage *m = NULL;

    expect_rc(am_store_put(s, AM_DB_PODS, "org", "", &kv.base), -AM_EINVAL);
    expect_msg("id is empty");
    expect_rc(am_store_put(s, AM_DB_PODS, "org", "a/b", &kv.base), -AM_EINVAL);
    expect_msg("contains '/'");
    expect_rc(am_store_put(s, AM_DB_PODS, "o/rg", "a", &kv.base), -AM_EINVAL);
    expect_msg("org id \"o/rg\" contains '/'");
    expect_rc(am_store_put(s, AM_DB_PODS, "org", "tab\there", &kv.base), -AM_EINVAL);
    expect_msg("non-printable byte 0x09");
    expect_rc(am_store_put(s, AM_DB_PODS, "org", "\xc3\xa9", &kv.base), -AM_EINVAL);
    expect_rc(am_store_put(s, AM_DB_PODS, NULL, "a", &kv.base), -AM_EINVAL);
    expect_rc(am_store_put(s, AM_DB_PODS, "org", NULL, &kv.base), -AM_EINVAL);
    expect_rc(am_store_put(s, AM_DB_PODS, "org", "a", NULL), -AM_EINVAL);
    expect_rc(am_store_put(s, AM_DB__COUNT, "org", "a", &kv.base), -AM_EINVAL);
    expect_rc(am_store_put(s, (am_db)-1, "org", "a", &kv.base), -AM_EINVAL);
    expect_rc(am_store_get(s, AM_DB_PODS, "org", "a/b", &airmesh__v1__kv__descriptor, &m),
              -AM_EINVAL);
    expect_rc(am_store_get(s, AM_DB_PODS, "org", "a", NULL, &m), -AM_EINVAL);

    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0'; /* 129 bytes */
    expect_rc(am_store_put(s, AM_DB_PODS, "org", long_id, &kv.base), -AM_EINVAL);
    expect_msg("longer than 128");
    expect_rc(am_store_put(s, AM_DB_PODS, long_id, "a", &kv.base), -AM_EINVAL);
    long_id[AM_STORE_ID_MAX] = '\0'; /* exactly 128: fine, for org and id together */
    expect_rc(am_store_put(s, AM_DB_PODS, long_id, long_id, &kv.base), 0);
    expect_rc(am_store_put(s, AM_DB_PODS, "org", "with space~!", &kv.base), 0);

    am_txn *t;
    expect_rc(am_store_begin(s, 0, &t), 0);
    expect_rc(am_txn_list(t, AM_DB_PODS, "a/", &airmesh__v1__kv__descriptor, collect, NULL),
              -AM_EINVAL);
    am_txn_abort(t);
    expect_rc(am_store_begin(NULL, 0, &t), -AM_EINVAL);
    am_store *none = (am_store *)&none;
    expect_rc(am_store_open(NULL, &none, NULL), -AM_EINVAL);
    assert_null(none);
    expect_rc(am_store_open("", &none, NULL), -AM_EINVAL);

    am_store_close(s);
    rm_tree(dir);
}

/* ---- map growth ---- */

#define BIG_VALUE (256 * 1024)
#define BIG_PER_TXN 16 /* 4 MiB per transaction */
#define BIG_TXNS 20    /* 80 MiB in all: more than the initial 64 MiB map */

typedef struct {
    int batch;
    int calls;
    uint8_t *buf;
} big_ctx;

static void fill(uint8_t *buf, int batch, int i) {
    uint32_t x = (uint32_t)(batch * 1000 + i) * 2654435761u + 1;
    for (size_t j = 0; j < BIG_VALUE; j += 4) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        memcpy(buf + j, &x, 4);
    }
}

static int big_batch(am_txn *t, void *ud) {
    big_ctx *c = ud;
    c->calls++;
    char org[32], id[32];
    snprintf(org, sizeof org, "batch-%d", c->batch);
    for (int i = 0; i < BIG_PER_TXN; i++) {
        snprintf(id, sizeof id, "rec-%d", i);
        fill(c->buf, c->batch, i);
        Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
        kv.id = id;
        kv.value.data = c->buf;
        kv.value.len = BIG_VALUE;
        int rc = am_txn_put(t, AM_DB_MESSAGES, org, id, &kv.base);
        if (rc)
            return rc;
    }
    return 0;
}

typedef struct {
    am_store *s;
    am_txn *t;
} snap_ctx;

/* Holds a read snapshot for a while (growth must wait for it), then checks it saw no batches and
 * ends it on this thread although the main thread began it (MDB_NOTLS). */
static void *snapshot_holder(void *arg) {
    snap_ctx *c = arg;
    usleep(300 * 1000);
    ProtobufCMessage *m = NULL;
    int rc = am_txn_get(c->t, AM_DB_MESSAGES, "batch-0", "rec-0", &airmesh__v1__kv__descriptor, &m);
    am_txn_abort(c->t);
    return (void *)(intptr_t)rc;
}

static void test_map_grows_when_full(void **state) {
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    big_ctx c = {.buf = malloc(BIG_VALUE)};
    assert_non_null(c.buf);

    snap_ctx snap = {s, NULL};
    expect_rc(am_store_begin(s, 0, &snap.t), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, snapshot_holder, &snap), 0);

    for (c.batch = 0; c.batch < BIG_TXNS; c.batch++)
        expect_rc(am_store_update(s, big_batch, &c), 0);
    assert_true(c.calls > BIG_TXNS); /* at least one batch hit MDB_MAP_FULL and was re-run */

    void *snap_rc;
    pthread_join(th, &snap_rc);
    assert_int_equal((int)(intptr_t)snap_rc, -AM_ENOTFOUND);
    am_store_close(s);

    int created = -1;
    expect_rc(am_store_open(dir, &s, &created), 0);
    assert_int_equal(created, 0);
    uint8_t *want = malloc(BIG_VALUE);
    assert_non_null(want);
    for (int b = 0; b < BIG_TXNS; b++) {
        for (int i = 0; i < BIG_PER_TXN; i++) {
            char org[32], id[32];
            snprintf(org, sizeof org, "batch-%d", b);
            snprintf(id, sizeof id, "rec-%d", i);
            ProtobufCMessage *m = NULL;
            expect_rc(am_store_get(s, AM_DB_MESSAGES, org, id, &airmesh__v1__kv__descriptor, &m),
                      0);
            Airmesh__V1__KV *kv = (Airmesh__V1__KV *)m;
            fill(want, b, i);
            assert_int_equal(kv->value.len, BIG_VALUE);
            assert_memory_equal(kv->value.data, want, BIG_VALUE);
            protobuf_c_message_free_unpacked(m, NULL);
        }
    }
    /* Still writable after reopen (the grown map size is kept). */
    put_kv(s, AM_DB_MESSAGES, "after", "reopen", "ok");
    free(want);
    free(c.buf);
    am_store_close(s);
    rm_tree(dir);
}

/* ---- identity, refusals ---- */

static void test_reopen_keeps_store_id(void **state) {
    (void)state;
    char dir[512], id[65], val[16];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    int created = -1;
    expect_rc(am_store_open(dir, &s, &created), 0);
    assert_int_equal(created, 1);
    snprintf(id, sizeof id, "%s", am_store_id(s));
    assert_int_equal(strlen(id), 32);
    assert_int_equal(strspn(id, "0123456789abcdef"), 32);
    put_kv(s, AM_DB_ORGS, "", "acme", "kept");
    am_store_close(s);

    expect_rc(am_store_open(dir, &s, &created), 0);
    assert_int_equal(created, 0);
    assert_string_equal(am_store_id(s), id);
    expect_rc(get_kv(s, AM_DB_ORGS, "", "acme", val, sizeof val), 0);
    assert_string_equal(val, "kept");
    am_store_close(s);

    /* Another store gets another id. */
    char dir2[512];
    make_tmpdir(dir2, sizeof dir2);
    expect_rc(am_store_open(dir2, &s, NULL), 0);
    assert_string_not_equal(am_store_id(s), id);
    am_store_close(s);
    rm_tree(dir);
    rm_tree(dir2);
}

static void test_foreign_lmdb_is_refused(void **state) {
    (void)state;
    char dir[512];
    am_store *s = (am_store *)dir;

    /* A meta record written by another application. */
    make_tmpdir(dir, sizeof dir);
    raw_put_meta(dir, "someone-else", 1);
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    assert_null(s);
    expect_msg("not an airmesh store (app \"someone-else\")");
    rm_tree(dir);

    /* Named databases but no meta. */
    make_tmpdir(dir, sizeof dir);
    raw_put(dir, "users", "a/b", "x", 1);
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("/state: not an airmesh store (meta missing)");
    rm_tree(dir);

    /* Plain keys in the main database, one of them named "meta". */
    make_tmpdir(dir, sizeof dir);
    raw_put(dir, NULL, "meta", "not a db", 8);
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("not an airmesh store (meta missing)");
    rm_tree(dir);

    /* A meta database whose "schema" record is not a StoreMeta. */
    make_tmpdir(dir, sizeof dir);
    raw_put(dir, "meta", "schema", "\xff\xff\xff", 3);
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("not an airmesh store");
    rm_tree(dir);
}

static void test_newer_schema_is_refused(void **state) {
    (void)state;
    char dir[512];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    am_store_close(s);
    raw_put_meta(dir, "airmesh", 7);
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("written by a newer airmesh (schema 7 > 1)");
    /* Refusing wrote nothing: still refused, same reason. */
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("schema 7 > 1");
    rm_tree(dir);
}

/* ---- migrations (through the test-only entry in migrate.h) ---- */

static int step_1_to_2(am_txn *t) {
    Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
    kv.id = "added-by-migration";
    return am_txn_put(t, AM_DB_TEAMS, "", "added-by-migration", &kv.base);
}

static int step_2_to_3_fails(am_txn *t) {
    Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
    int rc = am_txn_put(t, AM_DB_TEAMS, "", "half-done", &kv.base);
    assert_int_equal(rc, 0);
    return am_err_set(AM_EIO, "disk on fire");
}

static void test_older_schema_runs_migrations(void **state) {
    (void)state;
    char dir[512], val[8];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    am_store_close(s);

    const am_store_migration steps[] = {
        {1, "add a team", step_1_to_2},
        {2, "fail halfway", step_2_to_3_fails},
        {0, NULL, NULL},
    };
    /* A failing step fails the open and leaves nothing behind. */
    expect_rc(am_store_open_with_migrations(dir, &s, NULL, steps, 3), -AM_EIO);
    expect_msg("migration 2 to 3 (fail halfway) failed: disk on fire");
    /* No step for a version: refused. */
    const am_store_migration none[] = {{0, NULL, NULL}};
    expect_rc(am_store_open_with_migrations(dir, &s, NULL, none, 2), -AM_ECORRUPT);
    expect_msg("no migration from schema 1 to 2");

    expect_rc(am_store_open_with_migrations(dir, &s, NULL, steps, 2), 0);
    expect_rc(get_kv(s, AM_DB_TEAMS, "", "added-by-migration", val, sizeof val), 0);
    expect_rc(get_kv(s, AM_DB_TEAMS, "", "half-done", val, sizeof val), -AM_ENOTFOUND);
    am_store_close(s);

    /* Now at schema 2: this binary (schema 1) refuses it. */
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("schema 2 > 1");
    rm_tree(dir);
}

static void test_garbage_file_is_refused(void **state) {
    (void)state;
    char dir[512], path[600];
    make_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/state", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/state/data.mdb", dir);
    uint8_t junk[16384];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 7 + 3);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);

    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("/state/data.mdb: not an LMDB file (corrupt or foreign)");

    /* Never re-initialised: the file is exactly what we wrote. */
    uint8_t back[sizeof junk + 1];
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(back, 1, sizeof back, f), sizeof junk);
    fclose(f);
    assert_memory_equal(back, junk, sizeof junk);

    /* A short file too. */
    f = fopen(path, "wb");
    assert_non_null(f);
    fputs("hello", f);
    fclose(f);
    expect_rc(am_store_open(dir, &s, NULL), -AM_ECORRUPT);
    expect_msg("not an LMDB file");
    rm_tree(dir);
}

/* As root the permission bits are ignored (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a
 * permission check would test nothing. dac_caps_drop takes those two out of this thread's
 * effective set (still permitted, so dac_caps_restore can put them back): the check then runs
 * as root too. Returns 1 when dropped, 0 when not root (nothing to drop), -1 on failure. */
static int dac_caps_drop(struct __user_cap_data_struct saved[2]) {
    if (geteuid() != 0)
        return 0;
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, saved) != 0)
        return -1;
    memcpy(d, saved, sizeof d);
    d[0].effective &= ~((1u << CAP_DAC_OVERRIDE) | (1u << CAP_DAC_READ_SEARCH));
    return syscall(SYS_capset, &h, d) == 0 ? 1 : -1;
}

static void dac_caps_restore(struct __user_cap_data_struct saved[2]) {
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    assert_int_equal(syscall(SYS_capset, &h, saved), 0);
}

static void test_unwritable_dir_is_refused(void **state) {
    (void)state;
    char dir[512], path[600];
    make_tmpdir(dir, sizeof dir);
    am_store *s;

    /* A regular file where the directory should be: fails for root too. */
    snprintf(path, sizeof path, "%s/not-a-dir", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    expect_rc(am_store_open(path, &s, NULL), -AM_EIO);
    expect_msg("Not a directory");

    /* state itself a file. */
    snprintf(path, sizeof path, "%s/d2", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/d2/state", dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/d2", dir);
    expect_rc(am_store_open(path, &s, NULL), -AM_EIO);
    expect_msg("not a directory");

    /* A read-only data dir: permissions stop root too once DAC override is dropped. */
    snprintf(path, sizeof path, "%s/ro", dir);
    assert_int_equal(mkdir(path, 0500), 0);
    struct __user_cap_data_struct saved[2];
    int dropped = dac_caps_drop(saved);
    if (dropped < 0) {
        print_message("skip reason: cannot drop CAP_DAC_OVERRIDE as root: %s\n", strerror(errno));
        rm_tree(dir);
        skip();
    }
    int rc = am_store_open(path, &s, NULL);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", am_err_last());
    if (dropped)
        dac_caps_restore(saved);
    if (rc != -AM_EIO || !strstr(msg, strerror(EACCES)))
        fail_msg("read-only data dir: rc %d, error \"%s\", want -AM_EIO and \"%s\"", rc, msg,
                 strerror(EACCES));
    rm_tree(dir);
}

static int failing_update(am_txn *t, void *ud) {
    (void)ud;
    return step_2_to_3_fails(t);
}

static void test_update_callback_error_rolls_back(void **state) {
    (void)state;
    char dir[512], val[8];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    expect_rc(am_store_update(s, failing_update, NULL), -AM_EIO);
    expect_rc(get_kv(s, AM_DB_TEAMS, "", "half-done", val, sizeof val), -AM_ENOTFOUND);
    am_store_close(s);
    rm_tree(dir);
}

static int nested_put(am_txn *t, void *ud) {
    am_store *s = ud;
    Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
    expect_rc(am_txn_put(t, AM_DB_TEAMS, "", "outer", &kv.base), 0);
    expect_rc(am_store_put(s, AM_DB_TEAMS, "", "inner", &kv.base), -AM_ESTATE);
    expect_msg("already open on this thread");
    expect_rc(am_txn_commit(t), -AM_ESTATE); /* am_store_update owns t */
    return 0;
}

static void test_nested_write_is_refused_not_deadlocked(void **state) {
    (void)state;
    char dir[512], val[8];
    make_tmpdir(dir, sizeof dir);
    am_store *s;
    expect_rc(am_store_open(dir, &s, NULL), 0);
    expect_rc(am_store_update(s, nested_put, s), 0);
    expect_rc(get_kv(s, AM_DB_TEAMS, "", "outer", val, sizeof val), 0);
    expect_rc(get_kv(s, AM_DB_TEAMS, "", "inner", val, sizeof val), -AM_ENOTFOUND);
    put_kv(s, AM_DB_TEAMS, "", "later", "ok"); /* the thread may write again afterwards */
    am_store_close(s);
    rm_tree(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_roundtrip),
        cmocka_unit_test(test_keys_are_org_scoped),
        cmocka_unit_test(test_get_missing_is_notfound),
        cmocka_unit_test(test_bad_ids_are_refused),
        cmocka_unit_test(test_map_grows_when_full),
        cmocka_unit_test(test_reopen_keeps_store_id),
        cmocka_unit_test(test_foreign_lmdb_is_refused),
        cmocka_unit_test(test_newer_schema_is_refused),
        cmocka_unit_test(test_older_schema_runs_migrations),
        cmocka_unit_test(test_garbage_file_is_refused),
        cmocka_unit_test(test_unwritable_dir_is_refused),
        cmocka_unit_test(test_update_callback_error_rolls_back),
        cmocka_unit_test(test_nested_write_is_refused_not_deadlocked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
