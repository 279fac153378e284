/*
 * tests/fuzz/config_fuzz.c — airmeshd's YAML config parser (appliance/config) on arbitrary
 * files: it must answer 0 or a clear error, never crash or leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "appliance/config/config.h"

const char *const fuzz_seeds[] = {
    "data: /var/lib/airmesh\nlisten: 0.0.0.0:8443\ngrpc_listen: 0.0.0.0:9443\nui: /u\n"
    "log_level: info\nhostnames: [a.lan, b.lan]\nips: [10.0.0.1]\nsession_ttl: 12h\n"
    "session_idle: 30m\n",
    "hostnames:\n  - a\n  - b\nsession_ttl: 7d\n",
    "&a x: *a\n",
    "{listen: [1, {2: 3}]}\n",
    "hostnames: [a, b, [c]]\n", /* found by this harness: a nested list leaked the items */
    NULL};
const size_t fuzz_seed_lens[] = {170, 39, 9, 22, 23, 0};

/* driver.c counts inputs that reached the parser (absent under libFuzzer's own main). */
void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/airmesh-fuzz-config-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        /* An input that cannot reach the parser is a broken harness, never a pass. */
        perror("config_fuzz: temp file");
        abort();
    }
    close(fd);
    am_config c;
    if (am_config_defaults(&c) != 0) {
        fprintf(stderr, "config_fuzz: am_config_defaults failed\n");
        abort();
    }
    int rc = am_config_load_file(&c, path);
    am_config_free(&c);
    unlink(path);
    if (fuzz_reached)
        fuzz_reached(rc == 0);
    return 0;
}
