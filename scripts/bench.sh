#!/usr/bin/env bash
# make bench: every benchmark under tests/bench, each printing its result beside a baseline
# measured in the same run, as a ratio. Results are also written to test-artifacts/bench.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}
trap '$BAZEL shutdown >/dev/null 2>&1 || true' EXIT
mkdir -p test-artifacts
out=test-artifacts/bench.txt
: > "$out"
targets=$($BAZEL query 'kind(cc_binary, //tests/bench/...)' 2>/dev/null)
[ -n "$targets" ] || { echo "no benchmarks"; exit 0; }
$BAZEL build -c opt $targets >/dev/null 2>&1 || $BAZEL build -c opt $targets || exit 1
rc=0
for t in $targets; do
  bin="bazel-bin/${t#//}"; bin="${bin/://}"
  echo "== $t" | tee -a "$out"
  tmp=$(mktemp -d)
  "$bin" "$tmp" 2>&1 | tee -a "$out" || rc=1
  rm -rf "$tmp"
done
exit $rc
