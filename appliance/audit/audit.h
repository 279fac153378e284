/*
 * appliance/audit — the append-only, tamper-evident audit log.
 *
 * What it owns: the segment files DIR/seg-NNNNNN.aml (and DIR/LOCK) of one audit directory. One
 * am_audit per directory per host; a second opener (any process) is refused via flock(DIR/LOCK).
 *
 * Threads: am_audit_append / am_audit_event / am_audit_flush may be called from any thread at the
 * same time. am_audit_open and am_audit_close from one thread while no other thread uses the log.
 * One private writer thread compresses, writes and fsyncs (group commit): appenders only copy the
 * record into a queue and return; am_audit_flush waits until everything appended before the call
 * is durable. am_audit_verify / am_audit_read need only the files (no running appliance) and are
 * thread-safe (no shared state). Ownership: am_audit_append copies the record; the caller keeps
 * its own. Records passed to an am_audit_record_fn are owned by the reader and valid only during
 * the call.
 *
 * ===================================== FILE FORMAT (v1) =====================================
 * All integers are little-endian. Hashes are SHA-256 (32 bytes). "‖" is concatenation.
 *
 * Directory: segment files named "seg-%06llu.aml" (number 1, 2, 3, ... consecutive, no gaps; more
 * than 6 digits once past 999999), plus "LOCK" (empty, for flock) and transient "*.tmp" files
 * that readers ignore and the writer deletes on open.
 *
 * Segment header (56 bytes, at offset 0; a segment is created as a .tmp file holding exactly the
 * header, fsync'd and renamed, so a header is never torn):
 *   off  0  u8[8]  magic       "AMAUDIT1"
 *   off  8  u64    segment     segment number, equal to the number in the file name
 *   off 16  u64    first_seq   seq of the first record this segment will hold (1 in segment 1)
 *   off 24  u8[32] start_hash  the chain value this segment starts from: the hash of the last
 *                              block of the previous segment (for an empty previous segment, its
 *                              own start_hash); 32 zero bytes in segment 1.
 * Then frames, back to back, to the end of the file. Frame (32-byte header ‖ payload ‖ hash):
 *   off  0  u8[4]  magic       "AMFR"
 *   off  4  u8     type        1 = block (records). 2 = seal (RESERVED: a future signature by the
 *                              appliance's audit key over the chain value; v1 writers never write
 *                              it and v1 readers report it as unsupported). Other values: corrupt.
 *   off  5  u8[3]  reserved    zero
 *   off  8  u32    comp_len    payload length in bytes, 1 .. 64 MiB
 *   off 12  u32    raw_len     decompressed payload length, 1 .. 64 MiB
 *   off 16  u32    count       number of records in the block, 1 .. raw_len
 *   off 20  u64    first_seq   seq of the first record; the records carry first_seq, +1, +2, ...
 *   off 28  u32    hdr_check   first 4 bytes (as stored) of SHA-256(frame bytes 0..27). Lets the
 *                              reader tell a torn tail (intact header, short payload) from a
 *                              damaged header.
 *   off 32  u8[comp_len]       payload: one zstd frame (level 3) that decompresses to exactly
 *                              raw_len bytes: `count` records, each a protobuf varint length
 *                              followed by that many bytes of airmesh.v1.AuditRecord.
 *   then    u8[32] hash        SHA-256(prev ‖ frame bytes 0..31 ‖ payload), where prev is the hash
 *                              of the previous block in this segment, or the segment's start_hash
 *                              for its first block.
 * Chain rules a verifier checks: segment numbers 1..n consecutive and matching their names;
 * segment 1 starts from zero hash and first_seq 1; each segment's start_hash and first_seq equal
 * the previous segment's final hash and next seq; every block's hash; block first_seq continuing
 * the previous block (seq is strictly +1 per record across the whole log); each record's seq field;
 * exact record count and payload length. Record time_ms is NOT required to be ordered.
 * Crash rule: only the end of the LAST segment may hold a torn frame (fewer than 32 bytes that
 * start like "AMFR", or a frame with a valid header whose payload/hash is cut short). The writer
 * truncates it away on open (with a warning); verify reports it in tail_bytes_ignored.
 * Blocks are numbered from 0 within each segment; offsets are byte offsets within the file.
 * =============================================================================================
 */
#ifndef AM_APPLIANCE_AUDIT_H
#define AM_APPLIANCE_AUDIT_H

#include <stdint.h>

#include "airmesh/v1/store.pb-c.h"

typedef struct am_audit am_audit;

typedef struct {
    uint32_t flush_ms;          /* group-commit window, default 50 */
    uint32_t max_block_records; /* records per block, default 512 */
    uint64_t segment_bytes;     /* roll to a new segment past this size, default 64 MiB */
} am_audit_opts;

#define AM_AUDIT_DEFAULT_FLUSH_MS 50u
#define AM_AUDIT_DEFAULT_BLOCK_RECORDS 512u
#define AM_AUDIT_DEFAULT_SEGMENT_BYTES (64ull << 20)
#define AM_AUDIT_MAX_RECORD_BYTES (1u << 20) /* one packed record; larger → -AM_EINVAL */

/* Open (creating DIR 0700 if needed) and start the writer thread. On restart, verifies the last
 * segment from its header to the end, truncates a torn final frame (warning log) and continues the
 * chain and seq. A complete frame that fails its check → -AM_ECORRUPT, message naming segment,
 * block and offset; nothing is modified. NULL opts or 0 fields = defaults. */
int am_audit_open(const char *dir, const am_audit_opts *o, am_audit **out);

/* Thread-safe. Copies the record; assigns seq (monotonic across restarts; any seq in r is ignored)
 * and time_ms if 0. Returns once queued (not yet durable); *seq_out (may be NULL) gets the seq.
 * -AM_EINVAL for a record that is not an AuditRecord or packs larger than
 * AM_AUDIT_MAX_RECORD_BYTES; -AM_EIO (sticky) once the writer has failed. May block briefly when
 * the writer is far behind (bounded queue). */
int am_audit_append(am_audit *a, const Airmesh__V1__AuditRecord *r, uint64_t *seq_out);

/* Convenience: builds the record from fields (NULL = ""; details: JSON object text) and appends. */
int am_audit_event(am_audit *a, const char *actor, const char *org, const char *action,
                   const char *target, const char *result, const char *source, const char *details);

/* Blocks until everything appended before the call is compressed, written and fsync'd. */
int am_audit_flush(am_audit *a);

/* Flush, stop the writer thread, close files, free. NULL is a no-op. A final write error is
 * logged (there is nobody left to return it to). */
void am_audit_close(am_audit *a);

/* ---- Offline reading and verification: only the files are needed. ---- */

typedef struct {
    uint64_t records, blocks, segments;
    uint64_t last_seq;           /* seq of the last record read (0 if none) */
    uint64_t tail_bytes_ignored; /* torn final frame in the last segment (crash leftover) */
    /* On failure: where the first problem is, as numbers and as text. */
    uint64_t bad_segment; /* segment number, 0 = not segment-specific */
    int64_t bad_block;    /* block index within the segment, -1 = segment header/naming */
    uint64_t bad_offset;  /* byte offset of that frame (or header) in the file */
    char first_error[512];
    char where[256]; /* "seg-000002.aml block 17 (offset 81234)" */
} am_audit_report;

/* Verify the whole chain in DIR (every hash, every record decoded and its seq checked). DIR may
 * also be one segment file, verified on its own from its header. 0 if intact (an empty directory
 * is intact); -AM_ECORRUPT with rep filled otherwise (also via am_err_last()); -AM_EIO if the files
 * cannot be read. rep may be NULL. */
int am_audit_verify(const char *dir, am_audit_report *rep);

/* Called per record. Return 0 to continue; anything else stops the read and is returned by
 * am_audit_read. */
typedef int (*am_audit_record_fn)(void *ud, const Airmesh__V1__AuditRecord *r);

/* Read records with since_ms <= time_ms < until_ms (until_ms 0 = no upper bound) in seq order,
 * verifying as it reads: a block's records are delivered only after its hash and the chain up to
 * it are checked, so a corrupt block stops the read with -AM_ECORRUPT after the intact records
 * before it were delivered. Never modifies the files. */
int am_audit_read(const char *dir, uint64_t since_ms, uint64_t until_ms, am_audit_record_fn fn,
                  void *ud);

#endif
