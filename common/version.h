/* common/version — the one airmesh version string, shared by every binary. */
#ifndef AM_COMMON_VERSION_H
#define AM_COMMON_VERSION_H
#define AM_VERSION "0.1.0"
#endif
