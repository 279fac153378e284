/*
 * appliance/audit/internal.h — private to appliance/audit: format constants (see audit.h for the
 * format), little-endian helpers, the block hash and the segment scanner shared by the writer's
 * recovery, am_audit_verify and am_audit_read.
 */
#ifndef AM_APPLIANCE_AUDIT_INTERNAL_H
#define AM_APPLIANCE_AUDIT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "airmesh/v1/store.pb-c.h"
#include "appliance/audit/audit.h"

#define AUD_SEG_MAGIC "AMAUDIT1"
#define AUD_SEG_HDR 56u
#define AUD_FRAME_MAGIC "AMFR"
#define AUD_FRAME_HDR 32u
#define AUD_HASH 32u
#define AUD_TYPE_BLOCK 1u
#define AUD_TYPE_SEAL 2u
#define AUD_MAX_LEN (64u << 20)         /* comp_len and raw_len limit */
#define AUD_BLOCK_RAW_TARGET (4u << 20) /* writer closes a block before raw data passes this */
#define AUD_NAME_MAX 32u

/* Seal frame payload (see audit.h): fixed part, then a DER ECDSA signature of 8..72 bytes. */
#define AUD_SEAL_MAGIC "AMSEAL01"
#define AUD_SEAL_FIXED 160u
#define AUD_SEAL_SIGNED 152u /* the signature covers payload bytes 0..151 */
#define AUD_SIG_MIN 8u
#define AUD_SIG_MAX 72u
#define AUD_SEAL_MAX (AUD_SEAL_FIXED + AUD_SIG_MAX)

static inline void aud_put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void aud_put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t aud_get32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t aud_get64(const uint8_t *p) {
    return (uint64_t)aud_get32(p) | (uint64_t)aud_get32(p + 4) << 32;
}

typedef struct {
    uint8_t type;
    uint32_t comp_len, raw_len, count;
    uint64_t first_seq;
} aud_frame_hdr;

/* Encode a frame header including hdr_check (out: AUD_FRAME_HDR bytes). */
int aud_frame_hdr_encode(const aud_frame_hdr *h, uint8_t *out);

/* SHA-256 over up to three parts (NULL parts skipped); returns 0 or -AM_ECRYPTO. */
int aud_sha256(uint8_t out[AUD_HASH], const void *p1, size_t n1, const void *p2, size_t n2,
               const void *p3, size_t n3);

/* "seg-000001.aml" into buf (AUD_NAME_MAX). */
void aud_seg_name(uint64_t segno, char *buf);

/* Sorted segment numbers found in dir (files named seg-<digits>.aml). *nums malloc'd (may be NULL
 * when *n is 0); the caller frees it. */
int aud_list_segments(const char *dir, uint64_t **nums, size_t *n);

/* Scanner for one segment file: aud_scan_init, aud_scan_open, then aud_scan_next until it
 * returns 0 (clean end). Returns: 1 = a verified frame (fields below describe it), 0 = end,
 * AUD_TORN = a torn tail starting at `offset` (the caller decides if that is allowed),
 * -AM_ECORRUPT / -AM_EIO / -AM_ENOMEM with am_err_set and bad_* describing the place. */
#define AUD_TORN 2
#define AUD_STOPPED 3 /* the record callback returned non-zero (kept in fn_rc) */

typedef int (*aud_rec_fn)(void *ud, const Airmesh__V1__AuditRecord *r);

typedef struct {
    /* set by the caller before aud_scan_open */
    char name[AUD_NAME_MAX];
    int decode;    /* decompress and decode records (else hashes and headers only) */
    aud_rec_fn fn; /* per decoded record, may be NULL; non-zero return stops the scan */
    void *ud;
    uint64_t skip_before_seq; /* decode only blocks holding a record with seq >= this */
    /* header */
    uint64_t segno, first_seq;
    uint8_t start_hash[AUD_HASH];
    /* running state */
    int fd;
    int borrowed_fd;    /* fd belongs to the caller (aud_scan_open_range) */
    uint64_t base;      /* file offset of the segment's byte 0 (range mode) */
    uint64_t file_size; /* segment length */
    uint64_t offset;    /* where the next frame starts (= end of verified data) */
    uint64_t block;     /* index of the next frame */
    uint64_t next_seq;  /* seq the next record must carry */
    uint8_t hash[AUD_HASH];
    uint64_t records;
    int fn_rc; /* the non-zero callback return that stopped the scan */
    /* the seal, once aud_scan_next returned it (it is always the last frame) */
    int sealed;
    uint64_t blocks; /* block frames before the seal */
    uint8_t seal[AUD_SEAL_MAX];
    uint32_t seal_len;
    uint8_t pre_seal_hash[AUD_HASH]; /* chain value before the seal frame */
    /* last problem */
    int64_t bad_block;
    uint64_t bad_offset;
    char where[256];
    /* buffers, reused */
    uint8_t *cbuf, *rbuf;
    size_t ccap, rcap;
    void *dctx; /* ZSTD_DCtx */
} aud_scan;

/* Zero s, set fd = -1 and the caller fields. */
void aud_scan_init(aud_scan *s, uint64_t segno, int decode, aud_rec_fn fn, void *ud);
/* Open path (O_RDONLY, or O_RDWR when rw) and check the segment header. */
int aud_scan_open(aud_scan *s, const char *path, int rw);
/* Scan the segment stored at [base, base+len) of an open fd the caller keeps (export files). The
 * name is set from the header's segment number. */
int aud_scan_open_range(aud_scan *s, int fd, uint64_t base, uint64_t len);
int aud_scan_next(aud_scan *s);
void aud_scan_close(aud_scan *s);

/* Encode a segment header (AUD_SEG_HDR bytes). */
void aud_seg_hdr_encode(uint64_t segno, uint64_t first_seq, const uint8_t start_hash[AUD_HASH],
                        uint8_t *out);

/* ---- seals (seal.c): signing with the audit key, OpenSSL libcrypto ---- */

typedef struct aud_signer aud_signer;

/* Load DIR/audit.key + DIR/audit.pem. *out = NULL (and 0) when audit.key does not exist. Checks
 * that the key is P-256 and matches the certificate. */
int aud_signer_load(const char *dir, aud_signer **out);
void aud_signer_free(aud_signer *s);
const uint8_t *aud_signer_key_id(const aud_signer *s); /* AUD_HASH bytes */
const char *aud_signer_cert_pem(const aud_signer *s);  /* audit.pem: leaf ‖ issuing CA */
/* ECDSA P-256 / SHA-256 over msg; sig gets DER (AUD_SIG_MAX bytes room). */
int aud_signer_sign(const aud_signer *s, const void *msg, size_t len, uint8_t *sig,
                    uint32_t *sig_len);

/* Encode the seal payload for the current state (signature appended). out: AUD_SEAL_MAX. */
int aud_seal_build(const aud_signer *k, uint64_t segno, uint64_t first_seq,
                   const uint8_t start_hash[AUD_HASH], uint64_t blocks, uint64_t records,
                   const uint8_t last_hash[AUD_HASH], uint8_t *out, uint32_t *out_len);

/* Accessors into an open am_audit (writer.c), for keygen.c and export.c. Thread-safe. */
const char *aud_audit_dir(const am_audit *a);
int aud_audit_set_signer(am_audit *a, aud_signer *s); /* takes s (freed if one is set) */
int aud_audit_has_signer(am_audit *a);
/* Sign msg (when not NULL) with the audit key and/or copy its certificate PEM (when cert_pem is
 * not NULL; malloc'd). -AM_ESTATE when there is no key. */
int aud_audit_sign(am_audit *a, const void *msg, size_t len, uint8_t *sig, uint32_t *sig_len,
                   char **cert_pem);

/* Public side, for verifiers. */
typedef struct aud_pub aud_pub;
/* Check that chain_pem (leaf first, then intermediates) chains to root_pem (signatures and CA
 * flags; validity dates are not checked: an export is verified long after it was made). Fills
 * the root's SHA-256 fingerprint (hex) and the leaf's subject, returns the leaf's public key. */
int aud_pub_from_chain(const char *chain_pem, size_t chain_len, const char *root_pem,
                       size_t root_len, aud_pub **out, char root_fp[65], char *subject,
                       size_t subject_cap);
void aud_pub_free(aud_pub *p);
const uint8_t *aud_pub_key_id(const aud_pub *p);
/* 0 if sig verifies over msg, -AM_EAUTH if not. */
int aud_pub_verify(const aud_pub *p, const void *msg, size_t len, const uint8_t *sig,
                   uint32_t sig_len);

#endif
