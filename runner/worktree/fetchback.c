/*
 * runner/worktree/fetchback.c — a pod's branch comes back into the mirror AS DATA: a pack and a
 * ref value made inside a sandbox like the pod's own, read by the runner from a FIFO it opened
 * itself, checked, indexed and only then published. The runner never opens the pod's git dir.
 *
 * Why: the pod's git dir is the agent's. Opened as a repository by the runner (root), its
 * `commondir`, `objects/info/alternates`, symlinked refs or `[include] path = …` in its config
 * make the runner read other repositories' mirrors or any host file. Parsed inside a sandbox,
 * those paths resolve inside the sandbox, where only this pod's git dir and this repo's mirror
 * exist (read-only).
 *
 * The two halves:
 *
 *   helper (in a sandbox: am_sbx_spawn with new user/pid/mount/net/ipc/uts/cgroup namespaces,
 *   seccomp, no network; binds: the pod's git dir and the mirror read-only, an empty runner-made
 *   dir DATA/mirrors/<h>.fb-<pod> as /workspace holding the FIFO pack.fifo): /bin/sh running the
 *   host's git (from the read-only /usr) with a sanitized environment (no system/global config,
 *   GIT_DIR = the pod's git dir, the mirror's objects as an alternate, safe.directory=*). It
 *   writes to the FIFO:
 *
 *       "airmesh-fetchback 1 <ref name git resolved> <40 hex>\n" + a pack (optional)
 *
 *   The pack is `git pack-objects --revs --local` of <tip> ^<the branch's value in the mirror>:
 *   only objects the mirror does not already have. No pack when the tip is not a commit the
 *   helper can read (the runner then reports it missing). Its stderr goes to the sandbox's PTY;
 *   the runner keeps the last bytes for its error message.
 *
 *   runner (wt_rx_*): reads the header (at most 256 bytes), refuses a ref name other than
 *   refs/heads/<the branch recorded at create> or a value that is not 40 lowercase hex; streams
 *   the pack into libgit2's indexer (every object inflated and hashed as it streams, deltas
 *   resolved, the mirror's odb for bases) in a staging dir DATA/mirrors/<h>.in-<pod>,
 *   never more than am_wt_set_fetch_back_max bytes (default 256 MiB: the helper is killed and the
 *   fetch-back refused beyond); then walks every object reachable from the tip that the mirror
 *   does not have, requiring each to be in the new pack (so the tip is a commit and fully
 *   connected: objects already in the mirror are taken as connected, the mirror's invariant;
 *   blobs are only looked up by header, never read; commits, trees and tags over 64 MiB are
 *   refused: the runner never holds an agent's object whole);
 *   only then, under the mirror lock, renames the pack and its index into the mirror and moves
 *   refs/heads/<branch> from the value it had before (compare-and-swap). Any refusal leaves the
 *   mirror as it was (the staging dir is deleted) and is returned as
 *   "worktree: fetch-back of <branch> refused: <why>".
 *
 * The sandbox is a new one (the pod's own has ended by then) built by the same am_sbx_spawn, so
 * it gets whatever the pod's gets (uid map, seccomp, limits). The FIFO lives in a runner-made
 * dir the pod never saw; the runner opens both of its ends before the helper starts and closes
 * its write end once the helper's pid namespace is gone, so EOF means "all of it was read" (a
 * FIFO without writers reads as EOF, and the helper opens it a little after it starts).
 *
 * Limits: helper wall time 120 s (killed after), memory 2 GiB (cgroup where available, and
 * RLIMIT_AS) and one core (cpu cgroup quota; the pod's own cpu limit is not the helper's); pack
 * size as above (it bounds the disk used). Objects the pack inflates are not size-capped by libgit2
 * (a delta can expand), and the walk's memory grows with the number of objects in the pack.
 *
 * Ownership: wt_rx owns its indexer, staging dir and libgit2 objects (wt_rx_free). Threads: one
 * wt_rx per thread; the helper sandbox is spawned and reaped by the calling thread (PDEATHSIG).
 */
#include <errno.h>
#include <fcntl.h>
#include <git2/sys/odb_backend.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/util.h"
#include "runner/sandbox/sandbox.h"
#include "runner/worktree/internal.h"

#define FB_HEADER_MAX 256
#define FB_HELPER_TIMEOUT_MS 120000
#define FB_HELPER_MEMORY (2ull << 30)
#define FB_HELPER_CPU_MILLIS 1000u /* the agent's config steers git: pack.threads=0 = every CPU */
#define FB_MAGIC "airmesh-fetchback 1 "
#define FB_CHUNK (64u << 10)

static uint64_t g_fb_max = 256ull << 20;

void wt_set_fetch_back_max(uint64_t bytes) {
    g_fb_max = bytes;
}

uint64_t wt_fetch_back_max(void) {
    return g_fb_max;
}

struct wt_rx {
    char branch[256];
    char refname[300];
    char staging[PATH_MAX];
    char mirror[PATH_MAX];
    char lock[PATH_MAX];
    git_repository *repo; /* the mirror */
    git_odb *odb;         /* the mirror's odb (as it was: the new pack is not in it) */
    git_indexer *idx;
    git_oid known; /* the branch's value in the mirror when we started */
    int have_known;
    char head[FB_HEADER_MAX + 1];
    size_t head_len;
    int head_done;
    git_oid tip;
    uint64_t pack_bytes, total;
    int refused; /* -AM_E* once refused; the message is in why */
    char why[512];
    git_indexer_progress stats;
};

static int rx_refuse(wt_rx *rx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int rx_refuse(wt_rx *rx, int code, const char *fmt, ...) {
    if (!rx->refused) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(rx->why, sizeof rx->why, fmt, ap);
        va_end(ap);
        rx->refused = -code;
    }
    return am_err_set(-rx->refused, "worktree: fetch-back of %s refused: %s", rx->branch, rx->why);
}

const char *wt_rx_why(const wt_rx *rx) {
    return rx->refused ? rx->why : "";
}

int wt_rx_refused(const wt_rx *rx) {
    return rx->refused;
}

int wt_rx_begin(const char *mirror, const char *lock, const char *staging, const char *branch,
                wt_rx **out) {
    *out = NULL;
    wt_rx *rx = calloc(1, sizeof *rx);
    int rc;
    if (!rx)
        return am_err_set(AM_ENOMEM, "worktree: out of memory");
    if ((rc = wt_path(rx->branch, sizeof rx->branch, "%s", branch)) < 0 ||
        (rc = wt_path(rx->refname, sizeof rx->refname, "refs/heads/%s", branch)) < 0 ||
        (rc = wt_path(rx->staging, sizeof rx->staging, "%s", staging)) < 0 ||
        (rc = wt_path(rx->mirror, sizeof rx->mirror, "%s", mirror)) < 0 ||
        (rc = wt_path(rx->lock, sizeof rx->lock, "%s", lock)) < 0)
        goto fail;
    if ((rc = wt_mirror_open(mirror, &rx->repo)) < 0)
        goto fail;
    if (git_repository_odb(&rx->odb, rx->repo) < 0) {
        rc = wt_git_fail(AM_EIO, "fetch-back: odb of", mirror);
        goto fail;
    }
    git_reference *ref = NULL;
    int lr = git_reference_lookup(&ref, rx->repo, rx->refname);
    if (lr == 0 && git_reference_type(ref) == GIT_REFERENCE_DIRECT) {
        git_oid_cpy(&rx->known, git_reference_target(ref));
        rx->have_known = 1;
    }
    git_reference_free(ref);
    git_error_clear();
    /* A staging dir only we use (a crashed earlier attempt may have left one). */
    if ((rc = wt_rm_rf(staging)) < 0)
        goto fail;
    if (mkdir(staging, 0700) != 0) {
        rc = wt_sys_fail("fetch-back: mkdir", staging);
        goto fail;
    }
    *out = rx;
    return 0;
fail:
    wt_rx_free(rx);
    return rc;
}

/* The mirror's value of the branch before the fetch-back ("" if it has none). */
void wt_rx_known(const wt_rx *rx, char hex[GIT_OID_HEXSZ + 1]) {
    hex[0] = '\0';
    if (rx->have_known)
        git_oid_tostr(hex, GIT_OID_HEXSZ + 1, &rx->known);
}

static int is_hex40(const char *s, size_t n) {
    if (n != GIT_OID_HEXSZ)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

/* "airmesh-fetchback 1 <ref> <hex>" (the '\n' already cut off). */
static int parse_header(wt_rx *rx) {
    const char *h = rx->head;
    size_t ml = strlen(FB_MAGIC);
    if (strncmp(h, FB_MAGIC, ml) != 0)
        return rx_refuse(rx, AM_ECORRUPT, "the helper's output does not start with '%s'", FB_MAGIC);
    const char *name = h + ml, *sp = strrchr(name, ' ');
    if (!sp || sp == name)
        return rx_refuse(rx, AM_ECORRUPT, "malformed header from the helper");
    size_t nlen = (size_t)(sp - name);
    const char *hex = sp + 1;
    if (nlen != strlen(rx->refname) || memcmp(name, rx->refname, nlen) != 0) {
        char shown[120];
        size_t k = 0;
        for (size_t i = 0; i < nlen && k + 1 < sizeof shown; i++)
            shown[k++] = (name[i] >= 0x20 && name[i] < 0x7f) ? name[i] : '?';
        shown[k] = '\0';
        return rx_refuse(rx, AM_EINVAL, "ref name '%s' is not the pod's branch '%s'", shown,
                         rx->refname);
    }
    if (!is_hex40(hex, strlen(hex)))
        return rx_refuse(rx, AM_EINVAL, "ref value is not 40 lowercase hex digits");
    if (git_oid_fromstr(&rx->tip, hex) < 0)
        return rx_refuse(rx, AM_EINVAL, "ref value is not an object id");
    return 0;
}

static int rx_pack(wt_rx *rx, const uint8_t *p, size_t n) {
    if (n == 0)
        return 0;
    if (!rx->idx) {
        git_indexer_options io;
        git_indexer_options_init(&io, GIT_INDEXER_OPTIONS_VERSION);
        /* No `verify`: it keeps every object's whole inflated data in memory (a blob of 64 GiB
         * of zeros is a few MiB of pack), and check_connected does its connectivity check
         * reading only the objects that link (commits, trees, tags), after their headers. */
        io.verify = 0;
        if (git_indexer_new(&rx->idx, rx->staging, 0444, rx->odb, &io) < 0) {
            const git_error *e = git_error_last();
            return rx_refuse(rx, AM_EIO, "indexer: %s", e && e->message ? e->message : "?");
        }
    }
    rx->pack_bytes += n;
    if (git_indexer_append(rx->idx, p, n, &rx->stats) < 0) {
        const git_error *e = git_error_last();
        return rx_refuse(rx, AM_ECORRUPT, "bad pack: %s", e && e->message ? e->message : "?");
    }
    return 0;
}

int wt_rx_feed(wt_rx *rx, const void *data, size_t n) {
    const uint8_t *p = data;
    if (rx->refused)
        return rx->refused;
    rx->total += n;
    if (rx->total > g_fb_max)
        return rx_refuse(rx, AM_EFULL,
                         "the pack is larger than the limit of %llu bytes (runner option "
                         "--fetch-back-max)",
                         (unsigned long long)g_fb_max);
    if (!rx->head_done) {
        size_t i = 0;
        while (i < n && p[i] != '\n' && rx->head_len < FB_HEADER_MAX)
            rx->head[rx->head_len++] = (char)p[i++];
        if (i == n)
            return 0; /* more header to come */
        if (p[i] != '\n')
            return rx_refuse(rx, AM_ECORRUPT, "header from the helper longer than %d bytes",
                             FB_HEADER_MAX);
        rx->head[rx->head_len] = '\0';
        rx->head_done = 1;
        int rc = parse_header(rx);
        if (rc < 0)
            return rc;
        p += i + 1;
        n -= i + 1;
    }
    return rx_pack(rx, p, n);
}

/* ---- connectivity: every object reachable from the tip that the mirror lacks is in the pack ----
 */

typedef struct {
    git_oid *slots;
    unsigned char *used;
    size_t cap;
} oidset;

/* 1 inserted, 0 already there. Capacity is fixed (2 * objects in the pack), never full. */
static int oidset_add(oidset *s, const git_oid *id) {
    size_t h = 0;
    memcpy(&h, id->id, sizeof h);
    for (size_t i = h % s->cap;; i = (i + 1) % s->cap) {
        if (!s->used[i]) {
            s->used[i] = 1;
            git_oid_cpy(&s->slots[i], id);
            return 1;
        }
        if (git_oid_equal(&s->slots[i], id))
            return 0;
    }
}

typedef struct {
    git_oid *v;
    size_t n, cap;
} oidstack;

static int push(oidstack *st, const git_oid *id) {
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 256;
        git_oid *nv = realloc(st->v, nc * sizeof *nv);
        if (!nv)
            return am_err_set(AM_ENOMEM, "worktree: out of memory");
        st->v = nv;
        st->cap = nc;
    }
    git_oid_cpy(&st->v[st->n++], id);
    return 0;
}

/* Trees, commits and tags bigger than this are refused (they are read whole; a real tree of
 * 100k entries is ~4 MiB). Blobs are never read: they link to nothing. */
#define FB_MAX_LINKING_OBJECT (64u << 20)

static int check_connected(wt_rx *rx, git_repository *packrepo) {
    oidset set = {0};
    oidstack st = {0};
    git_odb *pk = NULL;
    int rc = 0;
    if (packrepo && git_repository_odb(&pk, packrepo) < 0) {
        rc = wt_git_fail(AM_EIO, "fetch-back: odb of", "the pack");
        goto out;
    }
    size_t in_pack = (size_t)rx->stats.total_objects + rx->stats.indexed_objects + 1;
    set.cap = 2 * in_pack + 16;
    set.slots = calloc(set.cap, sizeof *set.slots);
    set.used = calloc(set.cap, 1);
    if (!set.slots || !set.used) {
        rc = am_err_set(AM_ENOMEM, "worktree: out of memory");
        goto out;
    }
    if ((rc = push(&st, &rx->tip)) < 0)
        goto out;
    while (st.n > 0 && rc == 0) {
        git_oid id = st.v[--st.n];
        if (git_odb_exists(rx->odb, &id))
            continue; /* the mirror has it (and, by its invariant, what it reaches) */
        git_error_clear();
        if (!oidset_add(&set, &id))
            continue;
        git_object *obj = NULL;
        char hex[GIT_OID_HEXSZ + 1];
        git_oid_tostr(hex, sizeof hex, &id);
        /* Type and size from the header first: an agent's 64 GiB blob of zeros is a few MiB of
         * pack, and reading it whole here would have made the runner allocate all of it. */
        size_t osize = 0;
        git_object_t otype = GIT_OBJECT_INVALID;
        if (pk && git_odb_read_header(&osize, &otype, pk, &id) == 0 && otype == GIT_OBJECT_BLOB) {
            if (git_oid_equal(&id, &rx->tip)) {
                rc = rx_refuse(rx, AM_EINVAL, "ref value %s is a blob, not a commit", hex);
                break;
            }
            continue;
        }
        git_error_clear();
        if (otype != GIT_OBJECT_INVALID && osize > FB_MAX_LINKING_OBJECT) {
            rc = rx_refuse(rx, AM_EFULL, "%s %s is larger than %u MiB",
                           git_object_type2string(otype), hex, FB_MAX_LINKING_OBJECT >> 20);
            break;
        }
        if (otype != GIT_OBJECT_INVALID &&
            git_object_lookup(&obj, packrepo, &id, GIT_OBJECT_ANY) < 0) {
            const git_error *e = git_error_last();
            rc = rx_refuse(rx, AM_ECORRUPT, "%s %s does not parse: %s",
                           git_object_type2string(otype), hex, e && e->message ? e->message : "?");
            break;
        }
        if (otype == GIT_OBJECT_INVALID) {
            git_error_clear();
            rc = rx_refuse(rx, AM_ECORRUPT,
                           git_oid_equal(&id, &rx->tip)
                               ? "ref value %s: no such object in the pack or the mirror"
                               : "object %s is missing (not in the pack, not in the mirror)",
                           hex);
            break;
        }
        switch (git_object_type(obj)) {
        case GIT_OBJECT_COMMIT: {
            const git_commit *c = (const git_commit *)obj;
            rc = push(&st, git_commit_tree_id(c));
            for (unsigned i = 0; rc == 0 && i < git_commit_parentcount(c); i++)
                rc = push(&st, git_commit_parent_id(c, i));
            break;
        }
        case GIT_OBJECT_TREE: {
            const git_tree *t = (const git_tree *)obj;
            for (size_t i = 0; rc == 0 && i < git_tree_entrycount(t); i++) {
                const git_tree_entry *e = git_tree_entry_byindex(t, i);
                if (git_tree_entry_filemode(e) != GIT_FILEMODE_COMMIT) /* submodules: not ours */
                    rc = push(&st, git_tree_entry_id(e));
            }
            break;
        }
        case GIT_OBJECT_TAG:
            rc = push(&st, git_tag_target_id((const git_tag *)obj));
            break;
        default:
            break;
        }
        if (rc == 0 && git_oid_equal(&id, &rx->tip) && git_object_type(obj) != GIT_OBJECT_COMMIT)
            rc = rx_refuse(rx, AM_EINVAL, "ref value %s is a %s, not a commit", hex,
                           git_object_type2string(git_object_type(obj)));
        git_object_free(obj);
    }
out:
    git_odb_free(pk);
    free(set.slots);
    free(set.used);
    free(st.v);
    return rc;
}

/* Rename staging/pack-<name>.{pack,idx} into the mirror's objects/pack (pack first: readers
 * find packs by their .idx). */
static int publish_pack(wt_rx *rx, const char *name) {
    static const char *const ext[] = {"pack", "idx"};
    for (int i = 0; i < 2; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        int rc;
        if ((rc = wt_path(from, sizeof from, "%s/pack-%s.%s", rx->staging, name, ext[i])) < 0 ||
            (rc = wt_path(to, sizeof to, "%s/objects/pack/pack-%s.%s", rx->mirror, name, ext[i])) <
                0)
            return rc;
        if (rename(from, to) != 0)
            return wt_sys_fail("fetch-back: move pack into mirror", to);
    }
    return 0;
}

int wt_rx_finish(wt_rx *rx, const char *log_message) {
    git_odb *podb = NULL;
    git_odb_backend *be = NULL;
    git_repository *packrepo = NULL, *fresh = NULL;
    git_reference *ref = NULL;
    git_odb_object *tipobj = NULL;
    char name[GIT_OID_HEXSZ + 1] = "";
    int rc = 0, lockfd = -1;
    if (rx->refused)
        return rx_refuse(rx, -rx->refused, "%s", rx->why);
    if (!rx->head_done)
        return rx_refuse(rx, AM_ECORRUPT,
                         rx->total ? "truncated header from the helper"
                                   : "the helper sent nothing");
    if (rx->idx) {
        if (git_indexer_commit(rx->idx, &rx->stats) < 0) {
            const git_error *e = git_error_last();
            if (rx->stats.total_objects != 0 || rx->pack_bytes > 32)
                return rx_refuse(rx, AM_ECORRUPT, "bad pack: %s",
                                 e && e->message ? e->message : "?");
            git_error_clear(); /* an empty pack: nothing to add */
        } else if (rx->stats.indexed_objects > 0) {
            snprintf(name, sizeof name, "%s", git_indexer_name(rx->idx));
            char idxpath[PATH_MAX];
            if ((rc = wt_path(idxpath, sizeof idxpath, "%s/pack-%s.idx", rx->staging, name)) < 0)
                goto out;
            if (git_odb_new(&podb) < 0 || git_odb_backend_one_pack(&be, idxpath) < 0 ||
                git_odb_add_backend(podb, be, 1) < 0) {
                rc = wt_git_fail(AM_EIO, "fetch-back: open pack", idxpath);
                goto out;
            }
            be = NULL; /* owned by podb */
            if (git_repository_wrap_odb(&packrepo, podb) < 0) {
                rc = wt_git_fail(AM_EIO, "fetch-back: wrap pack", idxpath);
                goto out;
            }
        }
    }
    /* The tip must be a commit, in the mirror already or in the pack with everything it reaches
     * that the mirror lacks. */
    if (git_odb_exists(rx->odb, &rx->tip)) {
        if (git_odb_read(&tipobj, rx->odb, &rx->tip) < 0) {
            rc = wt_git_fail(AM_EIO, "fetch-back: read", "tip");
            goto out;
        }
        if (git_odb_object_type(tipobj) != GIT_OBJECT_COMMIT) {
            char hex[GIT_OID_HEXSZ + 1];
            git_oid_tostr(hex, sizeof hex, &rx->tip);
            rc = rx_refuse(rx, AM_EINVAL, "ref value %s is a %s, not a commit", hex,
                           git_object_type2string(git_odb_object_type(tipobj)));
            goto out;
        }
    } else {
        git_error_clear();
        if ((rc = check_connected(rx, packrepo)) < 0)
            goto out;
    }
    if (rx->have_known && git_oid_equal(&rx->known, &rx->tip) && !name[0]) {
        rc = 0; /* nothing new */
        goto out;
    }

    /* Publish: pack, then the ref (compare-and-swap against the value we started from). */
    if ((lockfd = wt_lock(rx->lock)) < 0) {
        rc = lockfd;
        goto out;
    }
    if (name[0] && (rc = publish_pack(rx, name)) < 0)
        goto out;
    if ((rc = wt_mirror_open(rx->mirror, &fresh)) < 0)
        goto out;
    int gr = rx->have_known
                 ? git_reference_create_matching(&ref, fresh, rx->refname, &rx->tip, 1, &rx->known,
                                                 log_message)
                 : git_reference_create(&ref, fresh, rx->refname, &rx->tip, 0, log_message);
    if (gr < 0)
        rc = wt_git_fail(AM_EIO, "fetch-back: update", rx->refname);
out:
    wt_unlock(lockfd);
    git_reference_free(ref);
    git_repository_free(fresh);
    git_odb_object_free(tipobj);
    git_repository_free(packrepo);
    git_odb_free(podb);
    if (be)
        be->free(be);
    return rc;
}

void wt_rx_free(wt_rx *rx) {
    if (!rx)
        return;
    git_indexer_free(rx->idx);
    git_odb_free(rx->odb);
    git_repository_free(rx->repo);
    if (rx->staging[0])
        (void)wt_rm_rf(rx->staging);
    free(rx);
}

/* ---- the helper ---------------------------------------------------------------------------- */

/* Runs inside the sandbox. Everything it prints to stdout goes to the FIFO; its output is
 * untrusted anyway (the runner checks it). */
static const char k_helper[] =
    "exec >\"$AM_OUT\" || exit 4\n"
    "name=$(git rev-parse --symbolic-full-name \"$AM_REF\") &&"
    " tip=$(git rev-parse --verify -q \"$AM_REF\") ||"
    " { echo \"cannot read $AM_REF in the pod's git dir\" >&2; exit 3; }\n"
    "[ -n \"$name\" ] || name=$AM_REF\n"
    "printf 'airmesh-fetchback 1 %s %s\\n' \"$name\" \"$tip\" || exit 5\n"
    "git cat-file -e \"$tip^{commit}\" 2>/dev/null || exit 0\n"
    "[ \"$tip\" = \"$AM_KNOWN\" ] && exit 0\n"
    "{ echo \"$tip\"; [ -z \"$AM_KNOWN\" ] || echo \"^$AM_KNOWN\"; } |"
    " git pack-objects --revs --local --delta-base-offset --stdout -q\n";

/* Keep the last bytes the helper printed (printable ASCII only) for the error message. */
static void tail_add(char *tail, size_t cap, const char *buf, size_t n) {
    size_t len = strlen(tail);
    for (size_t i = 0; i < n; i++) {
        char c = buf[i];
        if (c == '\r')
            continue;
        c = (c == '\n' || c == '\t') ? ' ' : (c >= 0x20 && c < 0x7f) ? c : '?';
        if (c == ' ' && (len == 0 || tail[len - 1] == ' '))
            continue;
        if (len + 1 >= cap) {
            memmove(tail, tail + cap / 2, len - cap / 2);
            len -= cap / 2;
        }
        tail[len++] = c;
    }
    tail[len] = '\0';
}

int wt_fetch_back(const wt_fb_paths *f, const char *pod_id) {
    char fbdir[PATH_MAX], fifo[PATH_MAX], known[GIT_OID_HEXSZ + 1], tail[400] = "";
    char e_dir[PATH_MAX + 16], e_alt[PATH_MAX + 48], e_ref[320], e_known[64], e_out[64];
    wt_rx *rx = NULL;
    am_sbx *s = NULL;
    uint8_t *buf = NULL;
    int rc, rd = -1, wr = -1, code = -1, sig = 0, exited = 0, eof = 0;
    if ((rc = wt_path(fbdir, sizeof fbdir, "%s", f->helper)) < 0 ||
        (rc = wt_path(fifo, sizeof fifo, "%s/pack.fifo", fbdir)) < 0)
        return rc;
    if ((rc = wt_rx_begin(f->mirror, f->lock, f->staging, f->branch, &rx)) < 0)
        return rc;
    wt_rx_known(rx, known);

    /* An empty dir for /workspace with the FIFO; opened for reading by us before the helper
     * exists, so what we read is what came through this FIFO, not a file the pod named. */
    if ((rc = wt_rm_rf(fbdir)) < 0)
        goto out;
    if (mkdir(fbdir, 0755) != 0) {
        rc = wt_sys_fail("fetch-back: mkdir", fbdir);
        goto out;
    }
    if (mkfifo(fifo, 0600) != 0 || chmod(fifo, 0666) != 0) {
        rc = wt_sys_fail("fetch-back: mkfifo", fifo);
        goto out;
    }
    /* Our own write end too: a FIFO without writers reads as EOF, and the helper opens its end
     * some time after it starts. Closed once the helper is gone, so the EOF that follows is
     * "everything it wrote has been read". */
    rd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (rd < 0 || fstat(rd, &st) != 0 || !S_ISFIFO(st.st_mode) ||
        (wr = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW)) < 0) {
        rc = wt_sys_fail("fetch-back: open", fifo);
        goto out;
    }

    if ((rc = wt_path(e_dir, sizeof e_dir, "GIT_DIR=%s", f->git)) < 0 ||
        (rc = wt_path(e_alt, sizeof e_alt, "GIT_ALTERNATE_OBJECT_DIRECTORIES=%s/objects",
                      f->mirror)) < 0 ||
        (rc = wt_path(e_ref, sizeof e_ref, "AM_REF=refs/heads/%s", f->branch)) < 0 ||
        (rc = wt_path(e_known, sizeof e_known, "AM_KNOWN=%s", known)) < 0 ||
        (rc = wt_path(e_out, sizeof e_out, "AM_OUT=/workspace/pack.fifo")) < 0)
        goto out;
    const char *env[] = {"PATH=/usr/bin:/bin",
                         "HOME=/nonexistent",
                         "XDG_CONFIG_HOME=/nonexistent",
                         "LC_ALL=C",
                         "GIT_CONFIG_NOSYSTEM=1",
                         "GIT_CONFIG_GLOBAL=/dev/null",
                         "GIT_CONFIG_COUNT=1",
                         "GIT_CONFIG_KEY_0=safe.directory",
                         "GIT_CONFIG_VALUE_0=*",
                         "GIT_NO_REPLACE_OBJECTS=1",
                         "GIT_OPTIONAL_LOCKS=0",
                         "GIT_TERMINAL_PROMPT=0",
                         e_dir,
                         e_alt,
                         e_ref,
                         e_known,
                         e_out,
                         NULL};
    const char *argv[] = {"/bin/sh", "-c", k_helper, "airmesh-fetchback", NULL};
    const char *ro[] = {f->git, f->mirror, NULL};
    char host[80];
    snprintf(host, sizeof host, "fetchback-%.50s", pod_id); /* HOST_NAME_MAX is 64 */
    am_sbx_opts o = {.argv = argv,
                     .env = env,
                     .workspace = fbdir,
                     .ro_binds = ro,
                     .network_none = 1,
                     .memory_bytes = FB_HELPER_MEMORY, /* the agent's config steers git */
                     .cpu_millis = FB_HELPER_CPU_MILLIS,
                     .cols = 200,
                     .rows = 24,
                     .hostname = host,
                     /* as the pod's own user: it can read whatever that user wrote (0600
                      * objects of an agent with umask 077), pod root without capabilities
                      * could not */
                     .as_agent = wt_owner_is_agent()};
    if ((rc = am_sbx_spawn(&o, &s)) < 0) {
        char saved[400];
        snprintf(saved, sizeof saved, "%s", am_err_last());
        rc = rx_refuse(rx, AM_EIO, "could not start the helper sandbox: %s", saved);
        goto out;
    }

    uint64_t deadline = am_mono_ns() / 1000000 + FB_HELPER_TIMEOUT_MS;
    int pty = am_sbx_pty_fd(s);
    if (!(buf = malloc(FB_CHUNK))) {
        rc = am_err_set(AM_ENOMEM, "worktree: out of memory");
        goto out;
    }
    while (!eof && !wt_rx_refused(rx)) {
        struct pollfd pf[2] = {{rd, POLLIN, 0}, {pty, POLLIN, 0}};
        int pr = poll(pf, 2, exited ? 0 : 100);
        if (pr < 0 && errno != EINTR) {
            rc = wt_sys_fail("fetch-back: poll", NULL);
            goto out;
        }
        for (;;) { /* the FIFO, until it would block */
            ssize_t n = read(rd, buf, FB_CHUNK);
            if (n > 0) {
                if (wt_rx_feed(rx, buf, (size_t)n) < 0)
                    break;
                continue;
            }
            if (n == 0)
                eof = 1; /* only once our write end is closed: the helper is gone, all read */
            else if (errno != EAGAIN && errno != EINTR) {
                rc = wt_sys_fail("fetch-back: read", fifo);
                goto out;
            }
            break;
        }
        for (;;) { /* the helper's terminal (its stderr) */
            ssize_t n = read(pty, buf, FB_CHUNK);
            if (n <= 0)
                break;
            tail_add(tail, sizeof tail, (const char *)buf, (size_t)n);
        }
        if (!exited && am_sbx_wait(s, 0, &code, &sig) == 0) {
            exited = 1; /* every process of its pid namespace is gone: no writer but ours */
            close(wr);
            wr = -1;
        }
        if (!exited && am_mono_ns() / 1000000 > deadline) {
            rx_refuse(rx, AM_EIO, "the helper did not finish within %d s",
                      FB_HELPER_TIMEOUT_MS / 1000);
            break;
        }
    }
    if (!exited) { /* refused while it ran (too big, bad header) or timed out */
        am_sbx_stop(s, 0);
        am_sbx_wait(s, 1000, &code, &sig);
    }
    am_sbx_free(s);
    s = NULL;
    if (wt_rx_refused(rx)) {
        rc = rx_refuse(rx, -wt_rx_refused(rx), "%s", wt_rx_why(rx));
        goto out;
    }
    for (size_t n = strlen(tail); n > 0 && tail[n - 1] == ' ';)
        tail[--n] = '\0';
    if (code != 0) {
        rc = rx_refuse(rx, AM_EIO, "the helper in the pod's sandbox failed (exit %d)%s%s", code,
                       tail[0] ? ": " : "", tail);
        goto out;
    }
    char msg[128];
    snprintf(msg, sizeof msg, "airmesh: fetch-back of pod %.64s", pod_id);
    rc = wt_rx_finish(rx, msg);
out:
    am_sbx_free(s);
    free(buf);
    if (wr >= 0)
        close(wr);
    if (rd >= 0)
        close(rd);
    wt_rx_free(rx);
    (void)wt_rm_rf(fbdir);
    return rc;
}

int wt_receive_fd(const wt_fb_paths *f, int fd) {
    wt_rx *rx = NULL;
    int rc = wt_rx_begin(f->mirror, f->lock, f->staging, f->branch, &rx);
    if (rc < 0)
        return rc;
    uint8_t *buf = malloc(FB_CHUNK);
    if (!buf) {
        rc = am_err_set(AM_ENOMEM, "worktree: out of memory");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, buf, FB_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = wt_sys_fail("fetch-back: read", "stream");
            goto out;
        }
        if (n == 0)
            break;
        if (wt_rx_feed(rx, buf, (size_t)n) < 0)
            break;
    }
    rc = wt_rx_finish(rx, "airmesh: fetch-back (stream)");
out:
    free(buf);
    wt_rx_free(rx);
    return rc;
}
