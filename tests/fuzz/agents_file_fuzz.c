/*
 * tests/fuzz/agents_file_fuzz.c — the agent catalog's agents_file parser (appliance/agents) on
 * arbitrary files: it must answer 0 or a clear error, never crash or leak, and a refused file
 * must leave the built-in presets as they were.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "appliance/agents/catalog.h"

#define S1                                                                                         \
    "agents:\n  claude:\n    title: T\n    command: [claude, -x]\n    command_bare: [claude]\n"    \
    "    prompt: typed\n    prompt_flag: \"\"\n    env: {A: b}\n    home_files: {a/b: c}\n"        \
    "    notes: n\n"
#define S2 "agents:\n  codex: {home_files: {../x: y}}\n"
#define S3 "agents: {goose: {command: [a, [b]]}, aider: &x {title: t}, gemini: *x}\n"
const char *const fuzz_seeds[] = {S1, S2, S3, NULL};
const size_t fuzz_seed_lens[] = {sizeof S1 - 1, sizeof S2 - 1, sizeof S3 - 1, 0};

void fuzz_reached(int accepted) __attribute__((weak));

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[] = "/tmp/airmesh-fuzz-agents-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
        perror("agents_file_fuzz: temp file"); /* a broken harness, never a pass */
        abort();
    }
    close(fd);
    int rc = am_agents_load_file(path);
    unlink(path);
    if (rc != 0 && strcmp(am_agents_find("claude")->title, "Claude Code") != 0) {
        fprintf(stderr, "agents_file_fuzz: a refused file changed the presets\n");
        abort();
    }
    am_agents_reset();
    if (fuzz_reached)
        fuzz_reached(rc == 0);
    return 0;
}
