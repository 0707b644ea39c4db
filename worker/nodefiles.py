"""The node's file servers for inside the VPSs, run and watched by the node supervisor.

Two FUSE servers: lxcfs (Debian's package; /proc/meminfo, cpuinfo, stat, uptime, loadavg,
swaps, diskstats per cgroup, so `free`, `top` and `uptime` inside follow the VPS's limits)
and our beancounter file server (`python -m kernel.ubc.fusefile`, the VPS's own table at
`/run/ctpanel/user_beancounters`: its cgroup rows at read time, and the accounting rows the
usage sampler (worker/usage.py) counted last). Each VPS sees them through bind mounts made at start.
If a server dies, reads of its files inside the VPSs fail with ENOTCONN and the VPSs run
on; `check()` (every supervisor tick) restarts it and binds its new files into every
running VPS. Stopping the supervisor stops them too; the next supervisor's `start()` binds
again. lxcfs can be upgraded in place with SIGUSR1 (it reloads its library and keeps its
connection), so only a crash needs the rebind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from kernel import run, running, statefile
from kernel import syscalls as sc
from kernel.errors import KernelError, Timeout
from kernel.runtime import Runtime
from kernel.ubc import accounting, inside

log = logging.getLogger("ctpanel.nodefiles")


@dataclass
class _Server:
    name: str
    mountpoint: str
    argv: list[str]
    pidfile: str  # the running server's PID, for a supervisor restarted after a crash
    proc: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """End a server a crashed supervisor left behind, clear its mount, start the server and
        wait until it is mounted."""
        self._end_leftover()
        while inside.fuse_mounted(self.mountpoint):  # a dead server's: stat() fails there
            sc.umount2(self.mountpoint, sc.MNT_DETACH)
        os.makedirs(self.mountpoint, 0o755, exist_ok=True)
        self.proc = run.background(self.argv)
        statefile.write_json(self.pidfile, {"pid": self.proc.pid}, durable=False)
        deadline = time.monotonic() + timeout
        while not inside.fuse_mounted(self.mountpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise Timeout(f"{self.name} did not mount {self.mountpoint}")
            time.sleep(0.02)

    def _end_leftover(self) -> None:
        """A previous supervisor's server (recorded PID, still serving this mount point: checked on
        its command line, so a reused PID is left alone) is killed; it is not our child."""
        try:
            pid = int(statefile.read_json(self.pidfile)["pid"])
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read().split(b"\0")
        except (KernelError, OSError, ValueError, KeyError, TypeError):
            return
        if self.mountpoint.encode() not in cmdline or (self.proc is not None and self.proc.pid == pid):
            return
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (running.proc_stat(pid) or ["Z"])[0] not in ("Z", "X") and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        while inside.fuse_mounted(self.mountpoint):
            sc.umount2(self.mountpoint, sc.MNT_DETACH)


class NodeFiles:
    """lxcfs at `rt.lxcfs` and the beancounter server at `inside.node_mount` (or the given paths)."""

    def __init__(self, rt: Runtime, *, lxcfs: str | None = None, ubc: str | None = None) -> None:
        self.rt = rt
        self.lxcfs = lxcfs or rt.lxcfs
        self.ubc = ubc or inside.node_mount(rt.config.run_dir)
        run_dir = rt.config.run_dir
        self.servers = [
            _Server("beancounter file server", self.ubc,
                    [sys.executable, "-m", "kernel.ubc.fusefile", self.ubc, "--prefix", rt.config.cgroup_prefix,
                     "--accounting", accounting.rows_path(run_dir)],
                    os.path.join(run_dir, "ubc-fs.json")),
        ]
        if self.lxcfs:  # lxcfs keeps a pidfile of its own (-p), locked while it runs
            self.servers.append(_Server("lxcfs", self.lxcfs, ["lxcfs", "-f", "-l", "--enable-cfs", "--enable-pidfd",
                                                              "-p", os.path.join(run_dir, "lxcfs.pid"), self.lxcfs],
                                        os.path.join(run_dir, "lxcfs.json")))

    def start(self) -> None:
        self.check()

    def check(self) -> list[str]:
        """Restart dead servers and bind their files into every running VPS; the names restarted."""
        restarted = []
        for server in self.servers:
            if server.alive():
                continue
            if server.proc is not None:
                log.warning("%s exited (%s); restarting it", server.name, server.proc.returncode)
            try:
                server.start()
            except KernelError as exc:
                log.error("%s: %s", server.name, exc)
                continue
            restarted.append(server.name)
        if restarted:
            self.rebind()
        return restarted

    def rebind(self) -> None:
        for ctid in self.rt.registry.ctids():
            with contextlib.suppress(KernelError):
                pid = self.rt.status(ctid).init_pid
                if pid:
                    try:
                        inside.bind_into(pid, inside.binds(ctid, self.ubc, self.lxcfs))
                    except (KernelError, OSError) as exc:  # OSError: its init is exiting right now
                        log.warning("CT %s: %s", ctid, exc)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
