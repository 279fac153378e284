/*
 * appliance/ctl/help.c — `airmeshctl help [COMMAND]` and `airmeshctl COMMAND --help`: one text
 * per command, saying every argument and flag (README "airmeshctl" says the same).
 */
#include <stdio.h>
#include <string.h>

#include "appliance/ctl/audit_cmd.h"
#include "appliance/ctl/ctl.h"

#define DISPLAY_NAMES                                                                                \
    "DISPLAY NAMES: any unicode text (\"Équipe 🚀\", \"Zoë\"), 1-64 characters, no control or\n" \
    "  bidirectional-override characters, spaces at the ends trimmed; ids stay as they are.\n"       \
    "  --clear removes it (the id is shown again).\n"

static const struct {
    const char *name, *text;
} HELP[] = {
    {"version", "airmeshctl version\n"
                "  Print the client's version and the appliance's (GET /api/v1/version).\n"},
    {"login", "airmeshctl login --user NAME [--org ORG] [--password-file FILE]\n"
              "  Log in and save the session in $XDG_CONFIG_HOME/airmesh/session (default\n"
              "  ~/.config/airmesh/session, mode 0600), for this --url only.\n"
              "  --user NAME           the user name\n"
              "  --org ORG             the organization (default: default)\n"
              "  --password-file FILE  read the password from FILE; without it the password is\n"
              "                        prompted (no echo), or read from stdin when it is not a\n"
              "                        terminal\n"},
    {"whoami", "airmeshctl whoami\n  The logged-in user and organization.\n"},
    {"logout", "airmeshctl logout\n"
               "  End the session on the appliance and forget it. Logged out already: says so\n"
               "  and exits 0.\n"},
    {"token", "airmeshctl token create [--org ORG] [--ttl 1h] [--label K=V ...]\n"
              "airmeshctl token list\n"
              "airmeshctl token revoke ID\n"
              "  Runner enrollment tokens (admins). create prints the one-time token, the CA\n"
              "  fingerprint and the command to run on the runner host; --ttl up to 30d;\n"
              "  --label (repeatable) gives the runner labels pods can ask for.\n"},
    {"runner", "airmeshctl runner list [--json]\n"
               "airmeshctl runner show ID\n"
               "airmeshctl runner revoke ID\n"
               "  Runners: state, heartbeat, version, certificate expiry, labels. revoke (admins)\n"
               "  closes its stream at once and refuses its certificates from then on.\n"},
    {"pod",
     "airmeshctl pod create --repo URL [--base-ref REF] [--branch B] [--runner ID]\n"
     "                      [--label K=V ...] [--env K=V ...] [--memory SIZE] [--pids N]\n"
     "                      [--cpu CORES] [--tmp SIZE] [--shm SIZE] [--workspace SIZE]\n"
     "                      [--network none|models|allow|host] [--keep-worktree] [--shared] [--json]\n"
     "                      [--display-name TEXT] [--agent NAME [--prompt TEXT]]\n"
     "                      [-- COMMAND [ARGS...]]\n"
     "    Start COMMAND in a sandboxed pod on its own branch. --agent NAME: a preset of the\n"
     "    agent catalog (airmeshctl agent list): its command (an explicit COMMAND overrides\n"
     "    it), env and HOME config files, on a runner that has the CLI; --prompt TEXT: the\n"
     "    initial prompt (the CLI's argument, or typed once it is ready). Sizes (--memory, --tmp,\n"
     "    --shm, --workspace): 512M, 2G (K, M, G, T, optionally iB); --pids: a whole number of\n"
     "    processes; --cpu: cores, e.g. 1.5. Left out: the appliance's pod_* defaults. A bad\n"
     "    value is refused before anything is sent. --shared: see pod share.\n"
     "    --display-name: a name people read instead of the id (see pod rename).\n"
     "airmeshctl pod prompt ID TEXT\n"
     "    Type TEXT into the running pod as one bracketed paste, then Enter (TEXT - reads\n"
     "    stdin, at most 64 KiB; control characters other than tab and newline removed).\n"
     "    Allowed: the input-control holder or an admin/owner; with nobody holding control,\n"
     "    the pod's starter too. Audited as pod.prompt (its length, never the text).\n"
     "airmeshctl pod rename ID \"TEXT\" | pod rename ID --clear\n"
     "    Set the pod's display name: any unicode text (\"Fix login 🚀\"), 1-64 characters,\n"
     "    no control or bidirectional-override characters, spaces at the ends trimmed;\n"
     "    --clear: none (the id is shown). The pod's starter or an admin may.\n"
     "airmeshctl pod share ID [--off]\n"
     "    Let other members take control of, type into and stop the pod (--off: only you,\n"
     "    admins and owners again). The pod's starter or an admin may change it.\n"
     "airmeshctl pod list [--json]\n"
     "    Pods of your org: id, display name, state, owner, runner, branch and the whole\n"
     "    command.\n"
     "airmeshctl pod show ID [--json]\n"
     "    One pod, one fact per line, times in your local time zone. JSON with --json, or\n"
     "    when stdout is not a terminal (scripts keep working).\n"
     "airmeshctl pod logs ID [--follow]\n"
     "    Print the pod's scrollback (the appliance keeps its last 1 MiB of output);\n"
     "    --follow keeps printing until the pod ends.\n"
     "airmeshctl pod attach ID\n"
     "    The pod's terminal in yours: raw mode, input control taken when free (or as\n"
     "    soon as its holder releases it), the window size follows yours. Detach with\n"
     "    Ctrl-] then q (Ctrl-] twice sends one Ctrl-]).\n"
     "airmeshctl pod wait ID [--timeout S]\n"
     "    Wait until the pod ends (default 300 s); exit 0 if it exited 0.\n"
     "airmeshctl pod stop ID | pod rm ID | pod recording ID -o FILE\n"
     "    Stop a pod; remove an ended pod's record; download its asciicast recording.\n"},
    {"agent", "airmeshctl agent list [--json]\n"
              "  The agent catalog: each preset (claude, codex, gemini, aider, opencode, goose),\n"
              "  how it takes its prompt, its command, and the online runners that have the CLI\n"
              "  with its version. Use one with pod create --agent NAME.\n"},
    {"org", "airmeshctl org list\n"
            "airmeshctl org create ID --owner NAME [--name TEXT] [--display-name TEXT]\n"
            "                      [--password-file FILE]\n"
            "  Organizations (create: the appliance administrator only). Without\n"
            "  --password-file the owner gets a random password, printed once.\n"
            "airmeshctl org rename ORG \"TEXT\" | org rename ORG --clear\n"
            "  The org's display name (admins and owners of that org; see DISPLAY NAMES).\n"
            "airmeshctl org limits [ORG] [--default-LIMIT V ...] [--max-LIMIT V ...]\n"
            "  The org's pod limits (LIMIT: memory cpu pids tmp shm workspace; sizes like 2G,\n"
            "  cpu in cores). Without flags: show them. With flags (admin or owner): change\n"
            "  those, keep the rest; V 0 or none removes one. A pod create that leaves a limit\n"
            "  out gets the org default, else the appliance's; one above the max is "
            "refused.\n"
            "airmeshctl org quota [ORG] [--tokens-per-day N]\n"
            "  The org's model gateway quota: tokens (in + out) per UTC day, and today's use.\n"
            "  With --tokens-per-day (admin or owner): set it; 0 = no quota. Over it, pods'\n"
            "  model requests get 429 in the API's own error format until 00:00 UTC.\n"
            "airmeshctl org egress-allow ORG [HOST:PORT ...] [--clear]\n"
            "  The on-prem host:ports pods with network allow may reach through their CONNECT\n"
            "  proxy (at most 64). Without entries: show the list. With entries (admin or\n"
            "  owner): replace it; --clear empties it. Applies to pods created afterwards.\n"
            "airmeshctl org binding-policy ORG [same_creator|explicit]\n"
            "  When pod bindings are active at once: same_creator (default: between pods of\n"
            "  one starter) or explicit (always wait for the target's acceptance). Without a\n"
            "  policy: show it; setting it needs admin or owner.\n" DISPLAY_NAMES},
    {"user", "airmeshctl user list\n"
             "airmeshctl user create NAME [--role viewer|member|admin|owner] [--password-file F]\n"
             "                        [--display-name TEXT]\n"
             "airmeshctl user rename NAME \"TEXT\" | user rename NAME --clear\n"
             "airmeshctl user disable|enable|rm|revoke-sessions NAME\n"
             "airmeshctl user role NAME ROLE\n"
             "airmeshctl user passwd NAME --password-file F [--current-password-file F]\n"
             "  Users of your org (admins manage users up to their own role). Names: 1-64 of\n"
             "  a-z 0-9 . _ -, starting with a letter or digit. rename sets the display name\n"
             "  (admins; see DISPLAY NAMES).\n" DISPLAY_NAMES},
    {"team", "airmeshctl team list | team create NAME [--display-name TEXT] |\n"
             "airmeshctl team add TEAM USER | team remove TEAM USER | team rm TEAM |\n"
             "airmeshctl team rename TEAM \"TEXT\" | team rename TEAM --clear\n"
             "  Teams of users in your org (admins).\n" DISPLAY_NAMES},
    {"api-token", "airmeshctl api-token list\n"
                  "airmeshctl api-token create [--name N] [--role R] [--ttl 30d]\n"
                  "airmeshctl api-token revoke ID\n"
                  "  Tokens for automation (AIRMESH_TOKEN); printed once at create.\n"},
    {"model",
     "airmeshctl model add NAME --api openai|anthropic --url URL [--key-file FILE]\n"
     "                     [--ca FILE] [--models m1,m2] [--json]\n"
     "    Add a model endpoint of your org (admins and owners): an on-prem server speaking\n"
     "    the OpenAI or the Anthropic API. NAME: 1-64 of a-z 0-9 . _ -. --url: the base URL\n"
     "    as OPENAI_BASE_URL takes it (with /v1, e.g. http://vllm.lan:8000/v1) for openai,\n"
     "    as ANTHROPIC_BASE_URL takes it (without /v1) for anthropic; no user:password, query\n"
     "    or fragment. --key-file: the real API key (at most 4 KiB; a trailing newline is\n"
     "    dropped); it stays on the appliance and is never shown again. --ca: a PEM CA\n"
     "    certificate to trust for an https URL. --models: the models served there (without:\n"
     "    whatever the server lists). Runs the self-test and prints it; the endpoint is\n"
     "    saved even when the test fails.\n"
     "airmeshctl model list [--json] | model show NAME [--json]\n"
     "    The org's endpoints (any role): api, URL, key set or not, models, last self-test.\n"
     "airmeshctl model test NAME [--json]\n"
     "    Re-run the self-test (admins): reachable, models listed, per model a tiny\n"
     "    completion and a tool-call round trip (get_time), with latency and errors.\n"
     "airmeshctl model rm NAME\n"
     "    Remove an endpoint (admins).\n"},
    {"usage", "airmeshctl usage [--json]\n"
              "    Model gateway usage of your org (any role): requests, tokens in and out,\n"
              "    errors and refusals today (UTC), per user today and per pod, as the model\n"
              "    servers reported them.\n"},
    {"ticket",
     "airmeshctl ticket create TITLE [--description TEXT|-] [--status S] [--priority P]\n"
     "                        [--assignee user:NAME|pod:ID] [--labels a,b] [--parent KEY] "
     "[--json]\n"
     "    A ticket of your org (members and above); prints its key (ORG-N).\n"
     "airmeshctl ticket list [--status S] [--assignee A] [--label L] [--search TEXT] [--json]\n"
     "    The org's tickets by number (any role); --search looks in key, title, description.\n"
     "airmeshctl ticket show KEY [--json]\n"
     "    One ticket with its description and comments.\n"
     "airmeshctl ticket update KEY [--title T] [--description TEXT|-] [--status S]\n"
     "                        [--priority P] [--assignee A|\"\"] [--labels a,b] [--parent KEY]\n"
     "                        [--blocks K1,K2] [--json]\n"
     "    Change fields. Status: backlog, todo, in_progress, in_review, done; the allowed\n"
     "    moves are in the README (done only from in_review; reopen done -> todo: admins or\n"
     "    the assignee). --blocks replaces the keys it blocks (their blocked-by follows).\n"
     "    Priority: none, low, medium, high, urgent.\n"
     "airmeshctl ticket comment KEY TEXT|-\n"
     "    Add a comment (markdown; - reads stdin).\n"
     "airmeshctl ticket start KEY --repo PATH [--agent NAME] [--runner ID] [--base-ref REF]\n"
     "                        [--network none|host] [-- COMMAND...]\n"
     "    Start a pod for the ticket: branch = the key in lower case, the ticket (title,\n"
     "    description, [ticket KEY]) as its prompt; the ticket moves to in_progress, and to\n"
     "    in_review with the branch attached when the pod ends.\n"},
    {"channel",
     "airmeshctl channel create NAME [--member user:ID|pod:ID ...]\n"
     "    A channel of your org (members and above); you are its first member. NAME: 1-48 of\n"
     "    a-z 0-9 - _.\n"
     "airmeshctl channel list [--json]\n"
     "    The org's channels (any role): members, messages, who created it.\n"
     "airmeshctl channel join NAME | channel leave NAME\n"
     "    Become a member (members and above) or stop being one.\n"
     "airmeshctl channel post NAME TEXT [--json]   (TEXT \"-\" = stdin)\n"
     "    Post a message (members of the channel; at most 16 KiB of UTF-8). An @p-ID or\n"
     "    @<pod display name> becomes a prompt for that pod, typed once it is waiting for\n"
     "    input, if you may prompt it (its starter, an admin); prints each mention's state.\n"
     "airmeshctl channel read NAME [--before SEQ | --after SEQ] [--limit N] [--json]\n"
     "    Messages oldest first: the newest N (default 50), or those before/after SEQ.\n"},
    {"binding",
     "airmeshctl binding list [--pod ID] [--json]\n"
     "    The org's pod bindings (any role), or those from or to one pod: id, from, to,\n"
     "    scopes, state (pending, active, rejected, ended, expired), expiry, who asked.\n"
     "airmeshctl binding request FROM_POD TO_POD --scopes read,write [--ttl 1h] [--json]\n"
     "    Let FROM_POD read (its screen, get_pod_snapshot) and/or write (send_pod_input,\n"
     "    @mentions) TO_POD. You must control both pods (their starter, or an admin). Active\n"
     "    at once when both have the same starter and the org's policy is same_creator;\n"
     "    otherwise pending until TO_POD's side accepts. A new request for the same pair\n"
     "    replaces the live one and keeps its scopes. --ttl: 90s, 15m, 1h, 7d (at most 30d).\n"
     "airmeshctl binding accept ID | binding reject ID [--reason TEXT]\n"
     "    Decide a pending binding (the target pod, or a user who controls it).\n"
     "airmeshctl binding end ID\n"
     "    End a binding (either pod's side). A pod that ends ends its bindings.\n"},
    {"audit", AM_CTL_AUDIT_USAGE},
    {"help", "airmeshctl help [COMMAND]\n  The overview, or one command's arguments and flags.\n"},
};

int am_ctl_help(const char *cmd, FILE *out) {
    for (size_t i = 0; i < sizeof HELP / sizeof HELP[0]; i++)
        if (strcmp(HELP[i].name, cmd) == 0) {
            fputs(HELP[i].text, out);
            fputs("\nGlobal options (before the command): --url URL, --ca FILE; see airmeshctl "
                  "help.\n",
                  out);
            return 0;
        }
    fprintf(stderr, "airmeshctl: no command '%s'; the commands are:", cmd);
    for (size_t i = 0; i < sizeof HELP / sizeof HELP[0]; i++)
        fprintf(stderr, " %s", HELP[i].name);
    fprintf(stderr, "\n");
    return 2;
}

int am_ctl_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return 0;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}
