/*
 * appliance/ctl/audit_cmd.c — `airmeshctl audit export|verify|show`.
 *
 * export downloads GET /api/v1/audit/export (libcurl, the same TLS settings as the rest of
 * airmeshctl) into FILE.tmp (0600), renames it to FILE and verifies it locally. verify and show
 * work on the file alone, with no network and no appliance: they use the audit library's export
 * reader (appliance/audit/audit.h), the one parser of that format. verify prints the root CA's
 * SHA-256 fingerprint: the auditor compares it with the appliance's (`airmeshd` prints it at
 * first start; runner enrollment commands carry it), since a forger could build a consistent
 * file around their own CA.
 *
 * Ownership: nothing outlives a call. Threads: the main thread only.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "appliance/audit/audit.h"
#include "appliance/ctl/audit_cmd.h"
#include "common/err.h"
#include "common/util.h"

static void fmt_ms(uint64_t ms, char *buf, size_t cap) {
    if (!ms) {
        snprintf(buf, cap, "-");
        return;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int do_verify(const char *file) {
    am_audit_export_report rep;
    int rc = am_audit_export_verify(file, &rep);
    if (rc) {
        printf("FAILED: %s\n", rep.r.first_error[0] ? rep.r.first_error : am_err_last());
        if (rep.r.where[0])
            printf("  where: %s\n", rep.r.where);
        if (rep.root_fp[0])
            printf("  root CA SHA-256 (from the file): %s\n", rep.root_fp);
        return 1;
    }
    char since[32], until[32], created[32];
    fmt_ms(rep.since_ms, since, sizeof since);
    fmt_ms(rep.until_ms, until, sizeof until);
    fmt_ms(rep.created_ms, created, sizeof created);
    printf("OK: %llu segments (%llu..%llu), %llu blocks, %llu records (seq %llu..%llu); every "
           "hash, seal and the file signature verified\n",
           (unsigned long long)rep.r.segments, (unsigned long long)rep.first_segment,
           (unsigned long long)rep.last_segment, (unsigned long long)rep.r.blocks,
           (unsigned long long)rep.r.records, (unsigned long long)rep.first_seq,
           (unsigned long long)rep.r.last_seq);
    printf("  exported %s, range %s .. %s\n", created, since, until);
    printf("  audit key: %s\n", rep.subject);
    printf("  root CA SHA-256: %s\n", rep.root_fp);
    printf("  compare this fingerprint with your appliance's before trusting the result\n");
    return 0;
}

static int show_cb(void *ud, const Airmesh__V1__AuditRecord *r) {
    (void)ud;
    json_t *o = am_audit_record_json(r); /* the same JSON as GET /api/v1/audit */
    if (!o)
        return -AM_ENOMEM;
    json_dumpf(o, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(o);
    return 0;
}

static int do_show(const char *file, int all) {
    am_audit_export_report rep;
    int rc = am_audit_export_read(file, all, show_cb, NULL, &rep);
    if (rc) {
        fprintf(stderr, "airmeshctl audit show: %s\n",
                rep.r.first_error[0] ? rep.r.first_error : am_err_last());
        return 1;
    }
    return 0;
}

static size_t to_file(char *p, size_t sz, size_t n, void *ud) {
    return fwrite(p, sz, n, (FILE *)ud) * sz;
}

static int do_export(const char *url, const char *ca, const char *token, const char *since,
                     const char *until, const char *out) {
    char tmp[4096], full[2048], auth[300];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out) >= (int)sizeof tmp) {
        fprintf(stderr, "airmeshctl audit export: path too long\n");
        return 2;
    }
    CURL *h = curl_easy_init();
    if (!h)
        return 1;
    char *es = since ? curl_easy_escape(h, since, 0) : NULL;
    char *eu = until ? curl_easy_escape(h, until, 0) : NULL;
    int n = snprintf(full, sizeof full, "%s/api/v1/audit/export?since=%s%s%s", url, es ? es : "0",
                     eu ? "&until=" : "", eu ? eu : "");
    curl_free(es);
    curl_free(eu);
    if (n < 0 || (size_t)n >= sizeof full) {
        curl_easy_cleanup(h);
        fprintf(stderr, "airmeshctl audit export: URL too long\n");
        return 2;
    }
    FILE *f = fopen(tmp, "wbx");
    if (!f && errno == EEXIST && unlink(tmp) == 0)
        f = fopen(tmp, "wbx");
    if (!f) {
        fprintf(stderr, "airmeshctl audit export: create %s: %s\n", tmp, strerror(errno));
        curl_easy_cleanup(h);
        return 1;
    }
    fchmod(fileno(f), 0600);
    struct curl_slist *hdrs = NULL;
    if (token && *token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    curl_easy_setopt(h, CURLOPT_URL, full);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, to_file);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (ca)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    am_wipe(auth, sizeof auth);
    int werr = fflush(f) != 0 || fsync(fileno(f)) != 0;
    fclose(f);
    if (cc != CURLE_OK) {
        fprintf(stderr, "airmeshctl: %s: %s\n", url, curl_easy_strerror(cc));
        unlink(tmp);
        return 1;
    }
    if (status != 200) {
        uint8_t *body = NULL;
        size_t len = 0;
        const char *msg = NULL;
        json_t *doc = NULL;
        if (am_read_file(tmp, 65536, &body, &len) == 0)
            doc = json_loadb((const char *)body, len, 0, NULL);
        msg = json_string_value(json_object_get(json_object_get(doc, "error"), "message"));
        fprintf(stderr, "airmeshctl: HTTP %ld: %s\n", status, msg ? msg : "request failed");
        json_decref(doc);
        free(body);
        unlink(tmp);
        return 1;
    }
    if (werr || rename(tmp, out) != 0) {
        fprintf(stderr, "airmeshctl audit export: write %s: %s\n", out, strerror(errno));
        unlink(tmp);
        return 1;
    }
    struct stat st;
    stat(out, &st);
    printf("wrote %s (%lld bytes)\n", out, (long long)st.st_size);
    return do_verify(out);
}

int am_ctl_audit(const char *url, const char *ca, const char *token, int argc, char **argv) {
    const char *sub = argc >= 2 ? argv[1] : "";
    if (strcmp(sub, "verify") == 0 && argc == 3)
        return do_verify(argv[2]);
    if (strcmp(sub, "show") == 0 && (argc == 3 || argc == 4)) {
        int all = argc == 4 && strcmp(argv[2], "--all") == 0;
        if (argc == 3 || all)
            return do_show(argv[argc - 1], all);
    }
    if (strcmp(sub, "export") == 0) {
        static const struct option o[] = {{"since", required_argument, 0, 's'},
                                          {"until", required_argument, 0, 'u'},
                                          {"output", required_argument, 0, 'o'},
                                          {0, 0, 0, 0}};
        const char *since = NULL, *until = NULL, *out = NULL;
        int ch;
        optind = 2;
        while ((ch = getopt_long(argc, argv, "o:", o, NULL)) != -1) {
            if (ch == 's')
                since = optarg;
            else if (ch == 'u')
                until = optarg;
            else if (ch == 'o')
                out = optarg;
            else
                return 2;
        }
        if (!out || optind != argc) {
            fprintf(stderr, "airmeshctl audit export: -o FILE is required\n");
            return 2;
        }
        return do_export(url, ca, token, since, until, out);
    }
    fprintf(stderr, "airmeshctl audit: expected export [--since T] [--until T] -o FILE, "
                    "verify FILE, or show [--all] FILE\n");
    return 2;
}
