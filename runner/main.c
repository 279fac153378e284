/*
 * runner/main.c — airmesh-runner: the daemon on each worker host that runs pods.
 *
 * Today it answers --help and --version; `enroll`, `run` and `status` arrive with the runners
 * issue (one-time PKI token enrollment, then the mTLS gRPC stream to the appliance).
 */
#include <stdio.h>
#include <string.h>

#define AM_RUNNER_VERSION "0.1.0"

static void usage(FILE *out) {
    fprintf(out, "Usage: airmesh-runner COMMAND [OPTIONS]\n"
                 "The airmesh runner: enrolls with an appliance and runs agent pods.\n"
                 "\n"
                 "Commands (not yet available in this build):\n"
                 "  enroll --appliance HOST:9443 --token TOKEN --ca-sha256 FP [--data DIR]\n"
                 "  run [--data DIR]\n"
                 "  status [--data DIR]\n"
                 "\n"
                 "Options:\n"
                 "  --help      show this help\n"
                 "  --version   print the version\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("airmesh-runner %s\n", AM_RUNNER_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "enroll") == 0 || strcmp(argv[1], "run") == 0 ||
        strcmp(argv[1], "status") == 0) {
        fprintf(stderr, "airmesh-runner: '%s' is not available in this build yet\n", argv[1]);
        return 1;
    }
    fprintf(stderr, "airmesh-runner: unknown command '%s' (see --help)\n", argv[1]);
    return 2;
}
