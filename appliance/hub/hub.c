/*
 * appliance/hub/hub.c — the connected-runners table: a small open array under one mutex.
 * Sizes are modest (thousands of runners): a linear scan is simpler than a hash table and
 * measured by the runner-scale benchmark.
 *
 * Pod terminal rings (see hub.h): an array of entries under the same mutex. Each ring grows
 * from 64 KiB to AM_HUB_RING_BYTES as output arrives, so idle pods stay small. Ring bytes live at
 * index (offset % cap); appends copy into it, reads copy out; nothing is shared with callers.
 * Threads: appends/ends on the rpc thread, reads/attach on the http thread; every call takes
 * the mutex for a memcpy at most.
 */
#include "appliance/hub/hub.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"

typedef struct {
    char id[129];
    void *stream;
    am_hub_close_fn close_fn;
    am_hub_runner_info info;
} entry;

typedef struct {
    char id[AM_HUB_POD_ID_MAX + 1];
    char org[129], runner[129];
    uint8_t *buf;
    size_t cap;
    uint64_t start, end;
    int ended, exit_code;
    char state[16];
    uint16_t cols, rows;
    int refs, dirty;
    uint64_t ended_seq;
} pod_entry;

struct am_hub {
    pthread_mutex_t mu;
    entry *e;
    size_t n, cap;
    pod_entry **pods;
    size_t npods, cappods;
    am_hub_notify_fn notify;
    void *notify_arg;
    int notify_pending;
    uint64_t end_seq;
    struct {
        char org[129];
        char *data;
        size_t len;
    } ev[AM_HUB_EVENTS];
    uint64_t ev_seq; /* events published so far; event k (1-based) lives at ev[k % N] */
    int ev_dirty;
};

int am_hub_new(am_hub **out) {
    am_hub *h = calloc(1, sizeof *h);
    if (!h)
        return am_err_set(AM_ENOMEM, "hub: out of memory");
    pthread_mutex_init(&h->mu, NULL);
    *out = h;
    return 0;
}

void am_hub_free(am_hub *h) {
    if (!h)
        return;
    pthread_mutex_destroy(&h->mu);
    for (size_t i = 0; i < h->npods; i++) {
        free(h->pods[i]->buf);
        free(h->pods[i]);
    }
    free(h->pods);
    for (size_t i = 0; i < AM_HUB_EVENTS; i++)
        free(h->ev[i].data);
    free(h->e);
    free(h);
}

static entry *find(am_hub *h, const char *id) {
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->e[i].id, id) == 0)
            return &h->e[i];
    return NULL;
}

int am_hub_runner_online(am_hub *h, const char *runner_id, void *stream, am_hub_close_fn close_fn,
                         const char *peer) {
    pthread_mutex_lock(&h->mu);
    entry *e = find(h, runner_id);
    if (e) {
        e->close_fn(e->stream, "replaced by a newer connection");
    } else {
        if (h->n == h->cap) {
            size_t nc = h->cap ? h->cap * 2 : 64;
            entry *ne = realloc(h->e, nc * sizeof *ne);
            if (!ne) {
                pthread_mutex_unlock(&h->mu);
                return am_err_set(AM_ENOMEM, "hub: out of memory");
            }
            h->e = ne;
            h->cap = nc;
        }
        e = &h->e[h->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->id, sizeof e->id, "%s", runner_id);
    }
    e->stream = stream;
    e->close_fn = close_fn;
    e->info.connected_ms = e->info.last_heartbeat_ms = am_now_ms();
    snprintf(e->info.peer, sizeof e->info.peer, "%s", peer ? peer : "");
    pthread_mutex_unlock(&h->mu);
    return 0;
}

void am_hub_runner_offline(am_hub *h, const char *runner_id, void *stream) {
    pthread_mutex_lock(&h->mu);
    entry *e = find(h, runner_id);
    if (e && e->stream == stream) {
        *e = h->e[h->n - 1];
        h->n--;
    }
    pthread_mutex_unlock(&h->mu);
}

void am_hub_runner_heartbeat(am_hub *h, const char *runner_id) {
    pthread_mutex_lock(&h->mu);
    entry *e = find(h, runner_id);
    if (e)
        e->info.last_heartbeat_ms = am_now_ms();
    pthread_mutex_unlock(&h->mu);
}

void am_hub_runner_introduced(am_hub *h, const char *runner_id) {
    pthread_mutex_lock(&h->mu);
    entry *e = find(h, runner_id);
    if (e)
        e->info.introduced = 1;
    pthread_mutex_unlock(&h->mu);
}

int am_hub_runner_get(am_hub *h, const char *runner_id, am_hub_runner_info *info) {
    pthread_mutex_lock(&h->mu);
    entry *e = find(h, runner_id);
    if (e && info)
        *info = e->info;
    pthread_mutex_unlock(&h->mu);
    return e != NULL;
}

int am_hub_runner_close(am_hub *h, const char *runner_id, const char *reason) {
    pthread_mutex_lock(&h->mu);
    entry *e = find(h, runner_id);
    if (e)
        e->close_fn(e->stream, reason);
    pthread_mutex_unlock(&h->mu);
    return e != NULL;
}

size_t am_hub_runner_count(am_hub *h) {
    pthread_mutex_lock(&h->mu);
    size_t n = h->n;
    pthread_mutex_unlock(&h->mu);
    return n;
}

int am_hub_runner_with(am_hub *h, const char *runner_id, void (*fn)(void *stream, void *arg),
                       void *arg) {
    pthread_mutex_lock(&h->mu);
    entry *e = find(h, runner_id);
    if (e)
        fn(e->stream, arg);
    pthread_mutex_unlock(&h->mu);
    return e != NULL;
}

/* ---------- pod terminal rings ---------- */

#define RING_MIN (64u << 10)

static pod_entry *pod_find(am_hub *h, const char *id) {
    for (size_t i = 0; i < h->npods; i++)
        if (strcmp(h->pods[i]->id, id) == 0)
            return h->pods[i];
    return NULL;
}

static void pod_remove(am_hub *h, size_t i) {
    free(h->pods[i]->buf);
    free(h->pods[i]);
    h->pods[i] = h->pods[--h->npods];
}

/* Keep at most AM_HUB_KEEP_ENDED ended rings nobody watches: evict the oldest. */
static void evict_ended(am_hub *h) {
    for (;;) {
        size_t n = 0, oldest = SIZE_MAX;
        for (size_t i = 0; i < h->npods; i++) {
            pod_entry *e = h->pods[i];
            if (!e->ended || e->refs > 0)
                continue;
            n++;
            if (oldest == SIZE_MAX || e->ended_seq < h->pods[oldest]->ended_seq)
                oldest = i;
        }
        if (n <= AM_HUB_KEEP_ENDED)
            return;
        pod_remove(h, oldest);
    }
}

static pod_entry *pod_create(am_hub *h, const char *org, const char *runner, const char *id) {
    if (strlen(id) > AM_HUB_POD_ID_MAX)
        return NULL;
    if (h->npods == h->cappods) {
        size_t nc = h->cappods ? h->cappods * 2 : 16;
        pod_entry **np = realloc(h->pods, nc * sizeof *np);
        if (!np)
            return NULL;
        h->pods = np;
        h->cappods = nc;
    }
    pod_entry *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    snprintf(e->id, sizeof e->id, "%s", id);
    snprintf(e->org, sizeof e->org, "%s", org);
    snprintf(e->runner, sizeof e->runner, "%s", runner);
    e->cols = 80;
    e->rows = 24;
    h->pods[h->npods++] = e;
    return e;
}

static void mark_dirty(am_hub *h, pod_entry *e) {
    e->dirty = 1;
    if (!h->notify_pending && h->notify) {
        h->notify_pending = 1;
        h->notify(h->notify_arg);
    }
}

/* Copy n bytes at absolute offset off out of the ring (caller checked the range). */
static void ring_out(const pod_entry *e, uint64_t off, uint8_t *dst, size_t n) {
    size_t i = (size_t)(off % e->cap), first = e->cap - i < n ? e->cap - i : n;
    memcpy(dst, e->buf + i, first);
    memcpy(dst + first, e->buf, n - first);
}

static void ring_in(pod_entry *e, uint64_t off, const uint8_t *src, size_t n) {
    size_t i = (size_t)(off % e->cap), first = e->cap - i < n ? e->cap - i : n;
    memcpy(e->buf + i, src, first);
    memcpy(e->buf, src + first, n - first);
}

/* Make room for `need` bytes in the ring (grows up to AM_HUB_RING_BYTES). */
static int ring_reserve(pod_entry *e, size_t need) {
    if (need > AM_HUB_RING_BYTES)
        need = AM_HUB_RING_BYTES;
    if (e->cap >= need)
        return 0;
    size_t nc = e->cap ? e->cap : RING_MIN;
    while (nc < need)
        nc *= 2;
    if (nc > AM_HUB_RING_BYTES)
        nc = AM_HUB_RING_BYTES;
    uint8_t *nb = malloc(nc);
    if (!nb)
        return -1;
    size_t have = (size_t)(e->end - e->start);
    if (have) {
        uint8_t *tmp = malloc(have);
        if (!tmp) {
            free(nb);
            return -1;
        }
        ring_out(e, e->start, tmp, have);
        free(e->buf);
        e->buf = nb;
        e->cap = nc;
        ring_in(e, e->start, tmp, have);
        free(tmp);
    } else {
        free(e->buf);
        e->buf = nb;
        e->cap = nc;
    }
    return 0;
}

void am_hub_set_notify(am_hub *h, am_hub_notify_fn fn, void *arg) {
    pthread_mutex_lock(&h->mu);
    h->notify = fn;
    h->notify_arg = arg;
    h->notify_pending = 0;
    pthread_mutex_unlock(&h->mu);
}

int am_hub_pod_open(am_hub *h, const char *org, const char *runner_id, const char *pod_id) {
    pthread_mutex_lock(&h->mu);
    int rc = 0;
    if (!pod_find(h, pod_id) && !pod_create(h, org, runner_id, pod_id))
        rc = am_err_set(AM_ENOMEM, "hub: out of memory");
    pthread_mutex_unlock(&h->mu);
    return rc;
}

static int owned(const pod_entry *e, const char *org, const char *runner) {
    return strcmp(e->org, org) == 0 && strcmp(e->runner, runner) == 0;
}

int am_hub_pod_output(am_hub *h, const char *org, const char *runner_id, const char *pod_id,
                      uint64_t off, const uint8_t *data, size_t len) {
    pthread_mutex_lock(&h->mu);
    pod_entry *e = pod_find(h, pod_id);
    int rc = 0;
    if (!e) {
        rc = am_err_set(AM_ENOTFOUND, "hub: no terminal for pod %s", pod_id);
        goto out;
    }
    if (!owned(e, org, runner_id)) {
        rc = am_err_set(AM_EAUTH, "hub: pod %s belongs to another runner", pod_id);
        goto out;
    }
    if (e->ended || len == 0 || off + len <= e->end)
        goto out; /* nothing new (a replay after a reconnect, or late bytes) */
    if (off < e->end) {
        data += e->end - off;
        len -= (size_t)(e->end - off);
        off = e->end;
    } else if (off > e->end || e->cap == 0) {
        e->start = e->end = off; /* a gap: restart the ring where the bytes are */
    }
    if (len > AM_HUB_RING_BYTES) {
        data += len - AM_HUB_RING_BYTES;
        off += len - AM_HUB_RING_BYTES;
        len = AM_HUB_RING_BYTES;
        e->start = e->end = off;
    }
    if (ring_reserve(e, (size_t)(e->end - e->start) + len) != 0) {
        rc = am_err_set(AM_ENOMEM, "hub: out of memory");
        goto out;
    }
    ring_in(e, off, data, len);
    e->end = off + len;
    if (e->end - e->start > e->cap)
        e->start = e->end - e->cap;
    mark_dirty(h, e);
out:
    pthread_mutex_unlock(&h->mu);
    return rc;
}

void am_hub_pod_end(am_hub *h, const char *org, const char *runner_id, const char *pod_id,
                    const char *state, int exit_code) {
    pthread_mutex_lock(&h->mu);
    pod_entry *e = pod_find(h, pod_id); /* no entry: no output and no viewer, nothing to do */
    if (e && owned(e, org, runner_id) && !e->ended) {
        e->ended = 1;
        e->exit_code = exit_code;
        snprintf(e->state, sizeof e->state, "%s", state);
        e->ended_seq = ++h->end_seq;
        mark_dirty(h, e);
        evict_ended(h);
    }
    pthread_mutex_unlock(&h->mu);
}

size_t am_hub_take_dirty(am_hub *h, char (*ids)[AM_HUB_POD_ID_MAX + 1], size_t cap) {
    size_t k = 0;
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < h->npods && k < cap; i++) {
        pod_entry *e = h->pods[i];
        if (!e->dirty)
            continue;
        memcpy(ids[k++], e->id, sizeof e->id);
        e->dirty = 0;
    }
    pthread_mutex_unlock(&h->mu);
    return k;
}

void am_hub_notify_ack(am_hub *h) {
    pthread_mutex_lock(&h->mu);
    h->notify_pending = 0;
    pthread_mutex_unlock(&h->mu);
}

int am_hub_pod_attach(am_hub *h, const char *org, const char *runner_id, const char *pod_id) {
    pthread_mutex_lock(&h->mu);
    pod_entry *e = pod_find(h, pod_id);
    if (!e)
        e = pod_create(h, org, runner_id, pod_id);
    if (e)
        e->refs++;
    pthread_mutex_unlock(&h->mu);
    return e ? 0 : am_err_set(AM_ENOMEM, "hub: out of memory");
}

void am_hub_pod_detach(am_hub *h, const char *pod_id) {
    pthread_mutex_lock(&h->mu);
    pod_entry *e = pod_find(h, pod_id);
    if (e && e->refs > 0)
        e->refs--;
    evict_ended(h);
    pthread_mutex_unlock(&h->mu);
}

int am_hub_pod_read(am_hub *h, const char *pod_id, uint64_t from, uint8_t *buf, size_t cap,
                    size_t *n, uint64_t *at, am_hub_pod_view *view) {
    pthread_mutex_lock(&h->mu);
    pod_entry *e = pod_find(h, pod_id);
    if (!e) {
        pthread_mutex_unlock(&h->mu);
        return am_err_set(AM_ENOTFOUND, "hub: no terminal for pod %s", pod_id);
    }
    if (from < e->start)
        from = e->start;
    if (from > e->end)
        from = e->end;
    size_t k = (size_t)(e->end - from) < cap ? (size_t)(e->end - from) : cap;
    if (k)
        ring_out(e, from, buf, k);
    *n = k;
    if (at)
        *at = from;
    if (view) {
        view->start = e->start;
        view->end = e->end;
        view->ended = e->ended;
        snprintf(view->state, sizeof view->state, "%s", e->state);
        view->exit_code = e->exit_code;
        view->cols = e->cols;
        view->rows = e->rows;
    }
    pthread_mutex_unlock(&h->mu);
    return 0;
}

void am_hub_pod_set_size(am_hub *h, const char *pod_id, uint16_t cols, uint16_t rows) {
    pthread_mutex_lock(&h->mu);
    pod_entry *e = pod_find(h, pod_id);
    if (e) {
        e->cols = cols;
        e->rows = rows;
    }
    pthread_mutex_unlock(&h->mu);
}

size_t am_hub_pod_count(am_hub *h) {
    pthread_mutex_lock(&h->mu);
    size_t n = h->npods;
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* ---------- live events ---------- */

void am_hub_event_publish(am_hub *h, const char *org, const char *data, size_t len) {
    char *copy = malloc(len + 1);
    if (!copy)
        return;
    memcpy(copy, data, len);
    copy[len] = '\0';
    pthread_mutex_lock(&h->mu);
    uint64_t k = ++h->ev_seq;
    size_t i = (size_t)(k % AM_HUB_EVENTS);
    free(h->ev[i].data);
    h->ev[i].data = copy;
    h->ev[i].len = len;
    snprintf(h->ev[i].org, sizeof h->ev[i].org, "%s", org);
    h->ev_dirty = 1;
    if (!h->notify_pending && h->notify) {
        h->notify_pending = 1;
        h->notify(h->notify_arg);
    }
    pthread_mutex_unlock(&h->mu);
}

int am_hub_events_take_dirty(am_hub *h) {
    pthread_mutex_lock(&h->mu);
    int d = h->ev_dirty;
    h->ev_dirty = 0;
    pthread_mutex_unlock(&h->mu);
    return d;
}

int am_hub_events_read(am_hub *h, const char *org, uint64_t *after,
                       void (*fn)(void *arg, const char *data, size_t len), void *arg) {
    int lagged = 0;
    pthread_mutex_lock(&h->mu);
    if (*after == UINT64_MAX || *after > h->ev_seq) {
        *after = h->ev_seq;
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    uint64_t oldest = h->ev_seq >= AM_HUB_EVENTS ? h->ev_seq - AM_HUB_EVENTS + 1 : 1;
    uint64_t k = *after + 1;
    if (k < oldest) {
        lagged = 1;
        k = oldest;
    }
    for (; k <= h->ev_seq; k++) {
        size_t i = (size_t)(k % AM_HUB_EVENTS);
        if (h->ev[i].data && strcmp(h->ev[i].org, org) == 0)
            fn(arg, h->ev[i].data, h->ev[i].len);
    }
    *after = h->ev_seq;
    pthread_mutex_unlock(&h->mu);
    return lagged;
}
