/*
 * runner/pod/manager.c — the runner's table of pods: create (one thread each), stop, input,
 * resize, list for Hello, resync after a reconnect, and freeing pods that are over.
 * A pod is freed once its thread is done, the appliance took its final state and its recording
 * is uploaded (am_podmgr_reap, run on create, list and resync): a runner that runs pods for
 * months keeps only the live ones. Every call may come from any thread (m->mu).
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "runner/pod/internal.h"
#include "runner/worktree/worktree.h"

/* ---- agents dir (set once at startup, read by pod threads) ---- */

static char g_agents_dir[PATH_MAX];
static char g_agents_path[PATH_MAX + 96]; /* "PATH=<dir>/bin:<default>" */

int am_pod_set_agents_dir(const char *dir) {
    struct stat st;
    char real[PATH_MAX];
    if (!dir || dir[0] != '/')
        return am_err_set(AM_EINVAL, "'%s' is not an absolute path", dir ? dir : "");
    if (!realpath(dir, real) || stat(real, &st) != 0 || !S_ISDIR(st.st_mode))
        return am_err_set(AM_EINVAL, "'%s' is not a directory", dir);
    if (strlen(real) > PATH_MAX - 16)
        return am_err_set(AM_EINVAL, "'%s' is too long", dir);
    snprintf(g_agents_dir, sizeof g_agents_dir, "%s", real);
    snprintf(g_agents_path, sizeof g_agents_path,
             "PATH=%s/bin:/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", real);
    return 0;
}

const char *am_pod_agents_dir(void) {
    return g_agents_dir;
}

const char *pod_agents_path_env(void) {
    return g_agents_dir[0] ? g_agents_path : NULL;
}

static void pod_free(pod *p) {
    protobuf_c_message_free_unpacked(&p->cp->base, NULL);
    close(p->wake_fd);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* Join and free the pods that are over (m->mu held). */
static void reap(am_podmgr *m) {
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        pod *p = m->pods[i];
        pthread_mutex_lock(&p->mu);
        int over = p->done && p->final_sent && (p->recording_uploaded || !p->have_recording);
        pthread_mutex_unlock(&p->mu);
        if (over) {
            pthread_join(p->thread, NULL);
            pod_free(p);
        } else {
            m->pods[k++] = p;
        }
    }
    m->n = k;
}

void am_pod_set_recording_max(uint64_t bytes) {
    am_cast_set_max(bytes);
}

void am_podmgr_set_egress(am_podmgr *m, struct am_egress *e) {
    m->egress = e;
}

void am_podmgr_set_mcp(am_podmgr *m, struct am_mcprelay *r) {
    m->mcp = r;
}

void am_podmgr_set_runner_id(am_podmgr *m, const char *runner_id) {
    snprintf(m->runner_id, sizeof m->runner_id, "%s", runner_id ? runner_id : "");
}

int am_podmgr_new(const char *data_dir, am_pod_emit_fn emit, void *ud, am_podmgr **out) {
    am_podmgr *m = calloc(1, sizeof *m);
    if (!m)
        return am_err_set(AM_ENOMEM, "pods: out of memory");
    snprintf(m->data_dir, sizeof m->data_dir, "%s", data_dir);
    m->emit = emit;
    m->ud = ud;
    pthread_mutex_init(&m->mu, NULL);
    /* The user the pods' commands run as owns their writable dirs (runner/sandbox/idmap.c):
     * the agent (pod uid 1000) on a root runner, else pod root. */
    const am_sbx_idmap *idm = am_sbx_idmap_current();
    if (idm->agent_uid)
        am_wt_set_owner(idm->agent_uid, idm->agent_gid, am_sbx_idmap_agent_userns_fd());
    else
        am_wt_set_owner(idm->pod_root_uid, idm->pod_root_gid, am_sbx_idmap_userns_fd());
    am_log_info("pod", "pod uid mapping", "map=\"%s\" user=%s", idm->desc,
                idm->agent_uid ? "agent (pod uid 1000)" : "pod root (no agent user)");
    int rc = am_wt_init(data_dir);
    if (rc) {
        free(m);
        return rc;
    }
    am_pod_cleanup_leftovers(m);
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
    if (!p || !p->cp) {
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
    reap(m);
    if (find(m, cp->pod_id)) {
        pthread_mutex_unlock(&m->mu);
        pod_free(p);
        return am_err_set(AM_EEXISTS, "pod %s already exists here", cp->pod_id);
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 16;
        pod **np = realloc(m->pods, nc * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&m->mu);
            pod_free(p);
            return am_err_set(AM_ENOMEM, "pods: out of memory");
        }
        m->pods = np;
        m->cap = nc;
    }
    m->pods[m->n++] = p;
    int rc = pthread_create(&p->thread, NULL, am_pod_main, p);
    if (rc != 0) {
        m->n--;
        pthread_mutex_unlock(&m->mu);
        pod_free(p);
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
            p->agent_input = 1; /* for the agent-state scanner (agentstate_pod.c) */
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
    reap(m);
    for (size_t i = 0; i < m->n && k < cap; i++) {
        pod *p = m->pods[i];
        pthread_mutex_lock(&p->mu);
        int active = !p->done && !am_pod_state_final(p->state);
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
        pthread_mutex_lock(&p->mu);
        int upload = p->done && !p->recording_uploaded;
        pthread_mutex_unlock(&p->mu);
        if (upload) /* before the state, as at the pod's end */
            am_pod_upload_recording(p);
        am_pod_emit_status(p);
        am_pod_agent_resend(p);
    }
    reap(m);
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
        pod_free(p);
    }
    free(m->pods);
    pthread_mutex_destroy(&m->mu);
    am_wt_shutdown();
    free(m);
}
