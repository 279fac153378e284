#!/usr/bin/python3
"""scripts/test_summary.py — the counting half of scripts/test.sh (`make test`).

Counts test CASES, not Bazel targets, from what each suite itself reported:
- a Bazel target whose test.xml was written by the suite (the integration tests' harness writes
  JUnit XML): one case per <testcase>, skips with their reason;
- a cmocka target (Bazel's own generated test.xml): the `[ RUN ]` / `[ OK ]` / `[ FAILED ]` /
  `[ SKIPPED ]` lines of its test.log; a skip's reason is the "skip reason: ..." line the test
  printed before skip(); a case that started but never ended (a crash) is a failure, and so are
  cases announced by `Running N test(s)` that never ran;
- any other target (the fuzz drivers): one case, its target's status;
- the browser tests: node's TAP output (tests/pass/fail/skipped/cancelled counts, skip reasons).
A suite that reports zero cases is a failure; so is a target that failed though all of its
cases passed (its exit status: e.g. a sanitizer report at exit), a build failure, and a cached
result for a test tagged `external` (host-dependent: kernel, cgroups, uid are not in Bazel's
cache key).

Usage: test_summary.py BAZEL_LOG BAZEL_RC TESTLOGS_DIR EXTERNAL_TARGETS_FILE E2E_TAP E2E_RC
Prints the skips and failures, one per line, then the summary as its last line:
"N passed, N failed, N skipped". Exits 0 only when nothing failed.
"""
import os
import re
import sys
import xml.etree.ElementTree as ET

STATUS_RE = re.compile(r"^(//\S+)\s+(\(cached\) )?(PASSED|FAILED TO BUILD|FAILED|TIMEOUT|"
                       r"NO STATUS|FLAKY|INCOMPLETE|REMOTE FAILURE|SKIPPED)\b")
# Anywhere in the line: a test's own output without a final newline runs into cmocka's line.
CM_RE = re.compile(r"\[ {0,8}(RUN|OK|FAILED|SKIPPED|ERROR) {0,8}\] (\S+)\s*$")
CM_RUNNING = re.compile(r"^\[==========\] Running (\d+) test\(s\)\.")


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.lines = []

    def ok(self, n=1):
        self.passed += n

    def fail(self, suite, case, why):
        self.failed += 1
        self.lines.append("failed: %s %s: %s" % (suite, case, why))

    def skip(self, suite, case, why):
        self.skipped += 1
        self.lines.append("skipped: %s %s: %s" % (suite, case, why or "(no reason given)"))


def read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return None


def from_suite_xml(t, target, root):
    """JUnit XML written by the suite itself. Returns the number of cases."""
    n = 0
    for tc in root.iter("testcase"):
        n += 1
        name = tc.get("name", "?")
        bad = tc.find("failure")
        if bad is None:
            bad = tc.find("error")
        sk = tc.find("skipped")
        if bad is not None:
            t.fail(target, name, (bad.get("message") or bad.tag)[:300])
        elif sk is not None:
            t.skip(target, name, sk.get("message") or (sk.text or "").strip())
        else:
            t.ok()
    return n


def from_cmocka_log(t, target, log):
    """cmocka's own lines in test.log. Returns the number of cases, or None if not cmocka."""
    announced = [int(m.group(1)) for m in map(CM_RUNNING.match, log.splitlines()) if m]
    if not announced:
        return None
    n, current, reason = 0, None, None
    for line in log.splitlines():
        if line.startswith("skip reason: "):
            reason = line[len("skip reason: "):].strip()
            continue
        m = CM_RE.search(line)
        if not m:
            continue
        what, name = m.groups()
        if what == "RUN":
            if current:  # the previous case never ended
                n += 1
                t.fail(target, current, "started but never finished (crashed?)")
            current, reason = name, None
            continue
        if name != current:
            continue  # the summary lists at the end repeat names: already counted
        n += 1
        if what == "OK":
            t.ok()
        elif what == "SKIPPED":
            t.skip(target, name, reason)
        else:
            t.fail(target, name, "cmocka " + what)
        current = None
    if current:
        n += 1
        t.fail(target, current, "started but never finished (crashed?)")
    if n < sum(announced):
        for _ in range(sum(announced) - n):
            t.fail(target, "(not run)", "announced by cmocka but never run")
        n = sum(announced)
    return n


def main():
    bazel_log, bazel_rc, testlogs, ext_file, e2e_tap, e2e_rc = sys.argv[1:7]
    bazel_rc, e2e_rc = int(bazel_rc), int(e2e_rc)
    external = set((read(ext_file) or "").split())
    t = Tally()
    targets, cached = [], 0
    for line in (read(bazel_log) or "").splitlines():
        m = STATUS_RE.match(line)
        if m:
            targets.append((m.group(1), bool(m.group(2)), m.group(3)))
    seen = set()
    for target, is_cached, status in targets:
        if target in seen:
            continue
        seen.add(target)
        cached += is_cached
        if is_cached and target in external:
            t.fail(target, "(cached)", "a host-dependent test (tag external) was not run")
            continue
        pkg, _, name = target[2:].partition(":")
        d = os.path.join(testlogs, pkg, name)
        xml_text, log = read(os.path.join(d, "test.xml")), read(os.path.join(d, "test.log")) or ""
        before = t.failed
        n = None
        if status in ("PASSED", "FAILED", "FLAKY", "TIMEOUT") and xml_text:
            try:
                root = ET.fromstring(xml_text)
            except ET.ParseError as e:
                root = None
                t.fail(target, "(test.xml)", "unreadable: %s" % e)
            generated = "Generated test.log" in xml_text
            if root is not None and not generated:
                n = from_suite_xml(t, target, root)
            elif root is not None:
                n = from_cmocka_log(t, target, log)
                if n is None:  # neither: the target is its one case
                    n = 1
                    if status == "PASSED":
                        t.ok()
                    else:
                        t.fail(target, name, status)
        if n is None:
            t.fail(target, "(target)", status + " (no test results)")
            continue
        if n == 0:
            t.fail(target, "(suite)", "reported zero test cases")
        if status != "PASSED" and t.failed == before:
            t.fail(target, "(exit status)", status + " though every case passed: see its "
                   "test.log (sanitizer report at exit?)")
        if status == "PASSED" and t.failed != before:
            t.fail(target, "(status)", "Bazel says PASSED but cases failed")
    if bazel_rc != 0 and not targets:
        t.fail("bazel", "(build)", "bazel test exited %d without running tests" % bazel_rc)
    elif bazel_rc != 0 and t.failed == 0:
        t.fail("bazel", "(exit status)", "bazel test exited %d" % bazel_rc)

    # Browser tests: node --test's TAP.
    tap = read(e2e_tap)
    if tap is None:
        t.fail("e2e", "(suite)", "no output")
    else:
        counts = {}
        for k in ("tests", "pass", "fail", "skipped", "cancelled", "todo"):
            m = re.findall(r"^# %s (\d+)$" % k, tap, re.M)
            counts[k] = int(m[-1]) if m else None
        reasons = re.findall(r"^\s*ok \d+ - (.*?) # SKIP ?(.*)$", tap, re.M)
        if not counts["tests"]:
            t.fail("e2e", "(suite)", "node --test reported zero tests (no test files?)")
        else:
            t.ok(counts["pass"] or 0)
            for name, why in reasons:
                t.skip("e2e", name, why)
            # skips without a parsed reason line still count
            for _ in range((counts["skipped"] or 0) - len(reasons)):
                t.skip("e2e", "(?)", None)
            for name in re.findall(r"^\s*not ok \d+ - (.*?)(?: # .*)?$", tap, re.M):
                t.lines.append("failed: e2e %s" % name)
            t.failed += (counts["fail"] or 0) + (counts["cancelled"] or 0)
            if counts["todo"]:
                t.fail("e2e", "(todo)", "%d todo tests" % counts["todo"])
        if e2e_rc != 0 and t.failed == 0:
            t.fail("e2e", "(exit status)", "node --test exited %d" % e2e_rc)

    for line in t.lines:
        print(line)
    print("(%d Bazel targets, %d of them cached results; a cached result counts only for "
          "tests not tagged external)" % (len(seen), cached))
    print("%d passed, %d failed, %d skipped" % (t.passed, t.failed, t.skipped))
    return 0 if t.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
