"""A panel start goes through the node worker to the supervisor, and the VPS outlives both."""

from __future__ import annotations

import os
import signal

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.vps import services
from tests.panel.vps.test_lifecycle import finished
from worker.supervisor import protocol
from worker.supervisor.client import Client

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rpartition(")")[2].split()[1])


def test_a_vps_started_through_the_supervisor_survives_kill_9_of_worker_and_supervisor(stack, tmp_path):
    env = stack.node_env
    rt = Runtime(KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                                  cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))
    client = Client(protocol.socket_path(env["CTPANEL_STATE_ROOT"]))
    supervisor = stack.start_supervisor(tmp_path)
    try:
        admin = User.objects.create_user("sup-admin", role=Role.ADMIN)
        customer = User.objects.create_user("sup-alice", role=Role.CUSTOMER)
        node, _ = nodes.register_node(stack.node_name)
        vps, op = services.create_vps(admin, customer=customer, node=node, template="busybox", hostname="sup1",
                                      limits={"ram": 256 * 2**20})
        finished(op)
        pid = rt.status(vps.ctid).init_pid
        assert pid and ppid(pid) == supervisor.popen.pid  # started by the supervisor, not the worker
        assert client.status(vps.ctid)["console"]

        os.killpg(stack.processes["node-worker"].popen.pid, signal.SIGKILL)
        stack.processes["node-worker"].popen.wait(timeout=10)
        supervisor.popen.send_signal(signal.SIGKILL)
        supervisor.popen.wait(timeout=10)
        assert rt.status(vps.ctid).init_pid == pid
        assert rt.exec(vps.ctid, ["hostname"], timeout=10).stdout.decode().strip() == "sup1"

        supervisor = stack.start_supervisor(tmp_path)
        stack.start_node_worker(tmp_path)  # its log: a new file in tmp_path
        assert client.status(vps.ctid)["init_pid"] == pid
        vps.refresh_from_db()
        finished(services.stop(customer, vps))
        assert not rt.status(vps.ctid).running
        finished(services.destroy(customer, vps))
    finally:
        supervisor.stop()
