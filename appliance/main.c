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
 * Functions, in the order main calls them: load_settings (flags + config file), start (the
 * start order above), announce (bootstrap admin, server.start, signals, banner), serve, stop_all.
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

#include "appliance/agents/catalog.h"
#include "appliance/app.h"
#include "appliance/auth/auth.h"
#include "appliance/config/config.h"
#include "appliance/gateway/gateway.h"
#include "appliance/gateway/selftest/selftest.h"
#include "appliance/http/http.h"
#include "appliance/hub/hub.h"
#include "appliance/mcp/mcp.h"
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
            "                        log_level, hostnames, ips, session_ttl, session_idle,\n"
            "                        control_idle);\n"
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

/* What flags and the config file say, and what the daemon holds while it runs (main owns it). */
typedef struct {
    am_config cfg;
    long cert_days;
    long work_n[2]; /* --workers, --work-queue */
    char grpc_addr[300];
    am_app app;
    am_rpc *rpc;
    am_http *http;
    int lock_fd;
} airmeshd;

/* Flags, then the config file they name, checked. -1 to go on, else main's exit status
 * (0 after --help/--version, 2 for a bad command line, 1 for a bad config). */
static int load_settings(airmeshd *d, int argc, char **argv) {
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

    if (am_config_defaults(&d->cfg) != 0)
        return fail("config");
    if (flag[O_CONFIG] && am_config_load_file(&d->cfg, flag[O_CONFIG]) != 0) {
        fail("bad config file");
        am_config_free(&d->cfg);
        return 1;
    }
    if ((flag[O_DATA] && am_config_set(&d->cfg.data, flag[O_DATA])) ||
        (flag[O_LISTEN] && am_config_set(&d->cfg.listen, flag[O_LISTEN])) ||
        (flag[O_GRPC] && am_config_set(&d->cfg.grpc_listen, flag[O_GRPC])) ||
        (flag[O_UI] && am_config_set(&d->cfg.ui, flag[O_UI])) ||
        (flag[O_LOG] && am_config_set(&d->cfg.log_level, flag[O_LOG]))) {
        am_config_free(&d->cfg);
        return fail("config");
    }
    if (d->cfg.agents_file && am_agents_load_file(d->cfg.agents_file) != 0) {
        fail("bad agents file"); /* the catalog's presets (appliance/agents) */
        am_config_free(&d->cfg);
        return 1;
    }
    am_log_level lvl;
    if (am_log_parse_level(d->cfg.log_level, &lvl) != 0) {
        am_config_free(&d->cfg);
        return fail("bad log level");
    }
    am_log_set_level(lvl);
    struct sockaddr_storage ss;
    socklen_t sl;
    if (am_http_parse_listen(d->cfg.listen, &ss, &sl) != 0) {
        am_config_free(&d->cfg);
        return fail("bad --listen");
    }

    d->cert_days = 7;
    if (flag[O_CERTDAYS]) {
        char *end;
        d->cert_days = strtol(flag[O_CERTDAYS], &end, 10);
        if (*end || d->cert_days < 1 || d->cert_days > 365) {
            am_err_set(AM_EINVAL, "--runner-cert-days %s: expected 1..365", flag[O_CERTDAYS]);
            am_config_free(&d->cfg);
            return fail("bad flag");
        }
    }
    /* --workers (default: half the CPUs, at least 1, so hashing never takes every core from
     * the event loop, the d->rpc thread and the pods), --work-queue */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    d->work_n[0] = ncpu >= 4 ? ncpu / 2 : 1;
    d->work_n[1] = 64;
    for (int i = 0; i < 2; i++) {
        const char *v = flag[i ? O_WORKQ : O_WORKERS];
        if (!v)
            continue;
        char *end;
        d->work_n[i] = strtol(v, &end, 10);
        if (*end || d->work_n[i] < 1 || d->work_n[i] > (i ? 100000 : 64)) {
            am_err_set(AM_EINVAL, "--%s %s: expected 1..%d", i ? "work-queue" : "workers", v,
                       i ? 100000 : 64);
            am_config_free(&d->cfg);
            return fail("bad flag");
        }
    }
    if (strncmp(d->cfg.grpc_listen, "0.0.0.0:", 8) == 0 ||
        strncmp(d->cfg.grpc_listen, "[::]:", 5) == 0) {
        char hn[256] = "localhost";
        gethostname(hn, sizeof hn - 1);
        snprintf(d->grpc_addr, sizeof d->grpc_addr, "%s:%s", hn,
                 strrchr(d->cfg.grpc_listen, ':') + 1);
    } else {
        snprintf(d->grpc_addr, sizeof d->grpc_addr, "%s", d->cfg.grpc_listen);
    }
    return -1;
}

/* Everything in start order (see the top of this file). 0, or 1 with the failure logged; what
 * was opened is closed by stop_all either way. */
static int start(airmeshd *d) {
    char path[PATH_MAX];
    int created;
    d->app = (am_app){.data_dir = d->cfg.data,
                      .session_ttl_ms = d->cfg.session_ttl_ms,
                      .session_idle_ms = d->cfg.session_idle_ms,
                      .control_idle_ms = d->cfg.control_idle_ms,
                      .grpc_addr = d->grpc_addr};
    if (prepare_data_dir(d->cfg.data, &d->lock_fd) != 0) {
        return fail("data dir");
    }
    if (am_store_open(d->cfg.data, &d->app.store, &created) != 0) {
        return fail("cannot open the store");
    }
    snprintf(path, sizeof path, "%s/pki", d->cfg.data);
    am_ca_opts ca_opts = {(const char *const *)d->cfg.hostnames, d->cfg.n_hostnames,
                          (const char *const *)d->cfg.ips, d->cfg.n_ips};
    if (am_ca_open(path, &ca_opts, &d->app.ca, &created) != 0) {
        return fail("cannot open the CA");
    }
    if (created)
        am_log_info("pki", "created a new CA", "dir=%s fingerprint=%s", path,
                    am_ca_root_fingerprint(d->app.ca));
    snprintf(path, sizeof path, "%s/audit", d->cfg.data);
    if (am_audit_open(path, NULL, &d->app.audit) != 0) {
        return fail("cannot open the audit log");
    }
    /* The audit key (certified by our CA) seals every segment; created on first start. */
    if (am_audit_signer_ensure(d->app.audit, d->app.ca) != 0) {
        return fail("cannot set up the audit signing key");
    }
    am_work_opts wopts = {
        .threads = (unsigned)d->work_n[0], .queue = (unsigned)d->work_n[1], .nice = 10};
    am_work_opts iopts = {.threads = 1, .queue = 256, .nice = 0}; /* LMDB has one writer */
    /* model endpoint self-tests wait on the network, so they get their own threads: a slow
     * model server never holds up a login */
    am_work_opts mopts = {.threads = 2, .queue = 16, .nice = 0};
    if (am_work_new(&wopts, &d->app.work) != 0 || am_work_new(&iopts, &d->app.io) != 0 ||
        am_work_new(&mopts, &d->app.models) != 0) {
        return fail("cannot start the worker pool");
    }
    am_http_opts hopts = {.listen = d->cfg.listen,
                          .ui_dir = d->cfg.ui,
                          .cert_pem = am_ca_path(d->app.ca, "server.pem"),
                          .key_pem = am_ca_path(d->app.ca, "server.key"),
                          .max_body = 1 << 20};
    if (am_http_open(&d->app, &hopts, &d->http) != 0) {
        return fail("cannot start HTTPS");
    }

    if (am_hub_new(&d->app.hub) != 0) {
        return fail("hub");
    }
    /* The domain layer every transport calls; runners are reached through the link d->rpc
     * implements, injected below once d->rpc runs. */
    am_ops_config ocfg = {.store = d->app.store,
                          .audit = d->app.audit,
                          .hub = d->app.hub,
                          .ca = d->app.ca,
                          .data_dir = d->cfg.data,
                          .session_ttl_ms = d->cfg.session_ttl_ms,
                          .session_idle_ms = d->cfg.session_idle_ms,
                          .cert_days = (uint32_t)d->cert_days,
                          .pod_defaults = {.memory_bytes = d->cfg.pod_memory,
                                           .tmp_bytes = d->cfg.pod_tmp,
                                           .shm_bytes = d->cfg.pod_shm,
                                           .workspace_bytes = d->cfg.pod_workspace,
                                           .cpu_millis = d->cfg.pod_cpu_millis,
                                           .pids = d->cfg.pod_pids}};
    if (am_ops_new(&ocfg, &d->app.ops) != 0) {
        return fail("ops");
    }
    /* The model gateway's thread (before rpc, which hands it GatewayRequests; it reaches
     * runners through the same link, injected below). */
    am_gw_opts gopts = {.ops = d->app.ops, .io = d->app.io};
    if (am_gw_start(&gopts, &d->app.gw) != 0) {
        return fail("cannot start the model gateway");
    }
    /* The MCP server's workers (before rpc, which hands them McpRequests). */
    am_mcp_opts mcpopts = {.ops = d->app.ops};
    if (am_mcp_start(&mcpopts, &d->app.mcp) != 0) {
        return fail("cannot start the MCP server");
    }
    am_rpc_opts ropts = {.listen = d->cfg.grpc_listen, .cert_days = (uint32_t)d->cert_days};
    if (am_rpc_start(&d->app, d->app.hub, &ropts, &d->rpc) != 0) {
        return fail("cannot start the runner protocol");
    }
    d->app.rpc = d->rpc;
    am_ops_set_runner_link(d->app.ops, am_rpc_link_send, d->rpc);
    am_ops_set_model_tester(d->app.ops, am_gw_selftest_run, NULL);
    am_gw_set_link(d->app.gw, am_rpc_link_send, am_rpc_queued, d->rpc);
    am_mcp_set_link(d->app.mcp, am_rpc_link_send, d->rpc);

    return 0;
}

/* The bootstrap admin (first start), "server.start", signals, and the banner on stdout. */
static int announce(airmeshd *d) {
    int created;
    char password[64] = "";
    if (am_auth_bootstrap(d->app.store, password, sizeof password, &created) != 0) {
        return fail("cannot create the bootstrap admin");
    }
    if (created)
        am_audit_event(d->app.audit, "system", AM_AUTH_DEFAULT_ORG, "user.bootstrap",
                       "user:" AM_AUTH_BOOTSTRAP_USER, "ok", "", "{\"role\":\"owner\"}");
    am_audit_event(d->app.audit, "system", "", "server.start", "airmeshd", "ok", "",
                   "{\"version\":\"" AM_VERSION "\"}");
    am_audit_flush(d->app.audit);

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    am_log_info("main", "airmeshd started", "version=%s listen=%s grpc_listen=%s data=%s",
                AM_VERSION, d->cfg.listen, d->cfg.grpc_listen, d->cfg.data);
    const char *host = d->cfg.listen;
    char url[300];
    if (strncmp(host, "0.0.0.0:", 8) == 0 || strncmp(host, "[::]:", 5) == 0)
        snprintf(url, sizeof url, "https://localhost:%d/", am_http_port(d->http));
    else
        snprintf(url, sizeof url, "https://%s/", host);
    printf("airmesh %s is running\n"
           "  console:        %s\n"
           "  CA fingerprint: %s (SHA-256)\n"
           "  CA certificate: %s\n"
           "  runners dial:   %s\n",
           AM_VERSION, url, am_ca_root_fingerprint(d->app.ca), am_ca_path(d->app.ca, "ca.pem"),
           d->grpc_addr);
    if (created)
        printf("  log in as admin with the password below; it is shown only this once.\n"
               "admin password: %s\n",
               password);
    fflush(stdout);
    am_wipe(password, sizeof password);

    return 0;
}

/* Close what start opened, in reverse order (each step skips what was never opened). */
static void stop_all(airmeshd *d) {
    am_gw_stop(d->app.gw);   /* requests in progress end and are recorded (io pool still up) */
    am_mcp_stop(d->app.mcp); /* calls in progress are cancelled; the workers end */
    am_http_close(d->http);
    am_work_free(d->app.work);
    am_work_free(d->app.io);
    am_work_free(d->app.models);
    if (d->app.ops)
        am_ops_set_runner_link(d->app.ops, NULL, NULL);
    d->app.rpc = NULL;
    am_rpc_stop(d->rpc);
    am_gw_free(d->app.gw);
    d->app.gw = NULL;
    am_mcp_free(d->app.mcp);
    d->app.mcp = NULL;
    am_ops_free(d->app.ops);
    am_hub_free(d->app.hub);
    if (d->app.audit) {
        am_audit_flush(d->app.audit);
        am_audit_close(d->app.audit);
    }
    if (d->app.ca)
        am_ca_close(d->app.ca);
    if (d->app.store)
        am_store_close(d->app.store);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    d->lock_fd = -1;
}

int main(int argc, char **argv) {
    static airmeshd d = {.lock_fd = -1}; /* static: its buffers are large for a stack frame */
    int rc = load_settings(&d, argc, argv);
    if (rc >= 0)
        return rc;
    grpc_init();
    int status = start(&d) || announce(&d);
    if (status == 0) {
        am_http_run(d.http, &stop_flag, 10000);
        am_log_info("main", "stopping", NULL);
        am_audit_event(d.app.audit, "system", "", "server.stop", "airmeshd", "ok", "", NULL);
    }
    stop_all(&d);
    if (status == 0)
        am_log_info("main", "stopped cleanly", NULL);
    am_config_free(&d.cfg);
    grpc_shutdown();
    am_pki_thread_done();
    return status;
}
