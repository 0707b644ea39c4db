"""Panel service call → VPS running (exec-ready), through Celery, real workers and the real kernel.

    CTPANEL_TEST_NODE_CONCURRENCY=16 ./ctl test bench/roundtrip.py -p tests.services -o python_functions=run -s

uses the test profile's PostgreSQL and Redis and starts its own workers
(BENCH_SEQUENTIAL and BENCH_CONCURRENT change the counts: 50 and 20). The node
worker's pool is the test stack's (4 processes) unless CTPANEL_TEST_NODE_CONCURRENCY
says otherwise: 16 is production's default (worker/config.py).

Prints p50/p95 for sequential and concurrent starts. Target (issue 8): p95 ≤ 1 s.
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
    """Ends of operations, read for every waiting thread with one query each 5 ms: twenty threads
    polling on their own each 5 ms took more CPU (this process's and PostgreSQL's) than the starts
    they were timing, on a machine of two cores."""

    def __init__(self) -> None:
        self._waiting: dict[str, threading.Event] = {}
        self._ended: dict[str, tuple[str, str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        from django.db import connection

        from panel.core.choices import OperationStatus
        from panel.core.models import Operation

        try:
            while not self._stop.is_set():
                with self._lock:
                    ids = list(self._waiting)
                if ids:
                    ended = Operation.objects.filter(pk__in=ids, status__in=OperationStatus.terminal())
                    for pk, status, message in ended.values_list("pk", "status", "error_message"):
                        with self._lock:
                            self._ended[str(pk)] = (status, message)
                            self._waiting.pop(str(pk)).set()
                time.sleep(0.005)
        finally:
            connection.close()

    def wait(self, op, timeout: float) -> tuple[str, str]:
        """(status, error message) of `op` once it ended."""
        event = threading.Event()
        with self._lock:
            self._waiting[str(op.pk)] = event
        if not event.wait(timeout):
            raise TimeoutError(f"{op.action} {op.pk} did not end within {timeout:g} s")
        with self._lock:
            return self._ended.pop(str(op.pk))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _wait_running(op, rt: Runtime, ctid: int, watcher: Watcher, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    status, message = watcher.wait(op, timeout)
    if status != "succeeded":
        raise RuntimeError(f"{op.action}: {message}")
    while time.monotonic() < deadline:
        if rt.exec(ctid, ["true"], timeout=10).returncode == 0:
            return
        time.sleep(0.005)
    raise TimeoutError(f"CT {ctid} not running after {timeout:g} s")


@pytest.mark.django_db(transaction=True)
def run(stack) -> None:
    sequential = int(os.environ.get("BENCH_SEQUENTIAL", "50"))
    concurrent = int(os.environ.get("BENCH_CONCURRENT", "20"))
    from django.db import connection

    from panel.accounts.choices import Role
    from panel.accounts.models import User
    from panel.nodes import services as nodes
    from panel.vps import services

    env = stack.node_env
    rt = Runtime(KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                                  cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))
    admin = User.objects.create_user("bench-admin", role=Role.ADMIN)
    customer = User.objects.create_user("bench-customer", role=Role.CUSTOMER)
    node, _ = nodes.register_node(stack.node_name)
    vpss = []
    for n in range(max(sequential, concurrent)):
        vps, op = services.create_vps(admin, customer=customer, node=node, template="busybox",
                                      hostname=f"bench{n}", start=False)
        _wait_running_or_created(op)
        vpss.append(vps)

    watcher = Watcher()
    failed: list[str] = []

    def start_one(vps, results: list[float]) -> None:
        started = time.monotonic()
        try:
            op = services.start(admin, vps)
            _wait_running(op, rt, vps.ctid, watcher)
        except Exception as exc:  # a thread's exception would vanish: counted and printed below
            failed.append(f"CT {vps.ctid}: {exc}")
        else:
            results.append(time.monotonic() - started)
        finally:
            connection.close()

    seq: list[float] = []
    for vps in vpss[:sequential]:
        start_one(vps, seq)
        # Through the node, as a customer would: a stop behind the node's back (a bare Runtime has
        # no network) leaves its host side for the next start to clear as a crash's leftovers.
        _wait_running_or_created(services.stop(admin, vps, fast=True))
    conc: list[float] = []
    threads = [threading.Thread(target=start_one, args=(vps, conc)) for vps in vpss[:concurrent]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    watcher.close()
    print(f"\n{'starts':<22}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for label, values in (("sequential", seq), ("concurrent", conc)):
        print(f"{label:<22}{len(values):>5}{statistics.median(values) * 1000:>10.0f}"
              f"{percentile(values, 0.95) * 1000:>10.0f}{max(values) * 1000:>10.0f}")
    for line in failed:
        print(f"failed: {line}")
    for vps in vpss:
        rt.stop(vps.ctid, fast=True)
        rt.destroy(vps.ctid)


def _wait_running_or_created(op, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        op.refresh_from_db()
        if op.is_terminal:
            return
        time.sleep(0.01)
    raise TimeoutError(op.action)

