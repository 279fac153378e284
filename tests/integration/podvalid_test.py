#!/usr/bin/python3
"""Validation at pod create: the runner checks the repository, the base ref and the command
before the pod is reported running, and a mistake ends the pod `failed` with a reason a user
understands and that says what to do (issue 14, item 3), never `exited` with code 0 or 127.

Through airmeshctl against a real airmeshd and a real enrolled runner: a repository path that
does not exist, a path that is not a git repository, a misspelt base ref, a command not on the
pod's PATH and a file that is not executable each end `failed` with the exact reason (no exit
code: nothing ran); a good pod on the same repo runs and exits 0 (positive control: the
repository, the runner and the command checks let a correct pod through).
"""
import json
import os
import subprocess
import unittest

import harness
from harness import git

POD_PATH = ("/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin"  # sandbox default
            ":/opt/airmesh/bin")  # + airmesh-notify (agent states)


class PodValidationTest(harness.AdminRunnerTest):
    # The runner's data dir in /tmp, as in pods_test (the pod binds paths below it).
    rtmp_prefix = "airmesh-podvalid-test-"
    expect_no_mounts = True

    @classmethod
    def prepare(cls):
        # A repo with branches main and dev, a script that is executable and one that is not.
        cls.repo = os.path.join(cls.tmp, "app.git")
        subprocess.run(["git", "init", "-q", "-b", "main", cls.repo], check=True)
        for name, mode in (("ok.sh", 0o755), ("notexec.sh", 0o644)):
            path = os.path.join(cls.repo, name)
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho ran-" + name + "\n")
            os.chmod(path, mode)
        git(cls.repo, "add", "-A")
        git(cls.repo, "commit", "-qm", "base")
        git(cls.repo, "branch", "dev")
        cls.not_git = os.path.join(cls.tmp, "plain-dir")
        os.makedirs(cls.not_git)
        cls.runner_id = cls.runner.runner_id()

    def run_pod(self, *args, repo=None):
        """Create a pod (accepted: the checks are the runner's), wait for its end, return it."""
        r = self.ctl("pod", "create", "--json", "--repo", repo or self.repo, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        pod = json.loads(r.stdout)
        self.ctl("pod", "wait", pod["id"], "--timeout", "60")
        return json.loads(self.ctl("pod", "show", pod["id"]).stdout)

    def assertFailed(self, info, reason):
        self.assertEqual(info["state"], "failed", info)
        self.assertIsNone(info.get("exit_code"), info)  # nothing ran: no code 0 / 127
        self.assertEqual(info["reason"], reason)

    def test_good_pod_runs(self):
        # Positive control: same repo, runner and kinds of commands as the failures below.
        info = self.run_pod("--base-ref", "dev", "--", "./ok.sh")
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), info)
        info = self.run_pod("--base-ref", "main", "--", "sh", "-c", "exit 0")
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), info)

    def test_missing_repository_path(self):
        nope = os.path.join(self.tmp, "nope.git")
        info = self.run_pod("--", "true", repo=nope)
        self.assertFailed(info, f"repository {nope}: no such directory on runner "
                                f"{self.runner_id}; give the path of a git repository on that "
                                f"runner")
        # No mirror was made for it (the check comes before the fetch).
        mirrors = os.listdir(os.path.join(self.rdata, "mirrors"))
        self.assertFalse([m for m in mirrors if m.endswith(".git") and
                          subprocess.run(["git", "--git-dir", os.path.join(self.rdata, "mirrors",
                                                                             m),
                                          "config", "remote.origin.url"], capture_output=True,
                                         text=True).stdout.strip() == nope], mirrors)

    def test_path_that_is_not_a_git_repository(self):
        info = self.run_pod("--", "true", repo=self.not_git)
        self.assertEqual(info["state"], "failed", info)
        self.assertIsNone(info.get("exit_code"), info)
        want = (f"repository {self.not_git}: not a git repository the runner can read; give the "
                f"path of a git repository (bare or not) (")
        self.assertTrue(info["reason"].startswith(want), info["reason"])
        self.assertTrue(info["reason"].endswith(")"), info["reason"])  # libgit2's own text

    def test_bad_base_ref_lists_the_branches(self):
        info = self.run_pod("--base-ref", "mian", "--", "true")
        self.assertFailed(info, f"base ref 'mian' not found in {self.repo} (branches: dev, main)")

    def test_missing_binary(self):
        info = self.run_pod("--", "claud", "--help")
        self.assertFailed(info, f"command 'claud' not found in the pod's PATH ({POD_PATH}); "
                                f"install it on the runner or give its full path")

    def test_non_executable_file(self):
        info = self.run_pod("--", "./notexec.sh")
        self.assertFailed(info, "command './notexec.sh' is not executable in the pod (permission "
                                "denied); make it executable (chmod +x) or run it through its "
                                "interpreter")


if __name__ == "__main__":
    unittest.main(verbosity=2)
