/*
 * appliance/config/config.c — defaults and the YAML config file (libyaml event API).
 * The file is read once at start, on the main thread.
 */
#include "appliance/config/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/err.h"
#include "common/util.h"

int am_config_set(char **slot, const char *value) {
    char *copy = strdup(value);
    if (!copy)
        return am_err_set(AM_ENOMEM, "config: out of memory");
    free(*slot);
    *slot = copy;
    return 0;
}

int am_config_defaults(am_config *c) {
    memset(c, 0, sizeof *c);
    c->session_ttl_ms = 12ull * 3600 * 1000;
    c->session_idle_ms = 3600ull * 1000;
    c->pod_memory = 2ull << 30; /* the runner's own defaults (runner/sandbox/sandbox.h) */
    c->pod_cpu_millis = 2000;
    c->pod_pids = 512;
    c->pod_tmp = 256ull << 20;
    c->pod_shm = 64ull << 20;
    c->pod_workspace = 1ull << 30;
    c->control_idle_ms = 15ull * 60 * 1000;
    if (am_config_set(&c->data, "./var/airmesh") || am_config_set(&c->listen, "127.0.0.1:8443") ||
        am_config_set(&c->grpc_listen, "127.0.0.1:9443") || am_config_set(&c->ui, "ui/static") ||
        am_config_set(&c->log_level, "info"))
        return -AM_ENOMEM;
    return 0;
}

void am_config_free(am_config *c) {
    free(c->data);
    free(c->listen);
    free(c->grpc_listen);
    free(c->ui);
    free(c->log_level);
    free(c->agents_file);
    for (size_t i = 0; i < c->n_hostnames; i++)
        free(c->hostnames[i]);
    for (size_t i = 0; i < c->n_ips; i++)
        free(c->ips[i]);
    memset(c, 0, sizeof *c);
}

/* Apply one key: scalar value (val) or, for list keys, a sequence (items). */
static int apply(am_config *c, const char *path, int line, const char *key, const char *val,
                 char **items, size_t n_items, int is_seq) {
    char **slot = NULL;
    if (strcmp(key, "data") == 0)
        slot = &c->data;
    else if (strcmp(key, "listen") == 0)
        slot = &c->listen;
    else if (strcmp(key, "grpc_listen") == 0)
        slot = &c->grpc_listen;
    else if (strcmp(key, "ui") == 0)
        slot = &c->ui;
    else if (strcmp(key, "log_level") == 0)
        slot = &c->log_level;
    else if (strcmp(key, "agents_file") == 0)
        slot = &c->agents_file;
    if (slot) {
        if (is_seq || !*val)
            return am_err_set(AM_EINVAL, "config %s line %d: %s must be a non-empty string", path,
                              line, key);
        return am_config_set(slot, val);
    }
    if (strcmp(key, "session_ttl") == 0 || strcmp(key, "session_idle") == 0 ||
        strcmp(key, "control_idle") == 0) {
        if (is_seq)
            return am_err_set(AM_EINVAL, "config %s line %d: %s must be a duration", path, line,
                              key);
        int rc = am_duration_parse(val, key[0] == 'c'   ? &c->control_idle_ms
                                        : key[8] == 't' ? &c->session_ttl_ms
                                                        : &c->session_idle_ms);
        if (rc)
            return am_err_set(AM_EINVAL, "config %s line %d: %s: %s", path, line, key,
                              am_err_last());
        return 0;
    }
    if (strncmp(key, "pod_", 4) == 0) {
        uint64_t *size = strcmp(key, "pod_memory") == 0      ? &c->pod_memory
                         : strcmp(key, "pod_tmp") == 0       ? &c->pod_tmp
                         : strcmp(key, "pod_shm") == 0       ? &c->pod_shm
                         : strcmp(key, "pod_workspace") == 0 ? &c->pod_workspace
                                                             : NULL;
        char *end = NULL;
        double num = is_seq ? -1 : strtod(val, &end);
        if (size) {
            uint64_t mul = 1;
            if (end && (*end == 'K' || *end == 'M' || *end == 'G'))
                mul = 1ull << (*end == 'K' ? 10 : *end == 'M' ? 20 : 30), end++;
            if (end && *end == 'i')
                end++;
            if (!end || end == val || *end || num < 1 || num * (double)mul > (double)(1ull << 40) ||
                num != (double)(uint64_t)num)
                return am_err_set(AM_EINVAL,
                                  "config %s line %d: %s: a size like 512M or 2G (up to 1T)", path,
                                  line, key);
            uint64_t min = size == &c->pod_memory      ? 64ull << 20
                           : size == &c->pod_workspace ? 16ull << 20
                                                       : 1ull << 20;
            if ((uint64_t)num * mul < min)
                return am_err_set(AM_EINVAL, "config %s line %d: %s: at least %lluM", path, line,
                                  key, (unsigned long long)(min >> 20));
            *size = (uint64_t)num * mul;
            return 0;
        }
        if (strcmp(key, "pod_cpu") == 0) {
            if (!end || end == val || *end || num <= 0 || num > 256)
                return am_err_set(AM_EINVAL, "config %s line %d: pod_cpu: cores, e.g. 2 or 0.5",
                                  path, line);
            c->pod_cpu_millis = (uint32_t)(num * 1000);
            return 0;
        }
        if (strcmp(key, "pod_pids") == 0) {
            if (!end || end == val || *end || num < 16 || num > 65536 ||
                num != (double)(uint32_t)num)
                return am_err_set(AM_EINVAL, "config %s line %d: pod_pids: 16 to 65536", path,
                                  line);
            c->pod_pids = (uint32_t)num;
            return 0;
        }
    }
    if (strcmp(key, "hostnames") == 0 || strcmp(key, "ips") == 0) {
        if (!is_seq)
            return am_err_set(AM_EINVAL, "config %s line %d: %s must be a list", path, line, key);
        char **dst = key[0] == 'h' ? c->hostnames : c->ips;
        size_t *n = key[0] == 'h' ? &c->n_hostnames : &c->n_ips;
        for (size_t i = 0; i < n_items; i++) {
            if (*n >= AM_CONFIG_MAX_NAMES)
                return am_err_set(AM_EINVAL, "config %s line %d: %s: at most %d entries", path,
                                  line, key, AM_CONFIG_MAX_NAMES);
            dst[(*n)++] = items[i];
            items[i] = NULL;
        }
        return 0;
    }
    return am_err_set(AM_EINVAL, "config %s line %d: unknown setting '%s'", path, line, key);
}

int am_config_load_file(am_config *c, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return am_err_set(AM_EIO, "config %s: %s", path, strerror(errno));
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    int rc = 0, depth = 0, done = 0, in_seq = 0, line = 0;
    char key[64] = "";
    char *items[AM_CONFIG_MAX_NAMES + 1] = {0};
    size_t n_items = 0;
    while (!done && rc == 0) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            rc = am_err_set(AM_EINVAL, "config %s line %zu: %s", path, p.problem_mark.line + 1,
                            p.problem ? p.problem : "syntax error");
            break;
        }
        line = (int)ev.start_mark.line + 1;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_MAPPING_START_EVENT:
            if (++depth > 1)
                rc = am_err_set(AM_EINVAL, "config %s line %d: nested mappings are not settings",
                                path, line);
            break;
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        case YAML_SEQUENCE_START_EVENT:
            if (depth != 1 || !key[0] || in_seq) {
                rc = am_err_set(AM_EINVAL, "config %s line %d: unexpected list", path, line);
                break; /* items collected so far are freed below */
            }
            in_seq = 1;
            n_items = 0;
            break;
        case YAML_SEQUENCE_END_EVENT:
            rc = apply(c, path, line, key, NULL, items, n_items, 1);
            for (size_t i = 0; i < n_items; i++)
                free(items[i]);
            n_items = 0;
            in_seq = 0;
            key[0] = '\0';
            break;
        case YAML_SCALAR_EVENT: {
            const char *v = (const char *)ev.data.scalar.value;
            if (depth != 1) {
                rc = am_err_set(AM_EINVAL, "config %s line %d: expected 'key: value' settings",
                                path, line);
            } else if (in_seq) {
                if (n_items >= AM_CONFIG_MAX_NAMES)
                    rc = am_err_set(AM_EINVAL, "config %s line %d: %s: at most %d entries", path,
                                    line, key, AM_CONFIG_MAX_NAMES);
                else if (!(items[n_items++] = strdup(v)))
                    rc = am_err_set(AM_ENOMEM, "config: out of memory");
            } else if (!key[0]) {
                if (strlen(v) >= sizeof key)
                    rc = am_err_set(AM_EINVAL, "config %s line %d: unknown setting", path, line);
                else
                    snprintf(key, sizeof key, "%s", v);
            } else {
                rc = apply(c, path, line, key, v, NULL, 0, 0);
                key[0] = '\0';
            }
            break;
        }
        case YAML_ALIAS_EVENT:
            rc = am_err_set(AM_EINVAL, "config %s line %d: aliases are not supported", path, line);
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    for (size_t i = 0; i < n_items; i++)
        free(items[i]);
    yaml_parser_delete(&p);
    fclose(f);
    return rc;
}
