"""SECURITY.md's runtime baseline, checked from inside real VPSs: the mechanism
(seccomp mode, masks in mountinfo, id maps) and the outcome (escapes fail).

Escape attempts only ever run inside a VPS. Writes that could change the host
if a defence were missing write back the value already there.
"""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import time

import pytest

from kernel import credentials, rootfs, vpsfiles
from kernel import syscalls as sc
from kernel.errors import KernelError
from kernel.net import inside
from kernel.runtime import Defences, Runtime, StartOptions
from tests.kernel import probes

pytestmark = pytest.mark.kernel

ENOSYS = 38
DENIED = ("keyctl", "io_uring_setup", "open_by_handle_at", "init_module", "finit_module", "kexec_load")


def sh(runtime: Runtime, ctid: int, script: str, **kw) -> tuple[int, str]:
    result = runtime.exec(ctid, ["sh", "-c", script], timeout=30, **kw)
    return result.returncode, (result.stdout + result.stderr).decode()


def install_probes(runtime: Runtime, ctid: int) -> None:
    with vpsfiles.VpsRoot(runtime.volume_path(ctid)) as root:
        root.makedirs("/probes")
        for name in DENIED:
            root.write(f"/probes/{name}", probes.syscall(probes.X86_64[name]), mode=0o755)
        root.write("/probes/int80", probes.int80(probes.I386_GETPID), mode=0o755)


def run_probes(runtime: Runtime, ctid: int, **kw) -> dict[str, int]:
    names = [*DENIED, "int80"]
    code, out = sh(runtime, ctid, "; ".join(f"/probes/{n}; echo {n} $?" for n in names), **kw)
    assert code == 0, out
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines() if line.split()[0] in names}


def proc_status(pid: int | str, runtime: Runtime | None = None, ctid: int = 0) -> dict[str, str]:
    if runtime is not None:
        _, text = sh(runtime, ctid, f"cat /proc/{pid}/status")
    else:
        with open(f"/proc/{pid}/status") as fh:
            text = fh.read()
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def mount_points(runtime: Runtime, ctid: int) -> dict[str, str]:
    """Mount point → mount options, as the VPS sees them (the last mount on a point wins)."""
    _, text = sh(runtime, ctid, "cat /proc/self/mountinfo")
    points = {}
    for line in text.splitlines():
        fields = line.split()
        points[fields[4]] = fields[5]
    return points


def test_init_runs_with_seccomp_and_without_no_new_privs(runtime, make_vps):
    ctid = make_vps()
    pid = runtime.status(ctid).init_pid
    for status in (proc_status(pid), proc_status(1, runtime, ctid)):
        assert status["Seccomp"].strip() == "2"
        assert status["NoNewPrivs"].strip() == "0"
        assert status["CapEff"].strip() == "000001ffffffffff"  # full set, in the VPS's user namespace
    host_caps = proc_status("self")
    assert host_caps["NSpid"] != proc_status(pid)["NSpid"]
    assert proc_status(pid)["NSpid"].split()[-1] == "1"


def test_seccomp_refuses_calls_from_init_and_from_exec(runtime, make_vps):
    ctid = make_vps(start=False)
    install_probes(runtime, ctid)
    with vpsfiles.VpsRoot(runtime.volume_path(ctid)) as root:
        script = "#!/bin/sh\n" + "".join(f"/probes/{n}; echo {n} $? >> /probes/boot\n" for n in (*DENIED, "int80"))
        root.write("/etc/rc.local", script, mode=0o755)
    runtime.start(ctid)
    deadline = time.monotonic() + 10
    with vpsfiles.VpsRoot(runtime.volume_path(ctid)) as root:
        while root.read_text("/probes/boot", default="").count("\n") < len(DENIED) + 1:
            assert time.monotonic() < deadline, "rc.local did not run"
            time.sleep(0.05)
        boot = dict(line.split() for line in root.read_text("/probes/boot").splitlines())
    assert boot == {name: str(ENOSYS) for name in (*DENIED, "int80")}  # init's descendants
    assert_refused(run_probes(runtime, ctid))  # exec


def assert_refused(results: dict[str, int]) -> None:
    """Every probe was refused by the filter (ENOSYS), the 32-bit `int 0x80` one included."""
    assert results == {name: ENOSYS for name in (*DENIED, "int80")}


def test_negative_control_without_seccomp(runtime, make_vps, unsafe_testing):
    ctid = make_vps(start=False)
    install_probes(runtime, ctid)
    runtime.start(ctid, StartOptions(defences=Defences(seccomp=False)))
    assert proc_status(runtime.status(ctid).init_pid)["Seccomp"].strip() == "0"
    results = run_probes(runtime, ctid, use_seccomp=False)
    with pytest.raises(AssertionError):  # the same check as with the filter fails
        assert_refused(results)
    absent = {"init_module": "/proc/modules", "finit_module": "/proc/modules", "kexec_load": "/sys/kernel/kexec_loaded"}
    for name, marker in absent.items():
        if not os.path.exists(marker):  # this kernel lacks it: ENOSYS without any filter
            del results[name]
    assert all(code != ENOSYS for code in results.values()), results


def test_uid_maps_are_high_and_disjoint_and_files_stay_low_on_disk(runtime, make_vps):
    first, second = make_vps(), make_vps()
    maps = []
    for ctid in (first, second):
        _, text = sh(runtime, ctid, "cat /proc/1/uid_map /proc/1/gid_map")
        uid_map, gid_map = (line.split() for line in text.splitlines())
        assert uid_map == gid_map and uid_map[0] == "0" and uid_map[2] == "65536"
        assert int(uid_map[1]) >= 100000
        maps.append(range(int(uid_map[1]), int(uid_map[1]) + 65536))
    assert not set(maps[0]) & set(maps[1])
    code, out = sh(runtime, first, "touch /root/a && touch /root/b && chown 1000:2000 /root/b && ls -ln /root")
    assert code == 0, out
    volume = runtime.volume_path(first)
    assert (os.stat(f"{volume}/root/a").st_uid, os.stat(f"{volume}/root/a").st_gid) == (0, 0)
    assert (os.stat(f"{volume}/root/b").st_uid, os.stat(f"{volume}/root/b").st_gid) == (1000, 2000)
    assert os.stat(f"{volume}/bin/busybox").st_uid == 0
    # and the host's id of the VPS's root owns the processes
    pid = runtime.status(first).init_pid
    assert os.stat(f"/proc/{pid}").st_uid == maps[0][0]


def _host_has(path: str) -> bool:
    return os.path.exists(path)


def assert_masked(points: dict[str, str]) -> None:
    """SECURITY.md's /proc and /sys masks and read-only paths, as mountinfo shows them."""
    expected = [f"/proc/{n}" for n in (*rootfs.PROC_MASKED_FILES, *rootfs.PROC_MASKED_DIRS)]
    expected += [f"/sys/{n}" for n in rootfs.SYS_MASKED_DIRS]
    for point in expected:
        if _host_has(point):
            assert point in points, f"{point} is not masked"
    for point in ("/proc/sys", "/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq", "/sys"):
        if _host_has(point):
            assert points[point].split(",")[0] == "ro", point
    assert points["/proc/sys/net"].split(",")[0] == "rw"
    assert points["/sys/devices/virtual/net"].split(",")[0] == "rw"


def test_masks_and_readonly_paths_are_in_mountinfo(runtime, make_vps):
    ctid = make_vps()
    points = mount_points(runtime, ctid)
    assert_masked(points)
    for point in ("/proc", "/dev", "/dev/pts", "/dev/console", "/dev/null"):
        assert point in points
    assert "nosuid" in points["/proc"] and "noexec" in points["/proc"] and "nodev" in points["/proc"]
    assert not [p for p in points if p.startswith(("/work", "/var/lib", "/tmp/ctpanel"))]
    code, out = sh(runtime, ctid, "ls -l /dev; cat /proc/kallsyms | head -1; ls /proc/acpi")
    assert code == 0, out
    assert "ptmx -> pts/ptmx" in out and "ffffffff" not in out


def test_negative_control_without_masks(runtime, make_vps, unsafe_testing):
    """The same mechanism check fails when the masks are switched off."""
    ctid = make_vps(options=StartOptions(defences=Defences(masks=False)))
    points = mount_points(runtime, ctid)
    with pytest.raises(AssertionError):
        assert_masked(points)
    assert "/proc/kallsyms" not in points and "/proc/sys" not in points
    assert points["/sys"].split(",")[0] == "rw"


ESCAPES = {
    "core_pattern": "cat /proc/sys/kernel/core_pattern > /tmp/v && cat /tmp/v > /proc/sys/kernel/core_pattern",
    "sysrq": "echo h > /proc/sysrq-trigger",
    "sys-write": "cat /sys/kernel/profiling > /tmp/v && cat /tmp/v > /sys/kernel/profiling",
    "mknod-block": "mknod /tmp/disk b 254 0 && mkdir -p /mnt/d && mount /tmp/disk /mnt/d",
    "release_agent": "mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg "
    "&& echo /tmp/evil > /tmp/cg/release_agent",
    "release_agent-named": "mkdir -p /tmp/cg2 && mount -t cgroup -o none,name=ctpx cgroup /tmp/cg2 "
    "&& echo /tmp/evil > /tmp/cg2/release_agent",
    "host-block-dev": "ls /dev | grep -E '^(vd|sd|nvme|loop)' && exit 0 || exit 1",
    "forced-umount": "umount -f /proc/kallsyms",
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escape_attempts_fail_inside(runtime, make_vps, name):
    ctid = make_vps()
    with open("/proc/sys/kernel/core_pattern") as fh:
        core = fh.read()
    code, out = sh(runtime, ctid, ESCAPES[name])
    assert code != 0, out
    with open("/proc/sys/kernel/core_pattern") as fh:
        assert fh.read() == core


DEV_NODES = {"null", "zero", "full", "random", "urandom", "tty", "console", "ptmx"}
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}


def test_dev_is_exactly_what_security_md_lists(runtime, make_vps):
    """/dev: tmpfs nosuid,mode=755 with null zero full random urandom tty console, ptmx and a new
    devpts instance (ptmxmode=0666, max=N), the fd/stdio links; nothing else of the host."""
    ctid = make_vps()
    _, text = sh(runtime, ctid, "cat /proc/self/mountinfo")
    mounts = {}
    for line in text.splitlines():
        ours, _, theirs = line.partition(" - ")
        fstype, _source, super_options = theirs.split()[:3]
        mounts[ours.split()[4]] = (set(ours.split()[5].split(",")), fstype, set(super_options.split(",")))
    options, fstype, super_options = mounts["/dev"]
    assert fstype == "tmpfs" and "nosuid" in options and "mode=755" in super_options
    options, fstype, super_options = mounts["/dev/pts"]
    assert fstype == "devpts" and {"ptmxmode=666"} <= super_options, super_options
    assert any(o.startswith("max=") for o in super_options), super_options
    _, listing = sh(runtime, ctid, "cd /dev && for f in *; do [ -L $f ] && echo L $f $(readlink $f) || echo N $f; done")
    entries = [line.split() for line in listing.splitlines()]
    nodes = {e[1] for e in entries if e[0] == "N"} - {"pts", "shm", "mqueue"}  # directories / mount points
    links = {e[1]: e[2] for e in entries if e[0] == "L"}
    assert nodes == DEV_NODES - {"ptmx"} or nodes == DEV_NODES, nodes
    assert {k: v for k, v in links.items() if k != "ptmx"} == DEV_LINKS
    assert "ptmx" in nodes or links.get("ptmx") == "pts/ptmx"
    _, majors = sh(runtime, ctid, "ls -l /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty")
    assert all(line.startswith("c") for line in majors.splitlines()), majors


def test_the_hosts_sysv_ipc_is_invisible_inside(runtime, make_vps):
    ctid = make_vps()
    made = subprocess.run(["ipcmk", "-M", "4096"], capture_output=True, text=True, check=True).stdout
    shmid = made.split()[-1]
    try:
        with open("/proc/sysvipc/shm") as fh:
            assert any(line.split()[1] == shmid for line in fh.readlines()[1:])  # the host sees it
        code, inside = sh(runtime, ctid, "cat /proc/sysvipc/shm")
        assert code == 0 and inside.splitlines()[1:] == [], inside
    finally:
        subprocess.run(["ipcrm", "-m", shmid], check=True)


def test_binfmt_misc_registered_inside_never_reaches_the_host(runtime, make_vps, tmp_path):
    """A VPS may mount binfmt_misc (its user namespace's own instance, Linux >= 6.7) or be refused;
    either way the host's instance never gains its interpreter (the classic escape: a host binary
    run through an interpreter the VPS chose)."""
    ctid = make_vps()
    sh(runtime, ctid, "mkdir -p /tmp/b && mount -t binfmt_misc none /tmp/b "
                      "&& echo ':ctpx:E::ctpx::/bin/sh:' > /tmp/b/register")
    host = subprocess.run(["unshare", "--mount", "sh", "-c", f"mount -t binfmt_misc none {tmp_path} && ls {tmp_path}"],
                          capture_output=True, text=True, check=True).stdout.split()
    assert "register" in host and "ctpx" not in host


def settled_fds(pid: int, limit: float = 10.0) -> list[str]:
    """init's descriptors once its own start-up is over: busybox's init reads /etc/inittab on fd 3
    just after start returns, while a descriptor passed from the host would stay for good."""
    deadline = time.monotonic() + limit
    while (fds := sorted(os.listdir(f"/proc/{pid}/fd"))) != ["0", "1", "2"] and time.monotonic() < deadline:
        time.sleep(0.01)
    return fds


def test_no_host_descriptors_in_init_or_exec(runtime, make_vps):
    ctid = make_vps()
    pid = runtime.status(ctid).init_pid
    fds = settled_fds(pid)
    assert fds == ["0", "1", "2"], [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in fds]
    for fd in fds:
        assert os.readlink(f"/proc/{pid}/fd/{fd}") == "/dev/console"  # its own console
    code, out = sh(runtime, ctid, "ls /proc/1/fd; for f in /proc/$$/fd/*; do readlink $f; done; pwd")
    assert code == 0
    lines = out.split()
    assert lines[:3] == ["0", "1", "2"]
    assert lines[-1] == "/"
    for target in lines[3:-1]:
        assert target.startswith(("pipe:", "/proc/")), target


def test_exec_helper_is_invisible_and_processes_are_confined(runtime, make_vps):
    ctid = make_vps()
    _, out = sh(runtime, ctid, "cat /proc/[0-9]*/comm 2>/dev/null")
    names = out.split()
    assert "init" in names and "cat" in names
    assert len(names) <= 10, names  # init, the boot script (racing), cat: no host process
    assert not {"python", "python3", "pytest", "process_api", "kthreadd", "systemd"} & set(names), names


def test_the_enter_helper_is_non_dumpable_and_in_the_vps_user_namespace(runtime, make_vps):
    """The helper H that enters a VPS runs as the VPS's root in its user namespace and is
    non-dumpable: root of that namespace — should it ever reach H's /proc entry — cannot read
    H's memory or environment, while it can read its own command's (the control)."""
    ctid = make_vps()
    init = runtime.status(ctid).init_pid
    with open(f"/proc/{init}/uid_map") as fh:
        base = int(fh.read().split()[1])
    session = runtime.spawn(ctid, ["sleep", "1000"])
    try:
        helper, command = session.pid, session.command_pid(timeout=10)
        assert os.readlink(f"/proc/{helper}/ns/user") == os.readlink(f"/proc/{init}/ns/user")
        with open(f"/proc/{helper}/status") as fh:
            uids = next(line.split()[1:] for line in fh if line.startswith("Uid:"))
        assert uids == [str(base)] * 4  # the VPS's root, no host uid 0 left
        assert _readable_from_the_vps(init, f"/proc/{command}/environ") is True  # the control
        assert _readable_from_the_vps(init, f"/proc/{helper}/environ") is False
        assert _readable_from_the_vps(init, f"/proc/{helper}/mem") is False
    finally:
        session.kill()
        session.close()
        session.wait()


def test_host_users_cannot_reach_a_vps_root_or_the_run_directory(runtime, make_vps):
    """SECURITY.md: VPS roots under a root-owned 0700/0711 directory. A host user (nobody, or the
    uid a VPS's root is on the host) cannot read a VPS's files or the node's state files."""
    ctid = make_vps()
    volume = runtime.volume_path(ctid)
    parent = os.stat(os.path.dirname(volume))
    assert parent.st_uid == 0 and parent.st_mode & 0o077 in (0, 0o011), oct(parent.st_mode)
    with open(f"/proc/{runtime.status(ctid).init_pid}/uid_map") as fh:
        vps_root = int(fh.read().split()[1])
    for uid in (65534, vps_root):
        assert _readable_as(uid, os.path.join(volume, "etc", "hostname")) is False, uid
        assert _readable_as(uid, os.path.join(runtime.config.run_dir, f"{ctid}.json")) is False, uid
    assert _readable_as(0, os.path.join(volume, "etc", "hostname")) is True  # the control: root can


def _opens(path: str, become) -> bool:
    """Whether a forked child that first calls `become()` can open `path` (PermissionError: no)."""
    child = os.fork()
    if child == 0:  # pragma: no cover - child
        code = 2
        try:
            become()
            try:
                os.close(os.open(path, os.O_RDONLY))
                code = 0
            except PermissionError:
                code = 1
        finally:
            os._exit(code)
    code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    assert code in (0, 1), code
    return code == 0


def _readable_as(uid: int, path: str) -> bool:
    """Whether a host process with uid (and gid) `uid` and no capabilities can open `path`."""
    def become() -> None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)

    return _opens(path, become)


def _readable_from_the_vps(init: int, path: str) -> bool:
    """Whether root of the VPS's user namespace (all its capabilities there, none on the host)
    can open `path`, seen through the host's /proc."""
    return _opens(path, lambda: sc.setns(os.open(f"/proc/{init}/ns/user", os.O_RDONLY), sc.CLONE_NEWUSER))


def test_two_vpss_cannot_see_each_other(runtime, make_vps):
    first, second = make_vps(hostname="one"), make_vps(hostname="two")
    sh(runtime, first, "echo secret > /root/s; sleep 300 >/dev/null 2>&1 &")
    _code, out = sh(runtime, second, "hostname; ps -o comm | grep -c sleep; ls /root")
    assert out.split() == ["two", "0"]


def test_traps_planted_by_a_running_vps_never_reach_the_host(runtime, make_vps, tmp_path):
    canary_dir = tmp_path / "host"
    canary_dir.mkdir()
    canary = canary_dir / "canary"
    canary.write_text("host secret\n")
    ctid = make_vps(hostname="before.example.com")
    code, out = sh(
        runtime,
        ctid,
        f"ln -sf {canary} /etc/hostname && ln -sf ../../../../../../../..{canary} /etc/hosts "
        f"&& rm -f /etc/resolv.conf && mkfifo /etc/resolv.conf && mkdir -p /etc/nsw "
        f"&& ln -sf /proc/1/root{canary} /etc/nsw/x",
    )
    assert code == 0, out
    started = time.monotonic()
    runtime.set_hostname(ctid, "after.example.com")
    with vpsfiles.VpsRoot(runtime.volume_path(ctid)) as root:
        vpsfiles.write_resolv_conf(root, ["198.51.100.53"])
        root.write("/etc/nsw/x", "x\n")
    assert time.monotonic() - started < 5
    assert canary.read_text() == "host secret\n"
    assert sh(runtime, ctid, "cat /etc/hostname; test -f /etc/resolv.conf")[1] == "after.example.com\n"


def _write_in(runtime: Runtime, ctid: int, writer):
    with vpsfiles.VpsRoot(runtime.volume_path(ctid)) as root:
        writer(root)


def _inside(style: str):
    return lambda runtime, ctid: inside.write(runtime.volume_path(ctid), inside.InsideConfig(
        style=style, ips=("198.51.100.7",), gateway4="169.254.0.1", gateway6=""))


# Every writer of a file inside a VPS: the path it writes, and the write.
WRITERS = {
    "hostname": ("/etc/hostname", lambda rt, c: _write_in(rt, c, lambda r: vpsfiles.write_hostname(r, "t.example"))),
    "hosts": ("/etc/hosts", lambda rt, c: _write_in(rt, c, lambda r: vpsfiles.write_hosts(r, "t.example"))),
    "resolv.conf": ("/etc/resolv.conf",
                    lambda rt, c: _write_in(rt, c, lambda r: vpsfiles.write_resolv_conf(r, ["198.51.100.53"]))),
    "shadow": ("/etc/shadow", lambda rt, c: _write_in(rt, c, lambda r: credentials.set_root_password(r, "$6$s$h"))),
    "authorized_keys": ("/root/.ssh/authorized_keys", lambda rt, c: _write_in(
        rt, c, lambda r: credentials.set_authorized_keys(r, ["ssh-ed25519 AAAAkey me@home"]))),
    "interfaces": ("/etc/network/interfaces", _inside("busybox")),
    "networkd": (inside.NETWORKD_FILE, _inside("networkd")),
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_writer_survives_the_traps_a_vps_can_plant(runtime, make_vps, tmp_path, writer):
    """A link to a host file (absolute, `..`-climbing, through /proc/1/root), a FIFO (a read
    that would block for ever), and — below /etc — the file's directory swapped for a link to a
    host directory: each write is refused or lands inside the VPS, never on the host."""
    path, write = WRITERS[writer]
    canary, outside = tmp_path / "canary", tmp_path / "outside"
    canary.write_text("host secret\n")
    outside.mkdir()
    traps = {"absolute link": f"ln -sf {canary} {path}", "climbing link": f"ln -sf ../../../../../..{canary} {path}",
             "proc root link": f"ln -sf /proc/1/root{canary} {path}", "fifo": f"rm -f {path}; mkfifo {path}"}
    directory = os.path.dirname(path)
    if directory not in ("/etc", "/"):
        traps["directory link"] = f"rm -rf {directory}; ln -s {outside} {directory}"
        traps["directory proc link"] = f"rm -rf {directory}; ln -s /proc/1/root{outside} {directory}"
    ctid = make_vps()
    for trap, plant in traps.items():
        code, out = sh(runtime, ctid, f"mkdir -p {directory} && {plant}")
        assert code == 0, (trap, out)
        with contextlib.suppress(KernelError):  # refused: fine; written outside: not
            write(runtime, ctid)
        assert canary.read_text() == "host secret\n", trap
        assert os.listdir(outside) == [], trap
        sh(runtime, ctid, f"rm -rf {path} {directory if directory not in ('/etc', '/') else path}")


def test_directory_swap_loop_inside_a_vps(runtime, make_vps, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    ctid = make_vps(hostname="loop.example.com")
    loop = (
        f"while :; do mv /etc /etc.real; ln -s {outside} /etc; rm /etc; ln -s /proc/1/root{outside} /etc; "
        "rm /etc; mv /etc.real /etc; done >/dev/null 2>&1 &"
    )
    assert sh(runtime, ctid, loop)[0] == 0
    started = time.monotonic()
    writes = 0
    while time.monotonic() < started + 1.5 or (writes == 0 and time.monotonic() < started + 20):
        try:
            with vpsfiles.VpsRoot(runtime.volume_path(ctid)) as root:
                vpsfiles.write_hostname(root, "loop.example.com")
            writes += 1
        except KernelError:
            pass  # refused while the VPS renames: fine; written outside: not
    assert os.listdir(outside) == []
    assert writes > 0


def test_exec_with_a_tty_gets_a_pty_of_the_vps(runtime, make_vps):
    ctid = make_vps()
    attached = runtime.spawn(ctid, ["sh", "-i"], tty=True)
    try:
        assert attached.master is not None
        os.write(attached.master, b"tty; readlink /proc/self/fd/0; ls /dev/pts; exit 7\n")
        output = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if not select.select([attached.master], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(attached.master, 4096)
            except OSError:  # EIO: the VPS side closed
                break
            if not chunk:
                break
            output += chunk
        assert attached.wait() == 7
    finally:
        attached.kill()
        attached.close()
    text = output.decode(errors="replace")
    assert "/dev/pts/0" in text, text
    assert "not a tty" not in text
    if os.isatty(0):
        assert os.ttyname(0) not in text


def test_cgroup_tree_inside_is_the_delegated_cgroup2_only(runtime, make_vps):
    ctid = make_vps()
    script = (
        "grep ' /sys/fs/cgroup ' /proc/self/mountinfo | sed 's/.* - //' | cut -d' ' -f1; "
        "mkdir /sys/fs/cgroup/svc && echo $$ > /sys/fs/cgroup/svc/cgroup.procs && echo moved; "
        "grep ^0:: /proc/self/cgroup"
    )
    _, out = sh(runtime, ctid, script)
    paths = runtime.cgroups.paths(ctid)
    if "unified" not in paths.inner:
        assert "cgroup2" not in out
        return
    assert out.split() == ["cgroup2", "moved", "0::/svc"], out
    assert os.stat(paths.outer["unified"]).st_uid == 0
    for name, path in paths.outer.items():
        if name != "unified":
            assert os.stat(path).st_uid == 0 and os.stat(os.path.join(path, "vps")).st_uid == 0


def test_no_process_in_the_vps_runs_a_host_binary(runtime, make_vps):
    """CVE-2019-5736 class: nothing visible inside has a host executable to overwrite."""
    ctid = make_vps()
    _, out = sh(runtime, ctid, "sleep 30 & for p in /proc/[0-9]*; do readlink $p/exe; done; kill %1")
    targets = set(out.split())
    assert targets and targets <= {"/bin/busybox"}, targets


def test_planted_device_symlinks_never_become_mask_sources(runtime, make_vps):
    """CVE-2025-31133 class: the volume's own /dev is never used; masks come from the host."""
    ctid = make_vps(start=False)
    volume = runtime.volume_path(ctid)
    with open(f"{volume}/etc/shadow") as fh:
        shadow = fh.read()
    for name in ("null", "console", "ptmx"):
        os.symlink("/etc/shadow", f"{volume}/dev/{name}")
    runtime.start(ctid)
    code, out = sh(runtime, ctid, "wc -c < /proc/kallsyms; echo x > /dev/null; cat /dev/null | wc -c")
    assert code == 0 and out.split() == ["0", "0"], out
    with open(f"{volume}/etc/shadow") as fh:
        assert fh.read() == shadow
