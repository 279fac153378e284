/*
 * tests/fuzz/audit_export_fuzz.c — the offline audit export reader (`airmeshctl audit verify`
 * and `show`) on arbitrary files: a tampered or garbage file is refused with the place named,
 * never a crash, never an unbounded allocation.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "appliance/audit/audit.h"

const char *const fuzz_seeds[] = {"AMAUDEXP", NULL};
const size_t fuzz_seed_lens[] = {8, 0};

static int count(void *ud, const Airmesh__V1__AuditRecord *r) {
    (void)r;
    ++*(int *)ud;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/airmesh-fuzz-export-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        am_audit_export_report rep;
        am_audit_export_verify(path, &rep);
        int n = 0;
        am_audit_export_read(path, 1, count, &n, NULL);
    }
    close(fd);
    unlink(path);
    return 0;
}
