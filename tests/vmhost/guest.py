"""Stage 2 of the vm tier's guest: PID 1 after switch_root, on the host's venv python.

It finishes the guest (cgroup2 as the only hierarchy, TMPDIR and a swap
file on the scratch disk), prints the kernel and the
cgroup controllers, runs `pytest -m vm` with the launcher's arguments and
powers the VM off. As PID 1 it also reaps every orphan until pytest ends.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path

RESULTS = Path("/mnt/vm-results")
SCRATCH = Path("/mnt/vm-scratch")
CGROUP = Path("/sys/fs/cgroup")
TOOLS = "/usr/local/lib/ctpanel-vm/bin"  # busybox modprobe & co (written by init.sh)
PATH = f"{TOOLS}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SUBTREE = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
EXTRA_MODULES = ("loop", "quota_v2", "quota_v1")
RB_POWER_OFF = 0x4321FEDC


def say(msg: str) -> None:
    print(f"ctpanel-vm: {msg}", flush=True)


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def mount(fstype: str, source: str, target: str, options: str = "") -> None:
    Path(target).mkdir(parents=True, exist_ok=True)
    args = ["mount", "-t", fstype, source, target]
    if options:
        args += ["-o", options]
    run(*args)


def disk_by_serial(serial: str) -> str | None:
    for dev in sorted(Path("/sys/block").glob("vd*")):
        with contextlib.suppress(OSError):
            if (dev / "serial").read_text().strip() == serial:
                return f"/dev/{dev.name}"
    return None


def setup_system(request: dict) -> dict[str, str]:
    """Mount what the tests expect; return the environment they get."""
    mount("cgroup2", "cgroup2", str(CGROUP), "nsdelegate,memory_recursiveprot")
    for ctrl in SUBTREE:
        with contextlib.suppress(OSError):
            (CGROUP / "cgroup.subtree_control").write_text(f"+{ctrl}\n")
    mount("tmpfs", "tmpfs", "/run", "mode=755,nosuid,nodev")
    mount("devpts", "devpts", "/dev/pts", "newinstance,ptmxmode=0666,mode=620,gid=5")
    mount("tmpfs", "tmpfs", "/dev/shm", "mode=1777,nosuid,nodev")
    # TMPDIR on the scratch disk's ext4, rather than a mount over /tmp, which
    # would hide a checkout (or venv) that lives under the host's /tmp.
    tmpdir = SCRATCH / "tmp"
    tmpdir.mkdir(exist_ok=True)
    tmpdir.chmod(0o1777)
    run("hostname", "ctpanel-vm")
    for mod in EXTRA_MODULES:
        subprocess.run([f"{TOOLS}/modprobe", mod], check=False)

    swapfile = SCRATCH / "swapfile"
    fd = os.open(swapfile, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    try:
        os.posix_fallocate(fd, 0, int(request.get("swap_mib", 512)) << 20)
    finally:
        os.close(fd)
    run("mkswap", "-q", str(swapfile))
    run("swapon", str(swapfile))

    spare = disk_by_serial("ctpanel-spare") or ""
    env = {
        "PATH": PATH,
        "HOME": "/root",
        "TMPDIR": str(SCRATCH / "tmp"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": request["repo"],
        "CTPANEL_VM": "1",
        "CTPANEL_VM_REPO": request["repo"],
        "CTPANEL_VM_RESULTS": str(RESULTS),
        "CTPANEL_VM_SCRATCH": str(SCRATCH),
        "CTPANEL_VM_SPARE_DISK": spare,
        "CTPANEL_VM_SWAPFILE": str(swapfile),
        "CTPANEL_VM_BUSYBOX_ROOTFS": request["busybox_rootfs"],
        "CTPANEL_VM_BUSYBOX_TARBALL": request["busybox_tarball"],
    }
    env.update(request.get("env", {}))
    return env


def describe() -> dict[str, str]:
    info = {
        "kernel": os.uname().release,
        "cgroup.controllers": (CGROUP / "cgroup.controllers").read_text().strip(),
        "cgroup mounts": " ".join(sorted(
            line.split()[1] + ":" + line.split()[2]
            for line in Path("/proc/mounts").read_text().splitlines()
            if line.split()[2].startswith("cgroup")
        )),
        "swaps": " ".join(Path("/proc/swaps").read_text().split()[5:]),
        "cpus": str(os.cpu_count()),
        "memory": Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip(),
    }
    for key, value in info.items():
        say(f"{key}: {value}")
    return info


def pytest_command(request: dict) -> list[str]:
    repo = request["repo"]
    return [
        sys.executable, "-m", "pytest",
        "-m", "vm",
        "-p", "no:django",
        "-p", "no:cacheprovider",
        "-p", "tests.vmhost.guest_plugin",
        "--rootdir", repo,
        "-c", f"{repo}/pyproject.toml",
        "--junit-xml", str(RESULTS / "junit.xml"),
        "-o", "junit_suite_name=vm",
        # pyproject's DJANGO_SETTINGS_MODULE is pytest-django's; it is off here.
        "-W", "ignore:Unknown config option:pytest.PytestConfigWarning",
        *request.get("pytest_args", []),
    ]


def _copy_to_console(fd: int) -> None:
    while chunk := os.read(fd, 65536):
        os.write(1, chunk)


def run_pytest(cmd: list[str], env: dict[str, str], cwd: str) -> int:
    """Start pytest and reap every process until it exits (we are PID 1).

    Its output goes through a pipe, so pytest sees no terminal and writes
    plain lines (no carriage-return progress) to the serial console.
    """
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=write_end, stderr=subprocess.STDOUT)
    os.close(write_end)
    copier = threading.Thread(target=_copy_to_console, args=(read_end,), daemon=True)
    copier.start()
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return -1
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            copier.join(timeout=10)  # EOF unless a stray test process holds the pipe
            return proc.returncode


def poweroff() -> None:
    os.sync()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.reboot(RB_POWER_OFF)
    # Still here: PID 1 exiting panics the kernel, and with panic=-1 and
    # QEMU's -no-reboot that also ends the VM.
    sys.exit(1)


def main() -> None:
    status: dict[str, object] = {}
    os.environ["PATH"] = PATH
    try:
        request = json.loads((RESULTS / "request.json").read_text())
        env = setup_system(request)
        status["info"] = describe()
        cmd = pytest_command(request)
        say("running " + " ".join(cmd[1:]))
        status["pytest_exit"] = run_pytest(cmd, env, request["repo"])
        say(f"pytest exited with {status['pytest_exit']}")
    except Exception:
        traceback.print_exc()
        status["error"] = traceback.format_exc()
        say("stage 2 failed")
    finally:
        with contextlib.suppress(OSError):
            (RESULTS / "guest.json").write_text(json.dumps(status, indent=1) + "\n")
        poweroff()


if __name__ == "__main__":
    main()
