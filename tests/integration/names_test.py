#!/usr/bin/python3
"""Display names (issue 14): users, teams, the org and pods get a unicode name people read
instead of their ASCII id ("Zoë", "Équipe 🚀"), set at create and changed later, through the
REST API and airmeshctl, against a real airmeshd and a real enrolled runner.

Proven here: unicode names round-trip exactly (trimmed of outer spaces) on create, PATCH and
every GET; bad ones (bytes that are not UTF-8, control characters, bidirectional overrides and
isolates, more than 64 characters, empty) are 400 with a message naming the rule, from create
and rename alike, and change nothing; a member cannot rename a user, a team or the org (403 and
a `denied` audit record) while an admin can (the positive control); a pod's starter renames
their pod, another member cannot, an admin can; every rename is audited with the new name;
airmeshctl sets them with --display-name and `… rename`, refuses a bad one before sending
anything, shows them in `user list` / `team list` / `pod list` with the columns still aligned
around wide characters, and documents it in each command's --help.
"""
import json
import os
import tempfile
import unicodedata
import unittest

import harness
from harness import api, ctl, curl, token_login

ZOE = "Zoë"
EQUIPE = "Équipe 🚀"
LONG64 = "Ж" * 63 + "🚀"  # 64 code points, 130 bytes


def width(s):
    """Terminal columns, as wcwidth counts them (wide and emoji 2, combining 0)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c)
               else 1 for c in s)


# (what to send, the message the answer must contain): each breaks one rule.
BAD = [
    ("Zo\u0007e", "control character U+0007 at character 3 is not allowed"),
    ("a\nb", "control character U+000A at character 2 is not allowed"),
    ("\u202eevil", "bidirectional control character U+202E at character 1 is not allowed"),
    ("x\u2066y", "bidirectional control character U+2066 at character 2 is not allowed"),
    ("z" * 65, "at most 64 characters (this one has 65)"),
    ("   ", "display_name: empty"),
]


class NamesTest(harness.AdminRunnerTest):
    rtmp_prefix = "airmesh-names-test-"
    runner_args = ("--capacity", "8")

    @classmethod
    def prepare(cls):
        d = cls.d
        cls.repo = harness.make_repo(os.path.join(cls.tmp, "repo"), {"README": "names test\n"})
        cls.admin = token_login(d, "admin", cls.read_admin_password())
        cls.tok, cls.homes = {}, {}
        for name in ("ann", "ben"):
            pw = name + "-password-123"
            code, doc = api(d, "POST", "/api/v1/users", cls.admin,
                            {"name": name, "role": "member", "password": pw})
            assert code == 201, doc
            cls.tok[name] = token_login(d, name, pw)
            cls.homes[name] = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
            r = ctl(d, "login", "--user", name, stdin=pw + "\n", home=cls.homes[name])
            assert r.returncode == 0, r.stderr

    @classmethod
    def read_admin_password(cls):
        # AdminRunnerTest logged the admin in through airmeshctl with the banner's password.
        return cls.d.read_password()

    # ---- helpers ----

    def get(self, path, token=None):
        code, doc = api(self.d, "GET", path, token or self.admin)
        self.assertEqual(code, 200, doc)
        return doc

    def audit(self, action, target):
        doc = self.get(f"/api/v1/audit?action={action}&limit=1000")
        return [(e["actor"], e["result"], e.get("details")) for e in doc["events"]
                if e["target"] == target]

    def raw_patch(self, path, raw, token=None):
        """PATCH with exactly these body bytes (curl sends them as they are)."""
        f = os.path.join(self.tmp, "body.json")
        with open(f, "wb") as out:
            out.write(raw)
        code, _, _, text = curl(self.d, path, "-X", "PATCH", "-H",
                                "Authorization: Bearer " + (token or self.admin), "-H",
                                "Content-Type: application/json", "--data-binary", "@" + f)
        return code, json.loads(text)

    def pod(self, user, **extra):
        code, p = api(self.d, "POST", "/api/v1/pods", self.tok[user],
                      dict({"repo": self.repo, "command": ["sleep", "300"]}, **extra))
        self.assertEqual(code, 201, p)
        self.addCleanup(api, self.d, "POST", "/api/v1/pods/%s/stop" % p["id"], self.admin, {})
        return p

    # ---- the REST API ----

    def test_unicode_names_round_trip_on_create_rename_and_every_get(self):
        d, a = self.d, self.admin
        code, doc = api(d, "POST", "/api/v1/users", a, {"name": "zoe", "role": "viewer",
                                                        "display_name": "  " + ZOE + " \u3000"})
        self.assertEqual((code, doc["display_name"]), (201, ZOE), doc)  # outer spaces trimmed
        self.assertEqual(self.get("/api/v1/users/zoe")["display_name"], ZOE)
        users = {u["id"]: u for u in self.get("/api/v1/users")["users"]}
        self.assertEqual(users["zoe"]["display_name"], ZOE)
        self.assertEqual(users["ben"]["display_name"], "")  # none: clients show the id
        code, doc = api(d, "POST", "/api/v1/teams", a, {"name": "equipe", "display_name": EQUIPE})
        self.assertEqual((code, doc["display_name"]), (201, EQUIPE), doc)
        teams = {t["id"]: t for t in self.get("/api/v1/teams")["teams"]}
        self.assertEqual(teams["equipe"]["display_name"], EQUIPE)
        # Rename: 64 characters of 2 and 4 bytes is the most; then clear with null.
        code, doc = api(d, "PATCH", "/api/v1/users/zoe", a, {"display_name": LONG64})
        self.assertEqual((code, doc["display_name"]), (200, LONG64), doc)
        self.assertEqual(self.get("/api/v1/users/zoe")["display_name"], LONG64)
        code, doc = api(d, "PATCH", "/api/v1/users/zoe", a, {"display_name": None})
        self.assertEqual((code, doc["display_name"]), (200, ""), doc)
        self.assertEqual(api(d, "PATCH", "/api/v1/users/zoe", a, {"display_name": ZOE})[0], 200)
        self.assertEqual(self.get("/api/v1/users/zoe")["display_name"], ZOE)
        # The org.
        code, doc = api(d, "PATCH", "/api/v1/orgs/default", a, {"display_name": "Société Ærø"})
        self.assertEqual((code, doc["display_name"]), (200, "Société Ærø"), doc)
        orgs = {o["id"]: o for o in self.get("/api/v1/orgs")["orgs"]}
        self.assertEqual(orgs["default"]["display_name"], "Société Ærø")
        # A pod, named at create and renamed.
        p = self.pod("ann", display_name="Fix the login 🔑")
        self.assertEqual(p["display_name"], "Fix the login 🔑")
        self.assertEqual(self.get("/api/v1/pods/" + p["id"])["display_name"], "Fix the login 🔑")
        pods = {q["id"]: q for q in self.get("/api/v1/pods")["pods"]}
        self.assertEqual(pods[p["id"]]["display_name"], "Fix the login 🔑")
        # Audited with the new name (and null for the clear).
        names = [e[2]["display_name"] for e in self.audit("user.display_name", "user:zoe")
                 if e[1] == "ok"]
        self.assertEqual(names, [LONG64, None, ZOE])
        create = self.audit("user.create", "user:zoe")
        self.assertEqual(create[-1][2], {"role": "viewer", "display_name": ZOE})
        self.assertEqual(self.audit("team.create", "team:equipe")[-1][2],
                         {"display_name": EQUIPE})
        self.assertEqual(self.audit("org.display_name", "org:default")[-1][:2],
                         ("user:admin", "ok"))
        self.assertEqual(self.audit("pod.create", "pod:" + p["id"])[-1][2]["display_name"],
                         "Fix the login 🔑")

    def test_bad_names_are_refused_with_the_rule_and_change_nothing(self):
        d, a = self.d, self.admin
        code, doc = api(d, "POST", "/api/v1/teams", a, {"name": "bad-names", "display_name": "Ok"})
        self.assertEqual(code, 201, doc)
        for text, message in BAD:
            with self.subTest(text=text):
                # Rename: 400 naming the rule, and the name stays.
                code, doc = api(d, "PATCH", "/api/v1/teams/bad-names", a, {"display_name": text})
                self.assertEqual((code, doc["error"]["code"]), (400, "bad_request"), doc)
                self.assertIn(message, doc["error"]["message"])
                teams = {t["id"]: t for t in self.get("/api/v1/teams")["teams"]}
                self.assertEqual(teams["bad-names"]["display_name"], "Ok")
                # Create: 400, and nothing is created.
                code, doc = api(d, "POST", "/api/v1/users", a,
                                {"name": "never", "role": "viewer", "display_name": text})
                self.assertEqual(code, 400, doc)
                self.assertIn(message, doc["error"]["message"])
                self.assertEqual(api(d, "GET", "/api/v1/users/never", a)[0], 404)
        # Bytes that are not UTF-8 (a lone 0xff, an overlong "/", a UTF-16 surrogate): the
        # body is refused as a whole, saying where.
        for raw, at in ((b'{"display_name": "Zo\xff"}', 20),
                        (b'{"display_name": "\xc0\xaf"}', 18),
                        (b'{"display_name": "\xed\xa0\x80"}', 18)):
            with self.subTest(raw=raw):
                code, doc = self.raw_patch("/api/v1/teams/bad-names", raw)
                self.assertEqual(code, 400, doc)
                self.assertIn("request body is not valid UTF-8 (byte 0x%02x at offset %d)" %
                              (raw[at], at), doc["error"]["message"])
        # Not a string, or other fields: the shape is named.
        code, doc = api(d, "PATCH", "/api/v1/teams/bad-names", a, {"display_name": 7})
        self.assertEqual(code, 400, doc)
        self.assertIn("display_name: a string of 1-64 characters", doc["error"]["message"])
        code, doc = api(d, "PATCH", "/api/v1/teams/bad-names", a, {"name": "x"})
        self.assertEqual(code, 400, doc)
        self.assertIn('expected {"display_name": string | null}', doc["error"]["message"])
        # A positive control for the same path: a good name goes through.
        self.assertEqual(api(d, "PATCH", "/api/v1/teams/bad-names", a,
                             {"display_name": EQUIPE})[0], 200)
        # The daemon is still serving (it did not crash on any of it).
        self.assertEqual(curl(d, "/healthz")[0], 200)

    def test_a_member_cannot_rename_users_teams_or_the_org(self):
        d, ben = self.d, self.tok["ben"]
        api(d, "POST", "/api/v1/teams", self.admin, {"name": "core", "display_name": "Core"})
        for path, target, action in (("/api/v1/users/ann", "user:ann", "user.display_name"),
                                     ("/api/v1/users/ben", "user:ben", "user.display_name"),
                                     ("/api/v1/teams/core", "team:core", "team.display_name"),
                                     ("/api/v1/orgs/default", "org:default", "org.display_name")):
            with self.subTest(path=path):
                before = self.get(path.replace("/api/v1/orgs/default", "/api/v1/orgs"))
                code, doc = api(d, "PATCH", path, ben, {"display_name": "Pwned"})
                self.assertEqual((code, doc["error"]["code"]), (403, "forbidden"), doc)
                self.assertEqual(self.get(path.replace("/api/v1/orgs/default", "/api/v1/orgs")),
                                 before)
                self.assertIn(("user:ben", "denied"), [e[:2] for e in self.audit(action, target)])
        # Positive control: an admin renames the very same user.
        code, doc = api(d, "PATCH", "/api/v1/users/ann", self.admin, {"display_name": "Ann Ö"})
        self.assertEqual((code, doc["display_name"]), (200, "Ann Ö"), doc)
        # Another org's user is 404, not 403 (existence does not leak).
        self.assertEqual(api(d, "PATCH", "/api/v1/users/nobody", self.admin,
                             {"display_name": "x"})[0], 404)
        self.assertEqual(api(d, "PATCH", "/api/v1/orgs/elsewhere", self.admin,
                             {"display_name": "x"})[0], 404)

    def test_a_pods_owner_renames_it_another_member_cannot_an_admin_can(self):
        d = self.d
        p = self.pod("ann")
        self.assertEqual(p["display_name"], "")
        target = "pod:" + p["id"]
        code, doc = api(d, "PATCH", "/api/v1/pods/" + p["id"], self.tok["ann"],
                        {"display_name": "Ann's refactor ✨"})
        self.assertEqual((code, doc["display_name"]), (200, "Ann's refactor ✨"), doc)
        code, doc = api(d, "PATCH", "/api/v1/pods/" + p["id"], self.tok["ben"],
                        {"display_name": "Ben was here"})
        self.assertEqual(code, 403, doc)
        self.assertIn("belongs to another user", doc["error"]["message"])
        self.assertEqual(self.get("/api/v1/pods/" + p["id"])["display_name"], "Ann's refactor ✨")
        code, doc = api(d, "PATCH", "/api/v1/pods/" + p["id"], self.admin,
                        {"display_name": "Reviewed by admin"})
        self.assertEqual((code, doc["display_name"]), (200, "Reviewed by admin"), doc)
        self.assertEqual([e[:2] for e in self.audit("pod.display_name", target)],
                         [("user:ann", "ok"), ("user:ben", "denied"), ("user:admin", "ok")])
        self.assertEqual(self.audit("pod.display_name", target)[0][2],
                         {"display_name": "Ann's refactor ✨"})

    # ---- airmeshctl ----

    def test_cli_sets_shows_and_refuses_display_names(self):
        c = self.ctl
        r = c("user", "create", "zed", "--role", "viewer", "--display-name", ZOE)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = c("team", "create", "eq", "--display-name", EQUIPE)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual({t["id"]: t for t in self.get("/api/v1/teams")["teams"]}["eq"][
            "display_name"], EQUIPE)
        r = c("user", "rename", "zed", "Zoë Ünal")
        self.assertEqual((r.returncode, r.stdout), (0, 'user zed is now shown as "Zoë Ünal"\n'),
                         r.stderr)
        self.assertEqual(self.get("/api/v1/users/zed")["display_name"], "Zoë Ünal")
        r = c("team", "rename", "eq", EQUIPE + " 2")
        self.assertEqual(r.returncode, 0, r.stderr)
        r = c("org", "rename", "default", "Ärger GmbH")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual({o["id"]: o for o in self.get("/api/v1/orgs")["orgs"]}["default"][
            "display_name"], "Ärger GmbH")
        # user list and team list: a DISPLAY NAME column (the last: never padded, so the
        # columns before it keep their place), starting at one display column on every line.
        c("user", "rename", "ann", "日本語 Ann")
        r = c("user", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "ROLE", "DISABLED", "DISPLAY", "NAME"])
        col = width(lines[0][:lines[0].index("DISPLAY NAME")])
        for l, name in (("zed", "Zoë Ünal"), ("ann", "日本語 Ann"), ("admin", "-")):
            row = next(x for x in lines if x.startswith(l + " "))
            self.assertTrue(row.endswith(name), r.stdout)
            self.assertEqual(width(row[:row.rindex(name)]), col, r.stdout)
        r = c("team", "list")
        row = next(x for x in r.stdout.splitlines() if x.startswith("eq "))
        self.assertTrue(row.endswith(EQUIPE + " 2"), r.stdout)
        # Pods: --display-name at create, a NAME column in pod list, rename by the starter.
        r = ctl(self.d, "pod", "create", "--json", "--repo", self.repo, "--display-name",
                "Équipe 🚀 pod", "--", "sleep", "300", home=self.homes["ann"])
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = json.loads(r.stdout)["id"]
        self.addCleanup(api, self.d, "POST", "/api/v1/pods/%s/stop" % pid, self.admin, {})
        r = ctl(self.d, "pod", "create", "--json", "--repo", self.repo, "--", "sleep", "300",
                home=self.homes["ann"])
        plain = json.loads(r.stdout)["id"]
        self.addCleanup(api, self.d, "POST", "/api/v1/pods/%s/stop" % plain, self.admin, {})
        r = c("pod", "list")
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(),
                         ["ID", "NAME", "STATE", "OWNER", "RUNNER", "BRANCH", "COMMAND"])
        col = width(lines[0][:lines[0].index("COMMAND")])
        rows = [l for l in lines if l.startswith((pid, plain))]
        self.assertEqual(len(rows), 2, r.stdout)
        self.assertIn("Équipe 🚀 pod", [l for l in rows if l.startswith(pid)][0])
        for l in rows:
            self.assertEqual(width(l[:l.index("sleep 300")]), col, r.stdout)
        r = ctl(self.d, "pod", "rename", pid, "Renamed by Ann", home=self.homes["ann"])
        self.assertEqual(r.returncode, 0, r.stderr)
        r = ctl(self.d, "pod", "rename", pid, "By Ben", home=self.homes["ben"])
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("belongs to another user", r.stderr)
        self.assertEqual(self.get("/api/v1/pods/" + pid)["display_name"], "Renamed by Ann")
        # A member cannot rename a user from the CLI either.
        r = ctl(self.d, "user", "rename", "zed", "Pwned", home=self.homes["ben"])
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertEqual(self.get("/api/v1/users/zed")["display_name"], "Zoë Ünal")
        # Bad names are refused before anything is sent: exit 2, the rule named, no audit record.
        seen = len(self.get("/api/v1/audit?action=user.display_name&limit=1000")["events"])
        for text, message in BAD + [("Zo\udcffe", "not valid UTF-8 (byte 0xff at offset 2)")]:
            with self.subTest(cli=text):
                r = c("user", "rename", "zed", text)
                self.assertEqual((r.returncode, r.stdout), (2, ""), r.stderr)
                self.assertIn("airmeshctl user rename: display_name: ", r.stderr)
                self.assertIn(message, r.stderr)
        r = c("user", "create", "never", "--display-name", "\u202eevil")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(self.get("/api/v1/audit?action=user.display_name&limit=1000")[
            "events"]), seen)
        self.assertEqual(api(self.d, "GET", "/api/v1/users/never", self.admin)[0], 404)
        # --clear, and per-command help that documents it all.
        r = c("user", "rename", "zed", "--clear")
        self.assertEqual((r.returncode, r.stdout),
                         (0, "user zed has no display name now (shown as its id)\n"), r.stderr)
        for cmd, usage in (("user", "user rename NAME"), ("team", "team rename TEAM"),
                           ("org", "org rename ORG"), ("pod", "pod rename ID")):
            r = c(cmd, "--help")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(usage, r.stdout)
            self.assertIn("--display-name TEXT", r.stdout)
            self.assertIn("1-64 characters", r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
