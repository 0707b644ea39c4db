"""vzctl's network flag parsing (pure logic; the live effects: tests/kernel/net/test_vzctl_net.py)."""

from __future__ import annotations

import argparse

import pytest

from kernel.errors import InvalidArgument
from kernel.net.config import Netif, Rate, VpsNet
from worker.cli import codes, vznet
from worker.cli.codes import Fail


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    vznet.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_rate_units_and_partial_updates() -> None:
    assert vznet.parse_rate("in:100M,out:20m", Rate()) == Rate(in_bps=100_000_000, out_bps=20_000_000)
    assert vznet.parse_rate("out:1G", Rate(in_bps=8000)) == Rate(in_bps=8000, out_bps=10**9)
    assert vznet.parse_rate("in:0", Rate(in_bps=8000, out_bps=9000)) == Rate(out_bps=9000)
    for bad in ("fast", "in:", "up:10M", "in:10T", "in:-5"):
        with pytest.raises(Fail) as exc:
            vznet.parse_rate(bad, Rate())
        assert exc.value.code == codes.BAD_SYNTAX, bad
    with pytest.raises(InvalidArgument):
        vznet.parse_rate("in:100", Rate())  # below 8000 bit/s


def test_netif_syntax_is_openvz_s() -> None:
    assert vznet.parse_netif("eth0,,,,br0") == Netif(name="eth0", bridge="br0")
    full = vznet.parse_netif("eth1,02:00:5e:00:53:01,veth101.1,06:00:5e:00:53:01,br1")
    assert (full.mac, full.host_ifname, full.host_mac, full.bridge) == (
        "02:00:5e:00:53:01", "veth101.1", "06:00:5e:00:53:01", "br1")  # fmt: skip
    for bad in ("eth0", ",,,,br0", "eth0,,,,br0,extra"):
        with pytest.raises(Fail):
            vznet.parse_netif(bad)
    with pytest.raises(InvalidArgument):
        vznet.parse_netif("eth0,01:00:00:00:00:01,,,br0")  # multicast MAC
    with pytest.raises(InvalidArgument):
        vznet.parse_netif("eth0;rm,,,,br0")


def test_wanted_applies_deletions_before_additions() -> None:
    spec = VpsNet(ips=("203.0.113.10", "203.0.113.11"), netifs=(Netif(name="eth0", bridge="br0"),))
    assert vznet.wanted(spec, flags("--ipdel", "all", "--ipadd", "203.0.113.12")).ips == ("203.0.113.12",)
    assert vznet.wanted(spec, flags("--ipdel", "203.0.113.10", "--ipadd", "2001:db8:1::/64")).ips == (
        "203.0.113.11", "2001:db8:1::/64")  # fmt: skip
    bridged = vznet.wanted(spec, flags("--ifname", "eth0", "--ipadd", "198.51.100.5"))
    assert bridged.ips == spec.ips and bridged.netifs[0].ips == ("198.51.100.5",)
    assert vznet.wanted(spec, flags("--netif_del", "all", "--netif_add", "eth1,,,,br1")).netifs == (
        Netif(name="eth1", bridge="br1"),)  # fmt: skip
    with pytest.raises(Fail):
        vznet.wanted(spec, flags("--ifname", "eth9", "--ipadd", "198.51.100.5"))
    with pytest.raises(Fail):
        vznet.wanted(spec, flags("--netif_del", "eth9"))
    assert vznet.wanted(spec, flags("--nameserver", "198.51.100.53")).nameservers == ("198.51.100.53",)
    assert not vznet.given(flags("--ifname", "eth0")) and vznet.given(flags("--rate", "in:1M"))


def test_device_flags_pair_devices_with_devnodes() -> None:
    from kernel.net.devices import FEATURES, Grant

    changes = vznet.device_changes(flags("--features", "tun:on,fuse:off", "--devnodes", "ttyS9:rw",
                                         "--devices", "c:4:73:rw", "--devnodes", "ctp/x:none"))  # fmt: skip
    assert changes == [("net/tun", FEATURES["tun"]), ("fuse", None),
                       ("ttyS9", Grant("ttyS9", "c", 4, 73, "rw")), ("ctp/x", None)]  # fmt: skip
    for bad in (("--devices", "c:4:73:rw"), ("--devnodes", "ttyS9:rw", "--devices", "x:4:73:rw"),
                ("--features", "tun"), ("--devnodes", "ttyS9")):  # fmt: skip
        with pytest.raises(Fail):
            vznet.device_changes(flags(*bad))
    with pytest.raises(InvalidArgument):
        vznet.device_changes(flags("--devnodes", "../etc/x:rw", "--devices", "c:1:3:rw"))
