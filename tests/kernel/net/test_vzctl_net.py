"""vzctl's network flags on a running VPS of the test node network: applied at once, saved in CTID.conf."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from kernel.net.config import Rate, VpsNet, make_mac
from kernel.net.ip import IP
from tests.kernel.net.conftest import PEER_ADDR4, Lab, in_ns, vps_addrs
from worker.cli import codes, conf, vzctl

pytestmark = pytest.mark.kernel


@pytest.fixture
def vzctl_run(lab: Lab, tmp_path, monkeypatch: pytest.MonkeyPatch, capfd) -> Callable[..., tuple[int, str]]:  # type: ignore[no-untyped-def]
    node = lab.network.node
    env = {
        "CTPANEL_NODE_NAME": node.node,
        "CTPANEL_STATE_ROOT": node.state_root,
        "CTPANEL_CGROUP_PREFIX": node.cgroup_prefix,
        "CTPANEL_IDMAP_REGISTRY": node.idmap_registry,
        "CTPANEL_ID_BASE": str(node.id_base),
        "CTPANEL_CONF_DIR": str(tmp_path),
        "CTPANEL_NET_HOST_NETNS": lab.host,
        "CTPANEL_NET_UPLINK": "up0",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def call(*args: str) -> tuple[int, str]:
        capfd.readouterr()
        code = vzctl.main(list(args))
        return code, capfd.readouterr().err

    return call


def test_vzctl_network_flags_apply_live(lab: Lab, vzctl_run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a4, _ = vps_addrs(0)
    extra4, b4 = "203.0.113.20", vps_addrs(1)[0]
    a = lab.vps(VpsNet(ips=(a4,)))
    lab.vps(VpsNet(ips=(b4,)), start=False)
    c = str(a)
    assert vzctl_run("set", c, "--ipadd", extra4, "--ipadd", "2001:db8:5::/64", "--save") == (0, "")
    assert lab.ping(a, PEER_ADDR4, source=extra4)
    values = conf.read_ct_conf(str(tmp_path), a)
    assert values["IP_ADDRESS"] == f"{a4} {extra4} 2001:db8:5::/64"
    assert vzctl_run("set", c, "--ipdel", extra4)[0] == 0
    assert not lab.ping(a, PEER_ADDR4, source=extra4)
    assert lab.network.spec(a).ips == (a4, "2001:db8:5::/64")

    assert vzctl_run("set", c, "--nameserver", "198.51.100.53", "--nameserver", "2001:db8::53",
                     "--searchdomain", "example.com")[0] == 0  # fmt: skip
    _, resolv = lab.vsh(a, "cat /etc/resolv.conf")
    assert "nameserver 198.51.100.53" in resolv and "nameserver 2001:db8::53" in resolv
    assert "search example.com" in resolv
    assert vzctl_run("set", c, "--rate", "in:10M,out:5M")[0] == 0
    assert lab.network.spec(a).rate == Rate(in_bps=10_000_000, out_bps=5_000_000)

    with IP(lab.host) as h:
        h.bridge_add("br7")
    assert vzctl_run("set", c, "--netif_add", "eth1,,,,br7")[0] == 0
    assert lab.vsh(a, "cat /sys/class/net/eth1/address")[1].strip() == make_mac(a, 1)
    assert vzctl_run("set", c, "--ifname", "eth1", "--ipadd", "198.51.100.10")[0] == 0
    assert lab.network.spec(a).netifs[0].ips == ("198.51.100.10",)
    assert "bridge=br7" in conf.read_ct_conf(str(tmp_path), a)["NETIF"]
    assert vzctl_run("set", c, "--netif_del", "eth1")[0] == 0
    assert lab.vsh(a, "test -e /sys/class/net/eth1")[0] != 0

    # Refusals, nothing changed by them.
    before = lab.network.spec(a)
    assert vzctl_run("set", c, "--ipadd", "203.0.113.300")[0] == codes.BAD_VALUE
    assert vzctl_run("set", c, "--ipadd", "198.51.100.0/24")[0] == codes.BAD_VALUE
    assert vzctl_run("set", c, "--ipadd", b4)[0] == codes.PRIVATE_EXISTS  # B's address
    assert vzctl_run("set", c, "--netif_add", "eth1")[0] == codes.BAD_VALUE  # no bridge named
    assert vzctl_run("set", c, "--netif_add", "eth1,,,,nosuchbr")[0] == codes.BAD_VALUE
    assert vzctl_run("set", c, "--netif_del", "eth9")[0] == codes.BAD_VALUE
    assert vzctl_run("set", c, "--rate", "fast")[0] == codes.BAD_SYNTAX
    assert vzctl_run("set", c, "--nameserver", "ns1.example.com")[0] == codes.BAD_VALUE
    assert vzctl_run("set", c, "--searchdomain", "bad_domain!")[0] == codes.BAD_VALUE
    assert lab.network.spec(a) == before
    assert in_ns(lab.host, "ip", "link", "show", "master", "br7").stdout == ""
    assert os.path.exists(os.path.join(str(tmp_path), f"{a}.conf"))


def test_vzctl_device_flags(lab: Lab, vzctl_run, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    a = lab.vps(VpsNet(ips=(vps_addrs(0)[0],)))
    c = str(a)
    assert lab.vsh(a, "tunctl -t tap7")[0] != 0
    assert vzctl_run("set", c, "--features", "tun:on,fuse:on") == (0, "")
    assert lab.vsh(a, "tunctl -t tap7 && test -c /dev/fuse")[0] == 0
    assert conf.read_ct_conf(str(tmp_path), a)["DEVNODES"] == "net/tun:rw fuse:rw"
    assert vzctl_run("set", c, "--features", "fuse:off")[0] == 0
    assert lab.vsh(a, "test -c /dev/fuse")[0] != 0

    assert vzctl_run("set", c, "--devices", "c:1:5:r")[0] == codes.BAD_VALUE  # no name for the node
    assert vzctl_run("set", c, "--devnodes", "ctp/zero:r", "--devices", "c:1:5:r")[0] == codes.NO_ACCESS
    assert vzctl_run("set", c, "--devnodes", "null:rw")[0] == codes.NO_ACCESS  # the host's c 1:3
    assert vzctl_run("set", c, "--devnodes", "nosuchdev:rw")[0] == codes.NO_PRIVATE
    assert vzctl_run("set", c, "--devnodes", "ctp/zero:rwx")[0] == codes.BAD_SYNTAX
    assert vzctl_run("set", c, "--features", "kvm:on")[0] == codes.BAD_SYNTAX
    assert lab.vsh(a, "test -e /dev/ctp/zero")[0] != 0
    monkeypatch.setenv("CTPANEL_DEVICES_ALLOW", f"{a}:c:1:5")
    assert vzctl_run("set", c, "--devnodes", "ctp/zero:r", "--devices", "c:1:5:r")[0] == 0
    assert lab.vsh(a, "head -c 2 /dev/ctp/zero | od -An -tx1")[1].split() == ["00", "00"]
    assert vzctl_run("set", c, "--devnodes", "ctp/zero:none")[0] == 0
    assert lab.vsh(a, "test -c /dev/ctp/zero")[0] != 0

    with IP(lab.host) as h:
        h.veth_add("ctpnic1", "ctpnic1p")
    assert vzctl_run("set", c, "--netdev_add", "ctpnic1")[0] == 0
    assert lab.vsh(a, "ip link show ctpnic1")[0] == 0
    assert conf.read_ct_conf(str(tmp_path), a)["NETDEV"] == "ctpnic1"
    assert vzctl_run("set", c, "--netdev_del", "ctpnic1")[0] == 0
    with IP(lab.host) as h:
        assert h.link("ctpnic1") is not None
    assert vzctl_run("set", c, "--netdev_add", "up0")[0] == codes.BAD_VALUE
    assert vzctl_run("set", c, "--netdev_del", "ctpnic9")[0] == codes.NO_PRIVATE


def test_vzctl_without_net_variables_uses_the_nodes_saved_host_side(
    lab: Lab, vzctl_run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A shell on the node has none of the worker's variables: vzctl takes the host side the
    node's last setup_node saved (here the test's host namespace, not the real one)."""
    monkeypatch.delenv("CTPANEL_NET_HOST_NETNS")
    monkeypatch.delenv("CTPANEL_NET_UPLINK")
    a = lab.vps(VpsNet(ips=(vps_addrs(0)[0],)))
    assert vzctl_run("set", str(a), "--ipadd", "203.0.113.21") == (0, "")
    assert lab.ping(a, PEER_ADDR4, source="203.0.113.21")
