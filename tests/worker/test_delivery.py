"""Delivery through real Redis and worker processes: duplicates, killed workers, a Redis restart."""

import os
import signal
import sqlite3
import subprocess
from pathlib import Path

import pytest
import redis

from panel.celery import app as panel_app
from panel.core.models import Operation
from panel.core.services import create_operation
from panel.nodes import services
from tests.services import children, purge_queues, restart_redis_hard, wait_for
from worker import protocol

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def refreshed(op: Operation) -> Operation:
    op.refresh_from_db()
    return op


def deliveries(state_root: str, op: Operation) -> int:
    with sqlite3.connect(Path(state_root, "journal.sqlite")) as db:
        return db.execute("SELECT deliveries FROM operations WHERE operation_id = ?", (str(op.id),)).fetchone()[0]


def send_ping(node: str, delay_ms: int = 0, times: int = 1) -> Operation:
    op = create_operation(action=protocol.TASK_PING, node_name=node)
    body = protocol.PingRequest(node=node, operation_id=str(op.id), delay_ms=delay_ms).to_dict()
    for _ in range(times):
        panel_app.send_task(protocol.TASK_PING, args=[body], task_id=str(op.id), queue=protocol.node_queue(node))
    return op


@pytest.fixture
def own_node(stack, tmp_path, request):
    """A node of this test's own, with its own worker, queue and journal."""
    name = "n-" + request.node.name.replace("_", "-")[5:30].strip("-")
    services.register_node(name)
    purge_queues(stack.node_env["CTPANEL_BROKER_URL"], protocol.node_queue(name))
    state_root = str(tmp_path / "state")
    env = {"CTPANEL_NODE_NAME": name, "CTPANEL_STATE_ROOT": state_root}

    def start(**extra):
        return stack.start_node_worker(tmp_path, name=f"{name}-{len(stack.processes)}", **env, **extra)

    return name, state_root, start


def test_the_same_message_twice_runs_once(own_node):
    name, state_root, start = own_node
    worker = start()
    op = send_ping(name, times=2)
    wait_for(lambda: worker.log().count(f"node.ping[{op.id}] succeeded") == 2, 30, "both deliveries")
    op = wait_for(lambda: refreshed(op).is_terminal and op, 30, "the report")
    assert op.status == "succeeded" and op.log == []
    assert deliveries(state_root, op) == 1


def test_a_pool_process_killed_mid_task_is_finished_on_redelivery(own_node):
    name, _, start = own_node
    worker = start()
    op = send_ping(name, delay_ms=6000)  # reported running after PROGRESS_DELAY
    wait_for(lambda: refreshed(op).status == "running", 30, "the ping to start")
    for child in children(worker.popen.pid):
        os.kill(child, signal.SIGKILL)
    op = wait_for(lambda: refreshed(op).is_terminal and op, 60, "the ping to finish")
    assert op.status == "succeeded", op.error_message
    assert op.log == ["delivery 2 of at most 3: an earlier run did not finish"]


def test_a_worker_killed_mid_task_is_finished_by_the_next_worker(own_node):
    name, state_root, start = own_node
    worker = start(CTPANEL_VISIBILITY_TIMEOUT="3")
    op = send_ping(name, delay_ms=6000)  # reported running after PROGRESS_DELAY
    wait_for(lambda: refreshed(op).status == "running", 30, "the ping to start")
    os.killpg(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(timeout=10)

    start(CTPANEL_VISIBILITY_TIMEOUT="3")
    op = wait_for(lambda: refreshed(op).is_terminal and op, 90, "the ping to finish")
    assert op.status == "succeeded", op.error_message
    assert deliveries(state_root, op) == 2


def test_queued_operations_survive_a_redis_crash(own_node, stack):
    name, _, start = own_node
    ops = [send_ping(name) for _ in range(5)]
    client = redis.Redis.from_url(stack.node_env["CTPANEL_BROKER_URL"])
    assert client.llen(protocol.node_queue(name)) == 5
    client.close()

    restart_redis_hard(os.environ["CTPANEL_TEST_HOME"])
    start()
    for op in ops:
        wait_for(lambda op=op: refreshed(op).is_terminal, 60, f"operation {op.id}")
        assert op.status == "succeeded"


def test_a_create_interrupted_by_a_crash_is_cleaned_up_and_finished_at_restart(own_node):
    """What a kill -9 mid-create leaves (a volume and an id range, no registry entry) is removed at start."""
    from kernel.config import NodeConfig as KernelNodeConfig
    from kernel.runtime import Runtime
    from worker.journal import Journal, owner_id

    name, state_root, start = own_node
    rt = Runtime(KernelNodeConfig(node=name, state_root=state_root, cgroup_prefix=f"ctpanel-test-{name}"))
    ctid = 950_000 + os.getpid() % 10_000
    op = create_operation(action=protocol.TASK_VPS_CREATE, node_name=name, target_type="vps", target_id=str(ctid))
    body = protocol.VpsRequest(task=protocol.TASK_VPS_CREATE, node=name, operation_id=str(op.id), ctid=ctid,
                               template="busybox", hostname="crashed").to_dict()
    crashed = subprocess.Popen(["sleep", "60"])
    owner = owner_id(crashed.pid)
    crashed.kill()
    crashed.wait()
    Journal(Path(state_root, "journal.sqlite")).begin(str(op.id), protocol.TASK_VPS_CREATE, body=body, owner=owner)
    rt.ids.allocate(ctid)
    os.makedirs(rt.volume_path(ctid))
    Path(rt.volume_path(ctid), "half-unpacked").write_text("x")

    panel_app.send_task(protocol.TASK_VPS_CREATE, args=[body], task_id=str(op.id), queue=protocol.node_queue(name))
    start(CTPANEL_CGROUP_PREFIX=f"ctpanel-test-{name}")
    op = wait_for(lambda: refreshed(op).is_terminal and op, 60, "the create to finish")
    try:
        assert op.status == "succeeded", op.error_message
        assert op.result["state"] == "stopped" and op.log[-1].startswith("delivery 2")
        assert not os.path.exists(Path(rt.volume_path(ctid), "half-unpacked"))
        assert rt.registry.get(ctid).hostname == "crashed"
    finally:
        rt.destroy(ctid)
