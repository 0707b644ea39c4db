"""Issue 4's runtime benchmark: one run on a busybox VPS, medians printed as a table.

    .venv/bin/python -m bench.runtime [--runs 20] [--idle 50]    (from the repository root)

start-to-exec-ready (Runtime.start, then the first exec of `true` succeeds),
hard stop (stop(fast=True)), create, in-process exec, the `vzctl exec` CLI
against the venv's bare interpreter start, and host memory per idle running
VPS for `--idle` VPSs (MemTotal-MemAvailable delta, and the part outside the
VPSs' own memory cgroups). Uses a private node under /tmp and removes it.
Not a test: it asserts nothing. When Debian's lxc is installed, LXC's numbers for the same
rootfs are printed beside ours (a container with loopback only: docs/cli.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from kernel import archive
from kernel import syscalls as sc
from kernel.cgroups import tuning
from kernel.config import NodeConfig
from kernel.errors import KernelError
from kernel.run import run
from kernel.runtime import CreateSpec, Runtime

PYTHON = sys.executable
VZCTL = [PYTHON, "-c", "import sys; from worker.cli.vzctl import main; sys.exit(main())"]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def children_cpu(fn: Callable[[], object]) -> float:
    """CPU (user + system, ms) of the processes `fn` ran and reaped, their own reaped children
    included: the CLI's work, less sensitive than wall time to what else runs on the machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    fn()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000


def median(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ms (min {min(values):.1f}, n={len(values)})"


def used_memory() -> int:
    info = {}
    with open("/proc/meminfo", encoding="ascii") as fh:
        for line in fh:
            key, value = line.split(":")
            info[key] = int(value.split()[0]) * 1024
    return info["MemTotal"] - info["MemAvailable"]


def cgroup_memory(rt: Runtime, ctid: int) -> int:
    path = rt.cgroups.paths(ctid).outer.get("memory")
    for name in ("memory.usage_in_bytes", "memory.current"):
        with contextlib.suppress(OSError, TypeError), open(os.path.join(path, name), encoding="ascii") as fh:
            return int(fh.read())
    return 0


LXC_CONFIG = """lxc.uts.name = {name}
lxc.rootfs.path = dir:{rootfs}
lxc.init.cmd = /sbin/init
lxc.net.0.type = empty
lxc.apparmor.profile = unconfined
lxc.mount.auto = proc:mixed sys:ro cgroup:mixed
lxc.console.path = none
lxc.tty.max = 0
lxc.pty.max = 16
"""


def lxc_rows(rt: Runtime, top: str, runs: int) -> list[tuple[str, str]]:
    """The LXC baselines on the same busybox rootfs (privileged container, no network but loopback)."""
    path = os.path.join(top, "lxc")
    base = os.path.join(path, "base")
    os.makedirs(os.path.join(base, "rootfs"))
    archive.unpack(rt.templates.get("busybox").tarball, os.path.join(base, "rootfs"))
    with open(os.path.join(base, "config"), "w", encoding="ascii") as fh:
        fh.write(LXC_CONFIG.format(name="base", rootfs=os.path.join(base, "rootfs")))
    copy, start, stop, attach = [], [], [], []
    names: list[str] = []
    try:
        for n in range(runs):
            name = f"c{n}"
            copy.append(timed(lambda name=name: run(["lxc-copy", "-P", path, "-n", "base", "-N", name])))
            names.append(name)

            def ready(name: str = name) -> None:
                run(["lxc-start", "-P", path, "-n", name, "-d"])
                run(["lxc-wait", "-P", path, "-n", name, "-s", "RUNNING"])
                run(["lxc-attach", "-P", path, "-n", name, "--", "true"])

            start.append(timed(ready))
            attach.append(timed(lambda name=name: run(["lxc-attach", "-P", path, "-n", name, "--", "true"])))
            stop.append(timed(lambda name=name: run(["lxc-stop", "-P", path, "-n", name, "-k"])))
    finally:
        for name in names:
            run(["lxc-stop", "-P", path, "-n", name, "-k"], check=False)
            run(["lxc-destroy", "-P", path, "-n", name], check=False)
    return [
        ("LXC: lxc-copy", median(copy)),
        ("LXC: start -d + wait RUNNING + attach true", median(start)),
        ("LXC: lxc-stop -k", median(stop)),
        ("LXC: lxc-attach -- true", median(attach)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=int, default=50)
    args = parser.parse_args()
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # as the supervisor: inits are ours to reap
    load = os.getloadavg()
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        # Without it every start and exec waits for an RCU grace period (kernel/cgroups/tuning.py).
        dynmods = "no" if tuning.plan(fh.read()) else "yes (or no cgroup2 mounted)"
    top = tempfile.mkdtemp(prefix="ctpanel-bench-runtime-")
    node = NodeConfig(node="benchrt", state_root=os.path.join(top, "state"), cgroup_prefix="ctpanel-bench-rt",
                      idmap_registry=os.path.join(top, "ids.json"))  # fmt: skip
    rt = Runtime(node, lxcfs=None)
    rt.templates.ensure_busybox()
    env = {"CTPANEL_NODE_NAME": node.node, "CTPANEL_STATE_ROOT": node.state_root,
           "CTPANEL_CGROUP_PREFIX": node.cgroup_prefix, "CTPANEL_IDMAP_REGISTRY": node.idmap_registry}  # fmt: skip
    # kernel.run's minimal environment: no PYTHONDONTWRITEBYTECODE, so the .pyc files are used
    made: list[int] = []
    rows: list[tuple[str, str]] = []
    try:
        create, start, stop, exec_ms, cli, bare = [], [], [], [], [], []
        cli_cpu: list[float] = []
        bare_cpu: list[float] = []
        for n in range(args.runs):
            ctid = 1000 + n
            made.append(ctid)
            create.append(timed(lambda c=ctid: rt.create(CreateSpec(ctid=c, template="busybox"))))

            def ready(c: int = ctid) -> None:
                rt.start(c)
                assert rt.exec(c, ["true"]).returncode == 0

            start.append(timed(ready))
            exec_ms.append(timed(lambda c=ctid: rt.exec(c, ["true"])))
            if n == 0:  # writes the .pyc files
                run([*VZCTL, "exec", str(ctid), "true"], env=env)
            cli.append(timed(lambda c=ctid: run([*VZCTL, "exec", str(c), "true"], env=env)))
            bare.append(timed(lambda: run([PYTHON, "-c", "pass"])))
            cli_cpu.append(children_cpu(lambda c=ctid: run([*VZCTL, "exec", str(c), "true"], env=env)))
            bare_cpu.append(children_cpu(lambda: run([PYTHON, "-c", "pass"])))
            stop.append(timed(lambda c=ctid: rt.stop(c, fast=True)))
        for ctid in list(made):
            rt.destroy(ctid)
            made.remove(ctid)
        rows += [
            ("create (busybox, dir volume)", median(create)),
            ("start to exec-ready (library)", median(start)),
            ("hard stop (stop fast)", median(stop)),
            ("in-process exec true", median(exec_ms)),
            ("vzctl exec CTID true (CLI)", median(cli)),
            ("bare interpreter (python -c pass)", median(bare)),
            ("CLI overhead over bare start", f"{statistics.median(cli) - statistics.median(bare):.1f} ms"),
            ("  in CPU (mean): vzctl exec / bare / overhead",
             f"{statistics.mean(cli_cpu):.1f} / {statistics.mean(bare_cpu):.1f} / "
             f"{statistics.mean(cli_cpu) - statistics.mean(bare_cpu):.1f} ms"),
        ]

        ids = [2000 + n for n in range(args.idle)]
        for ctid in ids:
            made.append(ctid)
            rt.create(CreateSpec(ctid=ctid, template="busybox"))
        time.sleep(1)
        before = used_memory()
        for ctid in ids:
            rt.start(ctid)
        time.sleep(3)  # idle: inits settled
        delta = used_memory() - before
        own = sum(cgroup_memory(rt, ctid) for ctid in ids)
        rows += [
            (f"host memory per idle VPS ({args.idle})", f"{delta / args.idle / 1024:.0f} KiB"),
            ("  of which the VPS's own cgroup", f"{own / args.idle / 1024:.0f} KiB"),
            ("  beyond its own processes", f"{(delta - own) / args.idle / 1024:.0f} KiB"),
        ]
        if shutil.which("lxc-start"):
            try:
                rows += lxc_rows(rt, top, args.runs)
            except KernelError as exc:
                rows.append(("LXC baselines", f"failed: {exc} {getattr(exc, 'stderr', '')[-300:]}"))
        else:
            rows.append(("LXC baselines", "lxc is not installed"))
    finally:
        for ctid in made:
            with contextlib.suppress(KernelError):
                rt.stop(ctid, fast=True)
            with contextlib.suppress(KernelError):
                rt.destroy(ctid)
        for mount in rt.cgroups.hierarchies().values():
            for leftover in (os.path.join(mount, node.cgroup_prefix), os.path.join(mount, "lxc.pivot")):
                with contextlib.suppress(OSError):
                    os.rmdir(leftover)  # empty by now; lxc.pivot is what lxc-start leaves
        shutil.rmtree(top, ignore_errors=True)
    rows.append(("load average at start / end", f"{load[0]:.2f} / {os.getloadavg()[0]:.2f} (1 min)"))
    rows.append(("cgroup2 mount with favordynmods", dynmods))
    width = max(len(name) for name, _ in rows)
    print(f"{'what':<{width}}  median")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
