"""Node heartbeats: a node that talks is up, one that goes silent is marked down."""

import datetime
import time

import pytest
from django.utils import timezone

from panel.nodes import services
from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from worker import protocol

pytestmark = pytest.mark.integration


def beat(node: str, interval: int = 10) -> protocol.Heartbeat:
    return protocol.Heartbeat(node=node, sent_at=time.time(), interval=interval,
                              facts={"kernel": "6.1.0"}, capacity={"cpus": 2})


@pytest.mark.django_db
def test_heartbeat_marks_a_registered_node_up_and_sweep_marks_it_down():
    node = Node.objects.create(name="n1")
    assert services.record_heartbeat(beat("n1"))
    node.refresh_from_db()
    assert (node.state, node.facts, node.capacity) == (NodeState.UP, {"kernel": "6.1.0"}, {"cpus": 2})

    now = node.last_seen
    assert services.sweep_down_nodes(now + datetime.timedelta(seconds=29)) == []
    assert services.sweep_down_nodes(now + datetime.timedelta(seconds=31)) == ["n1"]
    node.refresh_from_db()
    assert node.state == NodeState.DOWN


@pytest.mark.django_db
def test_unknown_and_disabled_nodes_are_not_brought_up():
    Node.objects.create(name="off", state=NodeState.DISABLED)
    assert not services.record_heartbeat(beat("ghost"))
    assert not services.record_heartbeat(beat("off"))
    assert not Node.objects.filter(name="ghost").exists()
    assert Node.objects.get(name="off").state == NodeState.DISABLED


def wait_state(name: str, state: str, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if Node.objects.get(name=name).state == state:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"node {name} not {state} within {timeout:g} s: {Node.objects.get(name=name).state}")


@pytest.mark.django_db(transaction=True)
def test_real_node_heartbeats_and_is_marked_down_when_it_stops(stack, tmp_path):
    services.register_node("hb-node")
    worker = stack.start_node_worker(tmp_path, name="hb-node-worker", CTPANEL_NODE_NAME="hb-node",
                                     CTPANEL_HEARTBEAT_SECONDS="1")
    stack.start_beat(tmp_path, CTPANEL_SWEEP_SECONDS="1")
    wait_state("hb-node", NodeState.UP, timeout=30)
    node = Node.objects.get(name="hb-node")
    assert node.facts["kernel"] and node.capacity["memory_total"] > 0 and node.heartbeat_interval == 1
    assert node.last_seen > timezone.now() - datetime.timedelta(seconds=10)

    worker.stop()
    wait_state("hb-node", NodeState.DOWN, timeout=30)
