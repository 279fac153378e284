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

/* driver.c counts inputs that reached the parser (absent under libFuzzer's own main). */
void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/airmesh-fuzz-export-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        /* An input that cannot reach the parser is a broken harness, never a pass. */
        perror("audit_export_fuzz: temp file");
        abort();
    }
    close(fd);
    am_audit_export_report rep;
    int rc = am_audit_export_verify(path, &rep);
    int n = 0;
    am_audit_export_read(path, 1, count, &n, NULL);
    unlink(path);
    if (fuzz_reached)
        fuzz_reached(rc == 0);
    return 0;
}
