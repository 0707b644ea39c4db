"""VPSs of both tenants on one node, and real protocol.UsageBatch messages for them."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from panel.nodes.choices import NodeState
from panel.nodes.models import Node
from panel.plans import budgets
from panel.plans import services as plans
from panel.plans.models import Plan
from panel.vps import services
from panel.vps.models import VPS
from tests.panel.tenants import Tenants, make_tenants
from worker import protocol

GIB = 2**30
T0 = datetime.datetime(2026, 11, 27, 12, 0, tzinfo=datetime.UTC)


@dataclass
class UsageWorld:
    t: Tenants
    node: Node
    plan: Plan
    vpss: dict[str, VPS]


def build(node_name: str = "n1", **plan_fields: Any) -> UsageWorld:
    t = make_tenants()
    node = Node.objects.create(name=node_name, state=NodeState.UP, last_seen=timezone.now(),
                               capacity={"memory_available": 64 * GIB})
    fields = {"ram": GIB, "ipv4_count": 0, "ipv6_count": 0, **plan_fields}
    plan = plans.create_plan(t.admin, name="metered", **fields)
    for reseller in (t.reseller1, t.reseller2):
        budgets.grant(t.admin, reseller, vps_count=10, ram=None, disk=None, cpus=None, ipv4=None,
                      ipv6_prefixes=None, traffic=None)
    vpss = {}
    for customer in (t.customer1, t.customer1b, t.customer2, t.customer0):
        vpss[customer.username], _ = services.create_vps(t.admin, customer=customer, template="busybox",
                                                         hostname=f"{customer.username}-vps", plan=plan)
    return UsageWorld(t, node, plan, vpss)


def sample(vps: VPS, epoch: str = "e1", *, cpu_s: float = 0, rx: int = 0, tx: int = 0, ram: int = 0,
           beancounters: dict[str, dict[str, int]] | None = None) -> dict[str, Any]:
    return {"ctid": vps.ctid, "epoch": epoch, "cpu_ns": int(cpu_s * 1e9), "net_rx_bytes": rx, "net_tx_bytes": tx,
            "net_rx_packets": rx // 1000, "net_tx_packets": tx // 1000, "ram_bytes": ram, "swap_bytes": 0,
            "disk_bytes": 10**9, "disk_inodes": 20000, "processes": 12, "beancounters": beancounters or {}}


def batch(node: str, at: datetime.datetime, *samples: dict[str, Any], interval: int = 60) -> dict[str, Any]:
    """A real UsageBatch as the node sends it (validated by the protocol), as JSON data."""
    return protocol.UsageBatch(node=node, sent_at=at.timestamp(), interval=interval, samples=list(samples)).to_dict()


def physpages(failcnt: int, held: int = GIB) -> dict[str, dict[str, int]]:
    return {"physpages": {"held": held, "maxheld": held, "barrier": GIB, "limit": GIB, "failcnt": failcnt}}
