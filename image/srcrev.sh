#!/usr/bin/env bash
# image/srcrev.sh — print "COMMIT EPOCH": the last commit that changed anything the image is
# built from (the code of the three binaries, the console, image/ itself, the Bazel setup), and
# its commit time. "+dirty" is appended when those paths have uncommitted changes.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(image appliance runner pki common proto ui third_party WORKSPACE BUILD.bazel .bazelrc)
c=$(git log -1 --format='%H %ct' -- "${paths[@]}" 2>/dev/null || true)
[ -n "$c" ] || { echo "unknown 1700000000"; exit 0; }
set -- $c
dirty=""
[ -z "$(git status --porcelain -- "${paths[@]}" 2>/dev/null)" ] || dirty=+dirty
echo "$1$dirty $2"
