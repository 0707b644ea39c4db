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

Killed from outside (kill -9 while a point holds the create there): the pool
process running it, or the worker's whole process group (then the worker is
started again: its start-up recovery and Redis's restore of the unacked
message take over). The redelivery finishes: the VPS runs, is registered
once, the journal holds no lease, reconcile finds no drift and no orphans,
and destroy leaves nothing.
"""

from __future__ import annotations

import os
import select
import signal
import time
from pathlib import Path

import pytest

from kernel import enter
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
from panel.vps import reconcile, services
from panel.vps.models import VPS
from tests.kernel import leftovers
from tests.panel.tenants import make_tenants
from tests.services import children, finished, terminal, wait_for
from worker.config import NodeConfig
from worker.journal import Journal
from worker.vps import beancounters_path, creating_path, storage_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MiB = 2**20

# In the order a create-and-start reaches them. `create.*` and `converge.settings` run in the
# node worker; `start.*` where the VPS is started: the supervisor when it runs, else the worker.
CREATE_POINTS = ["create.ids", "create.volume", "create.files", "create.registry", "converge.settings"]
START_POINTS = ["start.volume", "start.cgroups", "start.spawn", "start.network", "start.files", "start.limits",
                "start.started"]
POINTS = CREATE_POINTS + START_POINTS
# Where the kill -9 tests hold a create: its volume made but not registered (the worker's start-up
# recovery removes it), mid-start (cgroups, a spawned init, the host veth), and with the init running
# but the report not sent (the redelivery must not start a second init).
HOLD_POINTS = ["create.volume", "start.network", "start.started"]
MODES = {"raise": "", "crash": ":crash", "hold": ":hold"}


class FaultNode:
    """A node of this test's own: worker (and supervisor) with fault points armed from `faults`."""

    def __init__(self, stack, tmp_path: Path, mode: str, *, supervisor: bool, always: str = "", tag: str = ""
                 ) -> None:
        """`always`: only this point is armed, and it fires at every hit (no once-markers);
        `tag` tells apart the nodes of one mode in one session."""
        self.name = f"{stack.node_name}-f{mode[0]}{'a' if always else ''}{tag}"
        self.markers = tmp_path / "fired"
        self.markers.mkdir()
        suffix = MODES[mode]
        self.env = {**stack.node_env, "CTPANEL_NODE_NAME": self.name, "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
                    "CTPANEL_CGROUP_PREFIX": f"{stack.node_env['CTPANEL_CGROUP_PREFIX']}-f{mode[0]}{tag}",
                    "CTPANEL_FAULTS": ",".join(p + suffix for p in ([always] if always else POINTS))}
        if not always:
            self.env["CTPANEL_FAULTS_DIR"] = str(self.markers)
        self.netns = self.env["CTPANEL_NET_HOST_NETNS"]
        self.stack = stack
        self.log_dir = tmp_path
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

    def holder(self, point: str, op) -> int:
        """The process that `op` is held in at `point` (mode "hold"), once it got there."""
        def pid() -> int | None:
            text = (self.markers / point).read_text() if self.fired(point) else ""
            if text.strip():  # the marker is made, then the pid written
                return int(text)
            op.refresh_from_db()
            assert not op.is_terminal, f"{op.action} ended before {point}: {op.status} {op.error_message}"
            return None

        return wait_for(pid, 60, f"the create to reach {point}")

    @property
    def worker(self):
        return self.started[-1]

    def restart_worker(self, **env: str) -> None:
        """A new node worker (after the old one was killed), with `env` on top of the node's."""
        self.started.append(self.stack.start_node_worker(self.log_dir, name=f"worker-{self.name}-{len(self.started)}",
                                                         **{**self.env, **env}))

    def journal(self) -> Journal:
        return Journal(Path(self.env["CTPANEL_STATE_ROOT"], "journal.sqlite"))

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

    def assert_finished_by_redelivery(self, t, vps, op, hostname: str, links_before: set[str],
                                      what: str) -> None:
        """`op` (a create-and-start whose first run died) succeeded on its second delivery: the VPS runs,
        once, with no process of the first run left; then destroy leaves nothing."""
        assert op.status == "succeeded", (what, op.error_message)
        assert op.log[-1].startswith("delivery 2 of at most"), (what, op.log)
        vps.refresh_from_db()
        status = self.rt.status(vps.ctid)
        assert (vps.state, status.running, vps.init_pid) == ("running", True, status.init_pid), what
        assert self.rt.registry.ctids().count(vps.ctid) == 1, what
        result = self.rt.exec(vps.ctid, ["cat", "/etc/hostname"], timeout=10)
        assert result.stdout.decode().strip() == hostname, what
        assert enter.reap_helpers(enter.HELPER_GRACE) == 0, what  # exec returned before its helper's exit
        processes = leftovers.processes(self.rt.ids.lookup(vps.ctid).start, zombies=False)
        assert all(descends_from(pid, status.init_pid) for pid in processes), (what, processes)
        assert not os.path.exists(creating_path(self.rt, vps.ctid)), what

        ids = self.rt.ids.lookup(vps.ctid)
        finished(services.destroy(t.customer1, VPS.objects.get(pk=vps.pk)))
        assert self.settled_traces(vps.ctid, ids.start, links_before) == [], what
        assert allocated(t.customer1) == 0


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


def fault_node(stack, tmp_path, mode: str, *, supervisor: bool, always: str = "", tag: str = ""):
    node = FaultNode(stack, tmp_path, mode, supervisor=supervisor, always=always, tag=tag)
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
def holding(stack, tmp_path):
    """Makes a node (named with the tag given) whose points each hold the first create that reaches
    them, for a kill from outside."""
    made = []

    def make(tag: str):
        node, panel_node = fault_node(stack, tmp_path, "hold", supervisor=False, tag=tag)
        made.append(node)
        return node, panel_node

    yield make
    for node in made:
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
        node.assert_finished_by_redelivery(t, vps, op, "crashy", links_before, point)


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


def process_tree(pid: int) -> list[int]:
    """pidfds of `pid` and of every descendant it has now (a pidfd turns readable when its process ends)."""
    fds = []
    try:
        fds.append(os.pidfd_open(pid))
        kids = children(pid)
    except (ProcessLookupError, FileNotFoundError):  # ended meanwhile
        return fds
    for kid in kids:
        fds += process_tree(kid)
    return fds


def assert_killed_create_finished(node: FaultNode, panel_node, setting, point: str, *, whole_worker: bool) -> None:
    """A create held at `point`; kill -9 of its pool process, or of the worker's whole process group (then
    a new worker starts). Every process of the killed tree ends (spawners and pre-inits too); the redelivery
    finishes the create (the VPS runs, registered once, nothing of the first run left), the journal holds
    no lease, reconcile finds the node as the panel has it (no drift, no orphans), destroy leaves nothing."""
    t, plan = setting
    links_before = node.links()
    node.arm_only(point)
    vps, op = services.create_vps(t.customer1, customer=t.customer1, node=panel_node, template="busybox",
                                  hostname="killed", plan=plan)
    held = node.holder(point, op)
    assert held in children(node.worker.popen.pid)  # a pool process, not the worker's main process
    tree = process_tree(node.worker.popen.pid if whole_worker else held)
    try:
        if whole_worker:
            os.killpg(node.worker.popen.pid, signal.SIGKILL)  # the main process and its pool, as a power cut would
            node.worker.popen.wait(timeout=10)
            # Redis hands the unacked message out again once its visibility timeout (3 s here) expired.
            node.restart_worker(CTPANEL_VISIBILITY_TIMEOUT="3", CTPANEL_RESTORE_SECONDS="1")
        else:
            os.kill(held, signal.SIGKILL)

        op = terminal(op, timeout=120)
        assert op.status == "succeeded", op.error_message
        wait_for(lambda: len(select.select(tree, [], [], 0)[0]) == len(tree), 30,
                 "every process of the killed tree to end")
    finally:
        for fd in tree:
            os.close(fd)
    journal = node.journal()
    entry = journal.get(str(op.pk))
    assert (entry.state, entry.deliveries, entry.lease_owner) == ("done", 2, ""), entry
    assert journal.unfinished() == []
    drift = finished(reconcile.request_inventory(t.admin, panel_node)).result["drift"]
    assert {k: v for k, v in drift.pop("orphans").items() if v} == {}, drift
    assert {k: v for k, v in drift.items() if v} == {}, drift
    node.assert_finished_by_redelivery(t, vps, op, "killed", links_before, point)


@pytest.mark.parametrize("point", HOLD_POINTS)
def test_a_create_whose_pool_process_is_killed_is_finished_by_the_redelivery(holding, setting, point):
    node, panel_node = holding(f"p{HOLD_POINTS.index(point)}")
    assert_killed_create_finished(node, panel_node, setting, point, whole_worker=False)


@pytest.mark.parametrize("point", HOLD_POINTS)
def test_a_create_whose_worker_is_killed_is_finished_after_the_worker_restarts(holding, setting, point):
    node, panel_node = holding(f"w{HOLD_POINTS.index(point)}")
    assert_killed_create_finished(node, panel_node, setting, point, whole_worker=True)
