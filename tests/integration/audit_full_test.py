#!/usr/bin/python3
"""The audit log's full disk, the way a user meets it: airmeshd's audit directory is a small
tmpfs; once it is full and the audit writer has failed, every state change is refused (500)
and nothing changes, while reads keep working and the daemon stays up and stops cleanly.
Positive control first: the same request succeeds while there is room.
Run under Bazel or by hand: audit_full_test.py AIRMESHD AIRMESHCTL UI_DIR (as root: it mounts).
"""
import os
import subprocess
import tempfile
import unittest

from harness import Daemon, api, curl


class AuditFullTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.data = os.path.join(self.tmp, "airmesh")
        self.audit = os.path.join(self.data, "audit")
        os.makedirs(self.audit, mode=0o700)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", self.audit],
                       check=True)
        self.d = None

    def tearDown(self):
        try:
            if self.d and self.d.proc.poll() is None:
                self.d.stop()
        finally:
            subprocess.run(["umount", "-l", self.audit], check=False)

    def test_a_full_audit_disk_refuses_changes_and_changes_nothing(self):
        d = self.d = Daemon(self.data)
        d.wait_ready()
        pw = d.read_password()
        code, doc = api(d, "POST", "/api/v1/login", body={"user": "admin", "password": pw})
        self.assertEqual(code, 200, doc)
        tok = doc["token"]
        # Positive control: with room on the disk, a change is made and recorded.
        code, doc = api(d, "POST", "/api/v1/users", tok, {"name": "before", "role": "viewer",
                                                          "password": "before-password-1"})
        self.assertEqual(code, 201, doc)
        code, doc = api(d, "GET", "/api/v1/audit?action=user.create", tok)
        self.assertEqual(code, 200, doc)
        self.assertEqual([e["target"] for e in doc["events"]], ["user:before"])

        # Fill the disk, then make the writer hit it: team changes append records and every
        # GET /api/v1/audit waits for them to be written (the first failure is the writer's,
        # and it is final).
        with open(os.path.join(self.audit, "filler"), "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        failed = False
        for i in range(200):
            code, _ = api(d, "POST", "/api/v1/teams", tok, {"name": "t%d" % i})
            if code != 201:
                failed = True
                break
            code, _ = api(d, "GET", "/api/v1/audit?limit=1", tok)
            if code == 500:
                failed = True
                break
        self.assertTrue(failed, "the audit writer never failed on a full disk")

        # Now nothing changes: the create is refused, the user does not exist, nor do teams
        # whose creation was refused.
        code, doc = api(d, "POST", "/api/v1/users", tok, {"name": "after", "role": "viewer",
                                                          "password": "after-password-1"})
        self.assertEqual(code, 500, doc)
        self.assertEqual(doc["error"]["code"], "internal")
        code, doc = api(d, "GET", "/api/v1/users/after", tok)
        self.assertEqual(code, 404, doc)
        code, doc = api(d, "POST", "/api/v1/teams", tok, {"name": "never"})
        self.assertEqual(code, 500, doc)
        code, doc = api(d, "GET", "/api/v1/teams", tok)
        self.assertEqual(code, 200, doc)
        self.assertNotIn("never", [t["name"] for t in doc["teams"]])
        # Reads still work and the daemon stays up; it stops with exit status 0 (tearDown).
        self.assertEqual(api(d, "GET", "/api/v1/users/before", tok)[0], 200)
        self.assertEqual(curl(d, "/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main()
