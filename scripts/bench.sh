#!/usr/bin/env bash
# make bench: every benchmark under tests/bench, each printing its result beside a baseline
# measured in the same run, as a ratio. Results are also written to test-artifacts/bench.txt.
# cc_binary targets run alone with a temp dir argument, except those tagged "bench_driven",
# which a driver script runs: tests/bench/runners_bench.py (a real airmeshd + simulated runners).
# tests/bench/terminal_bench.py (web terminal: airmeshd + a real runner + WebSocket viewers) is a
# driver with no cc_binary of its own.
# tests/bench/pods_bench.py drives a real airmeshd + airmesh-runner (pod start vs bwrap + git worktree).
# tests/bench/stall_bench.py: a 10 ms ticker pod's largest frame gap, quiet vs a login/pod flood.
# tests/bench/gateway_bench.py: the model gateway (a pod -> runner -> airmeshd -> test model
# server) against calling the same server directly: latency, requests/s, stream first byte.
# Binaries are taken from the -c opt output tree (`bazel info -c opt bazel-bin`), not from the
# bazel-bin symlink, which points at whatever configuration was built last.
set -uo pipefail
cd "$(dirname "$0")/.."
BAZEL=${BAZEL:-bazel}
trap '$BAZEL shutdown >/dev/null 2>&1 || true' EXIT
mkdir -p test-artifacts
out=test-artifacts/bench.txt
: > "$out"
targets=$($BAZEL query 'kind(cc_binary, //tests/bench/...)' 2>/dev/null)
[ -n "$targets" ] || { echo "no benchmarks"; exit 0; }
solo=$($BAZEL query 'kind(cc_binary, //tests/bench/...) except attr(tags, bench_driven, //tests/bench/...)' 2>/dev/null)
build=($targets //appliance:airmeshd //runner:airmesh-runner)
$BAZEL build -c opt "${build[@]}" >/dev/null 2>&1 || $BAZEL build -c opt "${build[@]}" || exit 1
bindir=$($BAZEL info -c opt bazel-bin 2>/dev/null) || exit 1
rc=0
for t in $solo; do
  bin="$bindir/${t#//}"; bin="${bin/://}"
  echo "== $t" | tee -a "$out"
  tmp=$(mktemp -d)
  "$bin" "$tmp" 2>&1 | tee -a "$out" || rc=1
  rm -rf "$tmp"
done
echo "== tests/bench/runners_bench.py" | tee -a "$out"
tmp=$(mktemp -d)
/usr/bin/python3 tests/bench/runners_bench.py --airmeshd "$bindir/appliance/airmeshd" \
  --client "$bindir/tests/bench/runners_bench_client" --ui ui/static "$tmp" 2>&1 | tee -a "$out" || rc=1
rm -rf "$tmp"
echo "== tests/bench/terminal_bench.py" | tee -a "$out"
tmp=$(mktemp -d)
/usr/bin/python3 tests/bench/terminal_bench.py --airmeshd "$bindir/appliance/airmeshd" \
  --runner "$bindir/runner/airmesh-runner" --ui ui/static "$tmp" 2>&1 | tee -a "$out" || rc=1
rm -rf "$tmp"
echo "== tests/bench/pods_bench.py" | tee -a "$out"
tmp=$(mktemp -d)
/usr/bin/python3 tests/bench/pods_bench.py --airmeshd "$bindir/appliance/airmeshd" \
  --runner "$bindir/runner/airmesh-runner" --ui ui/static "$tmp" 2>&1 | tee -a "$out" || rc=1
rm -rf "$tmp"
echo "== tests/bench/stall_bench.py" | tee -a "$out"
tmp=$(mktemp -d)
/usr/bin/python3 tests/bench/stall_bench.py --airmeshd "$bindir/appliance/airmeshd" \
  --runner "$bindir/runner/airmesh-runner" --ui ui/static "$tmp" 2>&1 | tee -a "$out" || rc=1
rm -rf "$tmp"
echo "== tests/bench/gateway_bench.py" | tee -a "$out"
tmp=$(mktemp -d)
/usr/bin/python3 tests/bench/gateway_bench.py --airmeshd "$bindir/appliance/airmeshd" \
  --runner "$bindir/runner/airmesh-runner" --ui ui/static "$tmp" 2>&1 | tee -a "$out" || rc=1
rm -rf "$tmp"
exit $rc
