"""The accounting tier end to end: what a running VPS holds reaches the panel's beancounter rows
through the node's usage batches, and the VPS's own table inside (/run/ctpanel/user_beancounters,
served by the supervisor's file server) shows the same rows."""

from __future__ import annotations

import os
import signal
import time

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from kernel.ubc.fusefile import IN_VPS_PATH
from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.usage.models import Beancounter
from panel.vps import services
from tests.kernel.ubc.test_accounting import _hold_in_vps
from tests.services import finished, terminal, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ROWS = ("numfile", "numpty", "numflock", "numtcpsock", "numothersock")
BACKGROUND = ">/dev/null 2>&1 </dev/null &"


def panel_rows(vps) -> dict[str, int]:
    return dict(Beancounter.objects.filter(vps=vps, resource__in=ROWS).values_list("resource", "held"))


def table_inside(rt: Runtime, ctid: int) -> dict[str, int]:
    out = rt.exec(ctid, ["cat", IN_VPS_PATH], timeout=30).stdout.decode()  # busybox's cat: sendfile(2)
    return {fields[-6]: int(fields[-5]) for fields in map(str.split, out.splitlines()[2:]) if fields[-6] in ROWS}


def settled(vps) -> dict[str, int] | None:
    """The VPS's rows once its start is over: the operation's own sessions into it (descriptors, sockets)
    gone, and the same rows two accounting rounds later."""
    rows = panel_rows(vps)
    if len(rows) < len(ROWS) or any(rows[name] for name in ROWS if name != "numfile"):
        return None
    time.sleep(5)
    return rows if panel_rows(vps) == rows else None


def showing(table: dict[str, int], exact: dict[str, int]) -> dict[str, int] | None:
    return table if {name: table.get(name) for name in exact} == exact else None


def test_what_a_vps_holds_reaches_the_panel_and_the_table_inside(stack, tmp_path) -> None:
    env = {"CTPANEL_NODE_NAME": f"{stack.node_name}-a", "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
           "CTPANEL_CGROUP_PREFIX": stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-a",
           "CTPANEL_USAGE_SECONDS": "1", "CTPANEL_USAGE_ACCOUNTING_SECONDS": "2"}
    supervisor = stack.start_supervisor(tmp_path, name="accounting-supervisor", **env)
    worker = stack.start_node_worker(tmp_path, name="accounting-node-worker", **env)
    rt = Runtime(KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                                  cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))
    admin = User.objects.create_user("acct-admin", role=Role.ADMIN)
    customer = User.objects.create_user("acct-alice", role=Role.CUSTOMER)
    node, _ = nodes.register_node(env["CTPANEL_NODE_NAME"])
    vps, op = services.create_vps(admin, customer=customer, node=node, template="busybox", hostname="acct",
                                  limits={"ram": 128 * 2**20})
    holder = 0
    try:
        finished(op)
        before = wait_for(lambda: settled(vps), 60, "the VPS's accounting rows in the panel, settled")

        def sh(script: str) -> None:
            result = rt.exec(vps.ctid, ["sh", "-c", script], timeout=30)
            assert result.returncode == 0, result.stderr

        sh(f"sleep 1000 3</dev/null 4</dev/null 5</dev/null {BACKGROUND}")  # 6 descriptors
        sh(f"(exec 10<>/dev/ptmx 11<>/dev/ptmx 12<>/dev/ptmx; exec sleep 1000) {BACKGROUND}")  # 3 ptys, 6 descriptors
        sh(f"nc -l -p 5555 {BACKGROUND}")  # a listening TCP socket, 4 descriptors
        # 2 locks, a UDP and a unix socket, and its standard descriptors and report pipe
        holder = _hold_in_vps(rt, vps.ctid, str(tmp_path), locks=2, udp=1, unix=1)
        holder_fds = len(os.listdir(f"/proc/{holder}/fd"))
        want = {"numpty": before["numpty"] + 3, "numflock": before["numflock"] + 2,
                "numtcpsock": before["numtcpsock"] + 1, "numothersock": before["numothersock"] + 2,
                "numfile": before["numfile"] + 6 + 6 + 4 + holder_fds}

        wait_for(lambda: panel_rows(vps) == want, 30, f"the panel's rows to be {want}")
        # `cat` itself holds descriptors while it reads: numfile inside is compared without them.
        exact = {name: want[name] for name in ROWS if name != "numfile"}
        inside = wait_for(lambda: showing(table_inside(rt, vps.ctid), exact), 30,
                          f"the table inside to show {exact}")
        assert inside["numfile"] >= want["numfile"]
    finally:
        if holder:
            os.kill(holder, signal.SIGKILL)
            os.waitpid(holder, 0)
        terminal(services.destroy(admin, vps))
        worker.stop()
        supervisor.stop()
