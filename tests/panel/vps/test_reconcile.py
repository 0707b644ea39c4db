"""Reconcile with two nodes on one machine: drift is reported, orphans removed, the other node left alone."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import CreateSpec, Runtime
from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes import services as nodes
from panel.vps import reconcile, services
from tests.services import finished

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ORPHAN = 999_999


def runtime_of(env: dict[str, str]) -> Runtime:
    return Runtime(KernelNodeConfig(node=env["CTPANEL_NODE_NAME"], state_root=env["CTPANEL_STATE_ROOT"],
                                    cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))


def orphan_cgroup(rt: Runtime) -> list[str]:
    """Cgroups of a CTID the node does not know, made as the runtime makes them (cpuset set up)."""
    return list(rt.cgroups.ensure(ORPHAN).outer.values())


@pytest.fixture
def node_b(stack, tmp_path):
    env = {**stack.node_env, "CTPANEL_NODE_NAME": f"{stack.node_name}-b", "CTPANEL_STATE_ROOT": str(tmp_path / "b"),
           "CTPANEL_CGROUP_PREFIX": stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-b"}
    stack.start_node_worker(tmp_path, name="node-b-worker", **env)
    node, _ = nodes.register_node(env["CTPANEL_NODE_NAME"])
    return node, runtime_of(env)


def test_reconcile_reports_drift_and_cleans_only_its_own_orphans(stack, node_b):
    admin = User.objects.create_user("root-admin", role=Role.ADMIN)
    alice = User.objects.create_user("alice", role=Role.CUSTOMER)
    node_a, _ = nodes.register_node(stack.node_name)
    rt_a = runtime_of(stack.node_env)
    node_b, rt_b = node_b

    kept, op = services.create_vps(admin, customer=alice, node=node_a, template="busybox", hostname="kept",
                                   start=False)
    finished(op)
    gone, op = services.create_vps(admin, customer=alice, node=node_a, template="busybox", hostname="gone",
                                   start=False)
    finished(op)
    on_b, op = services.create_vps(admin, customer=alice, node=node_b, template="busybox", hostname="on-b",
                                   start=False)
    finished(op)
    rt_a.destroy(gone.ctid)                                               # behind the panel's back
    local = rt_a.create(CreateSpec(ctid=900_001, template="busybox"))     # vzctl-made, node-local
    orphans_a, orphans_b = orphan_cgroup(rt_a), orphan_cgroup(rt_b)
    try:
        op = finished(reconcile.request_inventory(admin, node_a, clean=True))
        drift = op.result["drift"]
        assert drift["missing"] == [gone.ctid]
        assert drift["unmanaged"] == [local.ctid]
        assert ORPHAN in drift["orphans"]["cgroups"] and op.result["cleaned"] == [ORPHAN]
        assert not any(os.path.exists(p) for p in orphans_a)
        assert rt_a.registry.find(kept.ctid) and rt_a.registry.find(local.ctid)

        assert all(os.path.exists(p) for p in orphans_b)
        assert rt_b.registry.find(on_b.ctid) is not None and rt_b.ids.lookup(on_b.ctid) is not None
        assert rt_a.ids.lookup(on_b.ctid) is None or on_b.ctid in (kept.ctid, gone.ctid)
    finally:
        rt_b.cgroups.remove(ORPHAN)
        rt_a.destroy(local.ctid)
        for vps in (kept, on_b):
            finished(services.destroy(admin, vps))


def test_reconcile_updates_a_state_changed_on_the_node(stack):
    admin = User.objects.create_user("root-admin", role=Role.ADMIN)
    alice = User.objects.create_user("alice", role=Role.CUSTOMER)
    node, _ = nodes.register_node(stack.node_name)
    rt = runtime_of(stack.node_env)
    vps, op = services.create_vps(admin, customer=alice, node=node, template="busybox", hostname="drifter")
    finished(op)
    rt.stop(vps.ctid, fast=True)                                           # vzctl stop --force on the node
    try:
        drift = finished(reconcile.request_inventory(admin, node)).result["drift"]
        assert drift["state"] == [{"ctid": vps.ctid, "panel": "running", "node": "stopped"}]
        assert drift["not_as_desired"] == [{"ctid": vps.ctid, "desired": "running", "node": "stopped"}]
        vps.refresh_from_db()
        assert vps.state == "stopped"
    finally:
        finished(services.destroy(admin, vps))


def test_a_forced_vzctl_change_on_the_node_is_reported_once(stack):
    admin = User.objects.create_user("root-admin", role=Role.ADMIN)
    alice = User.objects.create_user("alice", role=Role.CUSTOMER)
    node, _ = nodes.register_node(stack.node_name)
    vps, op = services.create_vps(admin, customer=alice, node=node, template="busybox", hostname="managed",
                                  start=False)
    finished(op)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTPANEL_", "DJANGO_"))} | stack.node_env
    vzctl = [sys.executable, "-m", "worker.cli.vzctl", "set", str(vps.ctid), "--hostname", "changed.example.com"]
    try:
        refused = subprocess.run(vzctl, env=env, capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0 and "managed by the panel" in refused.stderr
        forced = subprocess.run([*vzctl, "--force"], env=env, capture_output=True, text=True, timeout=60)
        assert forced.returncode == 0, forced.stderr

        drift = finished(reconcile.request_inventory(admin, node)).result["drift"]
        assert [(e["ctid"], e["command"]) for e in drift["forced"]] == [(vps.ctid, "set")], drift["forced"]
        assert finished(reconcile.request_inventory(admin, node)).result["drift"]["forced"] == []
    finally:
        finished(services.destroy(admin, vps))
