#!/usr/bin/env bash
# image/cache.sh --bins DIR --ui DIR [--cache DIR] — print the directory holding the appliance
# image built from exactly these inputs, building it (image/build.sh) only when no such build is
# cached. The key hashes everything the build reads: image/ (scripts, units, overlay), the three
# binaries, the console files, the host's Debian package indexes (what mmdebstrap will install)
# and the versions of the build tools. Cache outside the repo (default /var/cache/airmesh-image),
# so a fresh clone on the same machine reuses it; the 3 newest builds are kept.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BINS="" UI="" CACHE=${AIRMESH_IMAGE_CACHE:-/var/cache/airmesh-image}
while [ $# -gt 0 ]; do
  case "$1" in
    --bins) BINS=$2; shift 2 ;;
    --ui) UI=$2; shift 2 ;;
    --cache) CACHE=$2; shift 2 ;;
    *) echo "image/cache.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$BINS" ] && [ -n "$UI" ] || { echo "usage: image/cache.sh --bins DIR --ui DIR [--cache DIR]" >&2; exit 2; }
tree_hash() { (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-64; }
key=$({
  echo "image $(tree_hash "$HERE")"
  for b in airmeshd airmeshctl airmesh-runner airmesh-notify airmesh-mcp; do echo "$b $(sha256sum <"$BINS/$b" | cut -c1-64)"; done
  echo "ui $(tree_hash "$UI")"
  cat /var/lib/apt/lists/*_InRelease 2>/dev/null | sha256sum
  dpkg-query -W -f '${Package} ${Version}\n' mmdebstrap erofs-utils cryptsetup-bin systemd-boot-efi \
    dosfstools mtools fdisk binutils cpio zstd 2>/dev/null
  echo "src $("$HERE/srcrev.sh") ${SOURCE_DATE_EPOCH:-}"
} | sha256sum | cut -c1-16)
dir=$CACHE/$key
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9                                   # one build at a time on this machine
if [ -f "$dir/done" ]; then
  echo "image: cached build $dir" >&2
else
  echo "image: no cached build for these inputs ($key): building" >&2
  rm -rf "$dir.tmp"
  start=$(date +%s)
  "$HERE/build.sh" --bins "$BINS" --ui "$UI" --out "$dir.tmp" --work "$dir.tmp/work" 2>&1 |
    tee "$dir.build.log" >&2
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "image: build failed (log: $dir.build.log)" >&2; exit 1; }
  rm -rf "$dir.tmp/work"
  mv "$dir.build.log" "$dir.tmp/build.log"
  echo "BUILD_WALL_SECONDS=$(($(date +%s) - start))" >>"$dir.tmp/"*.env
  touch "$dir.tmp/done"
  mv "$dir.tmp" "$dir"
  # Keep the 3 newest builds.
  ls -1dt "$CACHE"/*/ 2>/dev/null | tail -n +4 | xargs -r rm -rf
fi
echo "$dir"
