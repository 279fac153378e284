/*
 * appliance/http/h2o_compat/khash.h — just enough of klib's khash for <h2o/http2_internal.h>,
 * which Debian's libh2o-dev ships without the khash.h it includes. accept.c needs that header
 * for h2o_http2_conn_t and its stream lookup.
 *
 * Only reading is supported: the table is h2o's, laid out as khash 0.2.8 lays it out
 * (n_buckets, size, n_occupied, upper_bound, flags, keys, vals; 2 flag bits per bucket: bit 1
 * empty, bit 0 deleted). kh_get walks every bucket instead of re-implementing khash's hash and
 * probe sequence, so it depends only on that layout; a connection has at most a few hundred
 * buckets.
 */
#ifndef AM_H2O_COMPAT_KHASH_H
#define AM_H2O_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint32_t;
typedef uint64_t khint64_t;
typedef khint32_t khint_t;
typedef khint_t khiter_t;

#define am_kh_iseither(flag, i) ((flag[(i) >> 4] >> (((i)&0xfU) << 1)) & 3)

#define KHASH_MAP_INIT_INT64(name, khval_t)                                                        \
    typedef struct kh_##name##_s {                                                                 \
        khint_t n_buckets, size, n_occupied, upper_bound;                                          \
        khint32_t *flags;                                                                          \
        khint64_t *keys;                                                                           \
        khval_t *vals;                                                                             \
    } kh_##name##_t;                                                                               \
    static inline khint_t kh_get_##name(const kh_##name##_t *h, khint64_t key) {                 \
        for (khint_t i = 0; i < h->n_buckets; i++)                                                 \
            if (!am_kh_iseither(h->flags, i) && h->keys[i] == key)                                 \
                return i;                                                                          \
        return h->n_buckets;                                                                       \
    }

#define khash_t(name) kh_##name##_t
#define kh_get(name, h, k) kh_get_##name(h, k)
#define kh_end(h) ((h)->n_buckets)
#define kh_val(h, x) ((h)->vals[x])

#endif
