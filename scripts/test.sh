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

echo "$passed passed, $failed failed"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
