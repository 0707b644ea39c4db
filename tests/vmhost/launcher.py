"""Boot Debian's stock kernel under QEMU and run the `vm`-marked tests inside.

    python -m tests.vmhost [--junit-xml PATH] [-k EXPR] [pytest args / node ids]

See docs/vm-tier.md. The guest has no network device; it sees the host's
root read-only over 9p (so this repository and its venv work unchanged),
writes to fresh sparse scratch disks, has cgroup2 as its only hierarchy
and a swap file, and hands results back through a second, writable 9p
share. The exit status is 0 only when every collected vm test ran and
passed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.vmhost import guestkernel, initramfs, results

REPO = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-x86_64"
BOOT_MARKER = b"ctpanel-vm: stage 1 up"
STAGE2_MARKER = b"ctpanel-vm: kernel:"
SCRATCH_SIZE = 16 << 30  # sparse: only what the guest writes takes space
SPARE_SIZE = 4 << 30


def log(msg: str) -> None:
    print(f"vmhost: {msg}", flush=True)


def guest_python() -> str:
    """The interpreter the guest runs: this venv's, else the repo's .venv, else ours."""
    if sys.prefix != sys.base_prefix:
        return os.path.abspath(sys.executable)
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else os.path.abspath(sys.executable)


@dataclass
class Prepared:
    kernel: guestkernel.GuestKernel
    initrd: initramfs.Initramfs
    rootfs: initramfs.BusyboxRootfs


def prepare(cache: Path) -> Prepared:
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        kernel = guestkernel.ensure_kernel(cache)
        return Prepared(kernel, initramfs.ensure_initramfs(kernel, cache),
                        initramfs.ensure_busybox_rootfs(cache))


def make_disks(work: Path) -> tuple[Path, Path]:
    """Fresh sparse disks: an ext4 scratch disk (formatted here, fast) and a raw spare one."""
    scratch, spare = work / "scratch.img", work / "spare.img"
    for path, size in ((scratch, SCRATCH_SIZE), (spare, SPARE_SIZE)):
        path.unlink(missing_ok=True)
        with open(path, "wb") as f:
            f.truncate(size)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "ctpanel-scratch", "-E",
                    "lazy_itable_init=1,lazy_journal_init=1,nodiscard", str(scratch)],
                   check=True)
    return scratch, spare


def qemu_command(prep: Prepared, accel: str, work: Path, opts: argparse.Namespace) -> list[str]:
    python = guest_python()
    for value in (str(REPO), python, str(prep.kernel.modules_dir)):
        if any(c.isspace() for c in value):
            raise SystemExit(f"vmhost: {value!r} contains whitespace; the guest cannot use it")
    append = " ".join([
        "console=ttyS0", "panic=-1", "quiet", "loglevel=3", "mitigations=off",
        f"ctpanel.repo={REPO}", f"ctpanel.python={python}",
        f"ctpanel.modules={prep.kernel.modules_dir}",
    ])
    cpu = opts.kvm_cpu if accel == "kvm" else "max"
    accel_opt = "kvm" if accel == "kvm" else "tcg,thread=multi"
    drives = []
    for i, (name, serial) in enumerate((("scratch.img", "ctpanel-scratch"),
                                        ("spare.img", "ctpanel-spare"))):
        drives += [
            "-drive", f"if=none,id=d{i},file={work / name},format=raw,cache=unsafe,aio=threads",
            "-device", f"virtio-blk-pci,drive=d{i},serial={serial}",
        ]
    return [
        QEMU, "-nodefaults", "-no-user-config",
        "-accel", accel_opt, "-cpu", cpu,
        "-smp", str(opts.smp), "-m", opts.memory,
        "-display", "none", "-monitor", "none", "-serial", "stdio",
        "-no-reboot", "-nic", "none",
        "-kernel", str(prep.kernel.vmlinuz), "-initrd", str(prep.initrd.path),
        "-append", append,
        "-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,"
                   "multidevs=remap",
        "-virtfs", f"local,path={work / 'results'},mount_tag=results,security_model=none",
        *drives,
    ]


class Console:
    """Copies QEMU's serial console to our stdout as it comes and notes the markers."""

    def __init__(self, proc: subprocess.Popen[bytes], started: float) -> None:
        self.proc = proc
        self.started = started
        self.booted = threading.Event()
        self.stage2_at: float | None = None
        self.booted_at: float | None = None
        self._tail = b""
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        out = sys.stdout.buffer
        while chunk := os.read(fd, 65536):
            out.write(chunk.replace(b"\r\n", b"\n").replace(b"\r", b""))
            out.flush()
            window = self._tail + chunk
            if not self.booted.is_set() and BOOT_MARKER in window:
                self.booted_at = time.monotonic() - self.started
                self.booted.set()
            if self.stage2_at is None and STAGE2_MARKER in window:
                self.stage2_at = time.monotonic() - self.started
            self._tail = window[-64:]

    def join(self) -> None:
        self._thread.join(timeout=10)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill QEMU by its PID (and only it) and reap it."""
    if proc.poll() is None:
        log(f"killing QEMU (pid {proc.pid})")
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, 9)
    proc.wait()


def boot(prep: Prepared, accel: str, work: Path, opts: argparse.Namespace,
         deadline: float) -> tuple[subprocess.Popen[bytes], Console] | None:
    """Start QEMU; with KVM, give up (None) when the guest is not up within the probe limit."""
    res = work / "results"
    shutil.rmtree(res, ignore_errors=True)
    res.mkdir()
    (res / "request.json").write_text(json.dumps({
        "repo": str(REPO),
        "pytest_args": opts.pytest_args,
        "busybox_rootfs": str(prep.rootfs.directory),
        "busybox_tarball": str(prep.rootfs.tarball),
        "swap_mib": opts.swap_mib,
    }, indent=1))
    make_disks(work)
    cmd = qemu_command(prep, accel, work, opts)
    log(f"starting QEMU ({accel}): {' '.join(cmd)}")
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    console = Console(proc, started)
    if accel != "kvm":
        return proc, console
    limit = min(opts.kvm_probe, max(0.0, deadline - time.monotonic()))
    end = started + limit
    while not console.booted.is_set() and proc.poll() is None and time.monotonic() < end:
        console.booted.wait(0.2)
    if console.booted.is_set():
        return proc, console
    why = (f"QEMU exited with {proc.returncode}" if proc.poll() is not None
           else f"no boot within {limit:.0f} s (hung)")
    kill(proc)
    console.join()
    log(f"KVM did not boot the guest: {why}; falling back to TCG")
    return None


def run(opts: argparse.Namespace) -> int:
    t0 = time.monotonic()
    deadline = t0 + opts.timeout
    cache = guestkernel.cache_dir()
    log(f"repo {REPO}, guest python {guest_python()}, cache {cache}")
    if shutil.which(QEMU) is None:
        log(f"{QEMU} is missing: apt-get install qemu-system-x86 (./ctl does)")
        return 2
    prep = prepare(cache)
    log(f"guest kernel {prep.kernel.release}: {prep.kernel.vmlinuz}")
    log(f"initramfs {prep.initrd.path} ({prep.initrd.path.stat().st_size >> 10} KiB, "
        f"{len(prep.initrd.modules)} modules); busybox rootfs {prep.rootfs.directory}")
    log(f"prepared in {time.monotonic() - t0:.1f} s")
    if opts.prepare_only:
        return 0

    work = Path(tempfile.mkdtemp(prefix="ctpanel-vm-", dir=opts.workdir))
    host_problems: list[str] = []
    try:
        accels = ["tcg"] if opts.accel == "tcg" else ["kvm", "tcg"]
        if opts.accel == "auto" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            log("no usable /dev/kvm: TCG")
            accels = ["tcg"]
        if opts.accel == "kvm":
            accels = ["kvm"]
        started = None
        for accel in accels:
            started = boot(prep, accel, work, opts, deadline)
            if started:
                break
        if started is None:
            host_problems.append("the guest did not boot")
        else:
            proc, console = started
            killed = False
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                msg = (f"TIMEOUT: the vm tier exceeded its {opts.timeout:.0f} s wall-clock cap "
                       f"(--timeout); stopping the guest")
                print(flush=True)  # the console may have stopped mid-line
                log(msg)
                host_problems.append(msg)
                kill(proc)
                killed = True
            except KeyboardInterrupt:
                kill(proc)
                raise
            console.join()
            if proc.returncode and not killed:
                host_problems.append(f"QEMU exited with {proc.returncode}")
            if console.booted_at is not None:
                log(f"guest up in {console.booted_at:.1f} s (initramfs), stage 2 at "
                    f"{console.stage2_at or float('nan'):.1f} s")
        outcome = results.load(work / "results", host_problems)
        verdict = results.evaluate(outcome)
        if opts.junit_xml:
            Path(opts.junit_xml).parent.mkdir(parents=True, exist_ok=True)
            Path(opts.junit_xml).write_text(results.junit_document(outcome, verdict))
        log(f"vm tier: {verdict.collected} collected, {verdict.finished} ran, "
            f"{len(verdict.passed)} passed, {len(verdict.failed)} failed, "
            f"{len(verdict.skipped)} skipped, {len(verdict.not_run)} did not run "
            f"({time.monotonic() - t0:.1f} s in all)")
        for problem in verdict.problems:
            log(f"FAIL: {problem}")
        log("vm tier PASSED" if verdict.ok else "vm tier FAILED")
        return 0 if verdict.ok else 1
    finally:
        if opts.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m tests.vmhost",
        description="Run the vm-marked tests inside a QEMU guest with Debian's stock kernel. "
                    "Arguments not listed here go to the guest's pytest (-k EXPR, node ids...).",
    )
    parser.add_argument("--junit-xml", metavar="PATH", help="write the JUnit result here")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="wall-clock cap for the whole tier, seconds (default 900)")
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto",
                        help="auto: KVM first, TCG when KVM fails or hangs (default)")
    parser.add_argument("--kvm-probe", type=float, default=20.0,
                        help="seconds KVM gets to reach the initramfs (default 20)")
    parser.add_argument("--kvm-cpu", default="host",
                        help="QEMU -cpu model under KVM (default host; TCG uses max)")
    parser.add_argument("--smp", type=int, default=2)
    parser.add_argument("--memory", default="2G")
    parser.add_argument("--swap-mib", type=int, default=512)
    parser.add_argument("--workdir", default=None,
                        help="parent of the per-run temporary directory (default $TMPDIR)")
    parser.add_argument("--prepare-only", action="store_true",
                        help="fetch the kernel and build the images into the cache, then exit")
    parser.add_argument("--keep", action="store_true",
                        help="keep the disks and results share after the run")
    opts, rest = parser.parse_known_args(argv)
    opts.pytest_args = rest
    return opts


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(sys.argv[1:] if argv is None else argv))
