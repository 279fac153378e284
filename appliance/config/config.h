/*
 * appliance/config — airmeshd's settings: built-in defaults, then the YAML config file
 * (--config), then command-line flags, each overriding the one before.
 *
 * The file is a flat YAML mapping (parsed with Debian's libyaml, never by hand):
 *   data: /var/lib/airmesh          # data directory (store, pki, audit)
 *   listen: 0.0.0.0:8443            # HTTPS console + API
 *   grpc_listen: 0.0.0.0:9443       # runner protocol (mTLS)
 *   ui: /usr/share/airmesh/ui       # console static files
 *   log_level: info                 # debug | info | warn | error
 *   hostnames: [airmesh.lan]        # extra DNS names for the server certificate
 *   ips: [10.0.0.5]                 # extra IP SANs
 *   session_ttl: 12h                # login lifetime (s, m, h, d suffixes)
 *   session_idle: 1h                # idle timeout
 *   pod_memory: 2G                  # default limits of a pod that asks for none:
 *   pod_cpu: 2                      #   memory, cores, processes, /tmp and /dev/shm sizes,
 *   pod_pids: 512                   #   and the quota on what it writes to /workspace
 *   pod_tmp: 256M
 *   pod_shm: 64M
 *   pod_workspace: 1G
 *   control_idle: 15m               # a terminal's input-control holder idle this long loses
 *                                   # it to the next viewer who takes it
 *   agents_file: /etc/airmesh/agents.yaml  # changes to the agent catalog's presets
 *                                   # (appliance/agents/agents_file.c); none by default
 * Unknown keys, wrong types and bad values are errors naming the key and line.
 * Ownership: am_config owns every string it holds; am_config_free releases them.
 */
#ifndef AM_APPLIANCE_CONFIG_H
#define AM_APPLIANCE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define AM_CONFIG_MAX_NAMES 16

typedef struct {
    char *data;
    char *listen;
    char *grpc_listen;
    char *ui;
    char *log_level;
    char *hostnames[AM_CONFIG_MAX_NAMES];
    size_t n_hostnames;
    char *ips[AM_CONFIG_MAX_NAMES];
    size_t n_ips;
    uint64_t session_ttl_ms;
    uint64_t session_idle_ms;
    uint64_t pod_memory, pod_tmp, pod_shm, pod_workspace; /* bytes */
    uint32_t pod_cpu_millis, pod_pids;
    uint64_t control_idle_ms;
    char *agents_file; /* NULL: the built-in presets only */
} am_config;

/* Fill with the checkout defaults (./var/airmesh, 127.0.0.1:8443, 127.0.0.1:9443, ui/static). */
int am_config_defaults(am_config *c);
/* Overlay the YAML file's settings. */
int am_config_load_file(am_config *c, const char *path);
/* Replace one string setting (takes a copy). */
int am_config_set(char **slot, const char *value);
void am_config_free(am_config *c);

#endif
