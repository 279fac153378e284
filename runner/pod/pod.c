/*
 * runner/pod/pod.c — one thread per pod: worktree, sandbox, PTY pump, ring, recording.
 * See pod.h for the lifecycle. Recordings are asciicast v2, written through a zstd stream to
 * DATA/recordings/<pod>.cast.zst and uploaded when the pod ends.
 */
#include "runner/pod/pod.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "runner/sandbox/sandbox.h"
#include "runner/worktree/worktree.h"

#define OUT_CHUNK (32u << 10)
#define UPLOAD_CHUNK (512u << 10)

typedef struct pod {
    am_podmgr *mgr;
    Airmesh__V1__CreatePod *cp; /* our own unpacked copy */
    pthread_t thread;
    pthread_mutex_t mu; /* guards sbx, state fields, stop_* */
    am_sbx *sbx;
    int wake_fd;
    char state[16], reason[512], limits_note[512], worktree[PATH_MAX], commit[41];
    int exit_code;
    int stop_requested;
    uint32_t stop_grace_ms;
    int done, recording_uploaded, have_recording;
    /* output */
    uint8_t *ring;
    uint64_t out_offset;
    ZSTD_CStream *zs;
    FILE *rec;
    uint64_t rec_start_ns;
    uint8_t utf8_carry[4];
    size_t carry_len;
    uint64_t rec_bytes; /* compressed bytes written to rec_path */
    int rec_full;       /* the recording reached g_rec_max: output no longer recorded */
    char rec_path[PATH_MAX];
} pod;

/* Largest recording on the runner's disk (compressed). The pod's output is the agent's: without
 * a bound, `cat /dev/urandom | base64` fills the runner's disk through DATA/recordings. The
 * default is what the appliance accepts (a larger upload is refused there). */
static uint64_t g_rec_max = AM_POD_RECORDING_MAX;

void am_pod_set_recording_max(uint64_t bytes) {
    g_rec_max = bytes;
}

struct am_podmgr {
    char data_dir[PATH_MAX - 256]; /* room for "/recordings/<pod>.cast.zst" */
    am_pod_emit_fn emit;
    void *ud;
    pthread_mutex_t mu;
    pod **pods;
    size_t n, cap;
};

/* ---- messages ---- */

static void emit_status(pod *p) {
    Airmesh__V1__PodStatus st = AIRMESH__V1__POD_STATUS__INIT;
    pthread_mutex_lock(&p->mu);
    st.pod_id = p->cp->pod_id;
    st.state = p->state;
    st.exit_code = p->exit_code;
    st.reason = p->reason;
    st.limits_note = p->limits_note;
    st.worktree = p->worktree;
    st.commit = p->commit;
    Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
    m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_POD_STATUS;
    m.pod_status = &st;
    p->mgr->emit(p->mgr->ud, &m);
    pthread_mutex_unlock(&p->mu);
}

static void set_state(pod *p, const char *state, const char *reason) {
    pthread_mutex_lock(&p->mu);
    snprintf(p->state, sizeof p->state, "%s", state);
    if (reason)
        snprintf(p->reason, sizeof p->reason, "%s", reason);
    pthread_mutex_unlock(&p->mu);
    emit_status(p);
    am_log_info("pod", "state", "pod=%s state=%s", p->cp->pod_id, state);
}

static void emit_output(pod *p, const uint8_t *data, size_t len) {
    for (size_t off = 0; off < len; off += OUT_CHUNK) {
        size_t n = len - off < OUT_CHUNK ? len - off : OUT_CHUNK;
        Airmesh__V1__TerminalOutput to = AIRMESH__V1__TERMINAL_OUTPUT__INIT;
        to.pod_id = p->cp->pod_id;
        to.offset = p->out_offset + off;
        to.data.data = (uint8_t *)data + off;
        to.data.len = n;
        Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
        m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_OUTPUT;
        m.output = &to;
        p->mgr->emit(p->mgr->ud, &m);
    }
}

/* ---- recording (asciicast v2 through zstd) ---- */

static void rec_write(pod *p, const char *s, size_t len) {
    if (!p->rec)
        return;
    ZSTD_inBuffer in = {s, len, 0};
    uint8_t out[16384];
    while (in.pos < in.size) {
        ZSTD_outBuffer ob = {out, sizeof out, 0};
        size_t r = ZSTD_compressStream2(p->zs, &ob, &in, ZSTD_e_continue);
        if (ZSTD_isError(r))
            return;
        p->rec_bytes += fwrite(out, 1, ob.pos, p->rec);
    }
}

static void rec_open(pod *p) {
    snprintf(p->rec_path, sizeof p->rec_path, "%s/recordings/%s.cast.zst", p->mgr->data_dir,
             p->cp->pod_id);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/recordings", p->mgr->data_dir);
    am_mkdir_p(dir, 0700);
    p->rec = fopen(p->rec_path, "wbe");
    p->zs = ZSTD_createCStream();
    if (!p->rec || !p->zs) {
        if (p->rec)
            fclose(p->rec);
        p->rec = NULL;
        return;
    }
    ZSTD_CCtx_setParameter(p->zs, ZSTD_c_compressionLevel, 3);
    p->rec_start_ns = am_mono_ns();
    char hdr[256];
    int n = snprintf(hdr, sizeof hdr,
                     "{\"version\":2,\"width\":%u,\"height\":%u,\"timestamp\":%llu,"
                     "\"env\":{\"TERM\":\"xterm-256color\"}}\n",
                     p->cp->cols ? p->cp->cols : 80, p->cp->rows ? p->cp->rows : 24,
                     (unsigned long long)(am_now_ms() / 1000));
    rec_write(p, hdr, (size_t)n);
    p->have_recording = 1;
}

/* Length of the valid UTF-8 sequence at s (1..4), 0 if invalid, -1 if truncated. Valid as
 * RFC 3629 says (the agent's bytes end up in a JSON file that strict decoders read): no
 * overlong forms (C0, C1, E0 80..9F, F0 80..8F), no UTF-16 surrogates (ED A0..BF), nothing
 * above U+10FFFF (F4 90.., F5..FF). */
static int utf8_len(const uint8_t *s, size_t avail) {
    int n = s[0] < 0x80             ? 1
            : (s[0] & 0xe0) == 0xc0 ? 2
            : (s[0] & 0xf0) == 0xe0 ? 3
            : (s[0] & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n == 0 || (n == 2 && s[0] < 0xc2) || s[0] > 0xf4)
        return 0;
    if (avail >= 2) { /* the second byte's range depends on the first */
        uint8_t lo = 0x80, hi = 0xbf;
        if (s[0] == 0xe0)
            lo = 0xa0;
        else if (s[0] == 0xed)
            hi = 0x9f;
        else if (s[0] == 0xf0)
            lo = 0x90;
        else if (s[0] == 0xf4)
            hi = 0x8f;
        if (n > 1 && (s[1] < lo || s[1] > hi))
            return 0;
    }
    if ((size_t)n > avail)
        return -1;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* One output event: [t, "o", "<data as a JSON string>"]. Invalid UTF-8 becomes U+FFFD; a
 * sequence cut by the read boundary is carried to the next event. */
static void rec_output(pod *p, const uint8_t *data, size_t len) {
    if (!p->rec || p->rec_full)
        return;
    uint8_t *buf = malloc(p->carry_len + len);
    if (!buf)
        return;
    memcpy(buf, p->utf8_carry, p->carry_len);
    memcpy(buf + p->carry_len, data, len);
    size_t total = p->carry_len + len;
    p->carry_len = 0;
    char *out = malloc(total * 6 + 64);
    if (!out) {
        free(buf);
        return;
    }
    double t = (double)(am_mono_ns() - p->rec_start_ns) / 1e9;
    size_t o = (size_t)sprintf(out, "[%.6f, \"o\", \"", t);
    for (size_t i = 0; i < total;) {
        int n = utf8_len(buf + i, total - i);
        if (n < 0) {
            p->carry_len = total - i;
            memcpy(p->utf8_carry, buf + i, p->carry_len);
            break;
        }
        if (n == 0) {
            memcpy(out + o, "\\ufffd", 6);
            o += 6;
            i++;
            continue;
        }
        uint8_t c = buf[i];
        if (n == 1 && (c < 0x20 || c == '"' || c == '\\' || c == 0x7f)) {
            if (c == '"' || c == '\\') {
                out[o++] = '\\';
                out[o++] = (char)c;
            } else if (c == '\n') {
                memcpy(out + o, "\\n", 2);
                o += 2;
            } else if (c == '\r') {
                memcpy(out + o, "\\r", 2);
                o += 2;
            } else {
                o += (size_t)sprintf(out + o, "\\u%04x", c);
            }
        } else {
            memcpy(out + o, buf + i, (size_t)n);
            o += (size_t)n;
        }
        i += (size_t)n;
    }
    memcpy(out + o, "\"]\n", 3);
    o += 3;
    /* What zstd still buffers (at most a block, 128 KiB) plus this event, compressed, must fit:
     * else the recording ends here with a note (the pod runs on; the live terminal and the
     * ring still get everything). */
    if (p->rec_bytes + o + (256u << 10) > g_rec_max) {
        p->rec_full = 1;
        o = (size_t)snprintf(out, total * 6 + 64,
                             "[%.6f, \"o\", \"\\r\\n[airmesh: recording stopped at the "
                             "runner's limit of %llu bytes (--recording-max)]\\r\\n\"]\n",
                             t, (unsigned long long)g_rec_max);
        am_log_warn("pod", "recording stopped at its size limit", "pod=%s max=%llu", p->cp->pod_id,
                    (unsigned long long)g_rec_max);
    }
    rec_write(p, out, o);
    free(out);
    free(buf);
}

static void rec_close(pod *p) {
    if (!p->rec)
        return;
    ZSTD_inBuffer in = {NULL, 0, 0};
    uint8_t out[16384];
    size_t r;
    do {
        ZSTD_outBuffer ob = {out, sizeof out, 0};
        r = ZSTD_compressStream2(p->zs, &ob, &in, ZSTD_e_end);
        fwrite(out, 1, ob.pos, p->rec);
    } while (!ZSTD_isError(r) && r != 0);
    fflush(p->rec);
    fsync(fileno(p->rec));
    fclose(p->rec);
    p->rec = NULL;
    ZSTD_freeCStream(p->zs);
    p->zs = NULL;
}

static void upload_recording(pod *p) {
    if (!p->have_recording || p->recording_uploaded)
        return;
    uint8_t *data = NULL;
    size_t len = 0;
    if (am_read_file(p->rec_path, AM_POD_RECORDING_MAX, &data, &len) != 0)
        return;
    int ok = 1;
    for (size_t off = 0; ok && (off < len || off == 0); off += UPLOAD_CHUNK) {
        size_t n = len - off < UPLOAD_CHUNK ? len - off : UPLOAD_CHUNK;
        Airmesh__V1__RecordingChunk ch = AIRMESH__V1__RECORDING_CHUNK__INIT;
        ch.pod_id = p->cp->pod_id;
        ch.offset = off;
        ch.data.data = data + off;
        ch.data.len = n;
        ch.last = off + n >= len;
        Airmesh__V1__RunnerMessage m = AIRMESH__V1__RUNNER_MESSAGE__INIT;
        m.msg_case = AIRMESH__V1__RUNNER_MESSAGE__MSG_RECORDING;
        m.recording = &ch;
        ok = p->mgr->emit(p->mgr->ud, &m) == 0;
        if (ch.last)
            break;
    }
    free(data);
    if (ok)
        p->recording_uploaded = 1;
}

/* ---- the pod thread ---- */

/* Drain what the PTY has now into one buffer, then ring + recording + one batch of messages:
 * a PTY read returns a few KiB at a time, and one gRPC message per read caps throughput. No
 * waiting: the batch ends as soon as the PTY has nothing more (keystroke echo stays immediate). */
#define PUMP_BATCH (256u << 10)

static void pump_output(pod *p, int fd) {
    static _Thread_local uint8_t buf[PUMP_BATCH];
    for (;;) {
        size_t n = 0;
        while (n < sizeof buf) {
            ssize_t r = read(fd, buf + n, sizeof buf - n);
            if (r <= 0)
                break;
            n += (size_t)r;
        }
        if (n == 0)
            return;
        for (size_t i = 0; i < n; i++)
            p->ring[(p->out_offset + i) % AM_POD_RING_BYTES] = buf[i];
        rec_output(p, buf, n);
        emit_output(p, buf, n);
        p->out_offset += n;
        if (n < sizeof buf)
            return;
    }
}

/* DATA/podmeta/<pod>: the repo URL and keep flag, so that a runner that crashed can clean up
 * its pods' worktrees (unmount overlays, drop registrations) when it starts again. */
static void meta_path(am_podmgr *m, const char *pod_id, char *out, size_t cap) {
    snprintf(out, cap, "%s/podmeta/%s", m->data_dir, pod_id);
}

static void meta_write(am_podmgr *m, const Airmesh__V1__CreatePod *cp) {
    char dir[PATH_MAX], path[PATH_MAX + 512], buf[2048];
    snprintf(dir, sizeof dir, "%s/podmeta", m->data_dir);
    am_mkdir_p(dir, 0700);
    meta_path(m, cp->pod_id, path, sizeof path);
    int n = snprintf(buf, sizeof buf, "%d\n%s", cp->keep_worktree ? 1 : 0, cp->repo);
    if (n > 0 && (size_t)n < sizeof buf)
        am_write_file_atomic(path, buf, (size_t)n, 0600);
}

static void meta_remove(am_podmgr *m, const char *pod_id) {
    char path[PATH_MAX + 512];
    meta_path(m, pod_id, path, sizeof path);
    unlink(path);
}

/* At start: every pod left by an earlier life of this runner is gone (its processes died with
 * the runner): remove its worktree unless it was to be kept. */
static void cleanup_leftovers(am_podmgr *m) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/podmeta", m->data_dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX + 512];
        uint8_t *data = NULL;
        size_t len = 0;
        meta_path(m, e->d_name, path, sizeof path);
        if (am_read_file(path, 4096, &data, &len) != 0)
            continue;
        char *nl = strchr((char *)data, '\n');
        if (nl) {
            int keep = data[0] == '1';
            if (am_wt_remove(m->data_dir, nl + 1, e->d_name, keep) == 0 || !keep)
                am_log_info("pod", "cleaned up a pod left by a previous run", "pod=%s kept=%d",
                            e->d_name, keep);
        }
        free(data);
        unlink(path);
    }
    if (d)
        closedir(d);
}

static void *pod_main(void *arg) {
    pod *p = arg;
    am_podmgr *m = p->mgr;
    const Airmesh__V1__CreatePod *cp = p->cp;
    meta_write(m, cp);
    set_state(p, "starting", NULL);

    /* Limits: what CreatePod says, the defaults where it says 0 (sandbox.h). */
    const Airmesh__V1__PodLimits *lim = cp->limits;
#define LIMIT(field, dflt) (lim && lim->field ? lim->field : (dflt))
    am_wt_set_quota(LIMIT(workspace_bytes, AM_SBX_DEFAULT_WORKSPACE));
    if (am_sbx_idmap_unusable()[0]) { /* refused, with the reason (never run as host root) */
        set_state(p, "failed", am_sbx_idmap_unusable());
        goto done;
    }
    am_wt_info wt;
    if (am_wt_create(m->data_dir, cp->repo, cp->base_ref, cp->branch, cp->pod_id, &wt) != 0) {
        set_state(p, "failed", am_err_last());
        goto done;
    }
    pthread_mutex_lock(&p->mu);
    snprintf(p->worktree, sizeof p->worktree, "%s", wt.path);
    snprintf(p->commit, sizeof p->commit, "%s", wt.commit);
    pthread_mutex_unlock(&p->mu);

    const char **env = calloc(cp->n_env + 1, sizeof *env);
    char **env_store = calloc(cp->n_env + 1, sizeof *env_store);
    for (size_t i = 0; env && env_store && i < cp->n_env; i++) {
        size_t l = strlen(cp->env[i]->key) + strlen(cp->env[i]->value) + 2;
        env_store[i] = malloc(l);
        if (env_store[i])
            snprintf(env_store[i], l, "%s=%s", cp->env[i]->key, cp->env[i]->value);
        env[i] = env_store[i];
    }
    const char **argv = calloc(cp->n_command + 1, sizeof *argv);
    for (size_t i = 0; argv && i < cp->n_command; i++)
        argv[i] = cp->command[i];
    /* The pod's own git dir read-write (index, HEAD, its branch, new objects); the mirror it
     * borrows objects from (objects/info/alternates) read-only. */
    const char *rw[] = {wt.gitdir, NULL};
    const char *ro[] = {wt.mirror, NULL};
    am_sbx_opts o = {.argv = argv,
                     .env = env,
                     .workspace = wt.path,
                     .ro_binds = wt.mirror[0] ? ro : NULL,
                     .rw_binds = wt.gitdir[0] ? rw : NULL,
                     .network_none = !cp->network || strcmp(cp->network, "host") != 0,
                     .memory_bytes = LIMIT(memory_bytes, AM_SBX_DEFAULT_MEMORY),
                     .pids_max = LIMIT(pids, AM_SBX_DEFAULT_PIDS),
                     .cpu_millis = LIMIT(cpu_millis, AM_SBX_DEFAULT_CPU_MILLIS),
                     .tmp_bytes = LIMIT(tmp_bytes, AM_SBX_DEFAULT_TMP),
                     .shm_bytes = LIMIT(shm_bytes, AM_SBX_DEFAULT_SHM),
                     .cols = (uint16_t)(cp->cols ? cp->cols : 80),
                     .rows = (uint16_t)(cp->rows ? cp->rows : 24),
                     .hostname = cp->pod_id};
#undef LIMIT
    am_sbx *sbx = NULL;
    uint64_t t_spawn = am_mono_ns();
    int rc = argv && env ? am_sbx_spawn(&o, &sbx) : am_err_set(AM_ENOMEM, "out of memory");
    am_log_debug("pod", "started", "pod=%s worktree_ms=%.1f spawn_ms=%.1f", cp->pod_id, wt.ms_total,
                 (double)(am_mono_ns() - t_spawn) / 1e6);
    for (size_t i = 0; env_store && i < cp->n_env; i++)
        free(env_store[i]);
    free(env_store);
    free(env);
    free(argv);
    if (rc) {
        set_state(p, "failed", am_err_last());
        am_wt_remove(m->data_dir, cp->repo, cp->pod_id, cp->keep_worktree);
        goto done;
    }
    pthread_mutex_lock(&p->mu);
    p->sbx = sbx;
    snprintf(p->limits_note, sizeof p->limits_note, "%s", am_sbx_limits_note(sbx));
    int stop_early = p->stop_requested;
    pthread_mutex_unlock(&p->mu);
    rec_open(p);
    set_state(p, "running", NULL);

    int fd = am_sbx_pty_fd(sbx), exited = 0, code = 0, sig = 0, stopping = stop_early;
    if (stop_early)
        am_sbx_stop(sbx, (int)p->stop_grace_ms);
    while (!exited) {
        struct pollfd pf[2] = {{fd, POLLIN, 0}, {p->wake_fd, POLLIN, 0}};
        poll(pf, 2, 200);
        if (pf[0].revents & POLLIN)
            pump_output(p, fd);
        if (pf[1].revents & POLLIN) {
            uint64_t v;
            ssize_t r = read(p->wake_fd, &v, sizeof v);
            (void)r;
        }
        pthread_mutex_lock(&p->mu);
        int want_stop = p->stop_requested && !stopping;
        uint32_t grace = p->stop_grace_ms;
        pthread_mutex_unlock(&p->mu);
        if (want_stop) {
            stopping = 1;
            am_sbx_stop(sbx, (int)grace);
        }
        if (am_sbx_wait(sbx, 0, &code, &sig) == 0) {
            pump_output(p, fd); /* what is still buffered in the PTY */
            exited = 1;
        } else if (pf[0].revents & (POLLHUP | POLLERR) && !(pf[0].revents & POLLIN)) {
            /* Every holder of the slave closed it: the command is ending. */
            am_sbx_wait(sbx, 5000, &code, &sig);
            exited = 1;
        }
    }
    rec_close(p);
    char why[192];
    snprintf(why, sizeof why, "%s", am_sbx_end_reason(sbx)); /* e.g. the memory limit */
    pthread_mutex_lock(&p->mu);
    p->exit_code = code;
    p->sbx = NULL;
    pthread_mutex_unlock(&p->mu);
    am_sbx_free(sbx);
    /* The branch comes back (or is refused) before the final state, which carries the refusal
     * as its reason: the appliance records it with the pod's end (and ignores later updates). */
    char wt_err[512] = "";
    if (am_wt_remove(m->data_dir, cp->repo, cp->pod_id, cp->keep_worktree) != 0) {
        snprintf(wt_err, sizeof wt_err, "%s", am_err_last());
        am_log_warn("pod", "worktree removal failed", "pod=%s error=\"%s\"", cp->pod_id, wt_err);
    }
    char reason[sizeof why + sizeof wt_err + 2];
    snprintf(reason, sizeof reason, "%s%s%s", why, why[0] && wt_err[0] ? "; " : "", wt_err);
    if (stopping)
        set_state(p, "stopped", reason[0] ? reason : NULL);
    else if (why[0] && code != 0)
        set_state(p, "failed", reason); /* "memory limit 2 GiB reached (…)" */
    else
        set_state(p, "exited", reason[0] ? reason : NULL);
    upload_recording(p);
done:
    meta_remove(m, cp->pod_id);
    pthread_mutex_lock(&p->mu);
    p->done = 1;
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* ---- manager ---- */

int am_podmgr_new(const char *data_dir, am_pod_emit_fn emit, void *ud, am_podmgr **out) {
    am_podmgr *m = calloc(1, sizeof *m);
    if (!m)
        return am_err_set(AM_ENOMEM, "pods: out of memory");
    snprintf(m->data_dir, sizeof m->data_dir, "%s", data_dir);
    m->emit = emit;
    m->ud = ud;
    pthread_mutex_init(&m->mu, NULL);
    /* Pod root's host ids own the pods' writable dirs (runner/sandbox/idmap.c). */
    const am_sbx_idmap *idm = am_sbx_idmap_current();
    am_wt_set_owner(idm->pod_root_uid, idm->pod_root_gid, am_sbx_idmap_userns_fd());
    am_log_info("pod", "pod uid mapping", "map=\"%s\"", idm->desc);
    int rc = am_wt_init(data_dir);
    if (rc) {
        free(m);
        return rc;
    }
    cleanup_leftovers(m);
    *out = m;
    return 0;
}

static pod *find(am_podmgr *m, const char *id) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->pods[i]->cp->pod_id, id) == 0)
            return m->pods[i];
    return NULL;
}

int am_podmgr_create(am_podmgr *m, const Airmesh__V1__CreatePod *cp) {
    size_t len = protobuf_c_message_get_packed_size(&cp->base);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return am_err_set(AM_ENOMEM, "pods: out of memory");
    protobuf_c_message_pack(&cp->base, buf);
    pod *p = calloc(1, sizeof *p);
    if (p)
        p->cp = (Airmesh__V1__CreatePod *)protobuf_c_message_unpack(
            &airmesh__v1__create_pod__descriptor, NULL, len, buf);
    free(buf);
    if (!p || !p->cp || !(p->ring = malloc(AM_POD_RING_BYTES))) {
        if (p && p->cp)
            protobuf_c_message_free_unpacked(&p->cp->base, NULL);
        free(p);
        return am_err_set(AM_ENOMEM, "pods: out of memory");
    }
    p->mgr = m;
    p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    p->stop_grace_ms = 5000;
    snprintf(p->state, sizeof p->state, "pending");
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_lock(&m->mu);
    if (find(m, cp->pod_id)) {
        pthread_mutex_unlock(&m->mu);
        protobuf_c_message_free_unpacked(&p->cp->base, NULL);
        free(p->ring);
        close(p->wake_fd);
        free(p);
        return am_err_set(AM_EEXISTS, "pod %s already exists here", cp->pod_id);
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;
        pod **np = realloc(m->pods, nc * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&m->mu);
            return am_err_set(AM_ENOMEM, "pods: out of memory");
        }
        m->pods = np;
        m->cap = nc;
    }
    m->pods[m->n++] = p;
    int rc = pthread_create(&p->thread, NULL, pod_main, p);
    if (rc != 0) {
        m->n--;
        pthread_mutex_unlock(&m->mu);
        return am_err_set(AM_EIO, "pods: cannot start a thread: %s", strerror(rc));
    }
    pthread_mutex_unlock(&m->mu);
    return 0;
}

int am_podmgr_stop(am_podmgr *m, const char *pod_id, uint32_t grace_ms) {
    pthread_mutex_lock(&m->mu);
    pod *p = find(m, pod_id);
    if (p) {
        pthread_mutex_lock(&p->mu);
        p->stop_requested = 1;
        p->stop_grace_ms = grace_ms ? grace_ms : 5000;
        pthread_mutex_unlock(&p->mu);
        uint64_t one = 1;
        ssize_t w = write(p->wake_fd, &one, sizeof one);
        (void)w;
    }
    pthread_mutex_unlock(&m->mu);
    return p ? 0 : am_err_set(AM_ENOTFOUND, "no pod %s on this runner", pod_id);
}

int am_podmgr_input(am_podmgr *m, const char *pod_id, const uint8_t *data, size_t len) {
    pthread_mutex_lock(&m->mu);
    pod *p = find(m, pod_id);
    int rc = am_err_set(AM_ENOTFOUND, "no running pod %s", pod_id);
    if (p) {
        pthread_mutex_lock(&p->mu);
        if (p->sbx) {
            int fd = am_sbx_pty_fd(p->sbx);
            size_t off = 0;
            for (int tries = 0; off < len && tries < 100; tries++) {
                ssize_t w = write(fd, data + off, len - off);
                if (w > 0)
                    off += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    break;
                else
                    usleep(1000);
            }
            rc = off == len ? 0 : am_err_set(AM_EIO, "pod %s: input not fully written", pod_id);
        }
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int am_podmgr_resize(am_podmgr *m, const char *pod_id, uint16_t cols, uint16_t rows) {
    pthread_mutex_lock(&m->mu);
    pod *p = find(m, pod_id);
    int rc = am_err_set(AM_ENOTFOUND, "no running pod %s", pod_id);
    if (p) {
        pthread_mutex_lock(&p->mu);
        if (p->sbx)
            rc = am_sbx_resize(p->sbx, cols, rows);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

size_t am_podmgr_list(am_podmgr *m, char **ids, size_t cap) {
    size_t k = 0;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n && k < cap; i++) {
        pod *p = m->pods[i];
        pthread_mutex_lock(&p->mu);
        int active = !p->done && strcmp(p->state, "exited") && strcmp(p->state, "stopped") &&
                     strcmp(p->state, "failed");
        pthread_mutex_unlock(&p->mu);
        if (active)
            ids[k++] = strdup(p->cp->pod_id);
    }
    pthread_mutex_unlock(&m->mu);
    return k;
}

void am_podmgr_resync(am_podmgr *m) {
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n; i++) {
        pod *p = m->pods[i];
        emit_status(p);
        pthread_mutex_lock(&p->mu);
        int upload = p->done && !p->recording_uploaded;
        pthread_mutex_unlock(&p->mu);
        if (upload)
            upload_recording(p);
    }
    pthread_mutex_unlock(&m->mu);
}

void am_podmgr_free(am_podmgr *m) {
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    size_t n = m->n;
    pthread_mutex_unlock(&m->mu);
    for (size_t i = 0; i < n; i++)
        am_podmgr_stop(m, m->pods[i]->cp->pod_id, 3000);
    for (size_t i = 0; i < n; i++) {
        pod *p = m->pods[i];
        pthread_join(p->thread, NULL);
        protobuf_c_message_free_unpacked(&p->cp->base, NULL);
        free(p->ring);
        close(p->wake_fd);
        pthread_mutex_destroy(&p->mu);
        free(p);
    }
    free(m->pods);
    pthread_mutex_destroy(&m->mu);
    am_wt_shutdown();
    free(m);
}
