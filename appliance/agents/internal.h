/*
 * appliance/agents internals shared by catalog.c and agents_file.c (not a public header).
 */
#ifndef AM_APPLIANCE_AGENTS_INTERNAL_H
#define AM_APPLIANCE_AGENTS_INTERNAL_H

#include "appliance/agents/catalog.h"

/* The live preset called name (the table starts as the built-ins), or NULL. */
am_agent_preset *am_agents_mutable(const char *name);
/* Keep p until am_agents_reset (0, or -AM_ENOMEM and p is not kept). */
int am_agents_own(void *p);
/* A HOME file path by the runner's rules (runner/pod/homefiles.c checks again): 0 or -AM_EINVAL. */
int am_agents_home_path_check(const char *path);

#endif
