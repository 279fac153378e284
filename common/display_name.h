/*
 * common/display_name — the one check of a display name (users, teams, orgs, pods; issue 14).
 *
 * A display name is what people read instead of an id: any unicode text ("Équipe 🚀", "Zoë"),
 * while ids stay ASCII (a-z 0-9 . _ -). The rules, the same for the appliance (which enforces
 * them) and airmeshctl (which checks before sending, for a clearer message):
 *   - valid UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF);
 *   - leading and trailing white space (ASCII and Unicode spaces) is trimmed;
 *   - no control characters (U+0000-U+001F, U+007F-U+009F, U+2028, U+2029) and no
 *     bidirectional embedding, override or isolate characters (U+202A-U+202E, U+2066-U+2069),
 *     which could make a name read differently from what it is;
 *   - 1 to AM_DISPLAY_NAME_MAX characters (code points) after trimming.
 * The text is stored as given (no normalisation beyond the trim).
 * Threads: any; no allocation.
 */
#ifndef AM_COMMON_DISPLAY_NAME_H
#define AM_COMMON_DISPLAY_NAME_H

#include <stddef.h>

#define AM_DISPLAY_NAME_MAX 64
/* Bytes a checked name may need, with its NUL (64 code points of at most 4 bytes). */
#define AM_DISPLAY_NAME_BUF (AM_DISPLAY_NAME_MAX * 4 + 1)

/* Check the len bytes at in (NUL not required; an embedded NUL is a control character) and
 * write the trimmed name to out (cap >= AM_DISPLAY_NAME_BUF). 0, or -AM_EINVAL with a message
 * naming the rule and where it was broken ("display_name: U+202E (a bidirectional override) at
 * character 3 is not allowed"). */
int am_display_name_check(const char *in, size_t len, char *out, size_t cap);

/* 0 when the len bytes at s are valid UTF-8, else -AM_EINVAL and *bad_at = the offset of the
 * first byte of the first invalid sequence. */
int am_utf8_check(const char *s, size_t len, size_t *bad_at);

/* Number of code points in a valid UTF-8 string (for callers that trust their input). */
size_t am_utf8_len(const char *s);

#endif
