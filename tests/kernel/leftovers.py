"""What a VPS can leave behind on the host, and forced clean-up for test teardown."""

from __future__ import annotations

import contextlib
import os

from kernel.errors import KernelError
from kernel.runtime import Runtime


def of(runtime: Runtime, ctid: int) -> list[str]:
    """Every trace of `ctid` on this host: cgroups, mounts, processes, registry, state, ids."""
    found = []
    for path in runtime.cgroups.paths(ctid).outer.values():
        if os.path.exists(path):
            found.append(f"cgroup {path}")
    volume = runtime.volume_path(ctid)
    stage = os.path.join(runtime.config.run_dir, f"{ctid}.root")
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            point = line.split()[4]
            if point.startswith((volume, stage)):
                found.append(f"mount {point}")
    if runtime.registry.find(ctid) is not None:
        found.append("registry entry")
    if runtime.ids.lookup(ctid) is not None:
        found.append("id range")
    for name in (f"{ctid}.json", f"{ctid}.root"):
        if os.path.exists(os.path.join(runtime.config.run_dir, name)):
            found.append(f"run/{name}")
    if os.path.exists(volume):
        found.append("volume")
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
