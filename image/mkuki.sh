#!/usr/bin/env bash
# image/mkuki.sh STUB KERNEL INITRD CMDLINE OSREL OUT — a unified kernel image: systemd's EFI
# stub with .osrel, .cmdline, .linux and .initrd sections added by objcopy (bookworm has no
# ukify). Each section is placed after the stub's last one, aligned to its SectionAlignment, so
# the PE stays valid. The stub ignores a boot-loader command line when its .cmdline is present
# and Secure Boot is on; with Secure Boot off, systemd-boot's `editor no` keeps it fixed.
set -euo pipefail
stub=$1 kernel=$2 initrd=$3 cmdline=$4 osrel=$5 out=$6
align=$((16#$(objdump -p "$stub" | awk '$1 == "SectionAlignment" {print $2}')))
# End of the stub's last section (VMA + size), then the next aligned address.
end=$(objdump -h "$stub" | awk 'NF == 7 && $1 ~ /^[0-9]+$/ {print $3, $4}' |
  while read -r size vma; do echo $((16#$size + 16#$vma)); done | sort -n | tail -1)
next() { echo $(( ($1 + align - 1) / align * align )); }
o_osrel=$(next "$end")
o_cmdline=$(next $((o_osrel + $(stat -Lc %s "$osrel"))))
o_linux=$(next $((o_cmdline + $(stat -Lc %s "$cmdline"))))
o_initrd=$(next $((o_linux + $(stat -Lc %s "$kernel"))))
objcopy \
  --add-section .osrel="$osrel" --change-section-vma .osrel=$(printf 0x%x "$o_osrel") \
  --add-section .cmdline="$cmdline" --change-section-vma .cmdline=$(printf 0x%x "$o_cmdline") \
  --add-section .linux="$kernel" --change-section-vma .linux=$(printf 0x%x "$o_linux") \
  --add-section .initrd="$initrd" --change-section-vma .initrd=$(printf 0x%x "$o_initrd") \
  "$stub" "$out"
# objcopy stamps the PE header with the current time (and a checksum over it): set the time to
# SOURCE_DATE_EPOCH and the checksum to 0 (UEFI does not check it) so the UKI is reproducible.
python3 - "$out" "${SOURCE_DATE_EPOCH:-0}" <<'PY'
import struct, sys
path, sde = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(0x3C)
    pe = struct.unpack("<I", f.read(4))[0]
    f.seek(pe)
    assert f.read(4) == b"PE\0\0", "not a PE file"
    f.seek(pe + 8)
    f.write(struct.pack("<I", sde & 0xFFFFFFFF))  # COFF TimeDateStamp
    f.seek(pe + 24 + 64)
    f.write(struct.pack("<I", 0))  # optional header CheckSum
PY
