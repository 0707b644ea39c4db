"""A node worker's pool processes hold their broker connection for reports before their first task:
a report does not wait for a connection (issue 8's concurrent starts)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _pool(pid: int) -> list[int]:
    """The Celery pool processes of worker `pid` (its children running celery)."""
    out = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as fh:
                parent = int(fh.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                celery = b"celery" in fh.read()
        except OSError:
            continue
        if parent == pid and celery:
            out.append(int(entry))
    return out


def _connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process `pid` to `port`."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as fh:
            for line in fh.readlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[2].rpartition(":")[2], 16) == port and fields[9] in inodes:
                    count += 1
    return count


def test_pool_processes_connect_for_reports_before_their_first_task(stack, tmp_path):
    name = f"{stack.node_name}-conn"
    port = urlsplit(stack.node_env["CTPANEL_BROKER_URL"]).port
    worker = stack.start_node_worker(tmp_path, name=f"worker-{name}", CTPANEL_NODE_NAME=name,
                                     CTPANEL_STATE_ROOT=str(tmp_path / "state"), CTPANEL_NODE_CONCURRENCY="2",
                                     CTPANEL_CGROUP_PREFIX=f"{stack.node_env['CTPANEL_CGROUP_PREFIX']}-conn")
    try:
        pool = wait_for(lambda: len(_pool(worker.popen.pid)) >= 2 and _pool(worker.popen.pid), 30,
                        "the worker's two pool processes")
        wait_for(lambda: all(_connections_to(pid, port) for pid in pool), 30,
                 "a broker connection in every pool process that ran no task")
    finally:
        worker.stop()
