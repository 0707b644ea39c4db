"""Panel service call → VPS running (exec-ready), through Celery, real workers and the real kernel.

    CTPANEL_TEST_NODE_CONCURRENCY=16 ./ctl test bench/roundtrip.py -p tests.services -o python_functions=run -s

uses the test profile's PostgreSQL and Redis and starts its own workers
(BENCH_SEQUENTIAL and BENCH_CONCURRENT change the counts: 50 and 20). The node
worker's pool is the test stack's (4 processes) unless CTPANEL_TEST_NODE_CONCURRENCY
says otherwise: 16 is production's default (worker/config.py). As on a node, the
starts go through the node's supervisor (it parents the inits and keeps the one
spawner); BENCH_SUPERVISOR=0 leaves it out, so each pool process starts VPSs itself.

Prints p50/p95 for sequential and concurrent starts (target, issue 8: p95 ≤ 1 s) and the CPU the
concurrent starts took: this process (the panel's service calls), the exec probe (`Probe`), the node
and panel workers, PostgreSQL and the whole machine, whose two cores other work shares.

A start is timed from the service call until a command (`true`) ran inside the VPS. Each thread
calls the services on a database connection it opened before the timing, as a panel process does
(CONN_MAX_AGE): a connection made per start cost this process ~3 ms and PostgreSQL ~8 ms of CPU
(password exchange, backend start). The command runs from a small process of its own (`Probe`):
an exec forks its caller, and a fork of this pytest process (~250 MB) cost it and its children
some 12 ms of CPU per start.
Not a test: it is collected only when named, and asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import threading
import time

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Watcher:
    """Ends of operations as PostgreSQL tells them: a trigger this bench adds to its test database
    NOTIFYs each operation that reaches a terminal status (at the commit that makes it visible), and
    one thread LISTENs. Polling for them cost CPU the starts it timed needed: one query each 5 ms
    took ~0.7 s of this process's and PostgreSQL's CPU per 20 concurrent starts, on two cores."""

    CHANNEL = "bench_operation_ended"

    def __init__(self) -> None:
        import psycopg
        from django.db import connection

        from panel.core.choices import OperationStatus
        from panel.core.models import Operation

        terminal = ", ".join(f"'{status}'" for status in sorted(OperationStatus.terminal()))
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE OR REPLACE FUNCTION bench_operation_ended() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"PERFORM pg_notify('{self.CHANNEL}', NEW.id::text); RETURN NEW; END $$")
            cursor.execute(
                f"CREATE OR REPLACE TRIGGER bench_operation_ended AFTER UPDATE OF status ON {Operation._meta.db_table} "
                f"FOR EACH ROW WHEN (NEW.status IN ({terminal}) AND OLD.status IS DISTINCT FROM NEW.status) "
                "EXECUTE FUNCTION bench_operation_ended()")
        params = connection.get_connection_params()
        self._listener = psycopg.connect(**params, autocommit=True)
        self._listener.execute(f"LISTEN {self.CHANNEL}")
        self._waiting: dict[str, threading.Event] = {}
        self._ended: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            for note in self._listener.notifies(timeout=0.2):
                with self._lock:
                    self._ended.add(note.payload)
                    event = self._waiting.pop(note.payload, None)
                if event is not None:
                    event.set()

    def wait(self, op, timeout: float) -> tuple[str, str]:
        """(status, error message) of `op` once it ended."""
        event = threading.Event()
        with self._lock:
            if str(op.pk) in self._ended:
                event.set()
            else:
                self._waiting[str(op.pk)] = event
        if not event.wait(timeout):
            raise TimeoutError(f"{op.action} {op.pk} did not end within {timeout:g} s")
        op.refresh_from_db(fields=["status", "error_message"])
        return op.status, op.error_message

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._listener.close()


class Probe:
    """`true` run inside a VPS (`Runtime.exec`) by a small process of its own (~20 MB: the kernel
    package alone), one thread there per connection; `connect()` gives a thread its connection."""

    CODE = """
import socket, sys, threading
sys.path[:0] = sys.argv[1:2]
from kernel.config import NodeConfig
from kernel.runtime import Runtime
rt = Runtime(NodeConfig(node=sys.argv[2], state_root=sys.argv[3], cgroup_prefix=sys.argv[4]))
listener = socket.socket(fileno=int(sys.argv[5]))
def serve(conn):
    with conn, conn.makefile("rwb", buffering=0) as io:
        for line in io:
            try:
                answer = str(rt.exec(int(line), ["true"], timeout=10).returncode)
            except Exception as exc:
                answer = f"{type(exc).__name__}: {exc}".replace(chr(10), " ")
            io.write(answer.encode() + b"\\n")
while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
"""

    def __init__(self, config: KernelNodeConfig, directory: str) -> None:
        import socket
        import sys

        from kernel import run

        self.path = os.path.join(directory, "probe.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(64)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        self.proc = run.background([sys.executable, "-I", "-S", "-c", self.CODE, root, config.node,
                                    config.state_root, config.cgroup_prefix, str(listener.fileno())],
                                   pass_fds=(listener.fileno(),))
        listener.close()

    def connect(self):  # -> a file object: one per thread
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        return sock.makefile("rwb", buffering=0)

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _wait_running(op, probe, ctid: int, watcher: Watcher, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    status, message = watcher.wait(op, timeout)
    if status != "succeeded":
        raise RuntimeError(f"{op.action}: {message}")
    while time.monotonic() < deadline:
        probe.write(f"{ctid}\n".encode())
        answer = probe.readline().decode().strip()
        if not answer.lstrip("-").isdigit():
            raise RuntimeError(f"CT {ctid}: exec: {answer or 'the probe has gone'}")
        if answer == "0":
            return
        time.sleep(0.005)
    raise TimeoutError(f"CT {ctid} not running after {timeout:g} s")


@pytest.mark.django_db(transaction=True)
def run(stack, tmp_path) -> None:
    sequential = int(os.environ.get("BENCH_SEQUENTIAL", "50"))
    concurrent = int(os.environ.get("BENCH_CONCURRENT", "20"))
    supervised = os.environ.get("BENCH_SUPERVISOR", "1") != "0"
    from django.db import connection

    from panel.accounts.choices import Role
    from panel.accounts.models import User
    from panel.nodes import services as nodes
    from panel.vps import services

    env = stack.node_env
    config = KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                              cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"])
    Runtime(config)  # the node's directories, before the probe's runtime opens them
    probe = Probe(config, str(tmp_path))
    admin = User.objects.create_user("bench-admin", role=Role.ADMIN)
    customer = User.objects.create_user("bench-customer", role=Role.CUSTOMER)
    node, _ = nodes.register_node(stack.node_name)
    supervisor = stack.start_supervisor(tmp_path) if supervised else None
    vpss = []
    for n in range(max(sequential, concurrent)):
        vps, op = services.create_vps(admin, customer=customer, node=node, template="busybox",
                                      hostname=f"bench{n}", start=False)
        _wait_running_or_created(op)
        vpss.append(vps)

    watcher = Watcher()
    failed: list[str] = []

    def start_one(vps, results: list[float], probe_io) -> None:
        started = time.monotonic()
        try:
            op = services.start(admin, vps)
            _wait_running(op, probe_io, vps.ctid, watcher)
        except Exception as exc:  # a thread's exception would vanish: counted and printed below
            failed.append(f"CT {vps.ctid}: {exc}")
        else:
            results.append(time.monotonic() - started)

    seq: list[float] = []
    probe_io = probe.connect()
    for vps in vpss[:sequential]:
        start_one(vps, seq, probe_io)
        # Through the node, as a customer would: a stop behind the node's back (a bare Runtime has
        # no network) leaves its host side for the next start to clear as a crash's leftovers.
        _wait_running_or_created(services.stop(admin, vps, fast=True))
    conc: list[float] = []
    ready = threading.Barrier(concurrent + 1)
    go = threading.Event()

    def concurrent_one(vps) -> None:
        connection.ensure_connection()  # a panel process's connection, made before the timing
        own_probe = probe.connect()
        try:
            ready.wait()
            go.wait()
            start_one(vps, conc, own_probe)
        finally:
            own_probe.close()
            connection.close()

    threads = [threading.Thread(target=concurrent_one, args=(vps,)) for vps in vpss[:concurrent]]
    groups = {"node worker": [stack.processes["node-worker"].popen.pid],
              "panel worker": [stack.processes["panel-worker"].popen.pid],
              "probe": [probe.proc.pid]}
    if supervisor is not None:
        groups["supervisor"] = [supervisor.popen.pid]
    for t in threads:
        t.start()
    ready.wait()
    before = {"bench": own_cpu(), **cpu_use(groups)}
    go.set()
    for t in threads:
        t.join()
    used = {name: cpu - before[name] for name, cpu in {"bench": own_cpu(), **cpu_use(groups)}.items()}
    watcher.close()
    probe_io.close()
    probe.close()
    print(f"\nstarts {'through the supervisor' if supervised else 'by the node worker pool processes'}")
    print(f"{'starts':<22}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for label, values in (("sequential", seq), ("concurrent", conc)):
        print(f"{label:<22}{len(values):>5}{statistics.median(values) * 1000:>10.0f}"
              f"{percentile(values, 0.95) * 1000:>10.0f}{max(values) * 1000:>10.0f}")
    print("CPU s of the concurrent starts: " + ", ".join(f"{name} {cpu:.2f}" for name, cpu in used.items()))
    for line in failed:
        print(f"failed: {line}")
    for vps in vpss:  # through the node, which tells the supervisor
        _wait_running_or_created(services.destroy(admin, vps))
    if supervisor is not None:
        supervisor.stop()


def own_cpu() -> float:
    """This process's CPU seconds with its reaped children's (its live descendants, the stack's workers
    and the probe, are counted on their own)."""
    with open("/proc/self/stat") as fh:
        return sum(int(f) for f in fh.read().rpartition(")")[2].split()[11:15]) / os.sysconf("SC_CLK_TCK")


def cpu_use(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds used so far by each group's processes and their descendants (one that exited counts
    once its parent reaped it), by the test PostgreSQL cluster (every database: a backend that
    exited counts only in the postmaster's total) and by the whole machine (every core)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, CPU s with reaped children)
    postgres = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rpartition(")")[2].split()
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except OSError:
            continue
        cpu = sum(int(f) for f in fields[11:15]) / tick
        stats[int(entry)] = (int(fields[1]), cpu)
        if cmdline.startswith(b"postgres: ") or b"/bin/postgres\0" in cmdline:
            postgres += cpu
    out = {}
    for name, roots in groups.items():
        members, todo = set(), list(roots)
        while todo:
            pid = todo.pop()
            if pid not in members:
                members.add(pid)
                todo += [child for child, (parent, _) in stats.items() if parent == pid]
        out[name] = sum(stats[pid][1] for pid in members if pid in stats)
    out["postgres"] = postgres
    with open("/proc/stat") as fh:
        out["machine"] = sum(int(f) for f in fh.readline().split()[1:8]) / tick
    return out


def _wait_running_or_created(op, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op.refresh_from_db()
        if op.is_terminal:
            return
        time.sleep(0.01)
    raise TimeoutError(op.action)

