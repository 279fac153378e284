/*
 * appliance/audit/json.c — an audit record as JSON: the one shape shared by GET /api/v1/audit,
 * the /api/v1/events WebSocket and `airmeshctl audit show` (seq, time_ms, actor, org, action,
 * target, result, source, details). details is the record's JSON object text, parsed back into
 * an object; text that is not JSON is kept as a string, empty details become {}.
 * Threads: any. The caller owns the returned document (json_decref).
 */
#include <jansson.h>

#include "appliance/audit/audit.h"

json_t *am_audit_record_json(const Airmesh__V1__AuditRecord *r) {
    json_t *details = NULL;
    if (r->details && *r->details)
        details = json_loads(r->details, JSON_REJECT_DUPLICATES, NULL);
    if (!details)
        details = r->details && *r->details ? json_string(r->details) : json_object();
    return json_pack("{s:I,s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:o}", "seq", (json_int_t)r->seq, "time_ms",
                     (json_int_t)r->time_ms, "actor", r->actor ? r->actor : "", "org",
                     r->org_id ? r->org_id : "", "action", r->action ? r->action : "", "target",
                     r->target ? r->target : "", "result", r->result ? r->result : "", "source",
                     r->source ? r->source : "", "details", details);
}
