/*
 * appliance/audit — the append-only, tamper-evident audit log.
 *
 * What it owns: the segment files DIR/seg-NNNNNN.aml (and DIR/LOCK) of one audit directory, and
 * the appliance's audit key DIR/audit.key (0600) with its certificate chain DIR/audit.pem. One
 * am_audit per directory per host; a second opener (any process) is refused via flock(DIR/LOCK).
 * Export files (FORMAT below) are written by am_audit_export and read by am_audit_export_verify /
 * am_audit_export_read, which need nothing but the file (airmeshctl audit verify/show).
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
 *   off  4  u8     type        1 = block (records), 2 = seal (see below). Other values: corrupt.
 *   off  5  u8[3]  reserved    zero
   off  8  u32    comp_len    payload length in bytes, 1 .. 64 MiB
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
 * Seal frame (type 2): the last frame of a segment, written when the segment rolls, when
 * am_audit_seal asks (every export), and at clean close, once the audit key exists. Header as
 * above with comp_len = raw_len = payload length (168..232), count = 0, first_seq = the seq the
 * next segment starts at. The payload is stored raw (not zstd):
 *   off   0  u8[8]  magic      "AMSEAL01"
 *   off   8  u64    segment    this segment's number
 *   off  16  u64    first_seq  this segment's first_seq (header)
 *   off  24  u8[32] start_hash this segment's start_hash (header)
 *   off  56  u64    blocks     number of block frames in the segment (all before the seal)
 *   off  64  u64    records    number of records in them
 *   off  72  u64    last_seq   first_seq + records - 1
 *   off  80  u8[32] last_hash  hash of the last block (the chain value the seal follows)
 *   off 112  u8[32] key_id     SHA-256 of the audit key's DER SubjectPublicKeyInfo
 *   off 144  u64    sealed_ms  wall clock when sealed
 *   off 152  u32    sig_len    8..72
 *   off 156  u32    reserved   zero
 *   off 160  u8[sig_len]       ECDSA P-256 signature (DER) over SHA-256(payload bytes 0..151)
 * It is chained like a block (its trailing hash = SHA-256(prev ‖ header ‖ payload)), so the next
 * segment's start_hash is the seal's hash. A scanner checks every field against the segment it
 * just read (so blocks dropped, added or reordered before the seal are caught there); the
 * signature is checked by export verification against the export's audit certificate.
 * Segments written before the audit key existed have no seal; the directory verifier accepts
 * them, an export refuses them.
 * Chain rules a verifier checks: segment numbers 1..n consecutive and matching their names;
 * segment 1 starts from zero hash and first_seq 1; each segment's start_hash and first_seq equal
 * the previous segment's final hash and next seq; every block's hash; block first_seq continuing
 * the previous block (seq is strictly +1 per record across the whole log); each record's seq field;
 * exact record count and payload length. Record time_ms is NOT required to be ordered.
 * Crash rule: only the end of the LAST segment may hold a torn frame (fewer than 32 bytes that
 * start like "AMFR", or a frame with a valid header whose payload/hash is cut short). The writer
 * truncates it away on open (with a warning); verify reports it in tail_bytes_ignored.
 * Blocks are numbered from 0 within each segment; offsets are byte offsets within the file.
 *
 * =============================== EXPORT FILE FORMAT (v1) ====================================
 * One self-contained file, all integers little-endian:
 *   off  0  u8[8]  magic          "AMAUDEXP"
 *   off  8  u32    version        1
 *   off 12  u32    nseg           number of segment blobs, 0 .. 2^20
 *   off 16  u64    created_ms     when the export was made
 *   off 24  u64    since_ms       requested range [since, until) (until 0 = open end); the
 *   off 32  u64    until_ms       segments hold whole blocks and may reach outside it
 *   off 40  u32    cert_len       1 .. 64 KiB: the audit certificate chain PEM (leaf, issuing CA)
 *   off 44  u32    root_len       1 .. 64 KiB: the appliance's root CA certificate PEM
 *   off 48  u64    first_segment  number of the first segment blob (0 when nseg is 0)
 *   off 56  u64    reserved       zero
 *   off 64         cert PEM (cert_len bytes), then root PEM (root_len bytes)
 *   then nseg times: u64 len ‖ len bytes: an unmodified, sealed segment file (format above);
 *                    consecutive segment numbers, each continuing the previous one's chain
 *   trailer: u8[8] "AMEXPEND" ‖ u8[32] SHA-256(every byte before the trailer) ‖ u32 sig_len ‖
 *            u32 zero ‖ sig_len bytes: ECDSA P-256 (DER) by the audit key over the first 40
 *            trailer bytes. The file ends exactly there.
 * Which segments: the contiguous run of sealed segments from the first to the last holding a
 * record with since <= time_ms < until (the live segment is sealed first, so everything appended
 * before the export is in it). Verification: the audit cert chains to the included root (dates
 * not checked) and the root's SHA-256 fingerprint is shown for the auditor to compare with the
 * appliance's; every frame hash and record; every segment sealed, by the key of the included
 * certificate (key_id and signature: a segment from another appliance fails here), continuity
 * between segments; the trailer hash and signature.
 * =============================================================================================
 */
#ifndef AM_APPLIANCE_AUDIT_H
#define AM_APPLIANCE_AUDIT_H

#include <stdint.h>

#include "airmesh/v1/store.pb-c.h"
#include "pki/pki.h"

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

/* Live subscribers (airmeshd does not use this: appliance/ops publishes each record to the hub
 * after its operation commits, so an event is never shown for a change that did not happen).
 * After each successful
 * append, fn(arg, record) is called with the record as stored (seq and time set), on the
 * appender's thread and under the log's mutex, so it must be quick and must not append; after
 * am_audit_set_publish(a, NULL, NULL) returns it is never called again. */
typedef void (*am_audit_publish_fn)(void *arg, const Airmesh__V1__AuditRecord *r);
void am_audit_set_publish(am_audit *a, am_audit_publish_fn fn, void *arg);

/* Convenience: builds the record from fields (NULL = ""; details: JSON object text) and appends. */
int am_audit_event(am_audit *a, const char *actor, const char *org, const char *action,
                   const char *target, const char *result, const char *source, const char *details);

/* The record as a JSON object (jansson; caller json_decrefs): {seq, time_ms, actor, org, action,
 * target, result, source, details}. The one JSON shape of an audit event (REST, events socket,
 * airmeshctl audit show). NULL when out of memory. */
struct json_t;
struct json_t *am_audit_record_json(const Airmesh__V1__AuditRecord *r);

/* The directory the log was opened on (valid until am_audit_close). */
const char *am_audit_dir(const am_audit *a);

/* Blocks until everything appended before the call is compressed, written and fsync'd. */
int am_audit_flush(am_audit *a);

/* Flush, stop the writer thread, close files, free. NULL is a no-op. A final write error is
 * logged (there is nobody left to return it to). */
void am_audit_close(am_audit *a);

/* ---- Offline reading and verification: only the files are needed. ---- */

typedef struct {
    uint64_t records, blocks, segments;
    uint64_t sealed;             /* segments that end with a seal */
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

/* Read records with seq >= from_seq in seq order (records of the first block may start a little
 * before from_seq: the callback filters), verifying each block's hash from the header of the
 * segment holding from_seq (not the whole chain: that is am_audit_verify's job). A callback's
 * non-zero return stops the read and is returned. Safe while the log is being written: the live
 * segment's torn tail is ignored. For the REST API's paging. */
int am_audit_query(const char *dir, uint64_t from_seq, am_audit_record_fn fn, void *ud);

/* ---- Seals and the audit key ---- */

/* Make sure the audit key exists and the writer seals with it: loads DIR/audit.key + audit.pem,
 * or (first time) creates them with a certificate issued by ca (ca may be NULL when the files
 * exist). am_audit_open loads an existing key by itself; airmeshd calls this once the CA is open.
 * Any thread. */
int am_audit_signer_ensure(am_audit *a, am_ca *ca);

/* Seal the live segment now (if it holds blocks) and continue in a new one: on return every
 * record appended before the call is in a sealed, durable segment. -AM_ESTATE without a key. */
int am_audit_seal(am_audit *a);

typedef struct {
    uint64_t segments, records, first_seq, last_seq, bytes;
} am_audit_export_info;

/* Write an export file (format above) for [since_ms, until_ms) (until 0 = no end) to fd, which
 * the caller owns (written sequentially from its current position). root_pem: the appliance's
 * root CA certificate. Seals the live segment first. -AM_ESTATE without an audit key, or when a
 * segment in range predates the key (unsealed). Blocks while it reads the segments. */
int am_audit_export(am_audit *a, const char *root_pem, uint64_t since_ms, uint64_t until_ms, int fd,
                    am_audit_export_info *info);

typedef struct {
    am_audit_report r; /* counts; on failure: first_error, where, bad_segment/block/offset */
    char root_fp[65];  /* SHA-256 of the included root CA certificate (hex) */
    char subject[256]; /* the audit certificate's subject */
    uint64_t created_ms, since_ms, until_ms;
    uint64_t first_segment, last_segment, first_seq;
} am_audit_export_report;

/* Verify an export file completely, offline. 0 if intact; -AM_ECORRUPT (or -AM_EIO/-AM_ENOTFOUND
 * when it cannot be read) with rep describing the first problem. rep may be NULL. */
int am_audit_export_verify(const char *path, am_audit_export_report *rep);

/* Verify the whole file, then (only if intact) deliver its records in seq order: those inside
 * the export's [since, until) range, or every record when all is non-zero. rep may be NULL. */
int am_audit_export_read(const char *path, int all, am_audit_record_fn fn, void *ud,
                         am_audit_export_report *rep);

#endif
