/*
 * appliance/main.c — airmeshd: flags and config, start order, signals, clean stop.
 *
 * Start order: config → data dir (created 0700, locked so two daemons never share it) → store
 * (LMDB) → pki (CA created on first start) → audit → worker pools (appliance/work: argon2id,
 * and store writes/exports off the h2o thread) → HTTPS listener (bound before anything is
 * announced, so "port in use" is reported and nothing else happens) → bootstrap admin (first
 * start only) → audit "server.start" → banner on stdout → serve.
 * Stop (SIGINT/SIGTERM): stop accepting, finish in-flight requests, audit "server.stop", flush
 * the audit log, close LMDB, exit 0. Every startup failure is one `level=error` line naming the
 * problem, and exit status 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grpc/grpc.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance/app.h"
#include "appliance/auth/auth.h"
#include "appliance/config/config.h"
#include "appliance/http/http.h"
#include "appliance/hub/hub.h"
#include "appliance/ops/ops.h"
#include "appliance/rpc/rpc.h"
#include "appliance/work/work.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: airmeshd [OPTIONS]\n"
            "The airmesh appliance daemon: admin console, REST API and runner control plane.\n"
            "\n"
            "Options:\n"
            "  --data DIR            data directory (store, pki, audit); default ./var/airmesh\n"
            "  --listen ADDR:PORT    HTTPS console and API; default 127.0.0.1:8443\n"
            "  --grpc-listen ADDR:PORT  runner protocol (mTLS); default 127.0.0.1:9443\n"
            "  --ui DIR              console static files; default ui/static\n"
            "  --config FILE         YAML config file (keys: data, listen, grpc_listen, ui,\n"
            "                        log_level, hostnames, ips, session_ttl, session_idle);\n"
            "                        flags override the file\n"
            "  --log-level LEVEL     debug, info, warn or error; default info\n"
            "  --runner-cert-days N  lifetime of runner client certificates; default 7\n"
            "  --workers N           threads for slow jobs (password hashing); default half\n"
            "                        the CPUs (at least 1)\n"
            "  --work-queue N        jobs that may wait for them; more get 503; default 64\n"
            "  --help                show this help\n"
            "  --version             print the version\n"
            "\n"
            "On first start airmeshd creates its CA under DIR/pki and prints a one-time\n"
            "`admin password: ...` line. Logs go to stderr, one logfmt line per event.\n");
}

static int fail(const char *what) {
    am_log_error("main", what, "error=\"%s\"", am_err_last());
    return 1;
}

/* Create the data dir and take an exclusive lock on DIR/airmeshd.lock (held until exit). */
static int prepare_data_dir(const char *dir, int *lock_fd) {
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return am_err_set(AM_EIO, "data dir %s: exists and is not a directory", dir);
    int rc = am_mkdir_p(dir, 0700);
    if (rc)
        return am_err_set(AM_EIO, "data dir %s: cannot create: %s", dir, am_err_last());
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/airmeshd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return am_err_set(AM_EIO, "data dir %s: not writable: %s", dir, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return am_err_set(AM_EIO, "data dir %s: in use by another airmeshd", dir);
    }
    *lock_fd = fd;
    return 0;
}

int main(int argc, char **argv) {
    enum {
        O_DATA = 1,
        O_LISTEN,
        O_GRPC,
        O_UI,
        O_CONFIG,
        O_LOG,
        O_CERTDAYS,
        O_WORKERS,
        O_WORKQ,
        O_HELP,
        O_VERSION
    };
    static const struct option opts[] = {{"data", required_argument, 0, O_DATA},
                                         {"listen", required_argument, 0, O_LISTEN},
                                         {"grpc-listen", required_argument, 0, O_GRPC},
                                         {"ui", required_argument, 0, O_UI},
                                         {"config", required_argument, 0, O_CONFIG},
                                         {"log-level", required_argument, 0, O_LOG},
                                         {"runner-cert-days", required_argument, 0, O_CERTDAYS},
                                         {"workers", required_argument, 0, O_WORKERS},
                                         {"work-queue", required_argument, 0, O_WORKQ},
                                         {"help", no_argument, 0, O_HELP},
                                         {"version", no_argument, 0, O_VERSION},
                                         {0, 0, 0, 0}};
    const char *flag[O_VERSION + 1] = {0};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == O_HELP) {
            usage(stdout);
            return 0;
        }
        if (c == O_VERSION) {
            printf("airmeshd %s\n", AM_VERSION);
            return 0;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "airmeshd: unknown or incomplete option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
        flag[c] = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "airmeshd: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }

    am_config cfg;
    if (am_config_defaults(&cfg) != 0)
        return fail("config");
    if (flag[O_CONFIG] && am_config_load_file(&cfg, flag[O_CONFIG]) != 0) {
        fail("bad config file");
        am_config_free(&cfg);
        return 1;
    }
    if ((flag[O_DATA] && am_config_set(&cfg.data, flag[O_DATA])) ||
        (flag[O_LISTEN] && am_config_set(&cfg.listen, flag[O_LISTEN])) ||
        (flag[O_GRPC] && am_config_set(&cfg.grpc_listen, flag[O_GRPC])) ||
        (flag[O_UI] && am_config_set(&cfg.ui, flag[O_UI])) ||
        (flag[O_LOG] && am_config_set(&cfg.log_level, flag[O_LOG]))) {
        am_config_free(&cfg);
        return fail("config");
    }
    am_log_level lvl;
    if (am_log_parse_level(cfg.log_level, &lvl) != 0) {
        am_config_free(&cfg);
        return fail("bad log level");
    }
    am_log_set_level(lvl);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (am_http_parse_listen(cfg.listen, &ss, &sl) != 0) {
        am_config_free(&cfg);
        return fail("bad --listen");
    }

    long cert_days = 7;
    if (flag[O_CERTDAYS]) {
        char *end;
        cert_days = strtol(flag[O_CERTDAYS], &end, 10);
        if (*end || cert_days < 1 || cert_days > 365) {
            am_err_set(AM_EINVAL, "--runner-cert-days %s: expected 1..365", flag[O_CERTDAYS]);
            am_config_free(&cfg);
            return fail("bad flag");
        }
    }
    /* --workers (default: half the CPUs, at least 1, so hashing never takes every core from
     * the event loop, the rpc thread and the pods), --work-queue */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long work_n[2] = {ncpu >= 4 ? ncpu / 2 : 1, 64};
    for (int i = 0; i < 2; i++) {
        const char *v = flag[i ? O_WORKQ : O_WORKERS];
        if (!v)
            continue;
        char *end;
        work_n[i] = strtol(v, &end, 10);
        if (*end || work_n[i] < 1 || work_n[i] > (i ? 100000 : 64)) {
            am_err_set(AM_EINVAL, "--%s %s: expected 1..%d", i ? "work-queue" : "workers", v,
                       i ? 100000 : 64);
            am_config_free(&cfg);
            return fail("bad flag");
        }
    }
    char grpc_addr[300];
    if (strncmp(cfg.grpc_listen, "0.0.0.0:", 8) == 0 || strncmp(cfg.grpc_listen, "[::]:", 5) == 0) {
        char hn[256] = "localhost";
        gethostname(hn, sizeof hn - 1);
        snprintf(grpc_addr, sizeof grpc_addr, "%s:%s", hn, strrchr(cfg.grpc_listen, ':') + 1);
    } else {
        snprintf(grpc_addr, sizeof grpc_addr, "%s", cfg.grpc_listen);
    }

    int status = 1, lock_fd = -1;
    am_app app = {.data_dir = cfg.data,
                  .session_ttl_ms = cfg.session_ttl_ms,
                  .session_idle_ms = cfg.session_idle_ms,
                  .grpc_addr = grpc_addr};
    am_rpc *rpc = NULL;
    grpc_init();
    am_http *http = NULL;
    char path[PATH_MAX];
    int created;

    if (prepare_data_dir(cfg.data, &lock_fd) != 0) {
        fail("data dir");
        goto out;
    }
    if (am_store_open(cfg.data, &app.store, &created) != 0) {
        fail("cannot open the store");
        goto out;
    }
    snprintf(path, sizeof path, "%s/pki", cfg.data);
    am_ca_opts ca_opts = {(const char *const *)cfg.hostnames, cfg.n_hostnames,
                          (const char *const *)cfg.ips, cfg.n_ips};
    if (am_ca_open(path, &ca_opts, &app.ca, &created) != 0) {
        fail("cannot open the CA");
        goto out;
    }
    if (created)
        am_log_info("pki", "created a new CA", "dir=%s fingerprint=%s", path,
                    am_ca_root_fingerprint(app.ca));
    snprintf(path, sizeof path, "%s/audit", cfg.data);
    if (am_audit_open(path, NULL, &app.audit) != 0) {
        fail("cannot open the audit log");
        goto out;
    }
    /* The audit key (certified by our CA) seals every segment; created on first start. */
    if (am_audit_signer_ensure(app.audit, app.ca) != 0) {
        fail("cannot set up the audit signing key");
        goto out;
    }
    am_work_opts wopts = {.threads = (unsigned)work_n[0], .queue = (unsigned)work_n[1], .nice = 10};
    am_work_opts iopts = {.threads = 1, .queue = 256, .nice = 0}; /* LMDB has one writer */
    if (am_work_new(&wopts, &app.work) != 0 || am_work_new(&iopts, &app.io) != 0) {
        fail("cannot start the worker pool");
        goto out;
    }
    am_http_opts hopts = {.listen = cfg.listen,
                          .ui_dir = cfg.ui,
                          .cert_pem = am_ca_path(app.ca, "server.pem"),
                          .key_pem = am_ca_path(app.ca, "server.key"),
                          .max_body = 1 << 20};
    if (am_http_open(&app, &hopts, &http) != 0) {
        fail("cannot start HTTPS");
        goto out;
    }

    if (am_hub_new(&app.hub) != 0) {
        fail("hub");
        goto out;
    }
    /* The domain layer every transport calls; runners are reached through the link rpc
     * implements, injected below once rpc runs. */
    am_ops_config ocfg = {.store = app.store,
                          .audit = app.audit,
                          .hub = app.hub,
                          .ca = app.ca,
                          .data_dir = cfg.data,
                          .session_ttl_ms = cfg.session_ttl_ms,
                          .session_idle_ms = cfg.session_idle_ms,
                          .cert_days = (uint32_t)cert_days,
                          .pod_defaults = {.memory_bytes = cfg.pod_memory,
                                           .tmp_bytes = cfg.pod_tmp,
                                           .shm_bytes = cfg.pod_shm,
                                           .workspace_bytes = cfg.pod_workspace,
                                           .cpu_millis = cfg.pod_cpu_millis,
                                           .pids = cfg.pod_pids}};
    if (am_ops_new(&ocfg, &app.ops) != 0) {
        fail("ops");
        goto out;
    }
    am_rpc_opts ropts = {.listen = cfg.grpc_listen, .cert_days = (uint32_t)cert_days};
    if (am_rpc_start(&app, app.hub, &ropts, &rpc) != 0) {
        fail("cannot start the runner protocol");
        goto out;
    }
    app.rpc = rpc;
    am_ops_set_runner_link(app.ops, am_rpc_link_send, rpc);

    char password[64] = "";
    if (am_auth_bootstrap(app.store, password, sizeof password, &created) != 0) {
        fail("cannot create the bootstrap admin");
        goto out;
    }
    if (created)
        am_audit_event(app.audit, "system", AM_AUTH_DEFAULT_ORG, "user.bootstrap",
                       "user:" AM_AUTH_BOOTSTRAP_USER, "ok", "", "{\"role\":\"owner\"}");
    am_audit_event(app.audit, "system", "", "server.start", "airmeshd", "ok", "",
                   "{\"version\":\"" AM_VERSION "\"}");
    am_audit_flush(app.audit);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    am_log_info("main", "airmeshd started", "version=%s listen=%s grpc_listen=%s data=%s",
                AM_VERSION, cfg.listen, cfg.grpc_listen, cfg.data);
    const char *host = cfg.listen;
    char url[300];
    if (strncmp(host, "0.0.0.0:", 8) == 0 || strncmp(host, "[::]:", 5) == 0)
        snprintf(url, sizeof url, "https://localhost:%d/", am_http_port(http));
    else
        snprintf(url, sizeof url, "https://%s/", host);
    printf("airmesh %s is running\n"
           "  console:        %s\n"
           "  CA fingerprint: %s (SHA-256)\n"
           "  CA certificate: %s\n"
           "  runners dial:   %s\n",
           AM_VERSION, url, am_ca_root_fingerprint(app.ca), am_ca_path(app.ca, "ca.pem"),
           grpc_addr);
    if (created)
        printf("  log in as admin with the password below; it is shown only this once.\n"
               "admin password: %s\n",
               password);
    fflush(stdout);
    am_wipe(password, sizeof password);

    am_http_run(http, &stop_flag, 10000);
    am_log_info("main", "stopping", NULL);
    am_audit_event(app.audit, "system", "", "server.stop", "airmeshd", "ok", "", NULL);
    status = 0;
out:
    am_http_close(http);
    am_work_free(app.work);
    am_work_free(app.io);
    if (app.ops)
        am_ops_set_runner_link(app.ops, NULL, NULL);
    app.rpc = NULL;
    am_rpc_stop(rpc);
    am_ops_free(app.ops);
    am_hub_free(app.hub);
    if (app.audit) {
        am_audit_flush(app.audit);
        am_audit_close(app.audit);
    }
    if (app.ca)
        am_ca_close(app.ca);
    if (app.store)
        am_store_close(app.store);
    if (lock_fd >= 0)
        close(lock_fd);
    if (status == 0)
        am_log_info("main", "stopped cleanly", NULL);
    am_config_free(&cfg);
    grpc_shutdown();
    am_pki_thread_done();
    return status;
}
