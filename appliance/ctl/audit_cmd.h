/*
 * appliance/ctl/audit_cmd.h — `airmeshctl audit ...` (audit_cmd.c), called from ctl.c's main().
 */
#ifndef AM_APPLIANCE_CTL_AUDIT_CMD_H
#define AM_APPLIANCE_CTL_AUDIT_CMD_H

/* argv[0] is "audit". url: the appliance (no trailing slash), ca: CA file or NULL, token: bearer
 * token ("" when not logged in); only `export` uses them. Returns the process exit status:
 * 0 ok, 1 failed (message on stderr; for verify, the first problem on stdout), 2 usage. */
int am_ctl_audit(const char *url, const char *ca, const char *token, int argc, char **argv);

/* Usage lines for ctl.c's --help. */
#define AM_CTL_AUDIT_USAGE                                                                         \
    "  audit export [--since T] [--until T] -o FILE\n"                                             \
    "                                download the audit log for [since, until) (Unix ms or\n"      \
    "                                RFC 3339) as one self-contained, signed file (owners)\n"      \
    "  audit verify FILE             offline: check every hash and seal; prints OK with counts\n"  \
    "                                and the root CA fingerprint, or the first tampered or\n"      \
    "                                missing place (exit 1)\n"                                     \
    "  audit show [--all] FILE       offline: verify, then print the records in the export's\n"    \
    "                                range (--all: every record in the file) as JSON lines\n"
#endif
