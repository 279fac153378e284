/*
 * tests/unit/ops_fixture.c — the shared world of the ops-level unit tests (see ops_fixture.h):
 * a store, a hub and an am_ops over a temporary directory, with a recording audit writer.
 * Threads: only the recorder may run on another thread; it holds f->mu while it records.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "tests/unit/ops_fixture.h"

static const char *str(const char *s) {
    return s ? s : "";
}

int opsfx_record(void *ctx, const Airmesh__V1__AuditRecord *r, uint64_t *seq) {
    opsfx *f = ctx;
    if (f->audit_fail)
        return am_err_set(AM_EIO, "audit: writer failed: write: No space left on device");
    pthread_mutex_lock(&f->mu);
    assert_true(f->nrec < OPSFX_RECS);
    opsfx_rec *x = &f->recs[f->nrec++];
    snprintf(x->actor, sizeof x->actor, "%s", str(r->actor));
    snprintf(x->action, sizeof x->action, "%s", str(r->action));
    snprintf(x->result, sizeof x->result, "%s", str(r->result));
    snprintf(x->org, sizeof x->org, "%s", str(r->org_id));
    snprintf(x->target, sizeof x->target, "%s", str(r->target));
    snprintf(x->details, sizeof x->details, "%s", str(r->details));
    *seq = f->nrec;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

void opsfx_open(opsfx *f, const char *name, am_ca *ca) {
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    int n = snprintf(f->dir, sizeof f->dir, "/tmp/%s_XXXXXX", name);
    assert_true(n > 0 && (size_t)n < sizeof f->dir);
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(am_store_open(f->dir, &f->store, NULL), 0);
    assert_int_equal(am_hub_new(&f->hub), 0);
    am_ops_config c = {.store = f->store,
                       .hub = f->hub,
                       .ca = ca,
                       .data_dir = f->dir,
                       .session_ttl_ms = 3600000,
                       .session_idle_ms = 3600000,
                       .audit_fn = opsfx_record,
                       .audit_ctx = f};
    assert_int_equal(am_ops_new(&c, &f->ops), 0);
}

void opsfx_close(opsfx *f) {
    am_ops_free(f->ops);
    am_hub_free(f->hub);
    am_store_close(f->store);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&f->mu);
}

const opsfx_rec *opsfx_last(opsfx *f, const char *action) {
    const opsfx_rec *found = NULL;
    pthread_mutex_lock(&f->mu);
    for (size_t i = f->nrec; i > 0 && !found; i--)
        if (!strcmp(f->recs[i - 1].action, action))
            found = &f->recs[i - 1];
    pthread_mutex_unlock(&f->mu);
    return found;
}

am_principal opsfx_user(const char *org, const char *name, int role) {
    am_principal p;
    memset(&p, 0, sizeof p);
    snprintf(p.user_id, sizeof p.user_id, "%s", name);
    snprintf(p.org_id, sizeof p.org_id, "%s", org);
    p.role = role;
    return p;
}

void opsfx_put_org(opsfx *f, const char *id) {
    Airmesh__V1__Org org = AIRMESH__V1__ORG__INIT;
    org.id = (char *)id;
    org.name = (char *)id;
    assert_int_equal(am_store_put(f->store, AM_DB_ORGS, "", id, &org.base), 0);
}

void opsfx_put_user(opsfx *f, const char *org, const char *name, int role) {
    Airmesh__V1__User u = AIRMESH__V1__USER__INIT;
    u.id = (char *)name;
    u.org_id = (char *)org;
    u.name = (char *)name;
    u.role = role;
    assert_int_equal(am_store_put(f->store, AM_DB_USERS, org, name, &u.base), 0);
}
