#!/usr/bin/python3
"""Integration tests for the fetch-back: when a pod ends, its branch comes back into the runner's
mirror AS DATA (a pack + a ref value made by git inside a sandbox like the pod's, checked and
indexed by the runner), never by opening the agent's git dir with the runner's privileges.

From inside real pods on a real enrolled runner (started with --fetch-back-max 1M):
  (a) the pod's own commit comes back, and a second pod based on that branch sees it;
  (b) commondir, and alternates + a symlinked ref, aimed at ANOTHER repository's mirror on the
      same runner (its path is predictable): the attack is shown live on the host first (git on
      the host, reading the kept git dir, resolves the branch to the other repo's commit), then
      the other repo's commit is shown absent from this mirror, which is unchanged;
  (c) `[include] path = <host FIFO>` and `path = <runner>/identity.pem` in the pod's config: the
      FIFO is never opened (a writer blocked on it stays blocked) and the branch still comes back;
      the positive control (git on the host reading that config) opens it;
  (d) an oversized pack, a ref name other than the pod's branch (a symref), and a ref pointing
      at a missing object are refused with a clear reason in the pod's status and in the
      pod.exit audit event, the mirror unchanged;
  (e) symlinks to a host dir planted in the workspace and the git dir (shown to reach the host dir
      from the host) do not make removal of the pod delete anything there.
"""
import hashlib
import json
import os
import re
import threading
import unittest

import harness
from harness import curl, git, gitdir, wait_for


COMMIT = "git -c user.email=p@x -c user.name=pod commit -qm"


class FetchBackTest(harness.AdminRunnerTest):
    rtmp_prefix = "airmesh-fetchback-test-"
    runner_args = ("--fetch-back-max", "1M")

    @classmethod
    def prepare(cls):
        # Two repositories: A (the pods' own) and B (the one an attacker on A wants).
        cls.repo = cls.make_repo("repo-a", "a")
        cls.other = cls.make_repo("repo-b", "b")
        cls.base = git(cls.repo, "rev-parse", "HEAD")
        harness.wait_runner_online(cls.d, home=cls.home)
        # B's mirror on this runner, holding a commit only B has.
        p = cls.create_pod(cls.other, "--", "sh", "-c",
                           f"echo 'B secret' > secret.txt && git add secret.txt && "
                           f"{COMMIT} 'B secret' && echo DONE")
        info = cls.wait_pod(p["id"])
        assert info["state"] == "exited" and info.get("exit_code") == 0, info
        cls.mirror_b = cls.mirror_of(cls.other)
        cls.b_branch = p["branch"]
        cls.b_secret = gitdir(cls.mirror_b, "rev-parse", p["branch"]).stdout.strip()
        assert gitdir(cls.mirror_b, "log", "-1", "--format=%s", cls.b_secret).stdout.strip() \
            == "B secret"

    @classmethod
    def make_repo(cls, name, tag):
        return harness.make_repo(os.path.join(cls.tmp, name),
                                 {f"src/{tag}{i}.txt": f"{tag} file {i}\n" for i in range(10)},
                                 "base " + tag)

    @classmethod
    def create_pod(cls, repo, *args):
        r = cls.ctl("pod", "create", "--json", "--repo", repo, *args)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    @classmethod
    def wait_pod(cls, pid, timeout=90):
        cls.ctl("pod", "wait", pid, "--timeout", str(timeout))
        return json.loads(cls.ctl("pod", "show", pid).stdout)

    @classmethod
    def mirror_of(cls, url):
        return os.path.join(cls.rdata, "mirrors",
                            hashlib.sha256(url.encode()).hexdigest()[:16] + ".git")

    def recording(self, pid):
        out = os.path.join(self.tmp, pid + ".cast")
        r = self.ctl("pod", "recording", pid, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = harness.read(out).splitlines()
        return "".join(json.loads(l)[2] for l in lines[1:] if json.loads(l)[1] == "o")

    def objects(self, mirror):
        """Every object file of a mirror (loose objects and packs)."""
        out = set()
        for root, _, files in os.walk(os.path.join(mirror, "objects")):
            out.update(os.path.join(root, f) for f in files)
        return out

    def refs(self, mirror):
        r = gitdir(mirror, "for-each-ref", "--format=%(refname) %(objectname)")
        return dict(l.split(" ", 1) for l in r.stdout.splitlines())

    def audit_reason(self, pid):
        tok = json.loads(harness.read(os.path.join(self.home, ".config", "airmesh",
                                                   "session")))["token"]
        code, _, _, body = curl(self.d, "/api/v1/audit?action=pod.exit&limit=500", "-H",
                                "Authorization: Bearer " + tok)
        self.assertEqual(code, 200, body)
        for e in json.loads(body)["events"]:
            if e["target"] == "pod:" + pid:
                return e["details"].get("reason", "")
        self.fail("no pod.exit audit event for " + pid)

    def run_attack(self, script, *args, keep=True):
        """Run a pod on repo A; return (create result, final info, mirror A before, after)."""
        ma = self.mirror_of(self.repo)
        before = (self.objects(ma), self.refs(ma))
        p = self.create_pod(self.repo, *(["--keep-worktree"] if keep else []), *args,
                            "--", "sh", "-c", script)
        info = self.wait_pod(p["id"])
        self.assertEqual((info["state"], info.get("exit_code")), ("exited", 0), info)
        after = (self.objects(ma), self.refs(ma))
        return p, info, before, after

    def assert_mirror_unchanged(self, p, before, after):
        """Only the pod's branch (made at create, at the base commit) is new; no object."""
        self.assertEqual(before[0], after[0], "objects changed in the mirror")
        extra = {k: v for k, v in after[1].items() if k not in before[1]}
        self.assertEqual(extra, {"refs/heads/" + p["branch"]: self.base})
        for k, v in before[1].items():
            self.assertEqual(after[1].get(k), v, k)

    def podgit(self, pid):
        return os.path.join(os.path.realpath(self.rdata), "pods", pid, "git")

    # ---- (a) the honest path ---------------------------------------------------------------

    def test_a_own_branch_comes_back_and_the_next_pod_sees_it(self):
        ma = self.mirror_of(self.repo)
        p = self.create_pod(self.repo, "--", "sh", "-c",
                            "echo 'from pod one' > own.txt && git add own.txt && "
                            f"{COMMIT} 'own work' && git rev-parse HEAD")
        info = self.wait_pod(p["id"])
        self.assertEqual((info["state"], info.get("exit_code"), info["reason"]),
                         ("exited", 0, ""), info)
        head = re.search(r"\b([0-9a-f]{40})\b", self.recording(p["id"])).group(1)
        self.assertEqual(gitdir(ma, "rev-parse", p["branch"]).stdout.strip(), head)
        self.assertEqual(gitdir(ma, "rev-parse", head + "^").stdout.strip(), self.base)
        self.assertEqual(gitdir(ma, "fsck", "--no-dangling", "--no-progress").returncode, 0)
        # No staging dir, helper dir or FIFO left behind.
        self.assertFalse([f for f in os.listdir(os.path.join(self.rdata, "mirrors"))
                          if ".in-" in f or ".fb-" in f])
        # A second pod on the same repo, based on that branch, reads the file.
        p2 = self.create_pod(self.repo, "--base-ref", p["branch"], "--", "sh", "-c",
                             "cat own.txt; git log -1 --format=%s")
        info2 = self.wait_pod(p2["id"])
        self.assertEqual((info2["state"], info2.get("exit_code")), ("exited", 0), info2)
        out = self.recording(p2["id"])
        self.assertIn("from pod one", out)
        self.assertIn("own work", out)

    # ---- (b) theft of another repository's mirror -----------------------------------------

    def test_b_commondir_into_another_mirror_is_refused(self):
        # Same branch name as B's pod branch, so that through commondir the host would resolve
        # this pod's branch to B's.
        script = ("echo 'a work' > a.txt && git add a.txt && " + COMMIT + " 'a work' && "
                  'G=$(git rev-parse --absolute-git-dir) && echo "$MB" > "$G/commondir" && '
                  "echo PLANTED")
        p, info, before, after = self.run_attack(script, "--branch", self.b_branch,
                                                 "--env", "MB=" + self.mirror_b)
        self.assertIn("PLANTED", self.recording(p["id"]))
        g = self.podgit(p["id"])
        # Positive control: the attack is live on the host (git there follows commondir).
        self.assertEqual(harness.read(os.path.join(g, "commondir")).strip(), self.mirror_b)
        r = gitdir(g, "rev-parse", self.b_branch + "^{commit}")
        self.assertEqual(r.stdout.strip(), self.b_secret, r.stderr)
        # The fetch-back refused it; this mirror never got B's commit.
        self.assertIn("fetch-back of " + self.b_branch + " refused", info["reason"])
        self.assertNotEqual(gitdir(self.mirror_of(self.repo), "cat-file", "-e",
                                   self.b_secret).returncode, 0)
        self.assert_mirror_unchanged(p, before, after)
        self.assertIn("refused", self.audit_reason(p["id"]))

    def test_b_alternates_and_symlinked_ref_into_another_mirror_are_refused(self):
        ref_b = os.path.join(self.mirror_b, "refs", "heads", self.b_branch)
        self.assertTrue(os.path.isfile(ref_b), ref_b)  # a loose ref file in B's mirror
        script = ('G=$(git rev-parse --absolute-git-dir) && B=$(git branch --show-current) && '
                  'echo "$MB/objects" > "$G/objects/info/alternates" && '
                  'rm "$G/refs/heads/$B" && ln -s "$REFB" "$G/refs/heads/$B" && echo PLANTED')
        p, info, before, after = self.run_attack(script, "--env", "MB=" + self.mirror_b,
                                                 "--env", "REFB=" + ref_b)
        self.assertIn("PLANTED", self.recording(p["id"]))
        g = self.podgit(p["id"])
        link = os.path.join(g, "refs", "heads", p["branch"])
        # Positive control: the link and the alternate point at B's real commit.
        self.assertTrue(os.path.islink(link))
        self.assertEqual(os.path.realpath(link), os.path.realpath(ref_b))
        self.assertEqual(harness.read(link).strip(), self.b_secret)
        self.assertEqual(gitdir(self.mirror_b, "cat-file", "-t", self.b_secret).stdout.strip(),
                         "commit")
        r = gitdir(g, "rev-parse", p["branch"] + "^{commit}")
        self.assertEqual(r.stdout.strip(), self.b_secret, r.stderr)
        # Refused; B's commit is not in A's mirror; A's mirror is unchanged.
        self.assertIn("refused", info["reason"])
        self.assertNotEqual(gitdir(self.mirror_of(self.repo), "cat-file", "-e",
                                   self.b_secret).returncode, 0)
        self.assert_mirror_unchanged(p, before, after)

    # ---- (c) [include] of host files --------------------------------------------------------

    def test_c_include_of_host_files_is_never_opened_and_the_branch_comes_back(self):
        bait = os.path.join(self.rtmp, "bait.fifo")
        os.mkfifo(bait, 0o600)
        opened = threading.Event()

        def writer():  # blocks until somebody opens the FIFO for reading
            with open(bait, "w") as f:
                opened.set()
                f.write("[bait]\n\tseen = yes\n")

        t = threading.Thread(target=writer, daemon=True)
        t.start()
        pem = os.path.join(os.path.realpath(self.rdata), "identity.pem")
        self.assertTrue(os.path.exists(pem))
        script = ("echo inc > inc.txt && git add inc.txt && " + COMMIT + " 'inc work' && "
                  "git rev-parse HEAD && G=$(git rev-parse --absolute-git-dir) && "
                  "printf '[include]\\n\\tpath = %s\\n[include]\\n\\tpath = %s\\n' "
                  '"$BAIT" "$PEM" >> "$G/config" && echo PLANTED')
        p, info, _, _ = self.run_attack(script, "--env", "BAIT=" + bait, "--env", "PEM=" + pem)
        out = self.recording(p["id"])
        self.assertIn("PLANTED", out)
        head = re.search(r"\b([0-9a-f]{40})\b", out).group(1)
        # The branch came back, nothing was refused, and nobody opened the FIFO.
        self.assertEqual(info["reason"], "", info)
        self.assertEqual(gitdir(self.mirror_of(self.repo), "rev-parse",
                                p["branch"]).stdout.strip(), head)
        self.assertFalse(opened.is_set(), "the runner opened a file named by the pod's config")
        # Positive control: git on the host reading that git dir opens the FIFO (the writer
        # unblocks) and then parses the runner's key (and chokes on it).
        r = gitdir(self.podgit(p["id"]), "config", "--list", timeout=30)
        self.assertTrue(opened.wait(10))
        self.assertIn("bad config line 1 in file " + pem, r.stderr)
        t.join(10)

    # ---- (d) refusals -----------------------------------------------------------------------

    def refused(self, script, want):
        p, info, before, after = self.run_attack(script, keep=False)
        self.assertIn("fetch-back of " + p["branch"] + " refused", info["reason"], info)
        self.assertIn(want, info["reason"])
        self.assert_mirror_unchanged(p, before, after)
        self.assertIn(want, self.audit_reason(p["id"]))
        self.assertFalse(os.path.exists(os.path.join(self.rdata, "pods", p["id"])))
        return info

    def test_d_oversized_pack_is_refused(self):
        self.refused("head -c 3000000 /dev/urandom > big.bin && git add big.bin && "
                     + COMMIT + " big",
                     "larger than the limit of 1048576 bytes")

    def test_d_ref_name_other_than_the_pods_branch_is_refused(self):
        # The pod's branch made a symref to another branch: the helper reports the ref it read.
        self.refused("echo o > o.txt && git add o.txt && " + COMMIT + " other && "
                     "git branch other && B=$(git branch --show-current) && "
                     'git symbolic-ref "refs/heads/$B" refs/heads/other',
                     "ref name 'refs/heads/other' is not the pod's branch")

    def test_d_ref_to_a_missing_object_is_refused(self):
        self.refused('G=$(git rev-parse --absolute-git-dir) && B=$(git branch --show-current) && '
                     'echo 0123456789abcdef0123456789abcdef01234567 > "$G/refs/heads/$B"',
                     "no such object")

    # ---- (e) symlinks and removal -------------------------------------------------------------

    def test_e_symlinks_to_host_dirs_do_not_make_removal_delete_host_files(self):
        victim = os.path.join(self.rtmp, "victim")
        os.makedirs(os.path.join(victim, "sub"))
        for f in ("keep.txt", "sub/keep.txt"):
            with open(os.path.join(victim, f), "w") as fh:
                fh.write("keep\n")
        script = ('G=$(git rev-parse --absolute-git-dir) && ln -s "$V" evil && '
                  'ln -s "$V" "$G/evil" && mkdir -p deep/a/b && ln -s "$V" deep/a/b/evil && '
                  'rm -rf src && ln -s "$V" src && echo PLANTED && sleep 987')
        p = self.create_pod(self.repo, "--env", "V=" + victim, "--", "sh", "-c", script)
        upper = os.path.join(self.rdata, "pods", p["id"], "upper")
        # Positive control: from the host, the planted links reach the victim dir.
        wait_for(lambda: os.path.islink(os.path.join(upper, "src")), 60, what="links planted")
        for rel in ("evil", "deep/a/b/evil", "src"):
            self.assertIn("keep.txt", os.listdir(os.path.join(upper, rel)))
        self.assertIn("keep.txt", os.listdir(os.path.join(self.podgit(p["id"]), "evil")))
        self.assertEqual(self.ctl("pod", "stop", p["id"]).returncode, 0)
        info = self.wait_pod(p["id"])
        self.assertEqual(info["state"], "stopped", info)
        wait_for(lambda: not os.path.exists(os.path.join(self.rdata, "pods", p["id"])), 30,
                 what="pod dir removed")
        for f in ("keep.txt", "sub/keep.txt"):
            self.assertEqual(harness.read(os.path.join(victim, f)), "keep\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
