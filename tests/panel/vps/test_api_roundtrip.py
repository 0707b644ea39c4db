"""The REST API end to end: a customer's token, over HTTP to the real ASGI server, creates a VPS from a
plan on a real node found by placement (its own heartbeat made it "up"), follows the operation to its
end, stops and destroys it — and the node's kernel state matches at every step."""

from __future__ import annotations

import base64
import json
import os
import struct
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from panel.accounts import services as accounts
from panel.accounts.choices import TokenScope
from panel.nodes import ippools
from panel.nodes import services as nodes
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans import services as plans
from tests.kernel import leftovers
from tests.panel.tenants import make_tenants
from tests.services import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MiB = 2**20
UNLIMITED = {"disk": None, "cpus": None, "ipv6_prefixes": None, "traffic": None}


def ssh_key() -> str:
    blob = struct.pack(">I", 11) + b"ssh-ed25519" + struct.pack(">I", 32) + b"r" * 32
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} roundtrip@home"


class Api:
    def __init__(self, base: str, key: str) -> None:
        self.base, self.key = base, key

    def call(self, method: str, path: str, body: dict | None = None, **headers: str) -> tuple[int, dict]:
        request = urllib.request.Request(  # noqa: S310 - http to the test's own server
            self.base + path, method=method, data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.key}", "Content-Type": "application/json",
                     "Host": "127.0.0.1", **headers})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the test's own server
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def finished(self, operation_url: str, timeout: float = 90) -> dict:
        path = urllib.parse.urlsplit(operation_url).path

        def done() -> dict | None:
            _, op = self.call("GET", path)
            return op if op.get("status") in ("succeeded", "failed") else None

        op = wait_for(done, timeout, f"operation {operation_url}")
        assert op["status"] == "succeeded", op
        return op


@pytest.fixture
def own_node(stack, tmp_path):
    """A node worker heartbeating every second, with the busybox template in its cache."""
    name = f"{stack.node_name}-api"
    env = {**stack.node_env, "CTPANEL_NODE_NAME": name, "CTPANEL_STATE_ROOT": str(tmp_path / "state"),
           "CTPANEL_CGROUP_PREFIX": stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-api",
           "CTPANEL_HEARTBEAT_SECONDS": "1"}
    rt = Runtime(KernelNodeConfig(node=name, state_root=env["CTPANEL_STATE_ROOT"],
                                  cgroup_prefix=env["CTPANEL_CGROUP_PREFIX"]))
    rt.templates.ensure_busybox()
    node, _ = nodes.register_node(name)
    worker = stack.start_node_worker(tmp_path, name="node-api-worker", **env)
    try:
        yield node, rt
    finally:
        worker.stop()
        del stack.processes["node-api-worker"]


def test_a_customer_creates_stops_and_destroys_a_vps_through_the_api(stack, live_panel, own_node):
    node, rt = own_node
    wait_for(lambda: Node.objects.get(pk=node.pk).state == "up", 30, "the node's heartbeat")
    ippools.create_pool(name="api-v4", family=4, network="198.51.100.80/28", gateway="198.51.100.81", node=node)
    t = make_tenants()
    budgets.grant(t.admin, t.reseller1, vps_count=5, ram=1024 * MiB, ipv4=5, **UNLIMITED)
    budgets.grant(t.reseller1, t.customer1, vps_count=1, ram=256 * MiB, ipv4=1, **UNLIMITED)
    plan = plans.create_plan(t.reseller1, name="api-small", ram=128 * MiB, diskspace=256 * MiB, ipv4_count=1,
                             ipv6_count=0)
    _, key = accounts.create_token(t.customer1, name="roundtrip", scope=TokenScope.WRITE)
    api = Api(live_panel, key)

    status, vps = api.call("POST", "/api/vps/vps/", {"plan": plan.pk, "template": "busybox",
                                                     "hostname": "api1.example.com", "ssh_keys": [ssh_key()]},
                           **{"Idempotency-Key": "roundtrip-1"})
    assert status == 201, vps
    assert vps["node"] == node.name and len(vps["ipv4"]) == 1
    ctid = vps["ctid"]
    api.finished(vps["operation_url"])
    _, shown = api.call("GET", f"/api/vps/vps/{ctid}/")
    status = rt.status(ctid)
    assert (shown["state"], status.running) == ("running", True)
    inside = rt.exec(ctid, ["sh", "-c", "hostname; ip -o -4 addr show dev venet0; cat /root/.ssh/authorized_keys"],
                     timeout=30).stdout.decode()
    assert "api1.example.com" in inside and vps["ipv4"][0].split("/")[0] in inside and "roundtrip@home" in inside
    assert budgets.allocated(t.customer1)["vps_count"] == 1
    refused, body = api.call("POST", "/api/vps/vps/", {"plan": plan.pk, "template": "busybox", "hostname": "api2"})
    assert refused == 400 and "budget" in json.dumps(body)

    status_code, action = api.call("POST", f"/api/vps/vps/{ctid}/stop/", {})
    assert status_code == 202, action
    api.finished(action["operation_url"])
    assert not rt.status(ctid).running and api.call("GET", f"/api/vps/vps/{ctid}/")[1]["state"] == "stopped"

    ids = rt.ids.lookup(ctid)
    status_code, action = api.call("DELETE", f"/api/vps/vps/{ctid}/")
    assert status_code == 202, action
    api.finished(action["operation_url"])
    assert api.call("GET", f"/api/vps/vps/{ctid}/")[1]["state"] == "destroyed"
    deadline = time.monotonic() + 30
    while (left := leftovers.of(rt, ctid, ids.start, zombies=False)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left == [] and not os.path.exists(rt.volume_path(ctid))
    assert budgets.allocated(t.customer1)["vps_count"] == 0
