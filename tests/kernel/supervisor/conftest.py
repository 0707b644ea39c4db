"""A real supervisor process (`python -m worker.supervisor`) on the kernel tests' private node."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from kernel.config import NodeConfig
from worker.supervisor import protocol
from worker.supervisor.client import Client

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


class SupervisorProcess:
    """Starts, kills and restarts the supervisor; `client` talks to the current one."""

    def __init__(self, config: NodeConfig, ring_size: int = 0, path: str = "") -> None:
        self.config = config
        self.ring_size = ring_size
        self.path = path or protocol.socket_path(config.state_root)
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = Client(self.path, timeout=60)

    def start(self) -> None:
        argv = [sys.executable, "-m", "worker.supervisor", "--node", self.config.node,
                "--state-root", self.config.state_root, "--cgroup-prefix", self.config.cgroup_prefix,
                "--idmap-registry", self.config.idmap_registry, "--id-base", str(self.config.id_base)]
        if self.ring_size:
            argv += ["--ring-size", str(self.ring_size)]
        if self.path != protocol.socket_path(self.config.state_root):
            argv += ["--socket", self.path]
        env = {k: v for k, v in os.environ.items() if not k.startswith("CTPANEL_")}
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env)
        deadline = time.monotonic() + 30
        while True:  # ready once it answers
            assert self.proc.poll() is None, "the supervisor exited"
            try:
                self.client.list()
                return
            except (FileNotFoundError, ConnectionRefusedError):
                assert time.monotonic() < deadline, "the supervisor did not come up"
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


@pytest.fixture
def supervisor(node_config: NodeConfig, make_vps: object, subreaper: None) -> Iterator[SupervisorProcess]:
    """Torn down before `make_vps` (requested first), so the test's VPSs are stopped after the
    supervisor is gone: their inits are then reparented to pytest, which reaps them."""
    sup = SupervisorProcess(node_config)
    sup.start()
    try:
        yield sup
    finally:
        sup.stop()


def read_until(sock: socket.socket, needle: bytes, *, limit: float = 30.0, send: bytes = b"") -> bytes:
    """Console bytes until `needle` shows up (re-sending `send` each second, as a person
    would press Enter again on a console that was just being re-bound); fails after `limit`."""
    seen = b""
    deadline = time.monotonic() + limit
    next_send = 0.0
    sock.settimeout(0.2)
    while needle not in seen:
        now = time.monotonic()
        assert now < deadline, f"{needle!r} not seen on the console; got {seen[-400:]!r}"
        if send and now >= next_send:
            sock.sendall(send)
            next_send = now + 1.0
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        assert data, f"console closed before {needle!r}; got {seen[-400:]!r}"
        seen += data
    return seen
