/*
 * appliance/hub/hub.c — the connected-runners table: a small open array under one mutex.
 * Sizes are modest (thousands of runners): a linear scan is simpler than a hash table and
 * measured by the runner-scale benchmark.
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

struct am_hub {
    pthread_mutex_t mu;
    entry *e;
    size_t n, cap;
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
