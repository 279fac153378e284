#!/usr/bin/env python3
"""image/manifest.py — the image manifest (JSON): every Debian package with name, version,
architecture and the sha256 of its .deb (from the mirror's signed Packages index, as apt saw it
during the build), the kernel version, the airmesh version and commit, and the sha256 of each
airmesh binary. `packages` writes the copy that goes inside the OS; `finish` adds what only exists
after the OS is sealed (dm-verity root hash, OS size and sha256) for the copy beside the image."""
import argparse, hashlib, json, os, sys


def stanzas(path):
    """apt-cache show output → {(package, version): sha256}."""
    out, cur = {}, {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in list(f) + ["\n"]:
            line = line.rstrip("\n")
            if not line:
                if "Package" in cur and "Version" in cur:
                    out[(cur["Package"], cur["Version"])] = cur.get("SHA256", "")
                cur = {}
            elif not line.startswith(" ") and ":" in line:
                k, v = line.split(":", 1)
                cur[k] = v.strip()
    return out


def packages(a):
    index = stanzas(a.stanzas)
    pkgs, missing = [], []
    with open(a.tsv, encoding="utf-8") as f:
        for line in f:
            name, version, arch = line.rstrip("\n").split("\t")
            sha = index.get((name, version), "")
            if not sha:
                missing.append(name)
            pkgs.append({"name": name, "version": version, "arch": arch, "sha256": sha})
    if missing:
        sys.exit("manifest: no sha256 in the index for: " + ", ".join(missing))
    bins = {}
    for b in sorted(os.listdir(a.bins)):
        with open(os.path.join(a.bins, b), "rb") as f:
            bins["/usr/bin/" + b] = hashlib.sha256(f.read()).hexdigest()
    json.dump({"name": "airmesh", "version": a.version, "commit": a.commit,
               "source_date_epoch": int(a.sde), "kernel": a.kernel, "debian": "bookworm",
               "airmesh_binaries": bins, "packages": pkgs}, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


def finish(a):
    with open(a.manifest, encoding="utf-8") as f:
        m = json.load(f)
    m["os"] = {"filesystem": "erofs", "bytes": int(a.os_bytes), "sha256": a.os_sha256,
               "verity_root_hash": a.roothash, "slot": "a"}
    m["systemd_analyze_security_airmeshd"] = a.security
    json.dump(m, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


p = argparse.ArgumentParser()
sub = p.add_subparsers(dest="cmd", required=True)
s = sub.add_parser("packages")
s.add_argument("tsv"); s.add_argument("stanzas")
for k in ("--version", "--commit", "--kernel", "--sde", "--bins"):
    s.add_argument(k, required=True)
s = sub.add_parser("finish")
s.add_argument("manifest")
for k in ("--roothash", "--os-bytes", "--os-sha256", "--security"):
    s.add_argument(k, required=True)
a = p.parse_args()
packages(a) if a.cmd == "packages" else finish(a)
