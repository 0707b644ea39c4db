"""Node usage sampling end to end: a running VPS's counters, traffic and disk use reach the panel."""

import subprocess

import pytest

from kernel.config import NodeConfig as KernelNodeConfig
from kernel.runtime import Runtime
from panel.nodes import ippools
from panel.nodes import services as nodes
from panel.plans import budgets
from panel.plans import services as plans
from panel.usage import reports
from panel.usage.models import Beancounter, FailEvent, Sample, TrafficPeriod
from panel.vps import addresses, services
from tests.panel.tenants import make_tenants
from tests.services import terminal, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

MiB = 2**20


def test_a_running_vps_is_sampled_into_the_panel(stack, tmp_path):
    name = f"{stack.node_name}-u"
    state_root = str(tmp_path / "state")
    stack.start_node_worker(tmp_path, name="usage-node-worker", CTPANEL_NODE_NAME=name,
                            CTPANEL_STATE_ROOT=state_root, CTPANEL_USAGE_SECONDS="1",
                            CTPANEL_CGROUP_PREFIX=stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-u")
    netns = stack.node_env["CTPANEL_NET_HOST_NETNS"]
    node, _ = nodes.register_node(name)
    ippools.create_pool(name="usage-v4", family=4, network="203.0.113.32/28", gateway="203.0.113.33", node=node)
    t = make_tenants()
    budgets.grant(t.admin, t.reseller1, vps_count=None, ram=None, disk=None, cpus=None, ipv4=None,
                  ipv6_prefixes=None, traffic=None)
    plan = plans.create_plan(t.admin, name="sampled", ram=128 * MiB, numproc=64, ipv4_count=1, ipv6_count=0)
    vps, op = services.create_vps(t.admin, customer=t.customer1, node=node, template="busybox", hostname="sampled",
                                  plan=plan)
    try:
        assert terminal(op).status == "succeeded", op.error_message
        samples = wait_for(lambda: list(Sample.objects.filter(vps=vps)[:2]) if
                           Sample.objects.filter(vps=vps).count() >= 2 else None, 30, "two samples")
        assert all(s.epoch for s in samples)
        numproc = wait_for(lambda: Beancounter.objects.filter(vps=vps, resource="numproc").first(), 30, "numproc")
        assert numproc.held >= 1
        assert Beancounter.objects.filter(vps=vps, resource="physpages", held__gt=0).exists()
        wait_for(lambda: Sample.objects.filter(vps=vps, disk_bytes__gt=0).exists(), 30, "disk use")

        # Traffic: pings from the node's host side reach the VPS and its answers leave it.
        (cidr,), _ = addresses.cidrs(vps)
        ping = subprocess.run(["ip", "netns", "exec", netns, "busybox", "ping", "-c", "5", "-s", "1000", "-W", "2",
                               cidr.split("/")[0]], capture_output=True, text=True, timeout=60)
        assert ping.returncode == 0, ping.stdout + ping.stderr
        period = wait_for(lambda: TrafficPeriod.objects.filter(vps=vps, rx_bytes__gte=5000,
                                                               tx_bytes__gte=5000).first(), 30, "the pings' traffic")
        last = Sample.objects.filter(vps=vps).order_by("-time").first()
        assert last.net_rx_bytes >= 5000 and last.net_rx_packets >= 5

        def counted_once() -> bool:
            """The month's traffic is the node's running total (each byte once), not a sum of totals."""
            last = Sample.objects.filter(vps=vps).order_by("-time").first()
            period.refresh_from_db()
            return last.seconds is not None and (period.rx_bytes, period.tx_bytes) == (last.net_rx_bytes,
                                                                                      last.net_tx_bytes)

        wait_for(counted_once, 30, "the period to match the running totals")

        # An OOM kill inside (busybox tail keeps a line without newlines in memory, past the 128 MiB
        # of RAM) reaches the panel as an event in words.
        rt = Runtime(KernelNodeConfig(node=name, state_root=state_root,
                                      cgroup_prefix=stack.node_env["CTPANEL_CGROUP_PREFIX"] + "-u"))
        hog = rt.exec(vps.ctid, ["sh", "-c", "head -c 400000000 /dev/zero | tail"], timeout=120)
        assert hog.returncode != 0
        killed = wait_for(lambda: FailEvent.objects.filter(vps=vps, resource="oom_kill").first(), 30, "the OOM kill")
        assert reports.fail_words(killed).startswith("Out of memory: ")
    finally:
        terminal(services.destroy(t.admin, vps))
