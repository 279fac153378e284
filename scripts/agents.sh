#!/usr/bin/env bash
# Install the agent CLIs pinned in tests/agents/package-lock.json (today: Claude Code) into a
# cache dir OUTSIDE the repo, keyed by the lock file's hash, and print that dir. It is an agents
# dir as `airmesh-runner run --agents-dir DIR` takes it: DIR/bin/<cli> (bound read-only into
# every pod, DIR/bin first on the pods' PATH). tests/integration/agent_test.py computes the same
# key to find it. Idempotent: a complete install (DIR/.complete) is
# reused, so only the first run pays (~390 MB, ~15 s here). Needs the npm registry, or a local
# mirror / cache (npm's own --offline rules apply); see README "Agent CLIs on a runner".
#   AIRMESH_AGENTS_CACHE  parent of the cache dirs (default /var/cache/airmesh/agents)
set -euo pipefail
cd "$(dirname "$0")/.."
src=tests/agents
cache=${AIRMESH_AGENTS_CACHE:-/var/cache/airmesh/agents}
key=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -c1-16)
dir="$cache/$key"
if [ ! -e "$dir/.complete" ]; then
  echo "agents: installing $(grep -o '"@[^"]*": "[^"]*"' "$src/package.json" | head -1) into $dir" >&2
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  cp "$src/package.json" "$src/package-lock.json" "$dir.tmp/"
  (cd "$dir.tmp" && npm ci --no-audit --no-fund --loglevel=error >&2)
  ln -s node_modules/.bin "$dir.tmp/bin"
  "$dir.tmp/bin/claude" --version >/dev/null # the native binary runs here
  touch "$dir.tmp/.complete"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
fi
echo "$dir"
