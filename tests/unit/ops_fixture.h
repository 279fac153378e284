/*
 * tests/unit/ops_fixture.h — the world the ops-level unit tests start from: a real store in a
 * fresh temporary directory, a real hub, and a real am_ops whose audit writer is replaced by a
 * recorder (the records it is handed, in order, and a switch that makes it fail like a full
 * disk). Nothing else: the runner link, the model tester, the pods, users and orgs each test
 * needs stay in the test, since they differ from test to test.
 *
 * Ownership: the fixture is embedded in (or allocated by) the test; opsfx_open fills it,
 * opsfx_close frees what opsfx_open made and removes the directory. Failures are cmocka
 * assertions (a fixture that cannot be built fails the test, naming the step).
 * Threads: the audit recorder may be called from any thread (the MCP core's workers); it takes
 * `mu`. A test that reads recs/nrec while other threads may still audit takes `mu` too.
 */
#ifndef AM_TESTS_UNIT_OPS_FIXTURE_H
#define AM_TESTS_UNIT_OPS_FIXTURE_H

#include <pthread.h>
#include <stddef.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/ops/ops.h"

#define OPSFX_RECS 256

/* One audit record as the recorder saw it (NULL strings recorded as ""). */
typedef struct {
    char actor[160], action[64], result[16], org[130], target[200], details[1024];
} opsfx_rec;

typedef struct {
    char dir[64];
    am_store *store;
    am_hub *hub;
    am_ops *ops;
    pthread_mutex_t mu;         /* guards recs and nrec */
    opsfx_rec recs[OPSFX_RECS]; /* more than OPSFX_RECS records fails the test */
    size_t nrec;
    int audit_fail; /* non-zero: the recorder fails with -AM_EIO and records nothing */
} opsfx;

/* mkdtemp("/tmp/<name>_XXXXXX") + am_store_open + am_hub_new + am_ops_new with the recorder as
 * the audit writer (session ttl and idle one hour; ca may be NULL). */
void opsfx_open(opsfx *f, const char *name, am_ca *ca);
/* am_ops_free, am_hub_free, am_store_close, then rm -rf the directory. */
void opsfx_close(opsfx *f);
/* The recorder itself (ctx = the opsfx), for a test that builds another am_ops over f's store. */
int opsfx_record(void *ctx, const Airmesh__V1__AuditRecord *r, uint64_t *seq);

/* The last record with this action, or NULL. Takes mu. */
const opsfx_rec *opsfx_last(opsfx *f, const char *action);

/* A principal for user `name` of `org` with `role` (no pod, not superuser). */
am_principal opsfx_user(const char *org, const char *name, int role);

/* Stored records: an org (id = name) and a user (id = name) of org with role. */
void opsfx_put_org(opsfx *f, const char *id);
void opsfx_put_user(opsfx *f, const char *org, const char *name, int role);

#endif
