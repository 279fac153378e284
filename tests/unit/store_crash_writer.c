/*
 * tests/unit/store_crash_writer.c — helper for store_crash_test: writes batches until killed.
 *
 * Usage: store_crash_writer DIR RUN. Opens the store in DIR and loops forever: transaction N writes
 * CRASH_BATCH records "rN-bM/rec-i" (M counting from 0) into AM_DB_MESSAGES plus a marker
 * "crash/rN-bM" in AM_DB_TICKETS, all through one am_store_update, then prints "committed M\n"
 * and flushes. The test kills it with SIGKILL at a random moment and checks that what it saw
 * committed is there and nothing is half there. Single-threaded; exits only on error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/store/store.h"
#include "common/err.h"

#define CRASH_BATCH 50
#define VALUE_LEN 2048

typedef struct {
    const char *run;
    int batch;
    uint8_t value[VALUE_LEN];
} batch_ctx;

static int write_batch(am_txn *t, void *ud) {
    batch_ctx *c = ud;
    char org[64], id[32];
    snprintf(org, sizeof org, "r%s-b%d", c->run, c->batch);
    for (int i = 0; i < CRASH_BATCH; i++) {
        snprintf(id, sizeof id, "rec-%d", i);
        memset(c->value, 'a' + i % 26, sizeof c->value);
        Airmesh__V1__KV kv = AIRMESH__V1__KV__INIT;
        kv.id = id;
        kv.value.data = c->value;
        kv.value.len = sizeof c->value;
        int rc = am_txn_put(t, AM_DB_MESSAGES, org, id, &kv.base);
        if (rc)
            return rc;
    }
    Airmesh__V1__KV marker = AIRMESH__V1__KV__INIT;
    marker.id = org;
    marker.updated_ms = CRASH_BATCH;
    return am_txn_put(t, AM_DB_TICKETS, "crash", org, &marker.base);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s DIR RUN\n", argv[0]);
        return 2;
    }
    am_store *s;
    if (am_store_open(argv[1], &s, NULL) != 0) {
        fprintf(stderr, "store_crash_writer: %s\n", am_err_last());
        return 1;
    }
    static batch_ctx c;
    c.run = argv[2];
    for (c.batch = 0;; c.batch++) {
        if (am_store_update(s, write_batch, &c) != 0) {
            fprintf(stderr, "store_crash_writer: batch %d: %s\n", c.batch, am_err_last());
            am_store_close(s);
            return 1;
        }
        printf("committed %d\n", c.batch);
        fflush(stdout);
    }
}
