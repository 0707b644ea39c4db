"""Real processes for the integration and browser tiers: Celery workers and the ASGI server.

`./ctl test` starts a PostgreSQL cluster and a Redis instance of the test
profile and exports the panel's variables; CTPANEL_TEST_NODE_ENV names the
test node's env file. The fixtures here start real worker processes
against pytest-django's test database and stop them by PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def read_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    values = {}
    for line in Path(path).read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key] = value
    return values


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} did not log {text!r} within {timeout:g} s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=15)


def start_process(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> Process:
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        popen = subprocess.Popen(argv, cwd=TOP, env=env, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    return Process(name, popen, log_path)


@dataclass
class Stack:
    """The node and panel workers of one test session."""

    node_env: dict[str, str]
    panel_env: dict[str, str]
    keys: Path  # this session's node key pairs; keys/trusted-by-panel is the panel worker's trust store
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def node_name(self) -> str:
        return self.node_env["CTPANEL_NODE_NAME"]

    def node_keys(self, node: str) -> dict[str, str]:
        """Node `node`'s own signing key and certificate ("node-<name>", trusted by the panel worker from now
        on): the panel refuses a node's messages that name another node (panel/core/signing.py)."""
        from worker import keys, protocol

        key, cert = keys.ensure(self.keys, protocol.node_signer_name(node))
        trusted = self.keys / "trusted-by-panel" / cert.name
        if not trusted.exists():
            staged = trusted.with_name(f".{cert.name}.tmp")  # the store skips dot files; the rename is atomic
            shutil.copyfile(cert, staged)
            staged.rename(trusted)
        return {"CTPANEL_SIGNING_KEY": str(key), "CTPANEL_SIGNING_CERT": str(cert)}

    def start_node_worker(self, log_dir: Path, name: str = "node-worker", **extra_env: str) -> Process:
        # A node process knows nothing of the panel's settings.
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CTPANEL_", "DJANGO_"))}
        env = {**base, **self.node_env, **extra_env}
        env.update(self.node_keys(env["CTPANEL_NODE_NAME"]))  # each node signs as itself
        argv = [str(BIN / "celery"), "-A", "worker.celery_app", "worker",
                "-Q", f"node.{env['CTPANEL_NODE_NAME']}", "-n", f"{name}-{os.getpid()}@%h",
                "--loglevel", "INFO",
                "--without-mingle", "--without-gossip", "--without-heartbeat"]
        proc = start_process(name, argv, env, log_dir)
        proc.wait_for_log(" ready.")
        self.processes[name] = proc
        return proc

    def start_supervisor(self, log_dir: Path, name: str = "supervisor", **extra_env: str) -> Process:
        """The node supervisor on the node's env (its socket: <state root>/run/supervisor.sock)."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CTPANEL_", "DJANGO_"))}
        log = log_dir / f"{name}.log"
        before = log.read_text().count(" ready on ") if log.exists() else 0  # a restart appends
        proc = start_process(name, [sys.executable, "-m", "worker.supervisor"], {**base, **self.node_env, **extra_env},
                             log_dir)
        deadline = time.monotonic() + 30
        while proc.log().count(" ready on ") <= before:
            if proc.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not come up:\n{proc.log()[-4000:]}")
            time.sleep(0.05)
        self.processes[name] = proc
        return proc

    def start_relay(self, log_dir: Path, name: str = "console-relay") -> Process:
        """The node's console relay (worker/console_relay) on the node's env."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CTPANEL_", "DJANGO_"))}
        proc = start_process(name, [sys.executable, "-m", "worker.console_relay"], {**base, **self.node_env}, log_dir)
        proc.wait_for_log("ready for node")
        self.processes[name] = proc
        return proc

    def start_panel_worker(self, log_dir: Path, name: str = "panel-worker") -> Process:
        env = {**os.environ, **self.panel_env, "CTPANEL_TEST_CONN_MAX_AGE": "60"}  # as production's
        argv = [str(BIN / "celery"), "-A", "panel.celery", "worker",
                "-Q", self.panel_env["CTPANEL_PANEL_QUEUE"], "-n", f"{name}-{os.getpid()}@%h",
                "--concurrency", "2", "--loglevel", "INFO",
                "--without-mingle", "--without-gossip", "--without-heartbeat"]
        proc = start_process(name, argv, env, log_dir)
        proc.wait_for_log(" ready.")
        self.processes[name] = proc
        return proc

    def start_beat(self, log_dir: Path, name: str = "beat", **extra_env: str) -> Process:
        env = {**os.environ, **self.panel_env, **extra_env}
        argv = [str(BIN / "celery"), "-A", "panel.celery", "beat", "--schedule", str(log_dir / "beat-schedule"),
                "--loglevel", "INFO"]
        proc = start_process(name, argv, env, log_dir)
        proc.wait_for_log("beat: Starting")
        self.processes[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.processes.values():
            proc.stop()


def purge_queues(broker_url: str, *queues: str) -> None:
    """Drop what an earlier, interrupted run left in the test Redis (it keeps an AOF)."""
    import redis

    client = redis.Redis.from_url(broker_url)
    try:
        client.delete(*queues)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def test_db_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    """The panel's variables, pointed at pytest-django's test database."""
    from django.db import connection

    return {**os.environ, "CTPANEL_DB_NAME": connection.settings_dict["NAME"]}


@pytest.fixture(scope="session")
def stack(test_db_env, tmp_path_factory) -> Iterator[Stack]:
    """A node worker and a panel worker, real processes, for the whole session."""
    node_env = read_env_file(os.environ["CTPANEL_TEST_NODE_ENV"])
    # This run's own node name and panel queue (see panel/settings/test.py).
    run = os.environ.get("CTPANEL_TEST_RUN")
    if run:
        node_env.update(CTPANEL_NODE_NAME=f"test-{run}", CTPANEL_PANEL_QUEUE=test_db_env["CTPANEL_PANEL_QUEUE"],
                        CTPANEL_CGROUP_PREFIX=f"ctpanel-test-{run}")
    # The node's VPSs, journal and registry live in this session's own state root.
    node_env["CTPANEL_STATE_ROOT"] = str(tmp_path_factory.mktemp("node-state"))
    # The host side of the nodes' VPS networks (veths, routes, nft, forwarding) is a namespace of
    # this session, never the machine's own.
    netns = node_env["CTPANEL_NET_HOST_NETNS"] = f"ctpstack{os.getpid()}"
    # Test node workers fork 4 pool processes, not production's 16: a test may run three node workers
    # at once on a 2-core machine. bench/roundtrip.py measures with CTPANEL_TEST_NODE_CONCURRENCY=16.
    node_env["CTPANEL_NODE_CONCURRENCY"] = os.environ.get("CTPANEL_TEST_NODE_CONCURRENCY", "4")
    # The panel worker trusts the panel's own certificate and each node's that this session starts.
    keys = tmp_path_factory.mktemp("keys")
    (keys / "trusted-by-panel").mkdir()
    shutil.copyfile(test_db_env["CTPANEL_SIGNING_CERT"], keys / "trusted-by-panel" / "panel.crt")
    stack = Stack(node_env=node_env, panel_env={**test_db_env, "CTPANEL_TRUSTED_CERTS": str(keys / "trusted-by-panel")},
                  keys=keys)
    node_env.update(stack.node_keys(stack.node_name))
    purge_queues(node_env["CTPANEL_BROKER_URL"], f"node.{stack.node_name}", test_db_env["CTPANEL_PANEL_QUEUE"])
    log_dir = tmp_path_factory.mktemp("workers")
    subprocess.run(["ip", "netns", "add", netns], check=True)
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        stack.start_node_worker(log_dir)
        stack.start_panel_worker(log_dir)
        yield stack
    finally:
        stack.stop_all()
        subprocess.run(["ip", "netns", "del", netns], check=False)


@pytest.fixture(scope="session")
def live_panel(test_db_env, tmp_path_factory) -> Iterator[str]:
    """The ASGI server (uvicorn) on a free loopback port, against the test database."""
    port = free_port()
    log_dir = tmp_path_factory.mktemp("web")
    argv = [str(BIN / "uvicorn"), "panel.asgi:application", "--host", "127.0.0.1", "--port", str(port),
            "--no-server-header"]
    env = {**test_db_env, "CTPANEL_ALLOWED_HOSTS": "127.0.0.1,localhost"}
    proc = start_process("web", argv, env, log_dir)
    try:
        proc.wait_for_log("Uvicorn running on")
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def restart_redis_hard(home: str) -> int:
    """kill -9 the test profile's Redis and start it again the way ./ctl does; return the new pid."""
    import redis

    run = Path(home, "run")
    client = redis.Redis.from_url(read_env_file(Path(home, "etc", "panel.env"))["CTPANEL_BROKER_URL"])
    try:
        old = int(client.info("server")["process_id"])  # the pid file may be another run's
    finally:
        client.close()
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{old}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(Path(home, "log", "redis.log"), "ab") as log:
        proc = subprocess.Popen(
            ["setpriv", "--reuid=redis", "--regid=redis", "--init-groups", "--",
             "redis-server", str(Path(home, "redis", "redis.conf"))],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    (run / "redis.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def wait_for(predicate, timeout: float, what: str):
    """The first truthy value of `predicate()`, polled until `timeout`; AssertionError naming `what` after."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def terminal(op, timeout: float = 60):
    """The operation once it succeeded or failed (refreshed from the database)."""

    def done():
        op.refresh_from_db()
        return op if op.is_terminal else None

    return wait_for(done, timeout, f"{op.action} {op.pk} to finish")


def finished(op, timeout: float = 90):
    """The operation once it succeeded; a failure fails the test with the node's error."""
    op = terminal(op, timeout)
    assert op.status == "succeeded", f"{op.action}: {op.error_code}: {op.error_message}"
    return op
