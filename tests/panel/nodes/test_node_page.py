"""The admin's node page shows a 1.4 heartbeat's pools with their free disk and the node's capabilities."""

import pytest

from panel.nodes.models import Node
from tests.panel.tenants import client_for, make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

GIB = 2**30


def test_the_node_page_shows_pools_with_free_disk_and_capabilities():
    t = make_tenants()
    Node.objects.create(name="facts-1", facts={
        "kernel": "6.18.0", "cgroup_version": 1, "templates": ["busybox"],
        "template_info": {"busybox": {"version": "1.35.0-2", "checksum": "sha256:" + "a" * 64}},
        "storage": {"default": "fast", "pools": [{"name": "fast", "driver": "btrfs", "capabilities": {}},
                                                  {"name": "img", "driver": "image", "capabilities": {}}]},
        "capabilities": {"cgroup_version": 1, "cgroup": ["freeze", "kill"], "freeze": True,
                         "quota": ["diskinodes", "diskspace"], "snapshots": True}},
        capacity={"pools": {"fast": {"total": 100 * GIB, "used": 50 * GIB, "free": 50 * GIB}}})
    page = client_for(t.admin).get("/nodes/facts-1/").content.decode()
    pools = page.split('id="disks-h"')[1].split("</section>")[0]
    assert "<code>fast</code> (btrfs, default): 53.69 GB free of 107.37 GB" in pools
    assert 'aria-label="50 % free"' in pools
    assert "<code>img</code> (image)" in pools and "img</code> (image):" not in pools  # no figures reported
    facts = page.split('id="facts-h"')[1].split("</section>")[0]
    assert "cgroup v1 (freeze, kill); disk quota: diskinodes, diskspace; snapshots" in facts
    assert "6.18.0" in facts and "busybox" in facts
    assert "{&#x27;" not in facts and "sha256:" not in facts  # no dict dumped as text
