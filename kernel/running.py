"""A running VPS as the node records it: its init, namespaces and inner cgroups.

The runtime, spawn and enter use these; so does `vzctl exec`'s lean path, which
enters a VPS without building a `Runtime`. Keep this module (and what it
imports) free of dataclasses and typing: `vzctl exec` must start in about the
time of a bare interpreter (issue 4).
"""

from __future__ import annotations

import os
import select

from kernel import syscalls as sc

#: The namespaces of a VPS: its init unshares all of them, a helper entering it joins all of them.
NAMESPACES = (
    sc.CLONE_NEWUSER
    | sc.CLONE_NEWNS
    | sc.CLONE_NEWPID
    | sc.CLONE_NEWUTS
    | sc.CLONE_NEWIPC
    | sc.CLONE_NEWNET
    | sc.CLONE_NEWCGROUP
)
#: PATH of init and of commands run inside (the command is looked up on it inside the VPS).
INIT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
INNER = "vps"  # the inner cgroup below a VPS's outer one (kernel.cgroups.base.INNER)


def read_small(path: str) -> str:
    """A small file's text (up to 64 KiB: /proc entries, cgroup files, the init record) in one
    read(2): a file object's buffering costs four more system calls and ~20 µs, and `vzctl exec`
    reads five files (issue 4)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 65536).decode(errors="replace")
    finally:
        os.close(fd)


def proc_stat(pid: int) -> list[str] | None:
    """/proc/PID/stat fields from the state on (field 3 is [0]), or None if gone."""
    try:
        return read_small(f"/proc/{pid}/stat").rpartition(")")[2].split()
    except OSError:
        return None


def children(pid: int | str = "self") -> list[int]:
    """The child PIDs of process `pid` (every thread's), from /proc; [] when it is gone."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in read_small(f"/proc/{pid}/task/{task}/children").split()]
        except OSError:
            continue
    return found


def pidfd_exited(pidfd: int, timeout: float) -> bool:
    """True once the process behind `pidfd` has exited (zombie or reaped), False after `timeout`."""
    return wait_readable(pidfd, timeout)


def wait_readable(fd: int, timeout: float | None) -> bool:
    """True once `fd` is readable (or at its end), False after `timeout` seconds (None: for ever)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def starttime(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat: tells a live init from a reused PID."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields else None


def _alive(pid: int, starttime: object) -> bool:
    """`pid` is still the process that started at `starttime` (not a reused PID) and no zombie."""
    fields = proc_stat(pid)
    return bool(fields) and int(fields[19]) == starttime and fields[0] != "Z"


def running_pid(state_path: str) -> int | None:
    """The init PID recorded at `state_path` (`<run_dir>/<ctid>.json`) if that process still
    runs: same start time (not a reused PID), not a zombie. The file is written without fsync
    (a host reboot ends every init): after a crash it may be empty, which reads as not running."""
    import json  # here: vzctl exec reads the plain-text init record instead (read_init)

    try:
        with open(state_path, encoding="utf-8") as fh:
            state = json.load(fh)
        pid = int(state["init_pid"])
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
    return pid if _alive(pid, state["starttime"]) else None


def init_text(pid: int, starttime: int, outer: dict[str, str]) -> str:
    """A running init's lean record, `<run_dir>/<ctid>.init`: "PID STARTTIME", then one
    "HIERARCHY OUTER-PATH" line per cgroup hierarchy (as the registry records them). Plain text,
    beside the JSON state, because `vzctl exec` must not pay json's import (~1 ms of issue 4's
    budget of 5)."""
    return "".join([f"{pid} {starttime}\n", *(f"{name} {path}\n" for name, path in outer.items())])


def read_init(path: str) -> tuple[int | None, dict[str, str]] | None:
    """(init PID, outer cgroup paths) from an `init_text` file; the PID is None when that init no
    longer runs (or a host crash emptied the file: it is not fsync'ed). None without a file: not
    started, or started by a runtime that wrote none (read the JSON state then)."""
    try:
        lines = read_small(path).splitlines()
    except FileNotFoundError:
        return None
    try:
        pid, starttime = (int(word) for word in lines[0].split())
    except (IndexError, ValueError):
        return None, {}
    outer = dict(line.partition(" ")[::2] for line in lines[1:])
    return (pid if _alive(pid, starttime) else None), outer


def inner_procs(outer: dict[str, str]) -> list[str]:
    """The `cgroup.procs` files of the inner cgroups, from the outer paths a registry record keeps."""
    return [os.path.join(path, INNER, "cgroup.procs") for path in outer.values()]


def frozen(outer: dict[str, str]) -> bool:
    """Whether the VPS is paused, read as its cgroup driver reads it: the v1 freezer where one
    is mounted (v1 and hybrid hosts), else cgroup v2's `frozen` event."""
    for name, path in outer.items():
        if "freezer" in name.split(","):
            return read_small(os.path.join(path, "freezer.state")).strip() == "FROZEN"
    if "unified" in outer:
        return "frozen 1" in read_small(os.path.join(outer["unified"], "cgroup.events")).splitlines()
    return False


def lookup(state_root: str, ctid: int) -> tuple[dict[str, object] | None, int | None]:
    """CT `ctid`'s registry record (as JSON) and its running init's PID, read from the files the
    registry (`<state_root>/ct/CTID.json`) and the runtime (`<state_root>/run/CTID.json`) keep."""
    import json

    try:
        with open(os.path.join(state_root, "ct", f"{ctid}.json"), encoding="utf-8") as fh:
            record = json.load(fh)
    except FileNotFoundError:
        return None, None
    return record, running_pid(os.path.join(state_root, "run", f"{ctid}.json"))
