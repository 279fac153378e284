/*
 * tests/fuzz/driver.c — a standalone driver for libFuzzer-style targets
 * (`int LLVMFuzzerTestOneInput(const uint8_t *, size_t)`), so every parser's harness also runs
 * under the project's gcc + ASan/UBSan build in `make test`, for a bounded time.
 *
 * It feeds the target each built-in seed of the harness and each seed file given as an argument,
 * then random mutations of them (bit
 * flips, byte overwrites, truncations, insertions, splices) for FUZZ_SECONDS (default 3) with a
 * seed printed at start (FUZZ_SEED to replay). A crash, a sanitizer report or a leak fails the
 * test. The same harness files build unchanged with clang -fsanitize=fuzzer for deeper runs.
 *
 * A run that fuzzed nothing must not pass: each harness calls fuzz_reached(accepted) once the
 * input went through its parser, and the driver fails (exit 1) unless every input did, and
 * unless at least one seed was accepted (a harness feeding its parser the wrong thing, e.g. a
 * path that does not exist, would otherwise "survive" every input by rejecting it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each harness provides its seeds: a NULL-terminated list, lengths alongside. */
extern const char *const fuzz_seeds[];
extern const size_t fuzz_seed_lens[];

static uint64_t rng_state;
static unsigned long n_reached, n_accepted;

void fuzz_reached(int accepted) {
    n_reached++;
    if (accepted)
        n_accepted++;
}

static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

#include "common/util.h"

int main(int argc, char **argv) {
    const char *secs_env = getenv("FUZZ_SECONDS"), *seed_env = getenv("FUZZ_SEED");
    double secs = secs_env ? atof(secs_env) : 3.0;
    rng_state = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL) * 2654435761u;
    if (!rng_state)
        rng_state = 1;
    printf("fuzz: seed %llu, %.1f s\n", (unsigned long long)rng_state, secs);
    /* Built-in seeds, then seed files (argv), in one table. */
    size_t nbuilt = 0;
    while (fuzz_seeds[nbuilt])
        nbuilt++;
    size_t nseeds = 0;
    const char **seeds = calloc(nbuilt + (size_t)argc, sizeof *seeds);
    size_t *lens = calloc(nbuilt + (size_t)argc, sizeof *lens);
    uint8_t **owned = calloc((size_t)argc + 1, sizeof *owned);
    for (size_t i = 0; i < nbuilt; i++, nseeds++) {
        seeds[nseeds] = fuzz_seeds[i];
        lens[nseeds] = fuzz_seed_lens[i];
    }
    for (int i = 1; i < argc; i++) {
        uint8_t *d;
        size_t l;
        if (am_read_file(argv[i], 1 << 20, &d, &l) != 0) {
            fprintf(stderr, "fuzz: seed %s: %s\n", argv[i], am_err_last());
            return 2;
        }
        owned[i] = d;
        seeds[nseeds] = (const char *)d;
        lens[nseeds++] = l;
    }
    for (size_t i = 0; i < nseeds; i++)
        LLVMFuzzerTestOneInput((const uint8_t *)seeds[i], lens[i]);
    unsigned long seeds_accepted = n_accepted;
    LLVMFuzzerTestOneInput((const uint8_t *)"", 0);
    unsigned long calls = nseeds + 1;

    size_t cap = 1 << 16;
    uint8_t *buf = malloc(cap);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    unsigned long runs = 0;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 > secs)
            break;
        size_t s = nseeds ? rnd() % nseeds : 0;
        size_t len = nseeds ? lens[s] : 0;
        if (len > cap)
            len = cap;
        if (len)
            memcpy(buf, seeds[s], len);
        int edits = 1 + (int)(rnd() % 8);
        for (int e = 0; e < edits; e++) {
            switch (rnd() % 6) {
            case 0: /* flip a bit */
                if (len)
                    buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 1: /* overwrite a byte with an interesting value */
                if (len) {
                    static const uint8_t v[] = {0, 0xff, 0x7f, 0x80, '\n', '"', '\\', ':'};
                    buf[rnd() % len] = v[rnd() % sizeof v];
                }
                break;
            case 2: /* truncate */
                if (len)
                    len = rnd() % len;
                break;
            case 3: /* insert random bytes */
                if (len + 16 < cap) {
                    size_t at = len ? rnd() % len : 0, n = 1 + rnd() % 16;
                    memmove(buf + at + n, buf + at, len - at);
                    for (size_t k = 0; k < n; k++)
                        buf[at + k] = (uint8_t)rnd();
                    len += n;
                }
                break;
            case 4: /* duplicate a chunk (lengths and nesting) */
                if (len && len * 2 < cap) {
                    size_t at = rnd() % len, n = 1 + rnd() % (len - at);
                    memmove(buf + at + n, buf + at, len - at);
                    len += n;
                }
                break;
            default: /* splice in another seed's tail */
                if (nseeds) {
                    size_t o = rnd() % nseeds, ol = lens[o] < cap ? lens[o] : cap - 1;
                    size_t from = ol ? rnd() % ol : 0, at = len ? rnd() % len : 0;
                    if (at + (ol - from) < cap) {
                        memcpy(buf + at, seeds[o] + from, ol - from);
                        len = at + (ol - from);
                    }
                }
            }
        }
        LLVMFuzzerTestOneInput(buf, len);
        runs++;
        calls++;
    }
    free(buf);
    for (int i = 1; i < argc; i++)
        free(owned[i]);
    free(owned);
    free(seeds);
    free(lens);
    printf("fuzz: %lu runs, no crash; %lu of %lu inputs reached the parser, %lu of %zu seeds "
           "accepted\n",
           runs, n_reached, calls, seeds_accepted, nseeds);
    if (n_reached != calls) {
        fprintf(stderr, "fuzz: FAIL: %lu of %lu inputs never reached the parser\n",
                calls - n_reached, calls);
        return 1;
    }
    if (seeds_accepted == 0) {
        fprintf(stderr, "fuzz: FAIL: no seed was accepted: the parser never saw a valid input\n");
        return 1;
    }
    return 0;
}
