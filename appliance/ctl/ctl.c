/*
 * appliance/ctl/ctl.c — airmeshctl, the admin CLI: a thin client of the REST API (libcurl).
 *
 * Global options come first: --url (AIRMESH_URL, default https://127.0.0.1:8443),
 * --ca FILE (AIRMESH_CA, default ./var/airmesh/pki/ca.pem when it exists, else the system
 * trust store). The bearer token comes from AIRMESH_TOKEN or from the file `login` wrote:
 * $XDG_CONFIG_HOME/airmesh/session (default ~/.config/airmesh/session, mode 0600).
 * Exit status: 0 success, 1 the request failed (message on stderr), 2 usage error.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "appliance/ctl/audit_cmd.h"
#include "appliance/ctl/ctl.h"
#include "common/err.h"
#include "common/util.h"
#include "common/version.h"

typedef am_ctl ctl;

typedef struct {
    char *buf;
    size_t len;
} sink;

static size_t on_body(char *p, size_t sz, size_t n, void *ud) {
    sink *s = ud;
    size_t add = sz * n;
    if (s->len + add > (64u << 20))
        return 0;
    char *nb = realloc(s->buf, s->len + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + s->len, p, add);
    s->buf = nb;
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

/* A transfer that got no HTTP answer, in words (what to check), instead of curl's terms. */
void am_ctl_curl_error(const char *url, int code) {
    CURLcode rc = (CURLcode)code;
    const char *why;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        why = "the host name is unknown (check --url or AIRMESH_URL)";
        break;
    case CURLE_COULDNT_CONNECT:
        why = "nothing answers there (is airmeshd running, on this port?)";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        why = "no answer in time (is the host reachable?)";
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        why = "not an https:// URL";
        break;
    case CURLE_URL_MALFORMAT:
        why = "not a URL of the form https://HOST[:PORT]";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        why = "the appliance's certificate is not signed by the CA given (pass the appliance's "
              "pki/ca.pem with --ca FILE or AIRMESH_CA)";
        break;
    case CURLE_SSL_CACERT_BADFILE:
        why = "the CA file cannot be used as a certificate";
        break;
    case CURLE_SSL_CONNECT_ERROR:
        why = "the TLS handshake failed (is this airmeshd's HTTPS port?)";
        break;
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
        why = "the connection closed without an answer (is this airmeshd's HTTPS port?)";
        break;
    default:
        why = curl_easy_strerror(rc);
        break;
    }
    fprintf(stderr, "airmeshctl: %s: %s\n", url, why);
}

/* Perform one API call. body may be NULL. On success *out is the parsed JSON (caller decrefs).
 * Returns the HTTP status, or -1 when no response arrived (message printed). */
long am_ctl_api(am_ctl *c, const char *method, const char *path, json_t *body, json_t **out) {
    CURL *h = curl_easy_init();
    char url[1024], auth[300];
    sink s = {0};
    struct curl_slist *hdrs = NULL;
    snprintf(url, sizeof url, "%s%s", c->url, path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (c->token[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    char *payload = NULL;
    if (body) {
        payload = json_dumps(body, JSON_COMPACT);
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(h);
    long status = -1;
    if (rc != CURLE_OK) {
        am_ctl_curl_error(url, rc);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        json_error_t jerr;
        *out = s.len ? json_loadb(s.buf, s.len, 0, &jerr) : json_object();
        if (!*out) {
            fprintf(stderr, "airmeshctl: %s: HTTP %ld with a non-JSON body\n", url, status);
            status = -1;
        }
    }
    if (payload) {
        am_wipe(payload, strlen(payload));
        free(payload);
    }
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(s.buf);
    am_wipe(auth, sizeof auth);
    return status;
}

static size_t on_file(char *p, size_t sz, size_t n, void *ud) {
    return fwrite(p, sz, n, ud) * sz;
}

int am_ctl_download(am_ctl *c, const char *path, const char *file) {
    char url[1024], auth[300], tmp[4096];
    snprintf(url, sizeof url, "%s%s", c->url, path);
    snprintf(tmp, sizeof tmp, "%s.part", file);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        fprintf(stderr, "airmeshctl: %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token);
    hdrs = curl_slist_append(hdrs, auth);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_file);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    am_wipe(auth, sizeof auth);
    int bad = fclose(f) != 0 || rc != CURLE_OK || status != 200;
    if (bad) {
        if (rc != CURLE_OK)
            am_ctl_curl_error(url, rc);
        else {
            uint8_t *body = NULL;
            size_t len = 0;
            json_t *doc = NULL;
            if (am_read_file(tmp, 1 << 20, &body, &len) == 0)
                doc = json_loadb((char *)body, len, 0, NULL);
            free(body);
            unlink(tmp);
            return am_ctl_report(status, doc ? doc : json_object());
        }
        unlink(tmp);
        return 1;
    }
    if (rename(tmp, file) != 0) {
        fprintf(stderr, "airmeshctl: %s: %s\n", file, strerror(errno));
        return 1;
    }
    printf("saved %s\n", file);
    return 0;
}

/* Print the API's error message for a non-2xx status. */
int am_ctl_report(long status, json_t *resp) {
    if (status < 0)
        return 1;
    const char *msg = json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
    fprintf(stderr, "airmeshctl: HTTP %ld: %s\n", status, msg ? msg : "request failed");
    json_decref(resp);
    return 1;
}

static int session_path(char *out, size_t cap, int mkdirs) {
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    char dir[PATH_MAX - 16];
    if (xdg && *xdg)
        snprintf(dir, sizeof dir, "%s/airmesh", xdg);
    else if (home && *home)
        snprintf(dir, sizeof dir, "%s/.config/airmesh", home);
    else
        return am_err_set(AM_EINVAL, "neither XDG_CONFIG_HOME nor HOME is set");
    if (mkdirs && am_mkdir_p(dir, 0700) != 0)
        return -AM_EIO;
    if (snprintf(out, cap, "%s/session", dir) >= (int)cap)
        return am_err_set(AM_EINVAL, "config path too long");
    return 0;
}

static void load_token(ctl *c) {
    const char *env = getenv("AIRMESH_TOKEN");
    if (env && *env) {
        snprintf(c->token, sizeof c->token, "%s", env);
        return;
    }
    char path[PATH_MAX];
    uint8_t *data;
    size_t len;
    if (session_path(path, sizeof path, 0) || am_read_file(path, 65536, &data, &len))
        return;
    json_t *doc = json_loadb((char *)data, len, 0, NULL);
    const char *tok = json_string_value(json_object_get(doc, "token"));
    const char *url = json_string_value(json_object_get(doc, "url"));
    if (tok && url && strcmp(url, c->url) == 0)
        snprintf(c->token, sizeof c->token, "%s", tok);
    json_decref(doc);
    am_wipe(data, len);
    free(data);
}

static int read_password(const char *file, char *out, size_t cap) {
    FILE *f = file ? fopen(file, "r") : stdin;
    if (!f) {
        fprintf(stderr, "airmeshctl: password file %s: %s\n", file, strerror(errno));
        return -1;
    }
    struct termios old, quiet;
    int tty = !file && isatty(STDIN_FILENO);
    if (tty) {
        fprintf(stderr, "Password: ");
        tcgetattr(STDIN_FILENO, &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(out, (int)cap, f);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fprintf(stderr, "\n");
    }
    if (file)
        fclose(f);
    if (!got) {
        fprintf(stderr, "airmeshctl: no password given\n");
        return -1;
    }
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

static int cmd_version(ctl *c) {
    printf("airmeshctl %s\n", AM_VERSION);
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", "/api/v1/version", NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    printf("airmeshd %s at %s\n", json_string_value(json_object_get(resp, "version")), c->url);
    json_decref(resp);
    return 0;
}

static int cmd_login(ctl *c, int argc, char **argv) {
    static const struct option o[] = {{"user", required_argument, 0, 'u'},
                                      {"org", required_argument, 0, 'o'},
                                      {"password-file", required_argument, 0, 'p'},
                                      {0, 0, 0, 0}};
    const char *user = NULL, *org = "default", *pwfile = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (ch == 'u')
            user = optarg;
        else if (ch == 'o')
            org = optarg;
        else if (ch == 'p')
            pwfile = optarg;
        else
            return 2;
    }
    if (!user) {
        fprintf(stderr, "airmeshctl login: --user is required\n");
        return 2;
    }
    char pw[512];
    if (read_password(pwfile, pw, sizeof pw) != 0)
        return 1;
    json_t *body = json_pack("{s:s,s:s,s:s}", "user", user, "password", pw, "org", org);
    am_wipe(pw, sizeof pw);
    json_t *resp = NULL;
    c->token[0] = '\0';
    long st = am_ctl_api(c, "POST", "/api/v1/login", body, &resp);
    json_decref(body);
    if (st != 200)
        return am_ctl_report(st, resp);
    char path[PATH_MAX];
    if (session_path(path, sizeof path, 1) != 0) {
        fprintf(stderr, "airmeshctl: cannot store the session: %s\n", am_err_last());
        json_decref(resp);
        return 1;
    }
    json_t *sess = json_pack("{s:s,s:O}", "url", c->url, "token", json_object_get(resp, "token"));
    char *text = json_dumps(sess, JSON_COMPACT);
    int rc = am_write_file_atomic(path, text, strlen(text), 0600);
    am_wipe(text, strlen(text));
    free(text);
    json_decref(sess);
    if (rc) {
        fprintf(stderr, "airmeshctl: %s\n", am_err_last());
        json_decref(resp);
        return 1;
    }
    printf("logged in as %s (org %s); session saved in %s\n", user,
           json_string_value(json_object_get(resp, "org")), path);
    json_decref(resp);
    return 0;
}

/* Logged out already (no session, or the appliance ended it): say so, exit 0. */
static int cmd_logout(ctl *c) {
    char path[PATH_MAX];
    if (!c->token[0]) {
        printf("not logged in at %s: nothing to do\n", c->url);
        return 0;
    }
    json_t *resp = NULL;
    long st = am_ctl_api(c, "POST", "/api/v1/logout", NULL, &resp);
    if (st == 200 || st == 401) {
        if (session_path(path, sizeof path, 0) == 0)
            unlink(path);
        json_decref(resp);
        printf(st == 200 ? "logged out\n" : "the session had already ended; forgotten here\n");
        return 0;
    }
    return am_ctl_report(st, resp);
}

static int cmd_whoami(ctl *c) {
    json_t *resp = NULL;
    long st = am_ctl_api(c, "GET", "/api/v1/whoami", NULL, &resp);
    if (st != 200)
        return am_ctl_report(st, resp);
    printf("%s (org %s)\n", json_string_value(json_object_get(resp, "user")),
           json_string_value(json_object_get(resp, "org")));
    json_decref(resp);
    return 0;
}

const char *am_ctl_opt(int argc, char **argv, const char *name) {
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

int am_ctl_has_flag(int argc, char **argv, const char *name) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return 1;
    return 0;
}

void am_ctl_local_time(long long ms, char *buf, size_t cap) {
    if (ms <= 0) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char z[8];
    localtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    strftime(z, sizeof z, "%z", &tm); /* +0100 → +01:00 */
    size_t n = strlen(buf);
    if (strlen(z) == 5 && n + 7 <= cap)
        snprintf(buf + n, cap - n, "%.3s:%s", z, z + 3);
}

static void fmt_time(json_int_t ms, char *buf, size_t cap) {
    am_ctl_local_time((long long)ms, buf, cap);
}

static char *labels_text(json_t *labels, char *buf, size_t cap) {
    const char *k;
    json_t *v;
    size_t o = 0;
    buf[0] = '\0';
    json_object_foreach(labels, k, v) {
        int n = snprintf(buf + o, cap - o, "%s%s=%s", o ? "," : "", k, json_string_value(v));
        if (n < 0 || (size_t)n >= cap - o)
            break;
        o += (size_t)n;
    }
    if (!o)
        snprintf(buf, cap, "-");
    return buf;
}

/* Parse repeated --label K=V into a JSON object; returns -1 on a bad label. */
static int add_label(json_t *labels, const char *kv) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) {
        fprintf(stderr, "airmeshctl: --label %s: expected KEY=VALUE\n", kv);
        return -1;
    }
    char key[128];
    snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
    json_object_set_new(labels, key, json_string(eq + 1));
    return 0;
}

static int cmd_token(ctl *c, int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "airmeshctl token: expected create, list or revoke\n");
        return 2;
    }
    const char *sub = argv[1];
    json_t *resp = NULL;
    long st;
    if (strcmp(sub, "create") == 0) {
        static const struct option o[] = {{"org", required_argument, 0, 'o'},
                                          {"ttl", required_argument, 0, 't'},
                                          {"label", required_argument, 0, 'l'},
                                          {0, 0, 0, 0}};
        json_t *body = json_object(), *labels = json_object();
        int ch;
        optind = 2;
        while ((ch = getopt_long(argc, argv, "", o, NULL)) != -1) {
            if (ch == 'o')
                json_object_set_new(body, "org", json_string(optarg));
            else if (ch == 't')
                json_object_set_new(body, "ttl", json_string(optarg));
            else if (ch != 'l' || add_label(labels, optarg) != 0) {
                json_decref(body);
                json_decref(labels);
                return 2;
            }
        }
        json_object_set_new(body, "labels", labels);
        st = am_ctl_api(c, "POST", "/api/v1/runner-tokens", body, &resp);
        json_decref(body);
        if (st != 201)
            return am_ctl_report(st, resp);
        char exp[40];
        fmt_time(json_integer_value(json_object_get(resp, "expires_ms")), exp, sizeof exp);
        printf("token:          %s\n"
               "token id:       %s (org %s, single use, expires %s)\n"
               "CA fingerprint: %s\n"
               "On the runner host, run:\n  %s\n",
               json_string_value(json_object_get(resp, "token")),
               json_string_value(json_object_get(resp, "id")),
               json_string_value(json_object_get(resp, "org")), exp,
               json_string_value(json_object_get(resp, "ca_sha256")),
               json_string_value(json_object_get(resp, "command")));
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "list") == 0) {
        st = am_ctl_api(c, "GET", "/api/v1/runner-tokens", NULL, &resp);
        if (st != 200)
            return am_ctl_report(st, resp);
        am_ctl_table tab;
        am_ctl_table_init(&tab, 5, (const char *[]){"ID", "STATE", "EXPIRES", "USED BY", "LABELS"});
        size_t i;
        json_t *t;
        json_array_foreach(json_object_get(resp, "tokens"), i, t) {
            char exp[40], lab[512];
            fmt_time(json_integer_value(json_object_get(t, "expires_ms")), exp, sizeof exp);
            am_ctl_table_add(
                &tab, (const char *[]){json_string_value(json_object_get(t, "id")),
                                       json_string_value(json_object_get(t, "state")), exp,
                                       json_string_value(json_object_get(t, "used_by")),
                                       labels_text(json_object_get(t, "labels"), lab, sizeof lab)});
        }
        am_ctl_table_print(&tab, stdout);
        am_ctl_table_free(&tab);
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "revoke") == 0 && argc == 3) {
        char path[300];
        snprintf(path, sizeof path, "/api/v1/runner-tokens/%s/revoke", argv[2]);
        json_t *empty = json_object();
        st = am_ctl_api(c, "POST", path, empty, &resp);
        json_decref(empty);
        if (st != 200)
            return am_ctl_report(st, resp);
        printf("token %s revoked\n", argv[2]);
        json_decref(resp);
        return 0;
    }
    fprintf(stderr, "airmeshctl token: expected create [--org ORG] [--ttl 1h] [--label K=V], "
                    "list, or revoke ID\n");
    return 2;
}

static int cmd_runner(ctl *c, int argc, char **argv) {
    json_t *resp = NULL;
    long st;
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        int as_json = argc == 3 && strcmp(argv[2], "--json") == 0;
        st = am_ctl_api(c, "GET", "/api/v1/runners", NULL, &resp);
        if (st != 200)
            return am_ctl_report(st, resp);
        if (as_json) {
            json_dumpf(json_object_get(resp, "runners"), stdout, JSON_INDENT(2));
            printf("\n");
            json_decref(resp);
            return 0;
        }
        am_ctl_table tab;
        am_ctl_table_init(&tab, 7,
                          (const char *[]){"ID", "STATE", "HOSTNAME", "VERSION", "LAST HEARTBEAT",
                                           "CERT EXPIRES", "LABELS"});
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(resp, "runners"), i, r) {
            char hb[40], exp[40], lab[512];
            fmt_time(json_integer_value(json_object_get(r, "last_heartbeat_ms")), hb, sizeof hb);
            fmt_time(json_integer_value(json_object_get(r, "cert_not_after_ms")), exp, sizeof exp);
            am_ctl_table_add(
                &tab, (const char *[]){json_string_value(json_object_get(r, "id")),
                                       json_string_value(json_object_get(r, "state")),
                                       json_string_value(json_object_get(r, "hostname")),
                                       json_string_value(json_object_get(r, "version")), hb, exp,
                                       labels_text(json_object_get(r, "labels"), lab, sizeof lab)});
        }
        am_ctl_table_print(&tab, stdout);
        am_ctl_table_free(&tab);
        json_decref(resp);
        return 0;
    }
    if (argc == 3 && (strcmp(argv[1], "revoke") == 0 || strcmp(argv[1], "show") == 0)) {
        char path[300];
        int revoke = argv[1][0] == 'r';
        snprintf(path, sizeof path, "/api/v1/runners/%s%s", argv[2], revoke ? "/revoke" : "");
        json_t *empty = revoke ? json_object() : NULL;
        st = am_ctl_api(c, revoke ? "POST" : "GET", path, empty, &resp);
        json_decref(empty);
        if (st != 200)
            return am_ctl_report(st, resp);
        if (revoke)
            printf("runner %s revoked: its stream is closed and its certificates refused\n",
                   argv[2]);
        else {
            json_dumpf(resp, stdout, JSON_INDENT(2));
            printf("\n");
        }
        json_decref(resp);
        return 0;
    }
    fprintf(stderr, "airmeshctl runner: expected list [--json], show ID, or revoke ID\n");
    return 2;
}

static void usage(FILE *out) {
    fprintf(out,
            "Usage: airmeshctl [--url URL] [--ca FILE] COMMAND [ARGS]\n"
            "The airmesh admin CLI, a client of the appliance's REST API.\n"
            "\n"
            "Global options:\n"
            "  --url URL     appliance URL (env AIRMESH_URL; default https://127.0.0.1:8443)\n"
            "  --ca FILE     CA certificate to trust (env AIRMESH_CA; default\n"
            "                ./var/airmesh/pki/ca.pem when it exists)\n"
            "  --help        show this help;  --version  print the client version\n"
            "Environment: AIRMESH_TOKEN overrides the saved session token.\n"
            "\n"
            "Commands:\n"
            "  version                       client and appliance versions\n"
            "  login --user NAME [--org ORG] [--password-file FILE]\n"
            "                                log in (password prompted when no file is given;\n"
            "                                read from stdin when it is not a terminal) and save\n"
            "                                the session in ~/.config/airmesh/session (mode 0600)\n"
            "  whoami                        the logged-in user\n"
            "  logout                        end the session and forget it\n"
            "  token create [--org ORG] [--ttl 1h] [--label K=V ...]\n"
            "                                a one-time runner enrollment token, with the\n"
            "                                command to run on the runner host\n"
            "  token list                    tokens of your org and their state\n"
            "  token revoke ID               revoke an unused token\n"
            "  runner list [--json]          runners: state, heartbeat, version, labels, expiry\n"
            "  runner show ID                one runner as JSON\n"
            "  runner revoke ID              revoke a runner: its live stream closes at once\n"
            "  ticket create TITLE | list | show KEY | update KEY | comment KEY TEXT\n"
            "  ticket start KEY --repo R     the org's tickets; start: a pod on branch <key>\n"
            "  model add NAME --api openai|anthropic --url URL [--key-file F] [--ca F]\n"
            "            [--models m1,m2]     add a model endpoint (admins); prints its self-test\n"
            "  model list | show NAME | test NAME | rm NAME\n"
            "                                the org's model endpoints; test re-runs the self-test\n"
            "  channel create NAME [--member user:ID|pod:ID ...] | list | join NAME | leave NAME\n"
            "  channel post NAME TEXT|- | read NAME [--before N|--after N] [--limit N]\n"
            "                                the org's channels; @p-ID mentions prompt a pod\n"
            "  binding list [--pod ID] | request FROM TO --scopes read,write [--ttl 1h]\n"
            "  binding accept ID | reject ID [--reason T] | end ID\n"
            "                                pod -> pod bindings (what one pod may read/write)\n"
            "  org binding-policy ORG [same_creator|explicit]\n"
            "                                when bindings are active at once (admins set it)\n"
            "  pod create --repo URL [--base-ref REF] [--branch B] [--runner ID]\n"
            "             [--label K=V ...] [--env K=V ...] [--memory 512M] [--pids N]\n"
            "             [--cpu CORES] [--tmp 256M] [--shm 64M] [--workspace 1G]\n"
            "             [--network none|models|allow|host] [--keep-worktree] [--shared] [--json]\n"
            "             [--agent NAME [--prompt TEXT]] [-- COMMAND [ARGS...]]\n"
            "                                start an agent in a sandboxed pod on its own branch\n"
            "  pod prompt ID TEXT|-          type a prompt into a running pod (Enter included)\n"
            "  agent list [--json]           the agent catalog and which runners have each CLI\n"
            "  pod list [--json], pod show ID [--json]\n"
            "                                pods of your org and their state\n"
            "  pod share ID [--off]          let other members take control of and stop it\n"
            "  pod logs ID [--follow]        print the pod's scrollback (its last 1 MiB)\n"
            "  pod attach ID                 the pod's terminal in yours (detach: Ctrl-] q)\n"
            "  pod wait ID [--timeout S]     wait until the pod ends; exit 0 if it exited 0\n"
            "  pod stop ID, pod rm ID        stop a pod; remove an ended pod's record\n"
            "  pod recording ID -o FILE      download the pod's asciicast recording (.cast)\n"
            "  org list | org create ID --owner NAME [--name TEXT] [--password-file F]\n"
            "                                organizations (create: the appliance admin only)\n"
            "  org quota [ORG] [--tokens-per-day N]  the org's model token quota per day\n"
            "  usage [--json]                model gateway tokens: org today, users, pods\n"
            "  user list | user create NAME [--role viewer|member|admin|owner]\n"
            "       [--password-file F] | user disable|enable|rm|revoke-sessions NAME |\n"
            "       user role NAME ROLE | user passwd NAME --password-file F\n"
            "       [--current-password-file F]   users of your org\n"
            "  team list | team create NAME | team add|remove TEAM USER | team rm TEAM\n"
            "  api-token list | api-token create [--name N] [--role R] [--ttl 30d] |\n"
            "       api-token revoke ID          tokens for automation "
            "(AIRMESH_TOKEN)\n" AM_CTL_AUDIT_USAGE
            "  help [COMMAND]                this overview, or one command's flags (also\n"
            "                                airmeshctl COMMAND --help)\n");
}

int main(int argc, char **argv) {
    ctl c = {0};
    c.url = getenv("AIRMESH_URL");
    if (!c.url || !*c.url)
        c.url = "https://127.0.0.1:8443";
    c.ca = getenv("AIRMESH_CA");
    if ((!c.ca || !*c.ca) && access("./var/airmesh/pki/ca.pem", R_OK) == 0)
        c.ca = "./var/airmesh/pki/ca.pem";
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("airmeshctl %s\n", AM_VERSION);
            return 0;
        } else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
            c.url = argv[++i];
        } else if (strcmp(argv[i], "--ca") == 0 && i + 1 < argc) {
            c.ca = argv[++i];
        } else {
            fprintf(stderr, "airmeshctl: unknown or incomplete option '%s' (see --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (!setlocale(LC_CTYPE, "C.UTF-8"))
        setlocale(LC_CTYPE, ""); /* display widths of names in lists */
    if (strcmp(argv[i], "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            return 0;
        }
        return am_ctl_help(argv[i + 1], stdout);
    }
    if (am_ctl_wants_help(argc - i, argv + i)) {
        int known = am_ctl_help(argv[i], stdout);
        return known == 0 ? 0 : 2;
    }
    if (strcmp(argv[i], "audit") != 0 || (i + 1 < argc && strcmp(argv[i + 1], "export") == 0)) {
        /* Commands that talk to the appliance: a URL and a CA that can work, said in words. */
        if (strncasecmp(c.url, "https://", 8) != 0 || !c.url[8] || c.url[8] == '/') {
            fprintf(stderr,
                    "airmeshctl: %s: the appliance URL must be https://HOST[:PORT] (airmeshd "
                    "serves only HTTPS)\n",
                    c.url);
            return 2;
        }
        if (c.ca && *c.ca && access(c.ca, R_OK) != 0) {
            fprintf(stderr,
                    "airmeshctl: the CA file %s cannot be read: %s (it is the appliance's "
                    "pki/ca.pem; pass it with --ca FILE or AIRMESH_CA)\n",
                    c.ca, strerror(errno));
            return 1;
        }
    }
    size_t ul = strlen(c.url);
    char url[512];
    snprintf(url, sizeof url, "%.*s", (int)(ul && c.url[ul - 1] == '/' ? ul - 1 : ul), c.url);
    c.url = url;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    load_token(&c);
    const char *cmd = argv[i];
    int sub_argc = argc - i;
    char **sub_argv = argv + i;
    int rc;
    if (strcmp(cmd, "version") == 0)
        rc = cmd_version(&c);
    else if (strcmp(cmd, "login") == 0)
        rc = cmd_login(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "logout") == 0)
        rc = cmd_logout(&c);
    else if (strcmp(cmd, "whoami") == 0)
        rc = cmd_whoami(&c);
    else if (strcmp(cmd, "token") == 0)
        rc = cmd_token(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "runner") == 0)
        rc = cmd_runner(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "pod") == 0 && sub_argc > 1 &&
             (strcmp(sub_argv[1], "logs") == 0 || strcmp(sub_argv[1], "attach") == 0))
        rc = am_ctl_pod_terminal(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "pod") == 0 && sub_argc > 1 && strcmp(sub_argv[1], "prompt") == 0)
        rc = am_ctl_pod_prompt(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "pod") == 0 && sub_argc > 1 &&
             (strcmp(sub_argv[1], "diff") == 0 || strcmp(sub_argv[1], "review") == 0 ||
              strcmp(sub_argv[1], "approve") == 0))
        rc = am_ctl_pod_review(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "pod") == 0)
        rc = am_ctl_pod(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "agent") == 0)
        rc = am_ctl_agent(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "org") == 0 || strcmp(cmd, "user") == 0 || strcmp(cmd, "team") == 0 ||
             strcmp(cmd, "api-token") == 0)
        rc = am_ctl_tenancy(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "model") == 0)
        rc = am_ctl_model(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "usage") == 0)
        rc = am_ctl_usage(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "ticket") == 0)
        rc = am_ctl_ticket(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "channel") == 0)
        rc = am_ctl_channel(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "binding") == 0)
        rc = am_ctl_binding(&c, sub_argc, sub_argv);
    else if (strcmp(cmd, "audit") == 0)
        rc = am_ctl_audit(c.url, c.ca, c.token, sub_argc, sub_argv);
    else {
        fprintf(stderr, "airmeshctl: unknown command '%s' (see airmeshctl help)\n", cmd);
        rc = 2;
    }
    am_wipe(c.token, sizeof c.token);
    curl_global_cleanup();
    return rc;
}
