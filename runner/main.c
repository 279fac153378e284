/*
 * runner/main.c — airmesh-runner: enroll / run / status.
 *
 * enroll: one-time token + pinned CA fingerprint → a client certificate (key made here, 0600).
 * run:    hold the mTLS stream to the appliance; exits 0 on SIGINT/SIGTERM, 3 when revoked.
 * status: what the data dir holds.
 * Exit status: 0 ok, 1 failure (one clear message), 2 usage, 3 revoked or unknown to the
 * appliance.
 */
#include <getopt.h>
#include <grpc/grpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "pki/pki.h"
#include "runner/pod/pod.h"
#include "runner/sandbox/sandbox.h"
#include "runner/session/session.h"
#include "runner/worktree/worktree.h"

#define DEFAULT_DATA "./var/runner"
#define MAX_LABELS 32

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: airmesh-runner COMMAND [OPTIONS]\n"
            "The airmesh runner: enrolls with an appliance and runs agent pods.\n"
            "\n"
            "Commands:\n"
            "  enroll --appliance HOST:PORT --token TOKEN --ca-sha256 FP [--data DIR]\n"
            "         [--label K=V ...]\n"
            "      Generate this host's key (never sent anywhere), check the appliance's CA\n"
            "      against the pinned SHA-256 fingerprint, and trade the one-time token for a\n"
            "      client certificate. Get the exact command from `airmeshctl token create`.\n"
            "  run [--data DIR] [--capacity N] [--label K=V ...] [--renew-after DURATION]\n"
            "      [--fetch-back-max SIZE] [--recording-max SIZE]\n"
            "      [--uid-range BASE:COUNT] [--agents-dir DIR]\n"
            "      [--notify-bin PATH] [--quiet-after DURATION]\n"
            "      Connect to the appliance (mTLS), heartbeat, renew the certificate at 2/3 of\n"
            "      its lifetime (or after DURATION, e.g. 30s, 12h), reconnect with backoff.\n"
            "      Exits 0 on SIGINT/SIGTERM and 3 when the appliance revoked this runner.\n"
            "      --uid-range BASE:COUNT  host uids/gids the pods' 0..COUNT-1 map to (root\n"
            "                    runner; default 100000:65536). An unprivileged runner maps\n"
            "                    pod 0 to itself and 1.. to its /etc/subuid range (newuidmap).\n"
            "      --agents-dir DIR  agent CLIs for the pods (e.g. DIR/bin/claude): bound\n"
            "                    read-only into every pod at the same path, DIR/bin first on\n"
            "                    the pods' PATH (scripts/agents.sh makes one)\n"
            "      --notify-bin PATH  the airmesh-notify bound read-only into every pod at\n"
            "                    /opt/airmesh/bin/airmesh-notify (default: the one next to\n"
            "                    this executable)\n"
            "      --quiet-after DURATION  a working pod with no output for this long is\n"
            "                    shown idle (default 30s; e.g. 2s, 5m)\n"
            "  status [--data DIR]\n"
            "      Show the runner id, org, appliance and certificate expiry.\n"
            "\n"
            "Options:\n"
            "  --data DIR        runner state (identity.pem, ca.pem, runner.json);\n"
            "                    default " DEFAULT_DATA "\n"
            "  --log-level L     debug, info, warn, error (default info)\n"
            "  --fetch-back-max SIZE  largest pack a pod's branch may bring back into the\n"
            "                    mirror when the pod ends (e.g. 64M, 1G; default 256M); a\n"
            "                    larger one is refused and the pod's status says so\n"
            "  --recording-max SIZE  largest recording of a pod kept on this host (zstd; at\n"
            "                    most and by default 256M); output beyond it is not recorded\n"
            "  --help, --version\n");
}

/* "123", "64K", "256M", "1G" (powers of 1024) into bytes; -1 if malformed or 0. */
static int parse_size(const char *s, uint64_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (end == s || *end || v == 0 || v > (~0ull >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        printf("airmesh-runner %s\n", AM_RUNNER_VERSION);
        return 0;
    }
    if (strcmp(cmd, "enroll") && strcmp(cmd, "run") && strcmp(cmd, "status")) {
        fprintf(stderr, "airmesh-runner: unknown command '%s' (see --help)\n", cmd);
        return 2;
    }
    static const struct option opts[] = {{"appliance", required_argument, 0, 'a'},
                                         {"token", required_argument, 0, 't'},
                                         {"ca-sha256", required_argument, 0, 'f'},
                                         {"data", required_argument, 0, 'd'},
                                         {"label", required_argument, 0, 'l'},
                                         {"capacity", required_argument, 0, 'c'},
                                         {"renew-after", required_argument, 0, 'r'},
                                         {"log-level", required_argument, 0, 'L'},
                                         {"fetch-back-max", required_argument, 0, 'F'},
                                         {"recording-max", required_argument, 0, 'R'},
                                         {"uid-range", required_argument, 0, 'u'},
                                         {"agents-dir", required_argument, 0, 'A'},
                                         {"notify-bin", required_argument, 0, 'N'},
                                         {"quiet-after", required_argument, 0, 'Q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *appliance = NULL, *token = NULL, *fp = NULL, *data = DEFAULT_DATA;
    char *lk[MAX_LABELS], *lv[MAX_LABELS];
    size_t nl = 0;
    long capacity = 4;
    uint64_t renew_after = 0;
    const char *uid_range = NULL;
    int ch;
    optind = 2;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'a':
            appliance = optarg;
            break;
        case 't':
            token = optarg;
            break;
        case 'f':
            fp = optarg;
            break;
        case 'd':
            data = optarg;
            break;
        case 'u':
            uid_range = optarg;
            break;
        case 'A':
            if (am_pod_set_agents_dir(optarg) != 0) {
                fprintf(stderr, "airmesh-runner: --agents-dir: %s\n", am_err_last());
                return 2;
            }
            break;
        case 'N':
            if (am_pod_set_notify_bin(optarg) != 0) {
                fprintf(stderr, "airmesh-runner: --notify-bin: %s\n", am_err_last());
                return 2;
            }
            break;
        case 'Q': {
            uint64_t ms = 0;
            if (am_duration_parse(optarg, &ms) != 0 || ms == 0) {
                fprintf(stderr, "airmesh-runner: --quiet-after: a duration like 30s or 5m\n");
                return 2;
            }
            am_pod_set_quiet_after(ms);
            break;
        }
        case 'c':
            capacity = strtol(optarg, NULL, 10);
            if (capacity < 1 || capacity > 1000) {
                fprintf(stderr, "airmesh-runner: --capacity: expected 1..1000\n");
                return 2;
            }
            break;
        case 'l': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || nl == MAX_LABELS) {
                fprintf(stderr, "airmesh-runner: --label: expected KEY=VALUE (at most %d)\n",
                        MAX_LABELS);
                return 2;
            }
            *eq = '\0';
            lk[nl] = optarg;
            lv[nl++] = eq + 1;
            break;
        }
        case 'r':
            if (am_duration_parse(optarg, &renew_after) != 0) {
                fprintf(stderr, "airmesh-runner: --renew-after: a duration like 30s or 12h\n");
                return 2;
            }
            break;
        case 'L': {
            am_log_level lvl;
            if (am_log_parse_level(optarg, &lvl) != 0) {
                fprintf(stderr, "airmesh-runner: %s\n", am_err_last());
                return 2;
            }
            am_log_set_level(lvl);
            break;
        }
        case 'F': {
            uint64_t max = 0;
            if (parse_size(optarg, &max) != 0) {
                fprintf(stderr, "airmesh-runner: --fetch-back-max: a size like 64M or 1G\n");
                return 2;
            }
            am_wt_set_fetch_back_max(max);
            break;
        }
        case 'R': {
            uint64_t max = 0;
            if (parse_size(optarg, &max) != 0 || max < (1u << 20) || max > AM_POD_RECORDING_MAX) {
                fprintf(stderr, "airmesh-runner: --recording-max: a size from 1M to 256M\n");
                return 2;
            }
            am_pod_set_recording_max(max);
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "airmesh-runner %s: unknown or incomplete option '%s' (see --help)\n",
                    cmd, argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "airmesh-runner: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (strcmp(cmd, "status") == 0) {
        if (am_sess_status(data) != 0) {
            fprintf(stderr, "airmesh-runner: %s\n", am_err_last());
            return 1;
        }
        return 0;
    }

    int mrc = strcmp(cmd, "run") == 0 ? am_sbx_idmap_setup(uid_range) : 0;
    if (mrc == -AM_EINVAL) {
        fprintf(stderr, "airmesh-runner: %s\n", am_err_last());
        return 2;
    }
    if (mrc != 0) /* the runner still connects; each pod is refused with this reason */
        am_log_warn("pod", "pods cannot start on this host", "error=\"%s\"", am_err_last());
    grpc_init();
    int rc = 0;
    if (strcmp(cmd, "enroll") == 0) {
        if (!appliance || !token || !fp) {
            fprintf(stderr, "airmesh-runner enroll: --appliance, --token and --ca-sha256 are "
                            "required\n");
            grpc_shutdown();
            return 2;
        }
        am_sess_enroll_opts eo = {
            appliance, token, fp, data, (const char *const *)lk, (const char *const *)lv, nl};
        char rid[64];
        if (am_sess_enroll(&eo, rid, sizeof rid) != 0) {
            fprintf(stderr, "airmesh-runner: %s\n", am_err_last());
            rc = 1;
        } else {
            printf("enrolled as runner %s; start it with: airmesh-runner run --data %s\n", rid,
                   data);
        }
    } else {
        struct sigaction sa = {0};
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        am_pod_find_bins(); /* unless --notify-bin gave it */
        am_sess_run_opts ro = {.data_dir = data,
                               .capacity = (uint32_t)capacity,
                               .renew_after_ms = renew_after,
                               .label_keys = (const char *const *)lk,
                               .label_values = (const char *const *)lv,
                               .n_labels = nl};
        rc = am_sess_run(&ro, &stop_flag);
        if (rc == AM_SESS_REVOKED)
            fprintf(stderr, "airmesh-runner: %s\n", am_err_last());
        else if (rc != 0)
            fprintf(stderr, "airmesh-runner: %s\n", am_err_last());
        else
            am_log_info("session", "stopped", NULL);
    }
    /* Blocking: gRPC's own threads (which hold OpenSSL per-thread state from the stream's TLS)
     * are gone before exit runs OpenSSL's cleanup; the asynchronous grpc_shutdown let one of them
     * outlive it now and then, and LeakSanitizer saw its error state as a leak. */
    grpc_shutdown_blocking();
    am_pki_thread_done();
    return rc;
}
