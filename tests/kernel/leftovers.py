"""What a VPS can leave behind on the host, forced clean-up for test teardown, and waiting for an init to end."""

from __future__ import annotations

import contextlib
import os
import select

from kernel import syscalls as sc
from kernel.errors import KernelError
from kernel.runtime import Runtime


def processes(id_start: int, size: int = 65536, *, zombies: bool = True) -> list[int]:
    """PIDs running as one of the host ids of a VPS's range (zombies too, unless `zombies` is False)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", encoding="utf-8") as fh:
                fields = dict(line.split(":", 1) for line in fh if ":" in line)
            uid = int(fields["Uid"].split()[1])
        except (OSError, KeyError, ValueError, IndexError):
            continue
        if id_start <= uid < id_start + size and (zombies or not fields.get("State", "").strip().startswith("Z")):
            found.append(int(name))
    return found


def of(runtime: Runtime, ctid: int, id_start: int | None = None, *, zombies: bool = True) -> list[str]:
    """Every trace of `ctid` on this host: cgroups, mounts, processes, registry, state, ids."""
    found = []
    if id_start is None:
        ids = runtime.ids.lookup(ctid)
        id_start = ids.start if ids else None
    if id_start is not None:
        found += [f"process {pid}" for pid in processes(id_start, zombies=zombies)]
    for path in runtime.cgroups.paths(ctid).outer.values():
        if os.path.exists(path):
            found.append(f"cgroup {path}")
    volume = runtime.volume_path(ctid)
    stage = os.path.join(runtime.config.run_dir, f"{ctid}.root")
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4]
            if point.startswith((volume, stage, runtime.root_path(ctid))):
                found.append(f"mount {point}")
    if runtime.registry.find(ctid) is not None:
        found.append("registry entry")
    if runtime.ids.lookup(ctid) is not None:
        found.append("id range")
    for name in (f"{ctid}.json", f"{ctid}.init", f"{ctid}.root"):
        if os.path.exists(os.path.join(runtime.config.run_dir, name)):
            found.append(f"run/{name}")
    if os.path.exists(volume):
        found.append("volume")
    if os.path.exists(runtime.root_path(ctid)):
        found.append("root mount point")
    return found


def force_remove(runtime: Runtime, ctid: int) -> None:
    """Best effort: stop, destroy, and at least kill and remove the cgroups."""
    with contextlib.suppress(KernelError):
        runtime.stop(ctid, fast=True)
    with contextlib.suppress(KernelError):
        runtime.cgroups.kill(ctid)
        runtime.cgroups.remove(ctid)
    with contextlib.suppress(KernelError):
        runtime.destroy(ctid)


def wait_exit(pid: int, bound: float = 20.0) -> None:
    """Until process `pid` (a VPS's init) has ended; fails after `bound` seconds (a hang, not timing)."""
    pidfd = sc.pidfd_open(pid)
    try:
        assert select.select([pidfd], [], [], bound)[0], f"process {pid} did not end"
    finally:
        os.close(pidfd)
