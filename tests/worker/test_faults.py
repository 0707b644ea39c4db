"""A create that fails, or whose process dies, at any undo-registered step leaves nothing or finishes.

Every step of a panel create (create and start on the node) that registers an
undo is a named fault point (kernel/faults.py). Each point is armed alone, for
one operation, and fires once:

- raised: the operation ends failed, naming the point; the node has nothing
  of the VPS left (volume, ids, cgroups, mounts, veth, nft table, state
  files) and the panel has released its budget share and addresses;
- crashed (SIGKILL of the process running it): the message is delivered
  again, the second run finishes, the VPS runs, and destroy leaves nothing.

A point that kills every run (no once-marker) makes the journal give the
operation up (`node.gave_up`): the node removes what the runs made
(worker/vps.abandon) and the panel frees the budget share and addresses.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.net import rules
from kernel.net.ip import IP
from kernel.net.nft import Nft
from kernel.runtime import Runtime
from kernel.storage.volumes import Storage
from panel.nodes import ippools
from panel.nodes import services as nodes
from panel.nodes.models import IPAddress
from panel.plans import budgets
from panel.plans import services as plans
from panel.vps import services
from panel.vps.models import VPS
from tests.kernel import leftovers
from tests.panel.tenants import make_tenants
from tests.services import finished, terminal
from worker.config import NodeConfig
from worker.vps import beancounters_path, creating_path, storage_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MiB = 2**20

# In the order a create-and-start reaches them. `create.*` and `converge.settings` run in the
# node worker; `start.*` where the VPS is started: the supervisor when it runs, else the worker.
CREATE_POINTS = ["create.ids", "create.volume", "create.files", "create.registry", "converge.settings"]
START_POINTS = ["start.volume", "start.cgroups", "start.spawn", "start.network", "start.files", "start.limits",
                "start.started"]
POINTS = CREATE_POINTS + START_POINTS


class FaultNode:
    """A node of this test's own: worker (and supervisor) with fault points armed from `faults`."""

    def __init__(self, stack, tmp_path: Path, mode: str, *, supervisor: bool, always: str = "") -> None:
        """`always`: only this point is armed, and it fires at every hit (no once-markers)."""
        self.name = f"{stack.node_name}-f{mode[0]}{'a' if always else ''}"
        self.markers = tmp_path / "fired"
        self.markers.mkdir()
        suffix = ":crash" if mode == "crash" else ""
        self.env = {**stack.node_env, "CTPANEL_NODE_NAME": self.name, "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
                    "CTPANEL_CGROUP_PREFIX": f"{stack.node_env['CTPANEL_CGROUP_PREFIX']}-f{mode[0]}",
                    "CTPANEL_FAULTS": ",".join(p + suffix for p in ([always] if always else POINTS))}
        if not always:
            self.env["CTPANEL_FAULTS_DIR"] = str(self.markers)
        self.netns = self.env["CTPANEL_NET_HOST_NETNS"]
        self.stack = stack
        self.started = []
        if supervisor:
            self.started.append(stack.start_supervisor(tmp_path, name=f"sup-{self.name}", **self.env))
        self.started.append(stack.start_node_worker(tmp_path, name=f"worker-{self.name}", **self.env))
        config = NodeConfig.from_env(self.env)
        kernel_config = KernelNodeConfig(node=self.name, state_root=config.state_root,
                                         cgroup_prefix=config.cgroup_prefix)
        self.rt = Runtime(kernel_config, storage=Storage(kernel_config, storage_config(config, kernel_config)))

    def arm_only(self, point: str) -> None:
        """Every other point counts as fired already; `point` fires on its next hit."""
        for other in POINTS:
            (self.markers / other).touch()
        (self.markers / point).unlink()

    def fired(self, point: str) -> bool:
        return (self.markers / point).exists()

    def links(self) -> set[str]:
        with IP(self.netns) as host:
            return {link.name for link in host.links()}

    def traces(self, ctid: int, id_start: int | None, links_before: set[str]) -> list[str]:
        rt = self.rt
        if id_start is not None and rt.ids.taken(id_start) and rt.ids.lookup(ctid) is None:
            id_start = None  # released, and handed to another VPS on this machine (a concurrent run's)
        found = leftovers.of(rt, ctid, id_start, zombies=False) + rt.storage.leftovers(ctid)
        found += [f"host link {name}" for name in self.links() - links_before]
        if Nft(self.netns).has_table("inet", f"{rules.table_prefix(self.name)}_{ctid}"):
            found.append("nft table")
        for path in (beancounters_path(rt, ctid), creating_path(rt, ctid)):
            if os.path.exists(path):
                found.append(path)
        return found

    def settled_traces(self, ctid: int, id_start: int | None, links_before: set[str]) -> list[str]:
        """`traces` once empty, or after 30 s: a VPS's last processes exit after its init."""
        deadline = time.monotonic() + 30
        while (found := self.traces(ctid, id_start, links_before)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return found

    def stop(self) -> None:
        for proc in reversed(self.started):
            proc.stop()


@pytest.fixture
def setting(stack):
    """A reseller's customer with a budget, a plan with addresses, on IP pools of the fault node."""
    t = make_tenants()
    budgets.grant(t.admin, t.reseller1, vps_count=20, ram=4096 * MiB, disk=None, cpus=None, ipv4=20,
                  ipv6_prefixes=None, traffic=None)
    budgets.grant(t.reseller1, t.customer1, vps_count=20, ram=4096 * MiB, disk=None, cpus=None, ipv4=20,
                  ipv6_prefixes=None, traffic=None)
    plan = plans.create_plan(t.admin, name="faulty", ram=128 * MiB, diskspace=64 * MiB, ipv4_count=1)
    return t, plan


def fault_node(stack, tmp_path, mode: str, *, supervisor: bool, always: str = ""):
    node = FaultNode(stack, tmp_path, mode, supervisor=supervisor, always=always)
    panel_node, _ = nodes.register_node(node.name)
    ippools.create_pool(name=f"pool-{node.name}", family=4, network="198.51.100.0/27", gateway="198.51.100.1",
                        node=panel_node)
    ippools.create_pool(name=f"pool6-{node.name}", family=6, network="2001:db8:8::/60", unit_prefix=64,
                        node=panel_node)
    return node, panel_node


@pytest.fixture
def raising(stack, tmp_path):
    node, panel_node = fault_node(stack, tmp_path, "raise", supervisor=True)
    yield node, panel_node
    node.stop()


@pytest.fixture
def crashing(stack, tmp_path):
    node, panel_node = fault_node(stack, tmp_path, "crash", supervisor=False)
    yield node, panel_node
    node.stop()


@pytest.fixture
def always_crashing(stack, tmp_path):
    """Every run of a create dies (SIGKILL) once its volume is made."""
    node, panel_node = fault_node(stack, tmp_path, "crash", supervisor=False, always="create.volume")
    yield node, panel_node
    node.stop()


def descends_from(pid: int, ancestor: int) -> bool:
    """Whether `pid` is `ancestor` or one of its descendants: a second init left by the first
    run would not be."""
    while pid > 1:
        if pid == ancestor:
            return True
        with open(f"/proc/{pid}/stat") as fh:
            pid = int(fh.read().rpartition(")")[2].split()[1])
    return False


def allocated(customer) -> int:
    return budgets.allocated(customer)["vps_count"]


def test_a_create_failing_at_any_step_leaves_nothing_and_frees_its_share(raising, setting):
    node, panel_node = raising
    t, plan = setting
    links_before = node.links()
    for point in POINTS:
        node.arm_only(point)
        vps, op = services.create_vps(t.customer1, customer=t.customer1, node=panel_node, template="busybox",
                                      hostname="faulty", plan=plan)
        op = terminal(op)
        assert node.fired(point), f"{point} was never reached"
        assert (op.status, op.error_code) == ("failed", "kernel.error"), point
        assert f"injected fault at {point}" in op.error_message
        vps.refresh_from_db()
        assert vps.state == "destroyed", point
        assert allocated(t.customer1) == 0, point
        assert not IPAddress.objects.filter(assigned_to=f"vps:{vps.ctid}").exists(), point
        assert node.settled_traces(vps.ctid, None, links_before) == [], point

    vps, op = services.create_vps(t.customer1, customer=t.customer1, node=panel_node, template="busybox",
                                  hostname="faulty", plan=plan)
    finished(op)
    assert node.rt.status(vps.ctid).running
    finished(services.destroy(t.customer1, VPS.objects.get(pk=vps.pk)))


def test_a_create_whose_process_dies_at_any_step_is_finished_by_the_redelivery(crashing, setting):
    node, panel_node = crashing
    t, plan = setting
    links_before = node.links()
    for point in POINTS:
        node.arm_only(point)
        vps, op = services.create_vps(t.customer1, customer=t.customer1, node=panel_node, template="busybox",
                                      hostname="crashy", plan=plan)
        op = terminal(op, timeout=120)
        assert node.fired(point), f"{point} was never reached"
        assert op.status == "succeeded", (point, op.error_message)
        assert op.log[-1].startswith("delivery 2 of at most"), (point, op.log)
        vps.refresh_from_db()
        status = node.rt.status(vps.ctid)
        assert (vps.state, status.running, vps.init_pid) == ("running", True, status.init_pid), point
        result = node.rt.exec(vps.ctid, ["cat", "/etc/hostname"], timeout=10)
        assert result.stdout.decode().strip() == "crashy", point
        processes = leftovers.processes(node.rt.ids.lookup(vps.ctid).start, zombies=False)
        assert all(descends_from(pid, status.init_pid) for pid in processes), (point, processes)
        assert not os.path.exists(creating_path(node.rt, vps.ctid)), point

        ids = node.rt.ids.lookup(vps.ctid)
        finished(services.destroy(t.customer1, VPS.objects.get(pk=vps.pk)))
        assert node.settled_traces(vps.ctid, ids.start, links_before) == [], point
        assert allocated(t.customer1) == 0


def test_a_create_whose_every_run_dies_is_given_up_removed_on_the_node_and_its_share_freed(always_crashing, setting):
    node, panel_node = always_crashing
    t, plan = setting
    links_before = node.links()
    vps, op = services.create_vps(t.customer1, customer=t.customer1, node=panel_node, template="busybox",
                                  hostname="doomed", plan=plan)
    op = terminal(op, timeout=180)
    assert (op.status, op.error_code) == ("failed", "node.gave_up"), (op.status, op.error_code, op.error_message)
    assert "given up after 3 deliveries" in op.error_message  # two runs died, the third gave up
    assert op.log[-1].startswith("delivery 3 of at most 3"), op.log
    vps.refresh_from_db()
    assert vps.state == "destroyed"
    assert allocated(t.customer1) == 0
    assert not IPAddress.objects.filter(assigned_to=f"vps:{vps.ctid}").exists()
    assert node.settled_traces(vps.ctid, None, links_before) == []
