#!/usr/bin/env bash
# image/build.sh — assemble the flashable airmesh appliance disk (GPT, UEFI) from Debian 12
# packages and the airmesh release binaries. Run as root (mmdebstrap --mode=root, chroot).
#
#   image/build.sh --bins DIR --ui DIR --out DIR [--work DIR]
#
# Steps (each names itself on failure):
#   1. rootfs      mmdebstrap (minbase + systemd + kernel + the binaries' runtime libraries) into a
#                  directory, offline from the internet: only the configured Debian mirror.
#   2. customize   airmesh binaries, console files, units, user, air-gap defaults; strip apt,
#                  docs, caches, drivers an appliance does not need.
#   3. manifest    packages (name, version, sha256 of the .deb from the signed index), kernel,
#                  airmesh commit; written into the rootfs and beside the image.
#   4. os          erofs of the whole root (fixed UUID, timestamps = SOURCE_DATE_EPOCH), then
#                  dm-verity hash tree (fixed salt and UUID) → root hash.
#   5. initrd      a small custom initramfs: dash + veritysetup + the storage/dm/erofs modules;
#                  opens dm-verity with the root hash from the kernel command line, reads the
#                  whole OS through it once (any changed byte fails the boot), switches root.
#   6. uki         kernel + initrd + command line (with the root hash) + os-release joined with
#                  objcopy onto systemd's linuxx64.efi.stub → EFI/Linux/airmesh-a.efi.
#   7. esp         FAT image with systemd-boot (editor off, timeout 0) and the UKI.
#   8. disk        sfdisk on a sparse file (fixed disk/partition GUIDs) + dd conv=notrunc.
# The data partition is NOT in the image: systemd-repart creates it on first boot.
set -euo pipefail
export LC_ALL=C.UTF-8 TZ=UTC

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
BINS="" UI="" OUT="" WORK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bins) BINS=$2; shift 2 ;;
    --ui) UI=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "image/build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$BINS" ] && [ -n "$UI" ] && [ -n "$OUT" ] || {
  echo "usage: image/build.sh --bins DIR --ui DIR --out DIR [--work DIR]" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "image/build.sh: must run as root (mmdebstrap, chroot)" >&2; exit 1; }
for b in airmeshd airmeshctl airmesh-runner airmesh-notify airmesh-mcp; do
  [ -x "$BINS/$b" ] || { echo "image/build.sh: $BINS/$b missing" >&2; exit 1; }
done
[ -f "$UI/index.html" ] || { echo "image/build.sh: $UI/index.html missing (run make ui)" >&2; exit 1; }

VERSION=$(sed -n 's/^#define AM_VERSION "\(.*\)"/\1/p' "$REPO/common/version.h")
# The airmesh commit is the last one that changed what goes into the image (see srcrev.sh), so
# commits elsewhere (tests, docs) neither change the image nor miss the cache. Every timestamp in
# the OS is that commit's time: same commit + same mirror state → same OS bytes.
read -r COMMIT SDE < <("$HERE/srcrev.sh")
COMMIT=${AIRMESH_COMMIT:-$COMMIT}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$SDE}
SUITE=bookworm
NAME=airmesh-$VERSION-amd64

# Disk layout, MiB. Slots are fixed-size so that slot B can receive a later OS of the same size.
ESP_MB=128 ROOT_MB=1024 VERITY_MB=64 FREE_MB=320
# Fixed identities (reproducible, and how the initrd and repart find things).
DISK_GUID=6a1f3c4e-2b7d-4e59-9a61-0d3c5e7f8a90
ESP_GUID=6a1f3c4e-2b7d-4e59-9a61-000000000001
ROOTA_GUID=6a1f3c4e-2b7d-4e59-9a61-0000000000a1
VERA_GUID=6a1f3c4e-2b7d-4e59-9a61-0000000000a2
ROOTB_GUID=6a1f3c4e-2b7d-4e59-9a61-0000000000b1
VERB_GUID=6a1f3c4e-2b7d-4e59-9a61-0000000000b2
EROFS_UUID=6a1f3c4e-2b7d-4e59-9a61-0000000000e1
VERITY_UUID=6a1f3c4e-2b7d-4e59-9a61-0000000000f1
VERITY_SALT=$(printf 'airmesh-verity-%s' "$VERSION" | sha256sum | cut -c1-64)
T_ESP=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
T_ROOT=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709        # root, x86-64 (discoverable partitions spec)
T_VERITY=2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5      # root verity, x86-64

WORK=${WORK:-$OUT/work}
ROOT=$WORK/rootfs
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
step() { printf '[%4ss] image: %s\n' "$SECONDS" "$*" >&2; }
die() { echo "image/build.sh: $*" >&2; exit 1; }

# ---- 1. rootfs -------------------------------------------------------------------------------
step "1/8 rootfs: mmdebstrap $SUITE (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
# Runtime libraries of the binaries, found with ldd and mapped to their Debian packages on this
# (bookworm) build host, so the list follows the code without being kept by hand.
libpkgs=$(for b in "$BINS"/*; do ldd "$b"; done | awk '$3 ~ /^\// {print $3}' | sort -u |
  while read -r lib; do
    real=$(readlink -f "$lib")
    for p in "$lib" "$real" "/usr$lib" "/usr$real" "${lib#/usr}" "${real#/usr}"; do
      dpkg -S "$p" 2>/dev/null && break
    done
  done | cut -d: -f1 | sort -u | tr '\n' ',')
[ -n "$libpkgs" ] || die "rootfs: could not map the binaries' libraries to packages"
PKGS="systemd,systemd-sysv,udev,dbus,kmod,linux-image-amd64,e2fsprogs,util-linux,iproute2"
PKGS="$PKGS,nftables,cryptsetup-bin,systemd-timesyncd,ca-certificates,git,${libpkgs%,}"
# AIRMESH_IMAGE_BASE=DIR (development only): keep the mmdebstrap result in DIR and reuse it.
BASE=${AIRMESH_IMAGE_BASE:-}
if [ -n "$BASE" ] && [ -d "$BASE/rootfs" ]; then
  cp -a "$BASE/rootfs" "$ROOT" && cp -a "$BASE/hook" "$WORK/hook"
else
mmdebstrap --quiet --mode=root --variant=minbase --format=directory \
  --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='chroot "$1" dpkg-query -W -f "\${Package}=\${Version}\n" | sort > "$1/tmp/installed"' \
  --customize-hook='chroot "$1" sh -c "xargs apt-cache show --no-all-versions < /tmp/installed" > "$1/tmp/stanzas"' \
  --customize-hook="sync-out /tmp $WORK/hook" \
  "$SUITE" "$ROOT" >"$WORK/mmdebstrap.log" 2>&1 || { tail -30 "$WORK/mmdebstrap.log" >&2; die "rootfs: mmdebstrap failed (log: $WORK/mmdebstrap.log)"; }
  if [ -n "$BASE" ]; then rm -rf "$BASE"; mkdir -p "$BASE"; cp -a "$ROOT" "$BASE/rootfs"; cp -a "$WORK/hook" "$BASE/hook"; fi
fi

# ---- 2. customize ----------------------------------------------------------------------------
step "2/8 customize"
KVER=$(ls "$ROOT/lib/modules" | sort -V | tail -1)
[ -n "$KVER" ] || die "customize: no kernel in the rootfs"
cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
# The appliance updates by whole OS images (slot B), never by apt: no apt, no apt timers.
chroot "$ROOT" dpkg --purge --force-remove-essential --force-depends apt >/dev/null 2>&1 ||
  die "customize: dpkg --purge apt"
rm -rf "$ROOT"/boot/* "$ROOT"/var/cache/* "$ROOT"/var/log/* "$ROOT"/var/lib/apt "$ROOT"/etc/apt \
  "$ROOT"/tmp/* "$ROOT"/var/tmp/* "$ROOT"/var/cache/ldconfig "$ROOT"/etc/initramfs-tools \
  "$ROOT"/usr/share/initramfs-tools "$ROOT"/var/lib/dbus/machine-id "$ROOT"/etc/ssh
# Drivers a headless x86 server appliance does not load (sound, radio, cameras, GPUs beyond the
# firmware framebuffer, staging): smaller OS, less attack surface.
M=$ROOT/lib/modules/$KVER/kernel
rm -rf "$M/sound" "$M/drivers/media" "$M/drivers/gpu/drm/amd" "$M/drivers/gpu/drm/nouveau" \
  "$M/drivers/gpu/drm/radeon" "$M/drivers/gpu/drm/i915" "$M/drivers/net/wireless" \
  "$M/net/wireless" "$M/net/mac80211" "$M/net/bluetooth" "$M/drivers/bluetooth" \
  "$M/drivers/staging" "$M/drivers/infiniband" "$M/drivers/isdn" "$M/drivers/iio" \
  "$M/drivers/input/joystick" "$M/drivers/input/touchscreen" "$M/drivers/comedi"
chroot "$ROOT" depmod "$KVER"
: >"$ROOT/etc/machine-id"           # read-only root: systemd keeps a transient id in /run
echo airmesh >"$ROOT/etc/hostname"
ln -sf ../run/airmesh/resolv.conf "$ROOT/etc/resolv.conf"
ln -sf ../run/airmesh/issue "$ROOT/etc/issue"
ln -sf /usr/share/zoneinfo/UTC "$ROOT/etc/localtime"
# airmeshd's own system user (fixed ids: /etc is read-only on the appliance).
chroot "$ROOT" groupadd --system --gid 990 airmesh
chroot "$ROOT" useradd --system --uid 990 --gid 990 --home-dir /var/lib/airmesh --no-create-home \
  --shell /usr/sbin/nologin airmesh
install -d -m 0755 "$ROOT/usr/share/airmesh"
install -m 0755 "$BINS/airmeshd" "$BINS/airmeshctl" "$BINS/airmesh-runner" "$BINS/airmesh-notify" \
  "$BINS/airmesh-mcp" "$ROOT/usr/bin/"
cp -r "$UI" "$ROOT/usr/share/airmesh/ui"
cp -r "$HERE/rootfs/." "$ROOT/"
chroot "$ROOT" systemctl enable --quiet systemd-networkd.service nftables.service \
  airmesh-repart.service airmesh-netconfig.service airmeshd.service airmesh-runner.service \
  airmesh-banner.service airmesh-airgap.timer
chroot "$ROOT" systemctl disable --quiet systemd-timesyncd.service e2scrub_reap.service 2>/dev/null || true
# First boot is every boot on a read-only /etc: nothing may prompt or try to commit to /etc.
chroot "$ROOT" systemctl mask --quiet systemd-firstboot.service systemd-repart.service \
  systemd-machine-id-commit.service e2scrub_all.timer fstrim.timer 2>/dev/null
# No compilers, no package caches, no ssh: check rather than trust.
for bad in usr/bin/gcc usr/bin/cc usr/bin/apt usr/sbin/sshd var/cache/apt; do
  [ ! -e "$ROOT/$bad" ] || die "customize: $bad must not be in the image"
done

# ---- 3. manifest -----------------------------------------------------------------------------
step "3/8 manifest"
chroot "$ROOT" dpkg-query -W -f '${Package}\t${Version}\t${Architecture}\n' | sort >"$WORK/packages.tsv"
python3 "$HERE/manifest.py" packages "$WORK/packages.tsv" "$WORK/hook/stanzas" \
  --version "$VERSION" --commit "$COMMIT" --kernel "$KVER" --sde "$SOURCE_DATE_EPOCH" \
  --bins "$BINS" >"$ROOT/usr/share/airmesh/manifest.json" || die "manifest: packages"
rm -rf "$ROOT/var/lib/dpkg/"*-old "$ROOT/var/lib/dpkg/available"
# Clamp every timestamp we touched (mmdebstrap already honours SOURCE_DATE_EPOCH for its own).
find "$ROOT" -newermt "@$SOURCE_DATE_EPOCH" -print0 | xargs -0r touch -h -d "@$SOURCE_DATE_EPOCH"
# Exposure score of the hardened unit, measured offline on the finished tree.
systemd-analyze security --offline=true --root="$ROOT" airmeshd.service >"$WORK/security.txt" 2>&1 || true
SCORE=$(sed -n 's/.*Overall exposure level for airmeshd.service: \([0-9.]*\).*/\1/p' "$WORK/security.txt")

# ---- 4. os: erofs + dm-verity ------------------------------------------------------------------
step "4/8 os: mkfs.erofs + veritysetup"
mkfs.erofs --quiet -zlz4hc -T"$SOURCE_DATE_EPOCH" --ignore-mtime -U "$EROFS_UUID" \
  "$WORK/os.erofs" "$ROOT" || die "os: mkfs.erofs"
osz=$(stat -c %s "$WORK/os.erofs")
[ "$osz" -le $((ROOT_MB << 20)) ] || die "os: $osz bytes do not fit the ${ROOT_MB} MiB slot"
veritysetup format --salt="$VERITY_SALT" --uuid="$VERITY_UUID" \
  --root-hash-file="$WORK/roothash" "$WORK/os.erofs" "$WORK/os.verity" >"$WORK/verity.txt" ||
  die "os: veritysetup format"
ROOTHASH=$(cat "$WORK/roothash")
[ "$(stat -c %s "$WORK/os.verity")" -le $((VERITY_MB << 20)) ] || die "os: hash tree too big"
python3 "$HERE/manifest.py" finish "$ROOT/usr/share/airmesh/manifest.json" \
  --roothash "$ROOTHASH" --os-bytes "$osz" --os-sha256 "$(sha256sum <"$WORK/os.erofs" | cut -c1-64)" \
  --security "${SCORE:-unknown}" >"$OUT/$NAME.manifest.json"

# ---- 5. initrd ---------------------------------------------------------------------------------
step "5/8 initrd"
"$HERE/mkinitrd.sh" "$ROOT" "$KVER" "$WORK/initrd.cpio" || die "initrd: mkinitrd.sh"

# ---- 6. uki ------------------------------------------------------------------------------------
step "6/8 uki: objcopy on linuxx64.efi.stub"
STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
CMDLINE="airmesh.slot=a airmesh.roothash=$ROOTHASH ro console=tty1 console=ttyS0,115200"
CMDLINE="$CMDLINE systemd.gpt_auto=0 quiet loglevel=3 systemd.show_status=error"
printf '%s' "$CMDLINE" >"$WORK/cmdline"
printf 'NAME="airmesh"\nID=airmesh\nID_LIKE=debian\nVERSION_ID=%s\nPRETTY_NAME="airmesh %s (slot a)"\nIMAGE_VERSION=%s\n' \
  "$VERSION" "$VERSION" "$VERSION" >"$WORK/os-release"
"$HERE/mkuki.sh" "$STUB" "$WORK/vmlinuz" "$WORK/initrd.cpio" "$WORK/cmdline" "$WORK/os-release" \
  "$WORK/airmesh-a.efi" || die "uki: mkuki.sh"

# ---- 7. esp ------------------------------------------------------------------------------------
step "7/8 esp: mkfs.vfat + mcopy"
E=$WORK/espdir
mkdir -p "$E/EFI/BOOT" "$E/EFI/systemd" "$E/EFI/Linux" "$E/loader"
cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi "$E/EFI/BOOT/BOOTX64.EFI"
cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi "$E/EFI/systemd/systemd-bootx64.efi"
cp "$WORK/airmesh-a.efi" "$E/EFI/Linux/airmesh-a.efi"
printf 'timeout 0\neditor no\nauto-entries no\nauto-firmware no\ndefault airmesh-a.efi\n' >"$E/loader/loader.conf"
find "$E" -print0 | xargs -0 touch -h -d "@$SOURCE_DATE_EPOCH"
rm -f "$WORK/esp.img"
mkfs.vfat -C --invariant -i 41524d53 -n AIRMESH-ESP -F 32 "$WORK/esp.img" $((ESP_MB * 1024)) >/dev/null ||
  die "esp: mkfs.vfat"
mcopy -s -m -i "$WORK/esp.img" "$E"/EFI "$E"/loader :: || die "esp: mcopy"

# ---- 8. disk -----------------------------------------------------------------------------------
step "8/8 disk: sfdisk + dd"
IMG=$OUT/$NAME.img
rm -f "$IMG"
s_esp=1 s_ra=$((1 + ESP_MB)) s_va=$((1 + ESP_MB + ROOT_MB))
s_rb=$((s_va + VERITY_MB)) s_vb=$((s_va + VERITY_MB + ROOT_MB))
total=$((s_vb + VERITY_MB + FREE_MB + 1))
truncate -s "${total}M" "$IMG"
mib() { echo $(($1 * 2048)); }
sfdisk --quiet --no-reread --no-tell-kernel "$IMG" <<EOF || die "disk: sfdisk"
label: gpt
label-id: $DISK_GUID
first-lba: 2048
start=$(mib $s_esp), size=$(mib $ESP_MB), type=$T_ESP, uuid=$ESP_GUID, name="esp"
start=$(mib $s_ra), size=$(mib $ROOT_MB), type=$T_ROOT, uuid=$ROOTA_GUID, name="airmesh-root-a"
start=$(mib $s_va), size=$(mib $VERITY_MB), type=$T_VERITY, uuid=$VERA_GUID, name="airmesh-verity-a"
start=$(mib $s_rb), size=$(mib $ROOT_MB), type=$T_ROOT, uuid=$ROOTB_GUID, name="airmesh-root-b"
start=$(mib $s_vb), size=$(mib $VERITY_MB), type=$T_VERITY, uuid=$VERB_GUID, name="airmesh-verity-b"
EOF
put() { dd if="$1" of="$IMG" bs=1M seek="$2" conv=notrunc,sparse status=none || die "disk: dd $1"; }
put "$WORK/esp.img" $s_esp
put "$WORK/os.erofs" $s_ra
put "$WORK/os.verity" $s_va
cp "$WORK/security.txt" "$OUT/$NAME.security.txt"
# What the boot test and the README need to know about this build, one key=value per line.
cat >"$OUT/$NAME.env" <<EOF
IMAGE=$NAME.img
VERSION=$VERSION
COMMIT=$COMMIT
KERNEL=$KVER
ROOTHASH=$ROOTHASH
OS_OFFSET=$((s_ra << 20))
OS_BYTES=$osz
VERITY_OFFSET=$((s_va << 20))
SECURITY_SCORE=${SCORE:-unknown}
BUILD_SECONDS=$SECONDS
EOF
step "done: $IMG ($(du -h --apparent-size "$IMG" | cut -f1) apparent, $(du -h "$IMG" | cut -f1) allocated; OS $((osz >> 20)) MiB; root hash $ROOTHASH)"
