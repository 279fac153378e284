#!/usr/bin/env python3
"""image_boot_test: the flashable appliance image, booted the way a buyer's box boots it.

Builds the image (image/cache.sh: reused from /var/cache/airmesh-image when its inputs are
unchanged) and boots copies of it in qemu-system-x86_64 under UEFI (OVMF), KVM when a probe boot
under KVM works here, TCG otherwise (the log says which ran). Every boot uses qemu's user network
with restrict=on (the guest can reach nothing; only our forwarded ports reach it). Proves:

  first boot   the initrd verifies the OS (dm-verity), systemd-repart makes the data partition,
               airmeshd creates its CA and admin on the device and the console shows URL, CA
               fingerprint and one-time password; the HTTPS certificate chains to a root whose
               SHA-256 is that fingerprint; /healthz answers; the printed password logs in (and
               a wrong one does not); the guest's egress counters saw no outward TCP/UDP in the
               first minute, and saw the one deliberate probe (positive control).
  second boot  same disk: the same CA fingerprint, no password printed, the first password
               still logs in (the data partition persisted).
  tampered     a copy with one byte flipped inside the OS partition's verified data stops in
               the initrd with a dm-verity error; airmeshd never starts (no banner, no HTTPS).

Args: the three release binaries (//image:bins). Needs root, qemu, OVMF (scripts/deps.sh).
"""
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BINS = os.path.dirname(os.path.abspath(sys.argv[1])) if len(sys.argv) > 1 else ""
del sys.argv[1:]
# The source tree: runfiles are symlinks into it (the test runs unsandboxed, tags local).
REPO = os.path.dirname(os.path.dirname(os.path.realpath(os.path.join("image", "build.sh"))))
TMP = os.environ.get("TEST_TMPDIR", "/tmp")
ART = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR", TMP)
OVMF = "/usr/share/ovmf/OVMF.fd"
# qemu's monitor socket: unix socket paths are limited to 108 bytes, TEST_TMPDIR is longer.
SOCKDIR = tempfile.mkdtemp(prefix="amimg.", dir="/tmp")
ANSI = re.compile(r"\x1b\[[0-9;=?]*[A-Za-z]")
BOOT_DEADLINE = 900  # s, per boot (TCG on a loaded 2-core machine measured ~100 s to banner)
ACCEL = None
IMG = None
ENV = {}
NOTES = []
GUESTS = []  # every qemu started, killed at exit whatever happened


def note(msg):
    NOTES.append(msg)
    print("image_boot_test:", msg, flush=True)


def _kill_guests(*_):
    for g in GUESTS:
        g.proc.poll() is None and g.proc.kill()
    if _:
        sys.exit(1)


atexit.register(_kill_guests)
signal.signal(signal.SIGTERM, _kill_guests)  # Bazel's timeout: take qemu down with us


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Guest:
    """One qemu boot of DISK; the serial console goes to a file we poll."""

    def __init__(self, disk, name, accel, probe=False):
        self.name = name
        self.serial = os.path.join(TMP, name + ".serial.log")
        self.mon = os.path.join(SOCKDIR, name + ".mon")
        self.https, self.grpc = free_port(), free_port()
        for f in (self.serial, self.mon):
            if os.path.exists(f):
                os.unlink(f)
        cmd = ["qemu-system-x86_64", "-m", "1024",
               "-smp", "2", "-display", "none", "-no-reboot", "-bios", OVMF,
               "-drive", "file=%s,format=raw,if=virtio" % disk,
               "-netdev", "user,id=n,restrict=on,hostfwd=tcp:127.0.0.1:%d-:8443,"
               "hostfwd=tcp:127.0.0.1:%d-:9443" % (self.https, self.grpc),
               "-device", "virtio-net-pci,netdev=n", "-serial", "file:" + self.serial,
               "-monitor", "unix:%s,server,nowait" % self.mon]
        cmd += ["-enable-kvm", "-cpu", "qemu64"] if accel == "kvm" else \
            ["-accel", "tcg,thread=multi", "-cpu", "qemu64"]
        if probe:
            cmd += ["-fw_cfg", "name=opt/airmesh/airgap-probe,string=1"]
        self.stderr = open(os.path.join(TMP, name + ".qemu.log"), "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.stderr)
        GUESTS.append(self)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.stderr.closed:
            self.stderr.close()

    def log(self):
        try:
            with open(self.serial, "rb") as f:
                return ANSI.sub("", f.read().decode("utf-8", "replace")).replace("\r", "")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern, deadline=BOOT_DEADLINE):
        """Wait until the serial log matches PATTERN (regex); return the match."""
        rx = re.compile(pattern, re.M)
        end = self.t0 + deadline
        while time.monotonic() < end:
            m = rx.search(self.log())
            if m:
                return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.save()
        with open(self.stderr.name) as f:
            qerr = f.read()[-1500:]
        raise AssertionError("%s: no %r on the serial console after %.0f s (qemu %s: %s); tail:\n%s"
                             % (self.name, pattern, time.monotonic() - self.t0,
                                "exited" if self.proc.poll() is not None else "running",
                                qerr, self.log()[-3000:]))

    def elapsed(self):
        return time.monotonic() - self.t0

    def stop(self):
        """ACPI power button (systemd shuts down cleanly), then kill after a deadline."""
        if self.proc.poll() is None:
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.mon)
                s.sendall(b"system_powerdown\n")
                time.sleep(0.5)
                s.close()
                self.proc.wait(timeout=120)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.save()

    def save(self):
        shutil.copy(self.serial, os.path.join(ART, self.name + ".serial.log")) \
            if os.path.exists(self.serial) else None


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)


def root_ca_pinned(guest, fingerprint):
    """The root CA from the runner port's TLS chain (airmeshd sends leaf, issuing CA, root there),
    accepted only if its SHA-256 is the fingerprint printed on the console. Returns a PEM path."""
    out = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % guest.grpc, "-showcerts"],
              input="").stdout
    certs = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
    assert certs, "no certificate chain from the runner port:\n" + out[-2000:]
    for pem in certs:
        fp = run(["openssl", "x509", "-noout", "-fingerprint", "-sha256"], input=pem).stdout
        fp = fp.strip().split("=", 1)[-1].replace(":", "").lower()
        if fp == fingerprint.lower():
            path = os.path.join(TMP, guest.name + ".ca.pem")
            with open(path, "w") as f:
                f.write(pem + "\n")
            return path
    raise AssertionError("no certificate in the chain has the printed fingerprint " + fingerprint)


def https(guest, ca, path, body=None):
    cmd = ["curl", "-sS", "--max-time", "20", "--cacert", ca, "-o", "-", "-w", "\n%{http_code}",
           "https://127.0.0.1:%d%s" % (guest.https, path)]
    if body is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", json.dumps(body)]
    r = run(cmd)
    text, _, code = r.stdout.rpartition("\n")
    return (int(code) if code.isdigit() else 0), text, r.stderr


def wait_healthy(guest, ca, deadline=120):
    end = time.monotonic() + deadline
    while True:
        code, text, err = https(guest, ca, "/healthz")
        if code == 200:
            return text
        if time.monotonic() > end:
            raise AssertionError("healthz: %s %s %s" % (code, text, err))
        time.sleep(1)


def probe_accel():
    """KVM only if a real OVMF boot gets past the firmware under it (on this machine kind OVMF
    aborts with 'KVM internal error' even where direct-kernel KVM boots work)."""
    if not os.access("/dev/kvm", os.W_OK):
        return "tcg", "/dev/kvm not writable"
    disk = os.path.join(TMP, "probe.img")
    subprocess.run(["cp", "--sparse=always", IMG, disk], check=True)
    g = Guest(disk, "kvm-probe", "kvm")
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and g.proc.poll() is None:
            if re.search(r"airmesh: dm-verity: OS slot a verified|BOOT STOPPED", g.log()):
                return "kvm", "probe boot reached the initrd under KVM"
            with open(g.stderr.name) as f:
                if "KVM internal error" in f.read():
                    return "tcg", "KVM probe failed: OVMF stops with 'KVM internal error'"
            time.sleep(0.5)
        return "tcg", "KVM probe failed: no initrd output in 60 s"
    finally:
        g.kill()
        os.unlink(disk)


def setUpModule():
    global IMG, ACCEL, ENV
    assert os.geteuid() == 0, "the image test needs root (mmdebstrap, qemu)"
    ui = os.path.join(REPO, "ui", "dist")
    if not os.path.isfile(os.path.join(ui, "index.html")):
        ui = os.path.join(REPO, "ui", "static")
        note("ui/dist not built: the image carries the placeholder ui/static")
    t = time.monotonic()
    r = subprocess.run([os.path.join(REPO, "image", "cache.sh"), "--bins", BINS, "--ui", ui],
                       stdout=subprocess.PIPE, text=True)
    assert r.returncode == 0, "image build failed"
    d = r.stdout.strip().splitlines()[-1]
    with open([os.path.join(d, f) for f in os.listdir(d) if f.endswith(".env")][0]) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            ENV[k] = v
    IMG = os.path.join(d, ENV["IMAGE"])
    note("image %s (%d MiB apparent, %d MiB allocated), obtained in %.0f s (build took %s s)"
         % (IMG, os.path.getsize(IMG) >> 20, os.stat(IMG).st_blocks * 512 >> 20,
            time.monotonic() - t, ENV.get("BUILD_WALL_SECONDS", "?")))
    note("systemd-analyze security airmeshd: %s" % ENV.get("SECURITY_SCORE"))
    ACCEL, why = probe_accel()
    note("accelerator: %s (%s)" % (ACCEL, why))


class ImageBootTest(unittest.TestCase):
    def test_first_boot_second_boot_and_airgap(self):
        disk = os.path.join(TMP, "disk.img")
        subprocess.run(["cp", "--sparse=always", IMG, disk], check=True)
        # A bigger disk than the image, as after dd onto a real drive: repart grows into it.
        with open(disk, "r+b") as f:
            f.truncate(os.path.getsize(IMG) + (1 << 30))

        g = Guest(disk, "boot1", ACCEL, probe=True)
        try:
            g.wait_for(r"airmesh: dm-verity: OS slot a verified")
            fp = g.wait_for(r"^  CA fingerprint: ([0-9a-f]{64})").group(1)
            pw = g.wait_for(r"^admin password: (\S+)").group(1)
            note("boot1: banner with password after %.0f s (%s)" % (g.elapsed(), ACCEL))
            self.assertRegex(g.log(), r"console: +https://10\.0\.2\.15:8443/")
            self.assertRegex(g.log(), r"data partition: /dev/vda6 ")
            self.assertRegex(g.log(), r"airmeshd: +running as user airmesh \(pid \d+\)")
            ca = root_ca_pinned(g, fp)
            self.assertEqual(wait_healthy(g, ca).strip(), "ok")
            note("boot1: healthy (healthz ok, certificate pinned) after %.0f s" % g.elapsed())
            code, _, _ = https(g, ca, "/api/v1/login", {"user": "admin", "password": pw + "x"})
            self.assertEqual(code, 401, "a wrong password must not log in")
            code, text, err = https(g, ca, "/api/v1/login", {"user": "admin", "password": pw})
            self.assertEqual(code, 200, text + err)
            self.assertTrue(json.loads(text).get("token"), text)
            # Air-gap: the counters at one minute, then the deliberate probe (positive control).
            m = g.wait_for(r"airmesh airgap: uptime (\d+)s outbound tcp=(\d+) udp=(\d+)")
            self.assertEqual((m.group(2), m.group(3)), ("0", "0"), m.group(0))
            c = g.wait_for(r"airmesh airgap control: one probe connection, outbound tcp=(\d+)")
            self.assertGreaterEqual(int(c.group(1)), 1, "the egress counter did not see the probe")
            note("boot1: %s; %s" % (m.group(0), c.group(0)))
            self.assertNotRegex(g.log(), r"(?i)\bfailed to start\b", "a unit failed on boot 1")
        finally:
            g.stop()

        g = Guest(disk, "boot2", ACCEL)
        try:
            fp2 = g.wait_for(r"^  CA fingerprint: ([0-9a-f]{64})").group(1)
            g.wait_for(r"^  data partition:")
            self.assertEqual(fp2, fp, "second boot: the CA changed")
            self.assertNotIn("admin password:", g.log(), "second boot printed a password")
            ca = root_ca_pinned(g, fp)
            wait_healthy(g, ca)
            note("boot2: healthy after %.0f s, same CA, no password" % g.elapsed())
            code, text, err = https(g, ca, "/api/v1/login", {"user": "admin", "password": pw})
            self.assertEqual(code, 200, "second boot: the first-boot password no longer works: "
                             + text + err)
        finally:
            g.stop()
        os.unlink(disk)

    def test_flipped_byte_in_the_os_fails_closed(self):
        disk = os.path.join(TMP, "tampered.img")
        subprocess.run(["cp", "--sparse=always", IMG, disk], check=True)
        # One byte in the middle of the verified erofs data (not the unused tail of the slot).
        off = int(ENV["OS_OFFSET"]) + int(ENV["OS_BYTES"]) // 2
        with open(disk, "r+b") as f:
            f.seek(off)
            b = f.read(1)
            f.seek(off)
            f.write(bytes([b[0] ^ 0x01]))
        with open(disk, "rb") as f, open(IMG, "rb") as o:
            f.seek(off)
            o.seek(off)
            self.assertNotEqual(f.read(1), o.read(1), "the flip did not take")
        g = Guest(disk, "tampered", ACCEL)
        try:
            m = g.wait_for(r"airmesh: BOOT STOPPED: dm-verity: .*")
            note("tampered: %s (after %.0f s)" % (m.group(0).strip(), g.elapsed()))
            self.assertRegex(g.log(), r"device-mapper: verity|verification failed")
            time.sleep(3)
            self.assertNotIn("airmesh appliance", g.log())
            self.assertNotIn("verified", g.log().split("BOOT STOPPED")[0])
            with socket.socket() as s:
                s.settimeout(5)
                try:
                    s.connect(("127.0.0.1", g.https))
                    s.sendall(b"\x16\x03\x01\x00\x05hello")
                    self.assertEqual(s.recv(1), b"", "something answered HTTPS on a tampered OS")
                except (ConnectionError, socket.timeout):
                    pass
        finally:
            g.kill()
            g.save()
        os.unlink(disk)


def tearDownModule():
    for g in GUESTS:
        g.kill()
    shutil.rmtree(SOCKDIR, ignore_errors=True)
    with open(os.path.join(ART, "image-numbers.txt"), "w") as f:
        f.write("\n".join(NOTES) + "\n")


if __name__ == "__main__":
    unittest.main(verbosity=2)
