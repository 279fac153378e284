/*
 * tests/unit/ops_test.c — every operation of appliance/ops, with no sockets: a real store in a
 * temporary directory, a real hub, a fake runner link, and an audit writer that records what it
 * is given and can fail like a full disk. For every operation:
 *   - the lowest allowed role (or the right runner) succeeds, writes exactly one audit record
 *     with the operation's action, and publishes it to the hub's live events;
 *   - the role just below is refused (-AM_EPERM), the refusal is one "denied" record (also
 *     published), and the store is unchanged;
 *   - when the audit append fails the operation fails, the store is byte-for-byte unchanged and
 *     nothing is published.
 * The store comparison is a dump of every database of the test orgs, record by record.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "airmesh/v1/runner.pb-c.h"
#include "airmesh/v1/store.pb-c.h"
#include "appliance/ops/ops.h"
#include "common/err.h"
#include "common/util.h"
#include "tests/unit/ops_fixture.h"

#define ORG "acme"
#define RUNNER "r-0000000000000001"
#define PASSWORD "password-123456"

static char g_hash[160];
static am_ca *g_ca;
static char g_ca_dir[] = "/tmp/ops_test_ca_XXXXXX";
static char g_mounted[128]; /* a tmpfs to take down even when a test failed half-way */

typedef struct {
    opsfx fx; /* store, hub, ops, audit records */
    int link_up;
    size_t sent;
    int last_case;
    uint8_t *last_create; /* the last CreatePod sent, packed */
    size_t last_create_len;
    int stream; /* the fake live stream the hub holds for RUNNER */
    char token[AM_AUTH_TOKEN_LEN + 1];
    char secret[AM_TOKEN_SECRET_LEN + 1], token_id[13];
    uint8_t *csr;
    size_t csr_len;
    uint64_t serial;
} env;

/* ---- fakes ---- */

static int fake_send(void *ctx, const char *runner_id, Airmesh__V1__ApplianceMessage *m) {
    env *e = ctx;
    if (!e->link_up || strcmp(runner_id, RUNNER) != 0)
        return am_err_set(AM_ESTATE, "runner %s is not connected", runner_id);
    e->sent++;
    e->last_case = m->msg_case;
    if (m->msg_case == AIRMESH__V1__APPLIANCE_MESSAGE__MSG_CREATE_POD) {
        free(e->last_create);
        e->last_create_len = protobuf_c_message_get_packed_size(&m->create_pod->base);
        e->last_create = malloc(e->last_create_len + 1);
        protobuf_c_message_pack(&m->create_pod->base, e->last_create);
    }
    return 0;
}

static void fake_close(void *stream, const char *reason) {
    (void)reason;
    *(int *)stream = -1; /* closed */
}

/* ---- the world every case starts from ---- */

static void put(env *e, am_db db, const char *org, const char *id, const ProtobufCMessage *m) {
    assert_int_equal(am_store_put(e->fx.store, db, org, id, m), 0);
}

static void put_user(env *e, const char *name, int role) {
    Airmesh__V1__User u = AIRMESH__V1__USER__INIT;
    u.id = u.name = (char *)name;
    u.org_id = ORG;
    u.password_hash = g_hash;
    u.role = role;
    u.superuser = strcmp(name, "root") == 0;
    put(e, AM_DB_USERS, ORG, name, &u.base);
}

static void put_pod(env *e, const char *id, const char *state, uint64_t created_ms) {
    Airmesh__V1__Pod p = AIRMESH__V1__POD__INIT;
    p.id = (char *)id;
    p.org_id = ORG;
    p.runner_id = RUNNER;
    p.repo = "/srv/git/app.git";
    p.base_ref = "HEAD";
    p.branch = "b";
    p.state = (char *)state;
    p.created_ms = created_ms;
    p.created_by = "user:member"; /* issue 14: "member" acts on its own pods */
    put(e, AM_DB_PODS, ORG, id, &p.base);
}

static env *env_new(void) {
    env *e = calloc(1, sizeof *e);
    assert_non_null(e);
    opsfx_open(&e->fx, "ops_test", g_ca);
    am_ops_set_runner_link(e->fx.ops, fake_send, e);
    e->link_up = 1;

    Airmesh__V1__Org o = AIRMESH__V1__ORG__INIT;
    o.id = o.name = ORG;
    put(e, AM_DB_ORGS, "", ORG, &o.base);
    put_user(e, "viewer", 1);
    put_user(e, "member", 2);
    put_user(e, "admin", 3);
    put_user(e, "owner", 4);
    put_user(e, "root", 4);
    put_user(e, "target", 1);
    Airmesh__V1__Team t = AIRMESH__V1__TEAM__INIT;
    t.id = t.name = "core";
    t.org_id = ORG;
    put(e, AM_DB_TEAMS, ORG, "core", &t.base);

    /* A runner enrolled with a real certificate (renewal and connect check it), online. */
    am_pki_key *k = NULL;
    assert_int_equal(am_pki_key_generate(&k), 0);
    assert_int_equal(am_pki_csr_make(k, "runner", &e->csr, &e->csr_len), 0);
    am_pki_key_free(k);
    Airmesh__V1__Runner r = AIRMESH__V1__RUNNER__INIT;
    r.id = RUNNER;
    r.org_id = ORG;
    r.hostname = "h";
    r.version = "v";
    r.capacity = 4;
    r.cert_serial = e->serial = 0x1234;
    put(e, AM_DB_RUNNERS, ORG, RUNNER, &r.base);
    assert_int_equal(am_hub_runner_online(e->fx.hub, RUNNER, &e->stream, fake_close, "peer"), 0);

    put_pod(e, "p-000000000001", "running", 1);
    put_pod(e, "p-000000000002", "exited", 1);
    put_pod(e, "p-000000000003", "pending", 1);

    /* An enrollment token and a login session of "member", made without auditing. */
    const char *keys[1] = {"zone"}, *vals[1] = {"a"};
    am_labels l = {keys, vals, 1};
    uint64_t exp;
    assert_int_equal(am_runners_token_create(e->fx.store, ORG, 3600000, "user:admin", &l, e->secret,
                                             e->token_id, &exp, NULL),
                     0);
    am_principal who;
    assert_int_equal(
        am_auth_login(e->fx.store, ORG, "member", PASSWORD, "src", 3600000, e->token, &exp, &who),
        0);
    return e;
}

static void env_free(env *e) {
    opsfx_close(&e->fx);
    free(e->csr);
    free(e->last_create);
    free(e);
}

static am_principal as(const char *name, int role) {
    am_principal p;
    memset(&p, 0, sizeof p);
    snprintf(p.user_id, sizeof p.user_id, "%s", name);
    snprintf(p.org_id, sizeof p.org_id, "%s", ORG);
    p.role = role;
    p.superuser = strcmp(name, "root") == 0;
    return p;
}

/* ---- observing the world ---- */

typedef struct {
    char *buf;
    size_t len, cap;
    am_db db;
} dump_ctx;

static void dump_add(dump_ctx *d, const void *p, size_t n) {
    if (d->len + n > d->cap) {
        d->cap = (d->len + n) * 2;
        d->buf = realloc(d->buf, d->cap);
        assert_non_null(d->buf);
    }
    memcpy(d->buf + d->len, p, n);
    d->len += n;
}

static int dump_cb(void *ud, const char *id, const ProtobufCMessage *m) {
    dump_ctx *d = ud;
    char head[200];
    int n = snprintf(head, sizeof head, "|%d|%s|", (int)d->db, id);
    dump_add(d, head, (size_t)n);
    size_t len = protobuf_c_message_get_packed_size(m);
    uint8_t *b = malloc(len + 1);
    assert_non_null(b);
    protobuf_c_message_pack(m, b);
    dump_add(d, b, len);
    free(b);
    return 0;
}

/* Every record of every database of orgs "" and ORG, in key order. Caller frees. */
static char *snapshot(env *e, size_t *len) {
    static const struct {
        am_db db;
        const ProtobufCMessageDescriptor *d;
    } dbs[] = {
        {AM_DB_ORGS, &airmesh__v1__org__descriptor},
        {AM_DB_TEAMS, &airmesh__v1__team__descriptor},
        {AM_DB_USERS, &airmesh__v1__user__descriptor},
        {AM_DB_SESSIONS, &airmesh__v1__session__descriptor},
        {AM_DB_RUNNERS, &airmesh__v1__runner__descriptor},
        {AM_DB_TOKENS, &airmesh__v1__enroll_token__descriptor},
        {AM_DB_REVOKED, &airmesh__v1__revoked_serial__descriptor},
        {AM_DB_PODS, &airmesh__v1__pod__descriptor},
    };
    dump_ctx d = {0};
    for (size_t i = 0; i < sizeof dbs / sizeof dbs[0]; i++)
        for (int o = 0; o < 2; o++) {
            d.db = dbs[i].db;
            assert_int_equal(am_ops_list(e->fx.ops, dbs[i].db, o ? ORG : "", dbs[i].d, dump_cb, &d),
                             0);
        }
    dump_add(&d, "", 1);
    *len = d.len;
    return d.buf;
}

static void count_cb(void *arg, const char *data, size_t len) {
    (void)data;
    (void)len;
    (*(size_t *)arg)++;
}

/* Events published so far for org (the hub keeps the last AM_HUB_EVENTS). */
static size_t published(env *e, const char *org) {
    uint64_t after = 0;
    size_t n = 0;
    am_hub_events_read(e->fx.hub, org, &after, count_cb, &n);
    return n;
}

/* ---- the operations ---- */

typedef struct op_case op_case;
struct op_case {
    const char *name;
    const char *action; /* the audit record's action */
    int min_role;       /* lowest role allowed; 0: a runner-protocol op (no role) */
    int superuser;      /* only the appliance administrator */
    const char *result; /* result of the success record ("ok" unless said) */
    const char *org;    /* org of its records ("acme" unless said) */
    int (*run)(env *e, const am_principal *who);
    void (*check)(env *e); /* extra assertions after success (may be NULL) */
    void (*prep)(env *e);  /* unaudited setup before the store is compared (may be NULL) */
};

static const char *const k_role_user[] = {"", "viewer", "member", "admin", "owner"};

static int op_login(env *e, const am_principal *who) {
    (void)who;
    char tok[AM_AUTH_TOKEN_LEN + 1];
    uint64_t exp;
    am_principal w;
    return am_ops_login(e->fx.ops, ORG, "viewer", PASSWORD, "src", tok, &exp, &w);
}
static int op_logout(env *e, const am_principal *who) {
    am_principal m = as("member", 2);
    (void)who;
    return am_ops_logout(e->fx.ops, &m, "src", e->token);
}
static int op_org_create(env *e, const am_principal *who) {
    char pw[32];
    return am_ops_org_create(e->fx.ops, who, "src", "globex", "Globex", NULL, "boss", NULL, pw,
                             sizeof pw);
}
static int op_user_create(env *e, const am_principal *who) {
    char pw[32];
    return am_ops_user_create(e->fx.ops, who, "src", "newbie", "viewer", NULL, NULL, pw, sizeof pw);
}
static int op_user_disable(env *e, const am_principal *who) {
    return am_ops_user_set_disabled(e->fx.ops, who, "src", "target", 1);
}
static int op_user_enable(env *e, const am_principal *who) {
    return am_ops_user_set_disabled(e->fx.ops, who, "src", "target", 0);
}
static int op_user_delete(env *e, const am_principal *who) {
    return am_ops_user_delete(e->fx.ops, who, "src", "target");
}
static int op_user_role(env *e, const am_principal *who) {
    return am_ops_user_set_role(e->fx.ops, who, "src", "target", "member");
}
static int op_user_password(env *e, const am_principal *who) {
    return am_ops_user_set_password(e->fx.ops, who, "src", "target", "a-new-password-1", NULL);
}
static int op_own_password(env *e, const am_principal *who) {
    return am_ops_user_set_password(e->fx.ops, who, "src", who->user_id, "a-new-password-1",
                                    PASSWORD);
}
static int op_user_sessions(env *e, const am_principal *who) {
    size_t n;
    return am_ops_user_revoke_sessions(e->fx.ops, who, "src", "member", &n);
}
static int op_team_create(env *e, const am_principal *who) {
    return am_ops_team_change(e->fx.ops, who, "src", "ops", NULL, AM_TEAM_CREATE);
}
static int op_team_add(env *e, const am_principal *who) {
    return am_ops_team_change(e->fx.ops, who, "src", "core", "target", AM_TEAM_ADD);
}
static void prep_team_member(env *e) {
    assert_int_equal(am_teams_change(e->fx.store, ORG, "core", "target", AM_TEAM_ADD, NULL), 0);
}
static int op_team_remove(env *e, const am_principal *who) {
    return am_ops_team_change(e->fx.ops, who, "src", "core", "target", AM_TEAM_REMOVE);
}
static int op_team_delete(env *e, const am_principal *who) {
    return am_ops_team_change(e->fx.ops, who, "src", "core", NULL, AM_TEAM_DELETE);
}
static int op_api_token_create(env *e, const am_principal *who) {
    char tok[AM_AUTH_TOKEN_LEN + 1], id[13];
    uint64_t exp;
    int role;
    return am_ops_api_token_create(e->fx.ops, who, "src", "ci", NULL, "1d", tok, id, &exp, &role);
}
static char g_api_id[13];
static void prep_api_token(env *e) {
    char tok[AM_AUTH_TOKEN_LEN + 1];
    uint64_t exp;
    am_principal v = as("viewer", 1);
    assert_int_equal(
        am_auth_api_token_create(e->fx.store, &v, "ci", 1, 3600000, tok, g_api_id, &exp, NULL), 0);
}
static int op_api_token_revoke(env *e, const am_principal *who) {
    return am_ops_api_token_revoke(e->fx.ops, who, "src", g_api_id);
}
static int op_runner_token_create(env *e, const am_principal *who) {
    char secret[AM_TOKEN_SECRET_LEN + 1], id[13];
    uint64_t exp;
    return am_ops_runner_token_create(e->fx.ops, who, "src", NULL, 3600000, NULL, secret, id, &exp);
}
static int op_runner_token_revoke(env *e, const am_principal *who) {
    return am_ops_runner_token_revoke(e->fx.ops, who, "src", e->token_id);
}
static int op_runner_revoke(env *e, const am_principal *who) {
    return am_ops_runner_revoke(e->fx.ops, who, "src", RUNNER);
}
static void check_runner_revoke(env *e) {
    assert_int_equal(e->stream, -1); /* its live stream was closed */
}
static int op_pod_create(env *e, const am_principal *who) {
    const char *argv[] = {"bash"};
    am_pod_spec s = {.repo = "/srv/git/app.git", .argv = argv, .argc = 1};
    Airmesh__V1__Pod *p = NULL;
    int rc = am_ops_pod_create(e->fx.ops, who, "src", &s, &p);
    if (p)
        protobuf_c_message_free_unpacked(&p->base, NULL);
    return rc;
}
static void check_pod_create(env *e) {
    assert_int_equal(e->sent, 1);
    assert_int_equal(e->last_case, AIRMESH__V1__APPLIANCE_MESSAGE__MSG_CREATE_POD);
}
static int op_pod_stop(env *e, const am_principal *who) {
    return am_ops_pod_stop(e->fx.ops, who, "src", "p-000000000001");
}
static void check_pod_stop(env *e) {
    assert_int_equal(e->sent, 1);
    assert_int_equal(e->last_case, AIRMESH__V1__APPLIANCE_MESSAGE__MSG_STOP_POD);
}
static void prep_offline(env *e) {
    e->link_up = 0;
    am_hub_runner_offline(e->fx.hub, RUNNER, &e->stream);
}
static int op_pod_stop_offline_pending(env *e, const am_principal *who) {
    return am_ops_pod_stop(e->fx.ops, who, "src", "p-000000000003");
}
static void check_stopped(env *e) {
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_pods_get(e->fx.store, ORG, "p-000000000003", &p), 0);
    assert_string_equal(p->state, "stopped");
    protobuf_c_message_free_unpacked(&p->base, NULL);
}
static int op_pod_delete(env *e, const am_principal *who) {
    return am_ops_pod_delete(e->fx.ops, who, "src", "p-000000000002");
}
static int op_pod_share(env *e, const am_principal *who) {
    return am_ops_pod_share(e->fx.ops, who, "src", "p-000000000001", 1);
}
static int pod_shared(env *e, const char *id) {
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_pods_get(e->fx.store, ORG, id, &p), 0);
    int s = p->shared;
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return s;
}
static void check_pod_shared(env *e) {
    assert_true(pod_shared(e, "p-000000000001"));
}
static int op_terminal_take(env *e, const am_principal *who) {
    return am_ops_terminal_control(e->fx.ops, who, "src", "p-000000000001", 1);
}
static int op_terminal_release(env *e, const am_principal *who) {
    return am_ops_terminal_control(e->fx.ops, who, "src", "p-000000000001", 0);
}
/* The runner protocol: the actor is the certificate's runner. */
static int op_org_limits(env *e, const am_principal *who) {
    am_org_limits l = {.def = {.memory_bytes = 2ull << 30, .pids = 512},
                       .max = {.memory_bytes = 8ull << 30, .cpu_millis = 4000}};
    return am_ops_org_limits_set(e->fx.ops, who, "src", NULL, &l);
}
static void check_org_limits(env *e) {
    am_org_limits l;
    am_principal v = as("viewer", 1);
    assert_int_equal(am_ops_org_limits_get(e->fx.ops, &v, ORG, &l), 0);
    assert_int_equal(l.def.memory_bytes, 2ull << 30);
    assert_int_equal(l.def.pids, 512);
    assert_int_equal(l.max.memory_bytes, 8ull << 30);
    assert_int_equal(l.max.cpu_millis, 4000);
    assert_int_equal(l.def.cpu_millis, 0);
}

static int op_egress_allow(env *e, const am_principal *who) {
    const char *allow[] = {"git.lan:443", "10.0.0.5:3142"};
    return am_ops_org_egress_allow_set(e->fx.ops, who, "src", NULL, allow, 2);
}
static void check_egress_allow(env *e) {
    char **l = NULL;
    size_t n = 0;
    am_principal v = as("viewer", 1);
    assert_int_equal(am_ops_org_egress_allow_get(e->fx.ops, &v, ORG, &l, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0], "git.lan:443");
    assert_string_equal(l[1], "10.0.0.5:3142");
    am_pods_egress_allow_free(l, n);
}

static const am_ops_peer k_peer = {RUNNER, ORG, "10.0.0.2:5000"};

static int op_pod_egress(env *e, const char *kind) {
    Airmesh__V1__EgressEvent ev = AIRMESH__V1__EGRESS_EVENT__INIT;
    ev.pod_id = "p-000000000001";
    ev.kind = (char *)kind;
    ev.host = "git.lan";
    ev.port = 443;
    ev.reason = strcmp(kind, "refused") == 0 ? "git.lan:443 is not on the list" : "";
    ev.bytes_up = 10;
    return am_ops_pod_egress(e->fx.ops, &k_peer, &ev);
}
static int op_pod_egress_close(env *e, const am_principal *who) {
    (void)who;
    return op_pod_egress(e, "close");
}
static int op_pod_egress_refused(env *e, const am_principal *who) {
    (void)who;
    int rc = op_pod_egress(e, "refused");
    return rc ? rc : -AM_EPERM; /* the case table's "the op is a refusal" */
}

static int op_enroll(env *e, const am_principal *who) {
    (void)who;
    am_enrolled en;
    int rc = am_ops_runner_enroll(e->fx.ops, "10.0.0.3:1", e->secret, e->csr, e->csr_len, "host",
                                  "1.0", NULL, &en);
    if (rc == 0)
        free(en.chain_pem);
    return rc;
}
static int op_connect(env *e, const am_principal *who) {
    (void)who;
    return am_ops_runner_connect(e->fx.ops, &k_peer, e->serial);
}
static int op_disconnect(env *e, const am_principal *who) {
    (void)who;
    return am_ops_runner_disconnect(e->fx.ops, &k_peer);
}
static int op_renew(env *e, const am_principal *who) {
    (void)who;
    am_enrolled en;
    int rc = am_ops_runner_renew(e->fx.ops, &k_peer, e->csr, e->csr_len, &en);
    if (rc == 0)
        free(en.chain_pem);
    return rc;
}
static int op_hello(env *e, const am_principal *who) {
    (void)who;
    /* It still runs p-1; p-3 is pending but was never delivered: that one is lost. */
    const char *running[] = {"p-000000000001"};
    Airmesh__V1__Hello h = AIRMESH__V1__HELLO__INIT;
    h.hostname = "h";
    h.version = "v2";
    h.running_pods = (char **)running;
    h.n_running_pods = 1;
    return am_ops_runner_hello(e->fx.ops, &k_peer, &h);
}
static void prep_no_lost_pod(env *e) {
    put_pod(e, "p-000000000003", "exited", 1);
}
static int op_pod_status(env *e, const am_principal *who) {
    (void)who;
    (void)e;
    Airmesh__V1__PodStatus st = AIRMESH__V1__POD_STATUS__INIT;
    st.pod_id = "p-000000000001";
    st.state = "exited";
    st.exit_code = 3;
    return am_ops_pod_status(e->fx.ops, &k_peer, &st);
}
static int op_agent_state(env *e, const am_principal *who) {
    (void)who;
    Airmesh__V1__AgentState as = AIRMESH__V1__AGENT_STATE__INIT;
    as.pod_id = "p-000000000001";
    as.state = "waiting";
    as.source = "notify";
    as.message = "need a review";
    return am_ops_pod_agent_state(e->fx.ops, &k_peer, &as);
}
static int op_refused_message(env *e, const am_principal *who) {
    (void)who;
    return am_ops_runner_refused(e->fx.ops, &k_peer, "malformed RunnerMessage");
}

static const op_case k_cases[] = {
    {"login", "auth.login", 1, 0, NULL, NULL, op_login, NULL, NULL},
    {"logout", "auth.logout", 1, 0, NULL, NULL, op_logout, NULL, NULL},
    {"org create", "org.create", 4, 1, NULL, NULL, op_org_create, NULL, NULL},
    {"user create", "user.create", 3, 0, NULL, NULL, op_user_create, NULL, NULL},
    {"user disable", "user.disable", 3, 0, NULL, NULL, op_user_disable, NULL, NULL},
    {"user enable", "user.enable", 3, 0, NULL, NULL, op_user_enable, NULL, NULL},
    {"user delete", "user.delete", 3, 0, NULL, NULL, op_user_delete, NULL, NULL},
    {"user role", "user.role", 3, 0, NULL, NULL, op_user_role, NULL, NULL},
    {"user password (another's)", "user.password", 3, 0, NULL, NULL, op_user_password, NULL, NULL},
    {"user password (own)", "user.password", 1, 0, NULL, NULL, op_own_password, NULL, NULL},
    {"user sessions revoke", "user.sessions_revoke", 3, 0, NULL, NULL, op_user_sessions, NULL,
     NULL},
    {"team create", "team.create", 3, 0, NULL, NULL, op_team_create, NULL, NULL},
    {"team member add", "team.member_add", 3, 0, NULL, NULL, op_team_add, NULL, NULL},
    {"team member remove", "team.member_remove", 3, 0, NULL, NULL, op_team_remove, NULL,
     prep_team_member},
    {"team delete", "team.delete", 3, 0, NULL, NULL, op_team_delete, NULL, NULL},
    {"api token create", "api_token.create", 1, 0, NULL, NULL, op_api_token_create, NULL, NULL},
    {"api token revoke", "api_token.revoke", 1, 0, NULL, NULL, op_api_token_revoke, NULL,
     prep_api_token},
    {"runner token create", "runner_token.create", 3, 0, NULL, NULL, op_runner_token_create, NULL,
     NULL},
    {"runner token revoke", "runner_token.revoke", 3, 0, NULL, NULL, op_runner_token_revoke, NULL,
     NULL},
    {"runner revoke", "runner.revoke", 3, 0, NULL, NULL, op_runner_revoke, check_runner_revoke,
     NULL},
    {"pod create", "pod.create", 2, 0, NULL, NULL, op_pod_create, check_pod_create, NULL},
    {"pod stop", "pod.stop", 2, 0, NULL, NULL, op_pod_stop, check_pod_stop, NULL},
    {"pod stop (pending, runner offline)", "pod.stop", 2, 0, NULL, NULL,
     op_pod_stop_offline_pending, check_stopped, prep_offline},
    {"pod delete", "pod.delete", 2, 0, NULL, NULL, op_pod_delete, NULL, NULL},
    {"pod share", "pod.share", 2, 0, NULL, NULL, op_pod_share, check_pod_shared, NULL},
    {"terminal take", "pod.terminal.take", 2, 0, NULL, NULL, op_terminal_take, NULL, NULL},
    {"terminal release", "pod.terminal.release", 1, 0, NULL, NULL, op_terminal_release, NULL, NULL},
    {"org limits set", "org.limits", 3, 0, NULL, NULL, op_org_limits, check_org_limits, NULL},
    {"org egress allow set", "org.egress_allow", 3, 0, NULL, NULL, op_egress_allow,
     check_egress_allow, NULL},
    {"pod egress (close)", "pod.egress", 0, 0, NULL, NULL, op_pod_egress_close, NULL, NULL},
    {"pod egress (refused)", "pod.egress", 0, 0, "denied", NULL, op_pod_egress_refused, NULL, NULL},
    {"runner enroll", "runner.enroll", 0, 0, NULL, NULL, op_enroll, NULL, NULL},
    {"runner connect", "runner.connect", 0, 0, NULL, NULL, op_connect, NULL, NULL},
    {"runner disconnect", "runner.disconnect", 0, 0, NULL, NULL, op_disconnect, NULL, NULL},
    {"runner renew", "runner.renew", 0, 0, NULL, NULL, op_renew, NULL, NULL},
    {"runner hello", "runner.hello", 0, 0, NULL, NULL, op_hello, NULL, prep_no_lost_pod},
    {"pod status", "pod.exit", 0, 0, NULL, NULL, op_pod_status, NULL, NULL},
    {"pod agent state", "pod.agent_state", 0, 0, NULL, NULL, op_agent_state, NULL, NULL},
    {"runner message refused", "runner.message", 0, 0, "denied", NULL, op_refused_message, NULL,
     NULL},
};
#define N_CASES (sizeof k_cases / sizeof k_cases[0])

static am_principal allowed(const op_case *c) {
    if (c->superuser)
        return as("root", 4);
    int r = c->min_role ? c->min_role : 4;
    return as(k_role_user[r], r);
}

static void test_allowed_role_succeeds_with_one_audit_record_published(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const op_case *c = &k_cases[i];
        env *e = env_new();
        if (c->prep)
            c->prep(e);
        am_principal who = allowed(c);
        const char *org = c->org ? c->org : ORG;
        size_t ev0 = published(e, org);
        int rc = c->run(e, &who);
        int refusal = c->result && strcmp(c->result, "denied") == 0; /* the op IS a refusal */
        if (refusal ? rc == 0 : rc != 0)
            fail_msg("%s: rc %s: %s", c->name, am_err_name(rc), am_err_last());
        if (e->fx.nrec != 1)
            fail_msg("%s: %zu audit records, expected 1", c->name, e->fx.nrec);
        assert_string_equal(e->fx.recs[0].action, c->action);
        assert_string_equal(e->fx.recs[0].result, c->result ? c->result : "ok");
        assert_string_equal(e->fx.recs[0].org, org);
        if (published(e, org) != ev0 + 1)
            fail_msg("%s: the record was not published", c->name);
        if (c->check)
            c->check(e);
        env_free(e);
    }
}

static void test_lower_role_is_refused_audited_and_changes_nothing(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const op_case *c = &k_cases[i];
        if (!c->superuser && c->min_role <= 1)
            continue; /* nobody below viewer; runner ops have their own refusals below */
        env *e = env_new();
        if (c->prep)
            c->prep(e);
        am_principal who =
            c->superuser ? as("owner", 4) : as(k_role_user[c->min_role - 1], c->min_role - 1);
        size_t len0, len1;
        char *before = snapshot(e, &len0);
        size_t ev0 = published(e, ORG);
        int rc = c->run(e, &who);
        if (rc != -AM_EPERM)
            fail_msg("%s as %s: rc %s, expected EPERM", c->name, who.user_id, am_err_name(rc));
        if (e->fx.nrec != 1)
            fail_msg("%s: %zu audit records for the refusal, expected 1", c->name, e->fx.nrec);
        assert_string_equal(e->fx.recs[0].action, c->action);
        assert_string_equal(e->fx.recs[0].result, "denied");
        assert_int_equal(published(e, ORG), ev0 + 1);
        assert_int_equal(e->sent, 0); /* nothing reached a runner */
        char *after = snapshot(e, &len1);
        if (len0 != len1 || memcmp(before, after, len0) != 0)
            fail_msg("%s: a refused operation changed the store", c->name);
        free(before);
        free(after);
        env_free(e);
    }
}

static void test_audit_failure_fails_the_operation_and_leaves_the_store_unchanged(void **state) {
    (void)state;
    for (size_t i = 0; i < N_CASES; i++) {
        const op_case *c = &k_cases[i];
        env *e = env_new();
        if (c->prep)
            c->prep(e);
        am_principal who = allowed(c);
        const char *org = c->org ? c->org : ORG;
        size_t len0, len1;
        char *before = snapshot(e, &len0);
        size_t ev0 = published(e, org);
        e->fx.audit_fail = 1;
        int rc = c->run(e, &who);
        if (rc == 0)
            fail_msg("%s: succeeded although the audit log could not record it", c->name);
        char *after = snapshot(e, &len1);
        if (len0 != len1 || memcmp(before, after, len0) != 0)
            fail_msg("%s: the store changed although the audit append failed", c->name);
        assert_int_equal(e->fx.nrec, 0);
        assert_int_equal(published(e, org), ev0);
        if (c->run == op_pod_create || c->run == op_pod_stop)
            assert_int_equal(e->sent, 0); /* nothing unaudited reached the runner */
        if (c->run == op_runner_revoke)
            assert_int_not_equal(e->stream, -1);
        free(before);
        free(after);
        env_free(e);
    }
}

/* ---- refusals of the runner protocol (the certificate is the identity) ---- */

static void test_runner_refusals_are_audited(void **state) {
    (void)state;
    env *e = env_new();
    am_enrolled en;
    /* a burned token */
    assert_int_equal(am_ops_runner_enroll(e->fx.ops, "x",
                                          "amt_"
                                          "00000000000000000000000000000000"
                                          "00000000000000000000000000000000",
                                          e->csr, e->csr_len, "h", "v", NULL, &en),
                     -AM_EAUTH);
    assert_int_equal(e->fx.nrec, 1);
    assert_string_equal(e->fx.recs[0].action, "runner.enroll");
    assert_string_equal(e->fx.recs[0].result, "denied");
    /* a certificate serial that was never issued to this runner */
    assert_int_equal(am_ops_runner_connect(e->fx.ops, &k_peer, 0x999), -AM_EAUTH);
    /* no certificate at all */
    am_ops_peer anon = {NULL, "", "x"};
    assert_int_equal(am_ops_runner_connect(e->fx.ops, &anon, 0), -AM_EAUTH);
    assert_int_equal(e->fx.nrec, 3);
    assert_string_equal(e->fx.recs[1].result, "denied");
    assert_string_equal(e->fx.recs[2].actor, "anonymous");
    /* a status for a pod of another runner changes nothing */
    am_ops_peer other = {"r-00000000000000ff", ORG, "y"};
    Airmesh__V1__PodStatus st = AIRMESH__V1__POD_STATUS__INIT;
    st.pod_id = "p-000000000001";
    st.state = "exited";
    assert_int_equal(am_ops_pod_status(e->fx.ops, &other, &st), -AM_EAUTH);
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_pods_get(e->fx.store, ORG, "p-000000000001", &p), 0);
    assert_string_equal(p->state, "running");
    protobuf_c_message_free_unpacked(&p->base, NULL);
    env_free(e);
}

/* ---- per-pod egress (issue 12) ---- */

static const char *env_of(const Airmesh__V1__CreatePod *cp, const char *key) {
    const char *v = NULL;
    for (size_t i = 0; i < cp->n_env; i++)
        if (strcmp(cp->env[i]->key, key) == 0) {
            if (v)
                fail_msg("%s is twice in the CreatePod env", key);
            v = cp->env[i]->value;
        }
    return v;
}

/* Create a pod (network NULL = the default) and return the record and what the runner got. */
static Airmesh__V1__CreatePod *create_egress_pod(env *e, const char *network,
                                                 Airmesh__V1__Pod **rec) {
    const char *argv[] = {"bash"};
    const char *ek[] = {"OPENAI_API_KEY", "KEEP"}, *ev[] = {"sk-user-set", "me"};
    am_pod_spec s = {.repo = "/srv/git/app.git",
                     .argv = argv,
                     .argc = 1,
                     .env_keys = ek,
                     .env_values = ev,
                     .n_env = 2,
                     .network = network};
    am_principal admin = as("admin", 3);
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_ops_pod_create(e->fx.ops, &admin, "src", &s, &p), 0);
    assert_int_equal(am_pods_get(e->fx.store, ORG, p->id, rec), 0);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    assert_non_null(e->last_create);
    return airmesh__v1__create_pod__unpack(NULL, e->last_create_len, e->last_create);
}

static void test_pod_virtual_key_goes_only_to_the_runner(void **state) {
    (void)state;
    env *e = env_new();
    Airmesh__V1__Runner r = AIRMESH__V1__RUNNER__INIT; /* room for the pods made here */
    r.id = RUNNER;
    r.org_id = ORG;
    r.hostname = "h";
    r.version = "v";
    r.capacity = 16;
    r.cert_serial = e->serial;
    put(e, AM_DB_RUNNERS, ORG, RUNNER, &r.base);
    const char *allow[] = {"git.lan:443"};
    am_principal admin = as("admin", 3);
    assert_int_equal(am_ops_org_egress_allow_set(e->fx.ops, &admin, "src", NULL, allow, 1), 0);
    /* No model endpoint in the org: the default is none, no key, no gateway env. */
    Airmesh__V1__Pod *rec = NULL;
    Airmesh__V1__CreatePod *cp = create_egress_pod(e, NULL, &rec);
    assert_string_equal(rec->network, "none");
    assert_string_equal(cp->network, "none");
    assert_int_equal(rec->gateway_key_sha256.len, 0);
    assert_string_equal(env_of(cp, "OPENAI_API_KEY"), "sk-user-set");
    assert_null(env_of(cp, "OPENAI_BASE_URL"));
    protobuf_c_message_free_unpacked(&cp->base, NULL);
    protobuf_c_message_free_unpacked(&rec->base, NULL);
    /* With one: the default is models. */
    Airmesh__V1__ModelEndpoint me = AIRMESH__V1__MODEL_ENDPOINT__INIT;
    me.name = "local";
    me.org_id = ORG;
    me.api = "openai";
    me.url = "http://vllm.lan:8000/v1";
    put(e, AM_DB_MODELS, ORG, "local", &me.base);
    for (int k = 0; k < 2; k++) {
        cp = create_egress_pod(e, k ? "allow" : NULL, &rec);
        assert_string_equal(rec->network, k ? "allow" : "models");
        const char *key = env_of(cp, "OPENAI_API_KEY");
        assert_non_null(key);
        assert_int_equal(strlen(key), 68);
        assert_memory_equal(key, "amk_", 4);
        assert_int_equal(strspn(key + 4, "0123456789abcdef"), 64);
        assert_string_equal(env_of(cp, "ANTHROPIC_API_KEY"), key);
        assert_string_equal(env_of(cp, "AIRMESH_MODEL_KEY"), key);
        assert_string_equal(env_of(cp, "OPENAI_BASE_URL"), "http://127.0.0.1:4000/v1");
        assert_string_equal(env_of(cp, "ANTHROPIC_BASE_URL"), "http://127.0.0.1:4000");
        assert_string_equal(env_of(cp, "KEEP"), "me");
        /* The record: the key's SHA-256, the user's env as given, never the key. */
        uint8_t d[32];
        unsigned dl = 0;
        assert_int_equal(EVP_Digest(key, strlen(key), d, &dl, EVP_sha256(), NULL), 1);
        assert_int_equal(rec->gateway_key_sha256.len, 32);
        assert_memory_equal(rec->gateway_key_sha256.data, d, 32);
        for (size_t i = 0; i < rec->n_env; i++)
            assert_null(strstr(rec->env[i]->value, key + 4));
        size_t len = protobuf_c_message_get_packed_size(&rec->base);
        uint8_t *packed = malloc(len);
        protobuf_c_message_pack(&rec->base, packed);
        for (size_t i = 0; i + 64 <= len; i++)
            assert_false(memcmp(packed + i, key + 4, 64) == 0);
        free(packed);
        /* allow: the proxy variables and the org's list; models: neither. */
        assert_true(!env_of(cp, "HTTPS_PROXY") == !k);
        assert_int_equal(cp->n_egress_allow, k ? 1 : 0);
        assert_int_equal(rec->n_egress_allow, k ? 1 : 0);
        if (k) {
            assert_string_equal(cp->egress_allow[0], "git.lan:443");
            assert_string_equal(env_of(cp, "HTTPS_PROXY"), "http://127.0.0.1:3128");
            assert_string_equal(env_of(cp, "NO_PROXY"), "127.0.0.1,localhost");
        }
        protobuf_c_message_free_unpacked(&cp->base, NULL);
        protobuf_c_message_free_unpacked(&rec->base, NULL);
    }
    /* Two pods never share a key. */
    cp = create_egress_pod(e, "models", &rec);
    char k1[69];
    snprintf(k1, sizeof k1, "%s", env_of(cp, "OPENAI_API_KEY"));
    protobuf_c_message_free_unpacked(&cp->base, NULL);
    protobuf_c_message_free_unpacked(&rec->base, NULL);
    cp = create_egress_pod(e, "models", &rec);
    assert_string_not_equal(env_of(cp, "OPENAI_API_KEY"), k1);
    protobuf_c_message_free_unpacked(&cp->base, NULL);
    protobuf_c_message_free_unpacked(&rec->base, NULL);
    env_free(e);
}

static void test_egress_rules(void **state) {
    (void)state;
    env *e = env_new();
    am_principal admin = as("admin", 3), member = as("member", 2);
    /* Bad lists are refused before anything is written or audited. */
    const char *bad[][2] = {{"git.lan", NULL},    {"git.lan:0", NULL}, {"git.lan:65536", NULL},
                            {"a b:1", NULL},      {":80", NULL},       {"x:80", "X:80"},
                            {"[zz::1]:80", NULL}, {"x:080", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = bad[i][1] ? 2 : 1;
        if (am_ops_org_egress_allow_set(e->fx.ops, &admin, "src", NULL, bad[i], n) != -AM_EINVAL)
            fail_msg("case %zu (%s) was accepted", i, bad[i][0]);
    }
    assert_int_equal(e->fx.nrec, 0);
    const char *many[65];
    char names[65][24];
    for (int i = 0; i < 65; i++) {
        snprintf(names[i], sizeof names[i], "h%d.lan:1", i);
        many[i] = names[i];
    }
    assert_int_equal(am_ops_org_egress_allow_set(e->fx.ops, &admin, "src", NULL, many, 65),
                     -AM_EINVAL);
    assert_int_equal(am_ops_org_egress_allow_set(e->fx.ops, &admin, "src", NULL, many, 64), 0);
    /* Another org's list does not exist for this caller. */
    char **l = NULL;
    size_t n = 0;
    assert_int_equal(am_ops_org_egress_allow_get(e->fx.ops, &member, "globex", &l, &n),
                     -AM_ENOTFOUND);
    /* A pod network this appliance does not know is refused. */
    const char *argv[] = {"bash"};
    am_pod_spec s = {.repo = "/r", .argv = argv, .argc = 1, .network = "internet"};
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_ops_pod_create(e->fx.ops, &member, "src", &s, &p), -AM_EINVAL);
    /* An egress event for a pod of another runner (or an unknown kind) records nothing. */
    size_t before = e->fx.nrec;
    am_ops_peer other = {"r-00000000000000ff", ORG, "y"};
    Airmesh__V1__EgressEvent ev = AIRMESH__V1__EGRESS_EVENT__INIT;
    ev.pod_id = "p-000000000001";
    ev.kind = "connect";
    assert_int_equal(am_ops_pod_egress(e->fx.ops, &other, &ev), -AM_EAUTH);
    ev.kind = "teleport";
    assert_int_equal(am_ops_pod_egress(e->fx.ops, &k_peer, &ev), -AM_EINVAL);
    ev.kind = "connect";
    ev.pod_id = "p-00000000dead";
    assert_int_equal(am_ops_pod_egress(e->fx.ops, &k_peer, &ev), -AM_EAUTH);
    assert_int_equal(e->fx.nrec, before);
    env_free(e);
}

static void test_refused_logins_are_audited(void **state) {
    (void)state;
    env *e = env_new();
    char tok[AM_AUTH_TOKEN_LEN + 1];
    uint64_t exp;
    am_principal w;
    assert_int_equal(am_ops_login(e->fx.ops, ORG, "viewer", "wrong-password", "s", tok, &exp, &w),
                     -AM_EAUTH);
    assert_string_equal(am_err_last(), "unknown user or wrong password");
    assert_int_equal(am_ops_login(e->fx.ops, ORG, "nobody", PASSWORD, "s", tok, &exp, &w),
                     -AM_EAUTH);
    assert_string_equal(am_err_last(), "unknown user or wrong password"); /* the same answer */
    /* refused before any password check (the http layer's throttle): audited with the reason */
    assert_int_equal(am_ops_login_refused(e->fx.ops, ORG, "viewer", "s", "locked"), -AM_ELIMIT);
    am_principal admin = as("admin", 3);
    assert_int_equal(am_ops_refused(e->fx.ops, &admin, "s", "user.password", "user:x", "busy"),
                     -AM_EUNAVAIL);
    assert_int_equal(e->fx.nrec, 4);
    for (size_t i = 0; i < e->fx.nrec; i++)
        assert_string_equal(e->fx.recs[i].result, "denied");
    assert_string_equal(e->fx.recs[2].action, "auth.login");
    assert_string_equal(e->fx.recs[3].action, "user.password");
    env_free(e);
}

static void test_another_orgs_things_are_not_found_and_not_audited(void **state) {
    (void)state;
    env *e = env_new();
    am_principal stranger = as("owner", 4);
    snprintf(stranger.org_id, sizeof stranger.org_id, "globex");
    assert_int_equal(am_ops_pod_stop(e->fx.ops, &stranger, "s", "p-000000000001"), -AM_ENOTFOUND);
    assert_int_equal(am_ops_runner_revoke(e->fx.ops, &stranger, "s", RUNNER), -AM_ENOTFOUND);
    assert_int_equal(am_ops_user_delete(e->fx.ops, &stranger, "s", "target"), -AM_ENOTFOUND);
    assert_int_equal(am_ops_runner_token_revoke(e->fx.ops, &stranger, "s", e->token_id),
                     -AM_ENOTFOUND);
    assert_int_equal(am_ops_team_change(e->fx.ops, &stranger, "s", "core", NULL, AM_TEAM_DELETE),
                     -AM_ENOTFOUND);
    assert_int_equal(e->fx.nrec, 0);
    env_free(e);
}

static void test_hello_marks_the_pods_a_runner_lost_failed(void **state) {
    (void)state;
    env *e = env_new();
    assert_int_equal(op_hello(e, NULL), 0);
    assert_int_equal(e->fx.nrec, 2);
    assert_string_equal(e->fx.recs[0].action, "runner.hello");
    assert_string_equal(e->fx.recs[1].action, "pod.fail");
    assert_string_equal(e->fx.recs[1].actor, "system");
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_pods_get(e->fx.store, ORG, "p-000000000003", &p), 0);
    assert_string_equal(p->state, "failed");
    protobuf_c_message_free_unpacked(&p->base, NULL);
    assert_int_equal(am_pods_get(e->fx.store, ORG, "p-000000000001", &p), 0);
    assert_string_equal(p->state, "running"); /* listed by the runner: kept */
    protobuf_c_message_free_unpacked(&p->base, NULL);
    env_free(e);
}

static void test_pod_create_with_unreachable_runner_marks_it_failed(void **state) {
    (void)state;
    env *e = env_new();
    e->link_up = 0; /* online in the hub, but the send fails */
    am_principal who = as("member", 2);
    const char *argv[] = {"bash"};
    am_pod_spec s = {.repo = "/srv/git/app.git", .argv = argv, .argc = 1};
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_ops_pod_create(e->fx.ops, &who, "src", &s, &p), -AM_EUNAVAIL);
    assert_non_null(p);
    Airmesh__V1__Pod *now = NULL;
    assert_int_equal(am_pods_get(e->fx.store, ORG, p->id, &now), 0);
    assert_string_equal(now->state, "failed");
    assert_int_equal(e->fx.nrec, 2);
    assert_string_equal(e->fx.recs[0].action, "pod.create");
    assert_string_equal(e->fx.recs[1].action, "pod.fail");
    protobuf_c_message_free_unpacked(&now->base, NULL);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    env_free(e);
}

/* ---- the audit export (needs a real log to export from) ---- */

static void test_audit_export_is_for_owners_and_audited_before_it_is_made(void **state) {
    (void)state;
    env *e = env_new();
    char adir[128];
    snprintf(adir, sizeof adir, "%s/audit", e->fx.dir);
    am_audit *log = NULL;
    assert_int_equal(am_audit_open(adir, NULL, &log), 0);
    assert_int_equal(am_audit_event(log, "system", "", "server.start", "airmeshd", "ok", "", NULL),
                     0);
    am_ops_free(e->fx.ops);
    am_ops_config c = {.store = e->fx.store,
                       .audit = log, /* exported from */
                       .hub = e->fx.hub,
                       .ca = g_ca,
                       .data_dir = e->fx.dir,
                       .audit_fn = opsfx_record, /* where ops' own records go */
                       .audit_ctx = &e->fx};
    assert_int_equal(am_ops_new(&c, &e->fx.ops), 0);
    uint8_t *root = NULL;
    size_t root_len = 0;
    assert_int_equal(am_read_file(am_ca_path(g_ca, "ca.pem"), 65536, &root, &root_len), 0);
    char *root_pem = calloc(1, root_len + 1);
    assert_non_null(root_pem);
    memcpy(root_pem, root, root_len);
    char path[160];
    snprintf(path, sizeof path, "%s/export", e->fx.dir);
    FILE *f = fopen(path, "w+");
    assert_non_null(f);
    am_audit_export_info info;
    am_principal admin = as("admin", 3), owner = as("owner", 4);

    assert_int_equal(am_ops_audit_export(e->fx.ops, &admin, "s", root_pem, 0, 0, fileno(f), &info),
                     -AM_EPERM);
    assert_int_equal(e->fx.nrec, 1);
    assert_string_equal(e->fx.recs[0].result, "denied");
    e->fx.audit_fail = 1; /* no record of who took it: no export */
    assert_int_not_equal(
        am_ops_audit_export(e->fx.ops, &owner, "s", root_pem, 0, 0, fileno(f), &info), 0);
    assert_int_equal(ftell(f), 0);
    e->fx.audit_fail = 0;
    assert_int_equal(am_ops_audit_export(e->fx.ops, &owner, "s", root_pem, 0, 0, fileno(f), &info),
                     0);
    assert_int_equal(e->fx.nrec, 2);
    assert_string_equal(e->fx.recs[1].action, "audit.export");
    assert_string_equal(e->fx.recs[1].result, "ok");
    assert_true(info.records >= 1);
    fclose(f);
    assert_int_equal(am_audit_export_verify(path, NULL), 0);
    free(root);
    free(root_pem);
    am_audit_close(log);
    env_free(e);
}

/* ---- what runners send that is not audited one by one: still only their own pods ---- */

static void test_terminal_output_and_recordings_only_from_the_pods_runner(void **state) {
    (void)state;
    env *e = env_new();
    am_ops_peer other = {"r-00000000000000ff", ORG, "y"};
    Airmesh__V1__TerminalOutput out = AIRMESH__V1__TERMINAL_OUTPUT__INIT;
    out.pod_id = "p-000000000001";
    out.data.data = (uint8_t *)"hello";
    out.data.len = 5;
    assert_int_equal(am_ops_pod_output(e->fx.ops, &other, &out), -AM_EAUTH);
    assert_int_equal(am_hub_pod_read(e->fx.hub, "p-000000000001", 0, NULL, 0, NULL, NULL, NULL),
                     -AM_ENOTFOUND); /* positive control below: the same call finds it */
    assert_int_equal(am_ops_pod_output(e->fx.ops, &k_peer, &out), 0);
    uint8_t buf[16];
    size_t n = 0;
    uint64_t at = 0;
    assert_int_equal(
        am_hub_pod_read(e->fx.hub, "p-000000000001", 0, buf, sizeof buf, &n, &at, NULL), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "hello", 5);

    Airmesh__V1__RecordingChunk ch = AIRMESH__V1__RECORDING_CHUNK__INIT;
    ch.pod_id = "p-000000000002";
    ch.data.data = (uint8_t *)"zz";
    ch.data.len = 2;
    ch.last = 1;
    assert_int_equal(am_ops_pod_recording(e->fx.ops, &other, &ch), -AM_EAUTH);
    assert_int_equal(am_ops_pod_recording(e->fx.ops, &k_peer, &ch), 0);
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_pods_get(e->fx.store, ORG, "p-000000000002", &p), 0);
    assert_true(p->recording);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    assert_int_equal(e->fx.nrec, 0);
    env_free(e);
}

static void test_keystrokes_need_the_input_role(void **state) {
    (void)state;
    env *e = env_new();
    Airmesh__V1__TerminalInput in = AIRMESH__V1__TERMINAL_INPUT__INIT;
    in.pod_id = "p-000000000001";
    Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_INPUT;
    m.input = &in;
    am_principal viewer = as("viewer", 1), member = as("member", 2);
    assert_int_equal(am_ops_terminal_send(e->fx.ops, &viewer, RUNNER, &m), -AM_EPERM);
    assert_int_equal(e->sent, 0);
    assert_int_equal(am_ops_terminal_send(e->fx.ops, &member, RUNNER, &m), 0);
    assert_int_equal(e->sent, 1);
    env_free(e);
}

/* Issue 14: a member may take control of, type into, stop and share only the pods they started
 * unless shared (then all but sharing); admins and owners any; every refusal is audited. */
static void expect_denied(env *e, int rc, const char *action) {
    assert_int_equal(rc, -AM_EPERM);
    assert_non_null(strstr(am_err_last(), "not shared"));
    assert_int_equal(e->fx.nrec, 1);
    assert_string_equal(e->fx.recs[0].action, action);
    assert_string_equal(e->fx.recs[0].result, "denied");
    assert_string_equal(e->fx.recs[0].actor, "user:mia");
    e->fx.nrec = 0;
}

static void test_members_act_on_others_pods_only_when_shared(void **state) {
    (void)state;
    env *e = env_new();
    put_user(e, "mia", 2);
    am_principal mia = as("mia", 2), member = as("member", 2), admin = as("admin", 3),
                 owner = as("owner", 4);
    const char *pod = "p-000000000001"; /* running, started by "member", not shared */
    Airmesh__V1__TerminalInput in = AIRMESH__V1__TERMINAL_INPUT__INIT;
    in.pod_id = (char *)pod;
    Airmesh__V1__ApplianceMessage m = AIRMESH__V1__APPLIANCE_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__APPLIANCE_MESSAGE__MSG_INPUT;
    m.input = &in;

    /* Positive control: the starter may (the op reaches the runner). */
    assert_int_equal(am_ops_terminal_send(e->fx.ops, &member, RUNNER, &m), 0);
    assert_int_equal(e->sent, 1);
    e->sent = 0;

    /* Another member: refused, audited, nothing sent, nothing changed. */
    size_t len0, len1;
    char *before = snapshot(e, &len0);
    expect_denied(e, am_ops_pod_stop(e->fx.ops, &mia, "src", pod), "pod.stop");
    expect_denied(e, am_ops_terminal_control(e->fx.ops, &mia, "src", pod, 1), "pod.terminal.take");
    expect_denied(e, am_ops_terminal_take_over(e->fx.ops, &mia, "src", pod, "member", "idle"),
                  "pod.terminal.take");
    expect_denied(e, am_ops_pod_share(e->fx.ops, &mia, "src", pod, 1), "pod.share");
    assert_int_equal(am_ops_terminal_send(e->fx.ops, &mia, RUNNER, &m), -AM_EPERM);
    assert_int_equal(e->sent, 0);
    char *after = snapshot(e, &len1);
    assert_true(len0 == len1 && memcmp(before, after, len0) == 0);
    free(before);
    free(after);

    /* Admins and owners may, on any pod of the org. */
    assert_int_equal(am_ops_terminal_control(e->fx.ops, &admin, "src", pod, 1), 0);
    assert_int_equal(am_ops_terminal_send(e->fx.ops, &owner, RUNNER, &m), 0);
    assert_int_equal(am_ops_pod_stop(e->fx.ops, &owner, "src", pod), 0);
    assert_int_equal(e->sent, 2);
    e->sent = 0;
    e->fx.nrec = 0;

    /* Its starter shares it: audited pod.share ok with the flag; then mia may, but not unshare. */
    assert_int_equal(am_ops_pod_share(e->fx.ops, &member, "src", pod, 1), 0);
    assert_int_equal(e->fx.nrec, 1);
    assert_string_equal(e->fx.recs[0].action, "pod.share");
    assert_string_equal(e->fx.recs[0].result, "ok");
    assert_true(pod_shared(e, pod));
    e->fx.nrec = 0;
    assert_int_equal(am_ops_terminal_control(e->fx.ops, &mia, "src", pod, 1), 0);
    assert_int_equal(am_ops_terminal_send(e->fx.ops, &mia, RUNNER, &m), 0);
    assert_int_equal(am_ops_pod_stop(e->fx.ops, &mia, "src", pod), 0);
    assert_int_equal(e->sent, 2);
    e->fx.nrec = 0;
    expect_denied(e, am_ops_pod_share(e->fx.ops, &mia, "src", pod, 0), "pod.share");
    assert_true(pod_shared(e, pod));

    /* An admin withdraws the share (audited even when repeated); mia is refused again. */
    assert_int_equal(am_ops_pod_share(e->fx.ops, &admin, "src", pod, 0), 0);
    assert_int_equal(am_ops_pod_share(e->fx.ops, &admin, "src", pod, 0), 0);
    assert_int_equal(e->fx.nrec, 2);
    assert_false(pod_shared(e, pod));
    e->fx.nrec = 0;
    expect_denied(e, am_ops_terminal_control(e->fx.ops, &mia, "src", pod, 1), "pod.terminal.take");

    /* Viewing is no decision: a viewer still reads the pod; a viewer cannot share. */
    am_principal viewer = as("viewer", 1);
    assert_int_equal(am_ops_pod_share(e->fx.ops, &viewer, "src", pod, 1), -AM_EPERM);
    assert_string_equal(e->fx.recs[0].result, "denied");
    ProtobufCMessage *pm = NULL;
    assert_int_equal(
        am_ops_get(e->fx.ops, AM_DB_PODS, ORG, pod, &airmesh__v1__pod__descriptor, &pm), 0);
    protobuf_c_message_free_unpacked(pm, NULL);
    env_free(e);
}

/* ---- a real full disk under the real audit writer ---- */

/* The audit directory on a 256 KiB tmpfs, filled up: the writer's next write fails with ENOSPC,
 * its failure is sticky, and from then on every operation must fail and change nothing. */
static void test_a_full_audit_disk_fails_operations_and_changes_nothing(void **state) {
    (void)state;
    env *e = env_new();
    char mnt[128];
    snprintf(mnt, sizeof mnt, "%s/audit", e->fx.dir);
    assert_int_equal(mkdir(mnt, 0700), 0);
    if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0700") != 0)
        fail_msg("mount tmpfs on %s: %s (this test needs root and a mount namespace)", mnt,
                 strerror(errno));
    snprintf(g_mounted, sizeof g_mounted, "%s", mnt);
    am_audit *log = NULL;
    assert_int_equal(am_audit_open(mnt, NULL, &log), 0);
    am_ops_free(e->fx.ops);
    am_ops_config c = {.store = e->fx.store, .audit = log, .hub = e->fx.hub, .data_dir = e->fx.dir};
    assert_int_equal(am_ops_new(&c, &e->fx.ops), 0);
    am_principal admin = as("admin", 3);
    char pw[32];
    /* positive control: with space left the real log takes the record */
    assert_int_equal(
        am_ops_user_create(e->fx.ops, &admin, "s", "before", "viewer", NULL, NULL, pw, sizeof pw),
        0);
    assert_int_equal(am_audit_flush(log), 0);
    char filler[160];
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    int fd = open(filler, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    static char block[4096];
    while (write(fd, block, sizeof block) > 0)
        ;
    close(fd);
    /* the next blocks cannot be written (the segment's last page fills first): the writer
     * fails, for good */
    int flushed = 0;
    for (int i = 0; i < 256 && flushed == 0; i++) {
        uint8_t raw[1024];
        char details[2100];
        assert_int_equal(am_random(raw, sizeof raw), 0); /* incompressible */
        memcpy(details, "{\"x\":\"", 6);
        am_hex(raw, sizeof raw, details + 6);
        memcpy(details + 6 + 2048, "\"}", 3);
        assert_int_equal(am_audit_event(log, "system", "", "test.fill", "", "ok", "", details), 0);
        flushed = am_audit_flush(log);
    }
    assert_int_equal(flushed, -AM_EIO);
    size_t len0, len1;
    char *before = snapshot(e, &len0);
    int rc =
        am_ops_user_create(e->fx.ops, &admin, "s", "after", "viewer", NULL, NULL, pw, sizeof pw);
    assert_int_equal(rc, -AM_EIO);
    assert_non_null(strstr(am_err_last(), "nothing was changed"));
    assert_int_not_equal(am_ops_runner_revoke(e->fx.ops, &admin, "s", RUNNER), 0);
    assert_int_not_equal(e->stream, -1); /* its stream was not closed either */
    char *after = snapshot(e, &len1);
    assert_true(len0 == len1 && memcmp(before, after, len0) == 0);
    free(before);
    free(after);
    am_audit_close(log);
    assert_int_equal(umount2(mnt, MNT_DETACH), 0);
    g_mounted[0] = '\0';
    env_free(e);
}

/* Issue 12: an agent state is the pod's own runner's, well formed, stored, audited once per
 * change; an ended pod's is over. */
static const char *agent_state_of(env *e, const char *id, uint64_t *ms) {
    static char st[16];
    Airmesh__V1__Pod *p = NULL;
    assert_int_equal(am_pods_get(e->fx.store, ORG, id, &p), 0);
    snprintf(st, sizeof st, "%s", p->agent_state);
    if (ms)
        *ms = p->agent_state_ms;
    protobuf_c_message_free_unpacked(&p->base, NULL);
    return st;
}

static void test_agent_state_only_from_the_pods_runner_well_formed_once_per_change(void **state) {
    (void)state;
    env *e = env_new();
    am_ops_peer other = {"r-00000000000000ff", ORG, "y"};
    Airmesh__V1__AgentState as = AIRMESH__V1__AGENT_STATE__INIT;
    as.pod_id = "p-000000000001";
    as.state = "waiting";
    as.source = "notify";
    as.message = "need a review";
    /* Refused, nothing stored or audited: another runner's pod, bad values. */
    assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &other, &as), -AM_EAUTH);
    const char *bad_states[] = {"exited", "", "WAITING"};
    for (size_t i = 0; i < 3; i++) {
        as.state = (char *)bad_states[i];
        assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &k_peer, &as), -AM_EINVAL);
    }
    as.state = "waiting";
    as.source = "pod";
    assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &k_peer, &as), -AM_EINVAL);
    as.source = "notify";
    char long_msg[202];
    memset(long_msg, 'm', 201);
    long_msg[201] = '\0';
    const char *bad_msgs[] = {"esc\033[2J", "bell\007", "c1\xc2\x9b", "bad\xff", long_msg};
    for (size_t i = 0; i < 5; i++) {
        as.message = (char *)bad_msgs[i];
        assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &k_peer, &as), -AM_EINVAL);
    }
    assert_int_equal(e->fx.nrec, 0);
    assert_string_equal(agent_state_of(e, "p-000000000001", NULL), "");
    /* Positive control: the pod's runner, well formed: stored and audited once. */
    as.message = "need a review \xc3\xa9";
    assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &k_peer, &as), 0);
    uint64_t ms = 0;
    assert_string_equal(agent_state_of(e, "p-000000000001", &ms), "waiting");
    assert_true(ms > 0);
    assert_int_equal(e->fx.nrec, 1);
    assert_string_equal(e->fx.recs[0].action, "pod.agent_state");
    assert_string_equal(e->fx.recs[0].actor, "runner:" RUNNER);
    /* The same state from a title or quiet is no news; a new notification is. */
    as.source = "title";
    as.message = "a title";
    assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &k_peer, &as), 0);
    assert_int_equal(e->fx.nrec, 1);
    as.source = "osc9";
    as.message = "another question";
    assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &k_peer, &as), 0);
    assert_int_equal(e->fx.nrec, 2);
    /* An ended pod: no change, no record. */
    as.pod_id = "p-000000000002";
    assert_int_equal(am_ops_pod_agent_state(e->fx.ops, &k_peer, &as), 0);
    assert_int_equal(e->fx.nrec, 2);
    assert_string_equal(agent_state_of(e, "p-000000000002", NULL), "");
    env_free(e);
}

static int setup_all(void **state) {
    (void)state;
    assert_int_equal(am_auth_hash_password(PASSWORD, g_hash, sizeof g_hash), 0);
    assert_non_null(mkdtemp(g_ca_dir));
    int created;
    return am_ca_open(g_ca_dir, NULL, &g_ca, &created);
}

static int teardown_all(void **state) {
    (void)state;
    if (g_mounted[0])
        umount2(g_mounted, MNT_DETACH);
    am_ca_close(g_ca);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_ca_dir);
    am_pki_thread_done();
    return system(cmd);
}

/* The org's policy at pod create: a limit left out gets the org default, else the global
 * default capped at the org max; a request above the max is refused naming the limit, and bad
 * policies are refused with nothing stored or audited. */
static Airmesh__V1__Pod *create_with(env *e, uint64_t memory, uint32_t cpu, int *rc) {
    const char *argv[] = {"bash"};
    am_pod_spec s = {.repo = "/srv/git/app.git",
                     .argv = argv,
                     .argc = 1,
                     .memory_bytes = memory,
                     .cpu_millis = cpu};
    am_principal m = as("member", 2);
    Airmesh__V1__Pod *p = NULL;
    *rc = am_ops_pod_create(e->fx.ops, &m, "src", &s, &p);
    if (*rc == 0) { /* end it (unaudited), so the runner's 4 slots do not run out */
        am_pod_update u = {.org = ORG, .id = p->id, .state = "exited"};
        assert_int_equal(am_pods_update(e->fx.store, &u, NULL), 0);
    }
    return p;
}

static void test_org_limits_apply_at_pod_create(void **state) {
    (void)state;
    env *e = env_new();
    am_principal admin = as("admin", 3);
    int rc;
    /* Positive control: without a policy the request's value is taken as is. */
    Airmesh__V1__Pod *p = create_with(e, 16ull << 30, 0, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(p->memory_bytes, 16ull << 30);
    protobuf_c_message_free_unpacked(&p->base, NULL);

    am_org_limits l = {.def = {.memory_bytes = 1ull << 30, .pids = 256},
                       .max = {.memory_bytes = 4ull << 30, .cpu_millis = 2000}};
    assert_int_equal(am_ops_org_limits_set(e->fx.ops, &admin, "src", ORG, &l), 0);
    p = create_with(e, 0, 0, &rc); /* left out: org default; cpu: none anywhere -> the max */
    assert_int_equal(rc, 0);
    assert_int_equal(p->memory_bytes, 1ull << 30);
    assert_int_equal(p->pids, 256);
    assert_int_equal(p->cpu_millis, 2000);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    p = create_with(e, 4ull << 30, 1500, &rc); /* at the max: allowed */
    assert_int_equal(rc, 0);
    assert_int_equal(p->memory_bytes, 4ull << 30);
    assert_int_equal(p->cpu_millis, 1500);
    protobuf_c_message_free_unpacked(&p->base, NULL);

    size_t len0, len1, n0 = e->fx.nrec;
    char *before = snapshot(e, &len0);
    p = create_with(e, 5ull << 30, 0, &rc);
    assert_null(p);
    assert_int_equal(rc, -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "limits.memory"));
    assert_non_null(strstr(am_err_last(), "4G"));
    p = create_with(e, 0, 3000, &rc);
    assert_int_equal(rc, -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "limits.cpu"));

    /* Bad policies: refused, nothing stored, nothing audited. */
    am_org_limits bad[] = {
        {.def = {.memory_bytes = 8ull << 30}, .max = {.memory_bytes = 4ull << 30}},
        {.def = {.memory_bytes = 1}},
        {.max = {.pids = 70000}},
        {.def = {.cpu_millis = 300000}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(am_ops_org_limits_set(e->fx.ops, &admin, "src", ORG, &bad[i]), -AM_EINVAL);
    }
    assert_int_equal(am_ops_org_limits_set(e->fx.ops, &admin, "src", ORG, &bad[0]), -AM_EINVAL);
    assert_non_null(strstr(am_err_last(), "defaults.memory"));
    /* Another org's policy: not found, not audited. */
    assert_int_equal(am_ops_org_limits_set(e->fx.ops, &admin, "src", "other", &l), -AM_ENOTFOUND);
    am_org_limits got;
    assert_int_equal(am_ops_org_limits_get(e->fx.ops, &admin, "other", &got), -AM_ENOTFOUND);
    char *after = snapshot(e, &len1);
    assert_int_equal(e->fx.nrec, n0);
    assert_true(len0 == len1 && memcmp(before, after, len0) == 0);
    free(before);
    free(after);
    env_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_allowed_role_succeeds_with_one_audit_record_published),
        cmocka_unit_test(test_lower_role_is_refused_audited_and_changes_nothing),
        cmocka_unit_test(test_audit_failure_fails_the_operation_and_leaves_the_store_unchanged),
        cmocka_unit_test(test_runner_refusals_are_audited),
        cmocka_unit_test(test_pod_virtual_key_goes_only_to_the_runner),
        cmocka_unit_test(test_egress_rules),
        cmocka_unit_test(test_refused_logins_are_audited),
        cmocka_unit_test(test_another_orgs_things_are_not_found_and_not_audited),
        cmocka_unit_test(test_pod_create_with_unreachable_runner_marks_it_failed),
        cmocka_unit_test(test_hello_marks_the_pods_a_runner_lost_failed),
        cmocka_unit_test(test_audit_export_is_for_owners_and_audited_before_it_is_made),
        cmocka_unit_test(test_terminal_output_and_recordings_only_from_the_pods_runner),
        cmocka_unit_test(test_keystrokes_need_the_input_role),
        cmocka_unit_test(test_agent_state_only_from_the_pods_runner_well_formed_once_per_change),
        cmocka_unit_test(test_org_limits_apply_at_pod_create),
        cmocka_unit_test(test_members_act_on_others_pods_only_when_shared),
        cmocka_unit_test(test_a_full_audit_disk_fails_operations_and_changes_nothing),
    };
    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
