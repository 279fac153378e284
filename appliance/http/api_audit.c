/*
 * appliance/http/api_audit.c — REST endpoints for the audit log.
 *
 * GET /api/v1/audit?since=&until=&actor=&action=&limit=&cursor=
 *   Events in seq order, as {"events": [{seq, time_ms, actor, org, action, target, result,
 *   source, details}], "next_cursor": seq | null}. Every member sees the events of their own org;
 *   admins and owners also see system events (org ""), e.g. server.start. since/until: Unix ms or
 *   RFC 3339 ("2026-01-02T03:04:05Z", "...+02:00"), range [since, until). actor/action: exact
 *   match. limit: 1..1000, default 100. cursor: the seq to continue from (next_cursor of the
 *   previous page). Everything appended before the request is flushed first, so an event shows
 *   up as soon as its request answered.
 * GET /api/v1/audit/export?since=&until=
 *   The offline export file (application/octet-stream, format in appliance/audit/audit.h) for
 *   `airmeshctl audit export`. Owners only: segments hold every org's events and cannot be cut
 *   per org without breaking their hashes and seals. Creates the audit key on first use.
 *   Exports are built in an unnamed temporary file in the data directory and answered from
 *   memory, up to EXPORT_MAX bytes (413 beyond: narrow the range).
 *
 * Threads: the http thread; the export's work (seal, key, reading the segments) on the I/O
 * worker pool (appliance/work). Memory: the export body is malloc'd by the job and freed with
 * req->pool once the response is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/http/internal.h"
#include "appliance/work/work.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* Declared in internal.h (the router's header); repeated here so this file stands alone. */
int am_api_audit_list(am_http_handler *h, h2o_req_t *req, char **param);
int am_api_audit_export(am_http_handler *h, h2o_req_t *req, char **param);

#define LIST_DEFAULT 100
#define LIST_MAX 1000
#define EXPORT_MAX (256ull << 20)
#define QVAL_MAX 256

static int parse_digits(const char *s, size_t n, int *out) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Unix milliseconds, or RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff...](Z|+HH:MM|-HH:MM)". */
static int parse_time(const char *s, uint64_t *ms) {
    size_t n = strlen(s);
    if (n > 0 && n <= 15 && strspn(s, "0123456789") == n) {
        *ms = strtoull(s, NULL, 10);
        return 0;
    }
    int Y, M, D, h, m, sec, frac_ms = 0, off = 0;
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':' || parse_digits(s, 4, &Y) || parse_digits(s + 5, 2, &M) ||
        parse_digits(s + 8, 2, &D) || parse_digits(s + 11, 2, &h) || parse_digits(s + 14, 2, &m) ||
        parse_digits(s + 17, 2, &sec))
        return -1;
    const char *p = s + 19;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                frac_ms = frac_ms * 10 + (*p - '0');
        if (digits == 0)
            return -1;
        for (; digits < 3; digits++)
            frac_ms *= 10;
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (parse_digits(p + 1, 2, &oh) || parse_digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        off = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p || Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = Y - 1900,
                    .tm_mon = M - 1,
                    .tm_mday = D,
                    .tm_hour = h,
                    .tm_min = m,
                    .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1 || (int64_t)t - off < 0)
        return -1;
    *ms = (uint64_t)((int64_t)t - off) * 1000 + (uint64_t)frac_ms;
    return 0;
}

/* since/until from the query; sends 400 and returns -1 on a bad value. */
static int time_range(h2o_req_t *req, uint64_t *since, uint64_t *until) {
    char v[QVAL_MAX];
    *since = *until = 0;
    int r = am_api_query_param(req, 0, "since", v, sizeof v);
    if (r < 0 || (r == 1 && parse_time(v, since) != 0)) {
        am_http_send_error(req, 400, "bad_request", "since: Unix milliseconds or RFC 3339");
        return -1;
    }
    r = am_api_query_param(req, 0, "until", v, sizeof v);
    if (r < 0 || (r == 1 && parse_time(v, until) != 0)) {
        am_http_send_error(req, 400, "bad_request", "until: Unix milliseconds or RFC 3339");
        return -1;
    }
    return 0;
}

typedef struct {
    const char *org;
    int see_system;
    uint64_t since, until, cursor;
    const char *actor, *action; /* NULL = any */
    size_t limit, n;
    json_t *events;
    uint64_t next; /* seq of the first event of the next page, 0 = none */
} list_ctx;

static int list_cb(void *ud, const Airmesh__V1__AuditRecord *r) {
    list_ctx *c = ud;
    if (r->seq < c->cursor)
        return 0;
    int visible = strcmp(r->org_id, c->org) == 0 || (c->see_system && r->org_id[0] == '\0');
    if (!visible || r->time_ms < c->since || (c->until && r->time_ms >= c->until) ||
        (c->actor && strcmp(r->actor, c->actor) != 0) ||
        (c->action && strcmp(r->action, c->action) != 0))
        return 0;
    if (c->n == c->limit) {
        c->next = r->seq;
        return 1; /* page full and there is more: stop */
    }
    json_array_append_new(c->events, am_audit_record_json(r));
    c->n++;
    return 0;
}

int am_api_audit_list(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    list_ctx c = {.org = who.org_id,
                  .see_system = am_auth_can(&who, AM_CAN_AUDIT_SYSTEM, NULL) == 0,
                  .limit = LIST_DEFAULT,
                  .cursor = 1};
    if (time_range(req, &c.since, &c.until))
        return 0;
    char actor[QVAL_MAX], action[QVAL_MAX], v[QVAL_MAX];
    int ra = am_api_query_param(req, 0, "actor", actor, sizeof actor);
    int rb = am_api_query_param(req, 0, "action", action, sizeof action);
    if (ra < 0 || rb < 0) {
        am_http_send_error(req, 400, "bad_request", "actor/action: at most 255 bytes");
        return 0;
    }
    c.actor = ra == 1 ? actor : NULL;
    c.action = rb == 1 ? action : NULL;
    int r;
    if ((r = am_api_query_param(req, 0, "limit", v, sizeof v)) != 0) {
        char *e;
        unsigned long l = r == 1 ? strtoul(v, &e, 10) : 0;
        if (r < 0 || *e || l < 1 || l > LIST_MAX) {
            am_http_send_error(req, 400, "bad_request", "limit: 1 to 1000");
            return 0;
        }
        c.limit = l;
    }
    if ((r = am_api_query_param(req, 0, "cursor", v, sizeof v)) != 0) {
        char *e;
        unsigned long long s = r == 1 ? strtoull(v, &e, 10) : 0;
        if (r < 0 || *e || s < 1) {
            am_http_send_error(req, 400, "bad_request", "cursor: a next_cursor value");
            return 0;
        }
        c.cursor = s;
    }
    c.events = json_array();
    int rc = am_audit_flush(h->app->audit);
    if (!rc)
        rc = am_audit_query(am_audit_dir(h->app->audit), c.cursor, list_cb, &c);
    if (rc < 0) {
        am_log_error("api", "audit query failed", "error=\"%s\"", am_err_last());
        json_decref(c.events);
        am_http_send_error(req, 500, "internal", "could not read the audit log");
        return 0;
    }
    am_http_send_json(req, 200,
                      json_pack("{s:o,s:o}", "events", c.events, "next_cursor",
                                c.next ? json_integer((json_int_t)c.next) : json_null()));
    return 0;
}

static h2o_generator_t export_gen = {NULL, NULL};

/* An export on the I/O pool: everything but the answer runs in export_run. */
typedef struct {
    am_work_job job; /* first: the pool's part */
    am_app *app;
    uint64_t since, until;
    am_principal who;
    char peer[64];
    /* results */
    int rc, too_large;
    char err[256];
    uint8_t *body; /* malloc'd; handed to the request's pool in export_done */
    am_audit_export_info info;
} export_job;

static void export_run(am_work_job *job) {
    export_job *j = (export_job *)job;
    am_app *app = j->app;
    uint8_t *root = NULL;
    size_t root_len = 0;
    const char *ca_pem_path = am_ca_path(am_ops_ca(app->ops), "ca.pem");
    int fd = -1, rc = ca_pem_path ? am_read_file(ca_pem_path, 65536, &root, &root_len)
                                  : am_err_set(AM_ESTATE, "audit export: no CA certificate");
    char *root_pem = NULL;
    if (!rc && !(root_pem = malloc(root_len + 1)))
        rc = am_err_set(AM_ENOMEM, "out of memory");
    if (!rc) {
        memcpy(root_pem, root, root_len);
        root_pem[root_len] = '\0';
        fd = open(app->data_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        if (fd < 0)
            rc = am_err_set(AM_EIO, "audit export: temporary file in %s: %s", app->data_dir,
                            strerror(errno));
    }
    /* ops checks the role, audits the export before making it (so the file records who took
     * it), makes sure the audit key exists and writes the export */
    if (!rc)
        rc = am_ops_audit_export(app->ops, &j->who, j->peer, root_pem, j->since, j->until, fd,
                                 &j->info);
    free(root);
    free(root_pem);
    if (!rc && j->info.bytes > EXPORT_MAX)
        j->too_large = 1;
    else if (!rc && !(j->body = malloc(j->info.bytes ? j->info.bytes : 1)))
        rc = am_err_set(AM_ENOMEM, "audit export: out of memory");
    for (size_t got = 0; !rc && !j->too_large && got < j->info.bytes;) {
        ssize_t n = pread(fd, j->body + got, j->info.bytes - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            rc = am_err_set(AM_EIO, "audit export: read back: %s",
                            n < 0 ? strerror(errno) : "short file");
        else
            got += (size_t)n;
    }
    if (fd >= 0)
        close(fd);
    j->rc = rc;
    if (rc)
        snprintf(j->err, sizeof j->err, "%s", am_err_last());
}

static void free_body(void *p) {
    free(*(uint8_t **)p);
}

static void export_done(am_work_job *job, h2o_req_t *req, int cancelled) {
    export_job *j = (export_job *)job;
    if (!req || cancelled || j->rc || j->too_large) {
        if (req && cancelled) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
                           H2O_STRLIT("1"));
            am_http_send_error(req, 503, "busy", "the appliance is shutting down: try again");
        } else if (req && j->too_large) {
            am_http_send_error(req, 413, "too_large",
                               "the export exceeds 256 MiB: narrow it with since/until");
        } else if (req && j->rc) {
            am_log_error("api", "audit export failed", "error=\"%s\"", j->err);
            am_err_set(j->rc, "%s", j->err);
            am_api_send_rc(req, j->rc);
        }
        free(j->body);
        free(j);
        return;
    }
    am_log_info("api", "audit exported", "segments=%llu records=%llu bytes=%llu",
                (unsigned long long)j->info.segments, (unsigned long long)j->info.records,
                (unsigned long long)j->info.bytes);
    /* The body lives until the request's pool is cleared (after the response is sent). */
    uint8_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof *slot, free_body);
    *slot = j->body;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("application/octet-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_DISPOSITION, NULL,
                   H2O_STRLIT("attachment; filename=\"airmesh-audit.amexp\""));
    h2o_start_response(req, &export_gen);
    h2o_iovec_t b = h2o_iovec_init(j->body, j->info.bytes);
    h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
    free(j);
}

int am_api_audit_export(am_http_handler *h, h2o_req_t *req, char **param) {
    (void)param;
    am_principal who;
    if (am_api_require_auth(h, req, &who))
        return 0;
    if (am_auth_can(&who, AM_CAN_AUDIT_EXPORT, NULL) != 0) {
        char peer[64];
        /* the refusal is audited by ops */
        return am_api_send_rc(req, am_ops_audit_export(h->app->ops, &who,
                                                       am_http_peer(req, peer, sizeof peer), NULL,
                                                       0, 0, -1, NULL));
    }
    uint64_t since, until;
    if (time_range(req, &since, &until))
        return 0;
    export_job *j = calloc(1, sizeof *j);
    if (!j) {
        am_http_send_error(req, 500, "internal", "out of memory");
        return 0;
    }
    j->app = h->app;
    j->since = since;
    j->until = until;
    j->who = who;
    am_http_peer(req, j->peer, sizeof j->peer);
    /* Sealing (fsync), maybe the audit key's generation and reading every segment in range run
     * on the I/O worker pool; the answer comes from export_done. */
    if (am_work_submit(h->app->io, req, &j->job, export_run, export_done) != 0) {
        free(j);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        am_http_send_error(req, 503, "busy", "the appliance is busy: try again in a second");
    }
    return 0;
}
