#!/usr/bin/env bash
# make test: every Bazel test (unit + integration, under ASan+UBSan), then the browser tests,
# ending with one summary line "N passed, N failed, N skipped" that counts test CASES (not
# targets), each skip listed above it with its reason (scripts/test_summary.py does the
# counting). Tests tagged `external` (they depend on the host: kernel, cgroups, uid) are never
# taken from Bazel's cache. Leaves no Bazel server running.
set -uo pipefail
cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}
mkdir -p test-artifacts
log=test-artifacts/bazel-test.log

trap '$BAZEL shutdown >/dev/null 2>&1 || true' EXIT

$BAZEL test --config=asan --test_summary=short //tests/... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# Which tests must never come from the cache (the summary fails if one did).
external=test-artifacts/external-tests.txt
$BAZEL query 'attr(tags, "\bexternal\b", tests(//tests/...))' >"$external" 2>/dev/null || true
# Copy test logs (screenshots, outputs) out of bazel-testlogs for CI artifacts.
rm -rf test-artifacts/tests
cp -rL bazel-testlogs/tests test-artifacts/ 2>/dev/null || true

# Browser tests (tests/e2e): Debian's Chromium on the console in ui/dist (make test built it),
# against the airmeshd/runner Bazel just built; node's test runner, counted into the summary
# (zero tests, e.g. no test files, is a failure).
e2e_log=test-artifacts/e2e.log
rm -rf test-artifacts/e2e
mkdir -p test-artifacts/e2e
E2E_ARTIFACTS=test-artifacts/e2e node --test --test-reporter=tap --test-timeout=120000 tests/e2e/ \
  2>&1 | tee "$e2e_log"
e2e_rc=${PIPESTATUS[0]}

echo "---- summary (test cases) ----"
/usr/bin/python3 scripts/test_summary.py "$log" "$rc" bazel-testlogs "$external" "$e2e_log" "$e2e_rc"
