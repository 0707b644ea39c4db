"""Panel starts go through the node worker to the supervisor, and the VPSs outlive both.

Five VPSs run; the node worker and the supervisor are killed with SIGKILL;
operations sent while they are down wait in Redis; when both come back the
VPSs still run with the same init PIDs (re-adopted by the supervisor, their
consoles attachable) and every queued operation finishes.
"""

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
from panel.vps.models import VPS
from tests.services import finished, wait_for
from worker.supervisor import protocol
from worker.supervisor.client import Client

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

COUNT = 5


def ppid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rpartition(")")[2].split()[1])


def console_answers(client: Client, ctid: int) -> bool:
    """Attach to the console and see output of a command typed there (busybox's console shell)."""
    sock = client.console(ctid)
    sock.settimeout(0.5)
    seen = b""
    try:
        sock.sendall(b"echo console-$((6*7))\n")
        for _ in range(20):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                break
            seen += chunk
            if b"console-42" in seen:
                return True
        return False
    except (TimeoutError, OSError):
        return False
    finally:
        sock.close()


def test_five_vpss_keep_their_inits_through_kill_9_of_worker_and_supervisor_and_no_operation_is_lost(
        stack, tmp_path):
    env = stack.node_env
    rt = Runtime(KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                                  cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))
    client = Client(protocol.socket_path(env["CTPANEL_STATE_ROOT"]))
    supervisor = stack.start_supervisor(tmp_path)
    vpss: list[VPS] = []
    try:
        admin = User.objects.create_user("sup-admin", role=Role.ADMIN)
        customer = User.objects.create_user("sup-alice", role=Role.CUSTOMER)
        node, _ = nodes.register_node(stack.node_name)
        ops = []
        for i in range(COUNT):
            vps, op = services.create_vps(admin, customer=customer, node=node, template="busybox",
                                          hostname=f"sup{i}", limits={"ram": 128 * 2**20})
            vpss.append(vps)
            ops.append(op)
        for op in ops:
            finished(op)
        pids = {vps.ctid: rt.status(vps.ctid).init_pid for vps in vpss}
        for pid in pids.values():
            assert pid and ppid(pid) == supervisor.popen.pid  # started by the supervisor, not the worker

        os.killpg(stack.processes["node-worker"].popen.pid, signal.SIGKILL)
        stack.processes["node-worker"].popen.wait(timeout=10)
        supervisor.popen.send_signal(signal.SIGKILL)
        supervisor.popen.wait(timeout=10)
        for ctid, pid in pids.items():
            assert rt.status(ctid).init_pid == pid, ctid

        # Sent while the node is down: they wait in the node's queue.
        renamed, stopped = vpss[0], vpss[1]
        queued = [services.set_hostname(customer, renamed, "renamed.example.com"), services.stop(customer, stopped)]

        supervisor = stack.start_supervisor(tmp_path)
        stack.start_node_worker(tmp_path)  # its log: a new file in tmp_path
        for op in queued:
            finished(op)
        assert rt.exec(renamed.ctid, ["hostname"], timeout=10).stdout.decode().strip() == "renamed.example.com"
        assert not rt.status(stopped.ctid).running
        for vps in vpss:
            if vps.pk == stopped.pk:
                continue
            assert client.status(vps.ctid)["init_pid"] == pids[vps.ctid], vps.ctid
            wait_for(lambda vps=vps: console_answers(client, vps.ctid), 30, f"CT {vps.ctid}'s console")
    finally:
        for vps in vpss:
            vps.refresh_from_db()
            if vps.state != "destroyed":
                finished(services.destroy(customer, vps))
        supervisor.stop()
