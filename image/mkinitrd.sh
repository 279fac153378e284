#!/usr/bin/env bash
# image/mkinitrd.sh ROOTFS KVER OUT.cpio — the appliance's initramfs, built from the rootfs's own
# binaries (same versions as the OS): dash, mount, switch_root, kmod, veritysetup, dd, sleep and
# their libraries, plus the kernel modules for dm-verity, erofs and common disk controllers
# (virtio, NVMe, AHCI/SATA, USB storage), in dependency order. /init is initrd/init.
# Reproducible: sorted file list, every mtime = SOURCE_DATE_EPOCH, owner root, newc format.
set -euo pipefail
root=$1 kver=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t"/{bin,sbin,dev,proc,sys,run,sysroot,lib/modules/$kver,usr}
ln -s ../bin "$t/usr/bin"; ln -s ../sbin "$t/usr/sbin"; ln -s ../lib "$t/usr/lib"; ln -s lib "$t/lib64"
bins="/bin/sh /bin/mount /sbin/switch_root /bin/kmod /sbin/veritysetup /bin/dd /bin/sleep /bin/cat"
for b in $bins; do
  src=$(chroot "$root" readlink -f "$b")
  cp "$root$src" "$t$b"
  chroot "$root" ldd "$src" | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' |
    while read -r lib; do
      real=$(chroot "$root" readlink -f "$lib")
      mkdir -p "$t$(dirname "$lib")"
      [ -e "$t$lib" ] || cp "$root$real" "$t$lib"
    done
done
ln -s kmod "$t/bin/insmod"
# Modules in load order (modprobe --show-depends prints each dependency before its user).
mods="virtio_pci virtio_blk virtio_scsi nvme ahci sd_mod usb_storage uas xhci_pci ehci_pci
  dm_mod dm_verity erofs"
: >"$t/modules"
for m in $mods; do
  chroot "$root" modprobe -S "$kver" --show-depends "$m" 2>/dev/null | awk '$1 == "insmod" {print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  mkdir -p "$t$(dirname "$ko")"
  cp "$root$ko" "$t$ko"
  echo "$ko" >>"$t/modules"
done
install -m 0755 "$here/initrd/init" "$t/init"
find "$t" -print0 | xargs -0 touch -h -d "@${SOURCE_DATE_EPOCH:-0}"
(cd "$t" && find . -print0 | LC_ALL=C sort -z | cpio --null --create --format=newc --owner=0:0 \
  --reproducible --quiet) | zstd -q -19 -T1 >"$out"
