"""Reinstall, snapshots and backups through the panel's services, a real node worker and the real kernel.

The node has an `image` pool (snapshots need a driver that has them) and the
session's host network namespace; the kernel state is checked on the node.
"""

from __future__ import annotations

import crypt
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from kernel.storage.volumes import Storage
from panel.celery import app as panel_app
from panel.core.models import Operation
from panel.nodes import ippools
from panel.nodes import services as nodes
from panel.plans import budgets
from panel.plans import services as plans
from panel.vps import addresses, data, services
from panel.vps.models import VPS
from tests.panel.tenants import make_tenants
from tests.panel.vps.test_api import ssh_key
from tests.panel.vps.test_wired import memory_limit, sh
from tests.services import finished, terminal, wait_for
from worker import protocol
from worker.config import NodeConfig
from worker.journal import Journal, owner_id
from worker.vps import storage_config

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MiB = 2**20
PASSWORD = "a new root password"


@pytest.fixture
def node(stack, tmp_path):
    """A node worker of this test with an image pool; its runtime as the test sees it."""
    name = f"{stack.node_name}-d"
    env = {**stack.node_env, "CTPANEL_NODE_NAME": name, "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
           "CTPANEL_CGROUP_PREFIX": stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-d",
           "CTPANEL_STORAGE_POOLS": f"img:image:{tmp_path / 'images'}"}
    worker = stack.start_node_worker(tmp_path, name="node-d-worker", **env)
    config = NodeConfig.from_env(env)
    node_config = KernelNodeConfig(node=name, state_root=config.state_root, cgroup_prefix=config.cgroup_prefix)
    rt = Runtime(node_config, storage=Storage(node_config, storage_config(config, node_config)))
    try:
        yield rt
    finally:
        worker.stop()
        del stack.processes["node-d-worker"]
        for ctid in rt.registry.ctids():  # what a failed test left (a passing one destroys its VPS)
            rt.stop(ctid, fast=True)
            rt.destroy(ctid)


@pytest.fixture
def vps_on(node):
    """A running VPS on `node`, made from a plan with one IPv4 address and a RAM and disk limit."""
    t = make_tenants()
    panel_node, _ = nodes.register_node(node.config.node)
    ippools.create_pool(name="data-v4", family=4, network="203.0.113.16/28", gateway="203.0.113.17",
                        node=panel_node)
    budgets.grant(t.admin, t.reseller1, vps_count=None, ram=None, disk=None, cpus=None, ipv4=None,
                  ipv6_prefixes=None, traffic=None)
    plan = plans.create_plan(t.admin, name="data", ram=128 * MiB, diskspace=48 * MiB, ipv4_count=1, ipv6_count=0,
                              backup_slots=2)
    vps, op = services.create_vps(t.admin, customer=t.customer1, node=panel_node, template="busybox",
                                  hostname="data1", plan=plan)
    finished(op)
    vps.refresh_from_db()
    return t, vps


def cat(rt: Runtime, ctid: int, path: str) -> str:
    code, out = sh(rt, ctid, f"cat {path} 2>&1")
    return out.strip() if code == 0 else f"<missing: {out.strip()}>"


def root_hash(rt: Runtime, ctid: int) -> str:
    line = next(line for line in cat(rt, ctid, "/etc/shadow").splitlines() if line.startswith("root:"))
    return line.split(":")[1]


def test_reinstall_keeps_ctid_addresses_and_limits_and_gives_a_new_root(node, vps_on):
    rt, (t, vps) = node, vps_on
    ctid = vps.ctid
    (cidr4,), _ = addresses.cidrs(vps)
    ids = rt.ids.lookup(ctid)
    init_before = rt.status(ctid).init_pid
    assert sh(rt, ctid, "echo mine > /root/old-file")[0] == 0
    assert root_hash(rt, ctid) == "*"

    op = finished(data.reinstall(t.customer1, vps, template="busybox", password=PASSWORD, ssh_keys=[ssh_key()]))
    assert op.payload["root_password_hash"] == "********" and PASSWORD not in str(op.payload)
    vps.refresh_from_db()
    status = rt.status(ctid)
    assert vps.state == "running" and status.running and status.init_pid != init_before
    # Kept: the CTID and its id range, the address (inside and routed), the RAM and disk limits.
    assert rt.ids.lookup(ctid) == ids
    code, out = sh(rt, ctid, "ip -o addr show dev venet0")
    assert code == 0 and cidr4.split("/")[0] in out, out
    assert memory_limit(rt, ctid) == str(128 * MiB)
    assert rt.storage.get(ctid).limits.space == 48 * MiB
    # New: the root filesystem, root's password hash and SSH keys; the host name from the panel.
    assert cat(rt, ctid, "/root/old-file").startswith("<missing")
    new_hash = root_hash(rt, ctid)
    assert new_hash.startswith("$6$") and crypt.crypt(PASSWORD, new_hash) == new_hash
    assert ssh_key() in cat(rt, ctid, "/root/.ssh/authorized_keys").splitlines()
    assert cat(rt, ctid, "/etc/hostname") == "data1"
    # The same operation delivered again after its run died: the volume is not replaced a second time.
    assert sh(rt, ctid, "echo after > /root/after-reinstall")[0] == 0
    redeliver(rt, op)
    assert cat(rt, ctid, "/root/after-reinstall") == "after"
    assert rt.status(ctid).running
    # A password or key change later (node.vps.set) reaches the same files; keys root added by hand stay.
    assert sh(rt, ctid, "echo 'ssh-ed25519 AAAAown root@laptop' >> /root/.ssh/authorized_keys")[0] == 0
    finished(services.set_root_password(t.customer1, vps, "another password"))
    changed = root_hash(rt, ctid)
    assert changed != new_hash and crypt.crypt("another password", changed) == changed
    finished(services.set_ssh_keys(t.customer1, vps, []))
    assert cat(rt, ctid, "/root/.ssh/authorized_keys").splitlines() == ["ssh-ed25519 AAAAown root@laptop"]
    finished(services.destroy(t.customer1, VPS.objects.get(ctid=ctid)))
    assert rt.registry.find(ctid) is None and rt.storage.leftovers(ctid) == []


def redeliver(rt: Runtime, op: Operation) -> None:
    """Make the node's journal say `op`'s run died mid-way, send its message again, wait for the report."""
    journal = Path(rt.config.state_root, "journal.sqlite")
    with sqlite3.connect(journal) as db:
        body = db.execute("SELECT body FROM operations WHERE operation_id = ?", (str(op.id),)).fetchone()[0]
        db.execute("DELETE FROM operations WHERE operation_id = ?", (str(op.id),))
    dead = subprocess.Popen(["true"])
    dead.wait()
    request = json.loads(body)
    Journal(journal).begin(str(op.id), op.action, body=request, owner=owner_id(dead.pid))
    panel_app.send_task(op.action, args=[request], task_id=str(op.id), queue=protocol.node_queue(rt.config.node))
    with sqlite3.connect(journal) as db:
        wait_for(lambda: db.execute("SELECT state, deliveries FROM operations WHERE operation_id = ?",
                                    (str(op.id),)).fetchone() == ("done", 2), 90, "the second delivery to finish")


def test_snapshot_rollback_and_backup_restore_bring_files_back(node, vps_on):
    rt, (t, vps) = node, vps_on
    ctid = vps.ctid
    assert sh(rt, ctid, "echo one > /root/data && sync")[0] == 0

    finished(data.create_snapshot(t.customer1, vps, "before"))
    assert [s.name for s in vps.snapshots.all()] == ["before"]
    assert [s.name for s in rt.storage.snapshot_list(ctid)] == ["before"]
    assert sh(rt, ctid, "echo two > /root/data && echo x > /root/later")[0] == 0
    finished(data.rollback_snapshot(t.customer1, vps, "before"))
    assert rt.status(ctid).running
    assert cat(rt, ctid, "/root/data") == "one"
    assert cat(rt, ctid, "/root/later").startswith("<missing")

    finished(data.delete_snapshot(t.customer1, vps, "before"))
    assert rt.storage.snapshot_list(ctid) == [] and vps.snapshots.count() == 0

    backup_op = finished(data.create_backup(t.customer1, vps))
    (backup,) = vps.backups.all()
    on_node = Path(rt.storage.storage.backup_dir, str(ctid), backup.backup_id)
    assert (on_node / "backup.json").is_file() and backup.size == (on_node / "rootfs.tar.gz").stat().st_size
    redeliver(rt, backup_op)  # its run "died": the second delivery finds the backup instead of taking another
    assert os.listdir(on_node.parent) == [backup.backup_id]
    finished(data.create_snapshot(t.customer1, vps, "doomed"))
    # A damaged backup is refused before anything is replaced: the VPS runs on with its files.
    damaged = finished(data.create_backup(t.customer1, vps))
    (damaged_id,) = set(vps.backups.values_list("backup_id", flat=True)) - {backup.backup_id}
    with open(on_node.parent / damaged_id / "rootfs.tar.gz", "ab") as fh:
        fh.write(b"tampered")
    refused = terminal(data.restore_backup(t.customer1, vps, damaged_id))
    assert (refused.status, refused.error_code) == ("failed", "kernel.invalid"), refused.error_message
    assert "does not match its checksum" in refused.error_message
    assert rt.status(ctid).running and cat(rt, ctid, "/root/data") == "one"
    assert [s.name for s in rt.storage.snapshot_list(ctid)] == ["doomed"]
    finished(data.delete_backup(t.customer1, vps, damaged_id))
    assert damaged.status == "succeeded"
    assert sh(rt, ctid, "rm /root/data")[0] == 0
    finished(data.restore_backup(t.customer1, vps, backup.backup_id))
    vps.refresh_from_db()
    assert vps.state == "running" and rt.status(ctid).running
    assert cat(rt, ctid, "/root/data") == "one"
    assert memory_limit(rt, ctid) == str(128 * MiB)
    # A restore replaces the volume, and the volume's snapshots go with it (docs/protocol.md).
    assert rt.storage.snapshot_list(ctid) == [] and vps.snapshots.count() == 0

    # Slots: the plan has 2; the third backup is refused before anything reaches the node.
    finished(data.create_backup(t.customer1, vps))
    assert vps.backups.count() == 2
    with pytest.raises(ValidationError, match="All 2 backup slots"):
        data.create_backup(t.customer1, vps)
    finished(data.delete_backup(t.customer1, vps, backup.backup_id))
    assert not on_node.exists() and vps.backups.count() == 1

    finished(services.destroy(t.customer1, VPS.objects.get(ctid=ctid)))
    assert rt.registry.find(ctid) is None and rt.storage.leftovers(ctid) == []
    assert not os.path.exists(os.path.join(rt.storage.storage.backup_dir, str(ctid)))
    assert vps.backups.count() == 0

