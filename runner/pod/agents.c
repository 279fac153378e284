/*
 * runner/pod/agents.c — which agent CLIs this runner's pods can run, and their versions, for
 * Hello (the appliance shows them with the runner; the console's new-pod form will offer them).
 *
 * How: each known name (claude, codex, gemini, aider, opencode, goose) is looked up where a
 * pod's PATH finds it: the runner's --agents-dir DIR/bin first, then /usr/local/bin, /usr/bin,
 * /bin (the host's /usr is bound read-only into pods). A found one is run once as
 * `<path> --version` (minimal environment, no stdin, 5 s, output capped at 4 KiB) and the first
 * version-like token it printed ("2.1.332") is kept; none = "" (still listed). The CLIs come
 * from the admin's agents dir or the host's packages, which the runner already trusts.
 *
 * Detection runs once, on the first call (pthread_once), and the result is kept for the life of
 * the process: install a CLI, restart the runner. Threads: any; the returned array is
 * process-owned and read-only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "runner/pod/pod.h"

#define VERSION_TIMEOUT_MS 5000
#define MAX_AGENTS 16

static const char *const k_names[] = {"claude", "codex", "gemini", "aider", "opencode", "goose"};
static const char *const k_dirs[] = {"/usr/local/bin", "/usr/bin", "/bin"};

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static am_pod_agent g_agents[MAX_AGENTS];
static size_t g_n;

/* The first "N.N[.N…]" in text (at most cap-1 chars), "" if none. */
static void version_token(const char *text, char *out, size_t cap) {
    out[0] = '\0';
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9' || (p > text && p[-1] >= '0' && p[-1] <= '9'))
            continue;
        const char *q = p;
        int dots = 0;
        while ((*q >= '0' && *q <= '9') || (*q == '.' && q[1] >= '0' && q[1] <= '9'))
            dots += *q++ == '.';
        if (dots == 0)
            continue;
        /* keep a pre-release suffix like "-beta.1" */
        while (*q == '-' || *q == '+' || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
               (*q == '.' && q[1] && q[1] != ' '))
            q++;
        size_t n = (size_t)(q - p) < cap - 1 ? (size_t)(q - p) : cap - 1;
        memcpy(out, p, n);
        out[n] = '\0';
        return;
    }
}

/* Run `path --version`; its first version-like token into out. */
static void probe_version(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
    char *argv[] = {(char *)path, "--version", NULL};
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin",
                    "HOME=/nonexistent",
                    "NO_COLOR=1",
                    "TERM=dumb",
                    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
                    "DISABLE_AUTOUPDATER=1",
                    NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        close(pfd[0]);
        return;
    }
    char buf[4096];
    size_t len = 0;
    uint64_t deadline = am_mono_ns() / 1000000 + VERSION_TIMEOUT_MS;
    for (;;) {
        uint64_t now = am_mono_ns() / 1000000;
        if (now >= deadline || len >= sizeof buf - 1)
            break;
        struct pollfd p = {pfd[0], POLLIN, 0};
        int pr = poll(&p, 1, (int)(deadline - now));
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t n = read(pfd[0], buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(pfd[0]);
    kill(pid, SIGKILL); /* done or too slow: either way it goes */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    version_token(buf, out, cap);
}

static void detect(void) {
    const char *adir = am_pod_agents_dir();
    for (size_t i = 0; i < sizeof k_names / sizeof k_names[0] && g_n < MAX_AGENTS; i++) {
        char path[PATH_MAX] = "";
        int found = 0;
        if (adir[0]) {
            snprintf(path, sizeof path, "%s/bin/%s", adir, k_names[i]);
            found = access(path, X_OK) == 0;
        }
        for (size_t d = 0; !found && d < sizeof k_dirs / sizeof k_dirs[0]; d++) {
            snprintf(path, sizeof path, "%s/%s", k_dirs[d], k_names[i]);
            found = access(path, X_OK) == 0;
        }
        size_t plen = strlen(path);
        if (!found || plen >= sizeof g_agents[0].path)
            continue;
        am_pod_agent *a = &g_agents[g_n++];
        snprintf(a->name, sizeof a->name, "%s", k_names[i]);
        memcpy(a->path, path, plen + 1);
        probe_version(path, a->version, sizeof a->version);
        am_log_info("pod", "agent CLI found", "name=%s version=\"%s\" path=%s", a->name, a->version,
                    a->path);
    }
}

size_t am_pod_agents(const am_pod_agent **out) {
    pthread_once(&g_once, detect);
    *out = g_agents;
    return g_n;
}
