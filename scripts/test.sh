#!/usr/bin/env bash
# make test: every Bazel test (unit + integration, under ASan+UBSan), then the browser tests,
# ending with one summary line "N passed, N failed". Leaves no Bazel server running.
set -uo pipefail
cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}
mkdir -p test-artifacts
log=test-artifacts/bazel-test.log

trap '$BAZEL shutdown >/dev/null 2>&1 || true' EXIT

$BAZEL test --config=asan --test_summary=short //tests/... 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log" || true)
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE)' "$log" || true)
# A build failure runs no test: count it as a failure, never as a pass.
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
# Copy test logs (screenshots, outputs) out of bazel-testlogs for CI artifacts.
cp -rL bazel-testlogs/tests test-artifacts/ 2>/dev/null || true

# Browser tests (tests/e2e): Debian's Chromium on the console in ui/dist (make test built it),
# against the airmeshd/runner Bazel just built; node's test runner, counted into the summary.
e2e_log=test-artifacts/e2e.log
mkdir -p test-artifacts/e2e
E2E_ARTIFACTS=test-artifacts/e2e node --test --test-reporter=tap --test-timeout=120000 tests/e2e/ \
  2>&1 | tee "$e2e_log"
e2e_rc=${PIPESTATUS[0]}
e2e_passed=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$e2e_log" | tail -1)
e2e_failed=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$e2e_log" | tail -1)
passed=$((passed + ${e2e_passed:-0}))
failed=$((failed + ${e2e_failed:-0}))
if [ "$e2e_rc" -ne 0 ] && [ "${e2e_failed:-0}" -eq 0 ]; then failed=$((failed + 1)); fi

echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$e2e_rc" -eq 0 ] && [ "$failed" -eq 0 ]
