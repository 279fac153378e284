/*
 * runner/pod/homefiles.h — CreatePod.home_files written into a pod's HOME before its command
 * starts (agent presets' config: e.g. ~/.claude/settings.json, ~/.codex/config.toml).
 *
 * The appliance builds them from its catalog, but the runner trusts no path it is sent: every
 * path must be relative, without "." or ".." parts, empty parts, control characters or more than
 * 8 levels, at most 255 bytes; at most AM_POD_HOME_FILES_MAX files and AM_POD_HOME_BYTES_MAX
 * bytes in all. Writing never follows a link: each directory is opened with
 * openat(O_DIRECTORY|O_NOFOLLOW) under the home dir's fd (mkdirat when missing), each file with
 * O_NOFOLLOW|O_NONBLOCK and must then be a regular file. Files are 0600, new dirs 0700, both
 * owned by the home dir's owner (the pod's agent user).
 * Errors: 0 or -AM_EINVAL (a path or size refused: nothing written) / -AM_EIO (the step and
 * errno in am_err_last(); files before the failing one may be written). Threads: any.
 */
#ifndef AM_RUNNER_POD_HOMEFILES_H
#define AM_RUNNER_POD_HOMEFILES_H

#include <stddef.h>

#include "airmesh/v1/runner.pb-c.h"

#define AM_POD_HOME_FILES_MAX 64
#define AM_POD_HOME_BYTES_MAX (1u << 20)

typedef Airmesh__V1__CreatePod__HomeFilesEntry am_pod_home_file;

/* The whole set acceptable? (nothing touched) */
int am_pod_home_files_check(am_pod_home_file *const *files, size_t n);
/* Check, then write every file under home (a host directory). */
int am_pod_home_files_write(const char *home, am_pod_home_file *const *files, size_t n);

#endif
