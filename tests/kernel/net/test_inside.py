"""Address configuration inside a VPS for each template style (kernel/net/inside.py): the files'
content per style, validation and confinement to the volume, and a busybox VPS's own tools
bringing its addresses back from the file, before and after a restart."""

from __future__ import annotations

import os
import time

import pytest

from kernel import debootstrap
from kernel.errors import InvalidArgument, NotFound
from kernel.net import inside
from kernel.net.config import VpsNet
from kernel.runtime import CreateSpec
from tests.kernel.net.conftest import PEER_ADDR4, PEER_ADDR6, Lab, in_ns, vps_addrs

pytestmark = pytest.mark.kernel

CFG = dict(ips=("203.0.113.10", "2001:db8:1::a", "2001:db8:5::/64"), gateway4="169.254.0.1", gateway6="fe80::1",
           nameservers=("198.51.100.53", "2001:db8::53"), searchdomains=("example.com", "corp.example.com"))

INTERFACES = """\
# written by ctpanel: routed interface
auto lo
iface lo inet loopback

auto venet0
iface venet0 inet manual
    up ip link set venet0 up
    up ip addr replace 203.0.113.10/32 dev venet0
    up ip addr replace 2001:db8:1::a/128 dev venet0 nodad
    up ip route replace 169.254.0.1 dev venet0 scope link
    up ip route replace default via 169.254.0.1 dev venet0
    up ip -6 route replace default via fe80::1 dev venet0
"""
#: busybox's ip has no `nodad`: DAD is switched off on the interface instead.
BUSYBOX_INTERFACES = INTERFACES.replace(" nodad", "").replace(
    "    up ip addr replace 203",
    "    up sysctl -w net.ipv6.conf.venet0.accept_dad=0 >/dev/null\n    up ip addr replace 203")
#: busybox ifup runs these directories' scripts and keeps its state in /var/run/ifstate.
BUSYBOX_DIRS = {**{f"/etc/network/{d}/": "" for d in inside.IFUP_HOOK_DIRS}, "/var/run/": ""}

NETWORKD = """\
# written by ctpanel: routed interface
[Match]
Name=venet0

[Network]
Address=203.0.113.10/32
Address=2001:db8:1::a/128
DNS=198.51.100.53
DNS=2001:db8::53
Domains=example.com corp.example.com

[Route]
Gateway=169.254.0.1
GatewayOnLink=yes

[Route]
Gateway=fe80::1
"""

RESOLV = ("# written by ctpanel\nsearch example.com corp.example.com\n"
          "nameserver 198.51.100.53\nnameserver 2001:db8::53\n")


def written(root: str) -> dict[str, str]:
    """Every file under `root` with its text, and every empty directory as ""."""
    out = {}
    for top, dirs, files in os.walk(root):
        if not dirs and not files:
            out["/" + os.path.relpath(top, root) + "/"] = ""
        for name in files:
            path = os.path.join(top, name)
            with open(path) as fh:
                out["/" + os.path.relpath(path, root)] = fh.read()
    return out


@pytest.mark.parametrize("style, files", [
    ("busybox", {"/etc/network/interfaces": BUSYBOX_INTERFACES, **BUSYBOX_DIRS}),
    ("debian", {"/etc/network/interfaces": INTERFACES}),
    ("networkd", {inside.NETWORKD_FILE: NETWORKD}),
    ("none", {}),
])
def test_each_style_gets_its_own_files(style: str, files: dict[str, str], tmp_path) -> None:
    """The routed /64 is routed to the VPS, not an address on venet0: only /32 and /128 are listed."""
    (tmp_path / "etc").mkdir()
    inside.write(str(tmp_path), inside.InsideConfig(style=style, **CFG))
    assert written(str(tmp_path)) == {"/etc/resolv.conf": RESOLV, **files}


def test_a_file_that_says_the_same_is_left_alone_any_other_is_rewritten(tmp_path) -> None:
    (tmp_path / "etc").mkdir()
    cfg = inside.InsideConfig(style="debian", **CFG)
    inside.write(str(tmp_path), cfg)
    files = [tmp_path / "etc/resolv.conf", tmp_path / "etc/network/interfaces"]
    first = [f.stat().st_ino for f in files]
    inside.write(str(tmp_path), cfg)
    assert [f.stat().st_ino for f in files] == first  # not replaced
    files[0].write_text(RESOLV.replace("53", "54"))  # same size, other text
    files[1].chmod(0o666)
    inside.write(str(tmp_path), cfg)
    assert all(f.stat().st_ino != ino for f, ino in zip(files, first, strict=True))
    assert written(str(tmp_path)) == {"/etc/resolv.conf": RESOLV, "/etc/network/interfaces": INTERFACES}
    assert [oct(f.stat().st_mode & 0o777) for f in files] == ["0o644", "0o644"]


def test_bad_values_are_refused_and_links_stay_inside(tmp_path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    for bad in ({"nameservers": ("198.51.100.53\nDNS=x",)}, {"searchdomains": ("bad_name.example",)}):
        with pytest.raises(InvalidArgument):
            inside.write(str(root), inside.InsideConfig(style="networkd", **{**CFG, **bad}))
    assert written(str(root)) == {"/etc/": ""}  # validated before anything is written
    # The VPS's root made /etc/network a link to a host path: it resolves under the VPS's root.
    (root / "etc/network").symlink_to(outside)
    with pytest.raises(NotFound):
        inside.write(str(root), inside.InsideConfig(style="debian", **CFG))
    mirror = root / str(outside).lstrip("/")
    mirror.mkdir(parents=True)
    inside.write(str(root), inside.InsideConfig(style="debian", **CFG))
    assert list(outside.iterdir()) == []
    assert (mirror / "interfaces").read_text() == INTERFACES


def _addresses(lab: Lab, ctid: int) -> tuple[set[str], str]:
    code, out = lab.vsh(ctid, "ip -o addr show dev venet0 scope global; ip route show; ip -6 route show default")
    assert code == 0, out
    return {word for line in out.splitlines() if " inet" in line for word in line.split() if "/" in word}, out


def test_a_busybox_vps_brings_its_addresses_back_from_its_file(lab: Lab) -> None:
    a4, a6 = vps_addrs(0)
    a = lab.vps(VpsNet(ips=(a4, a6)))
    code, text = lab.vsh(a, "cat /etc/network/interfaces")
    assert code == 0 and f"up ip addr replace {a4}/32 dev venet0" in text, text
    wanted = {f"{a4}/32", f"{a6}/128"}
    for restarted in (False, True):
        if restarted:
            lab.stop(a)
            lab.runtime.start(a)
            assert _addresses(lab, a)[0] == wanted  # up again after the restart
        # The customer takes the interface down and flushes it; busybox ifup restores it from the file.
        code, out = lab.vsh(a, "ip addr flush dev venet0 scope global; ip link set venet0 down; "
                               "ifup -f venet0")
        assert code == 0, out
        found, out = _addresses(lab, a)
        assert found == wanted, out
        assert "default via 169.254.0.1 dev venet0" in out and "default via fe80::1 dev venet0" in out, out
        assert lab.ping(a, PEER_ADDR4, source=a4) and lab.ping(a, PEER_ADDR6, source=a6)


def _systemd_running(lab: Lab, ctid: int) -> str:
    """`systemctl is-system-running --wait` once systemd answers (before that: "offline" or no bus)."""
    state = ""
    for _ in range(600):  # a bound for a hung boot, not a timing assertion
        result = lab.runtime.exec(ctid, ["systemctl", "is-system-running", "--wait"], timeout=120)
        state = result.stdout.decode().strip()
        if state != "offline" and b"Failed to connect to bus" not in result.stderr:
            break
    return state


def _networkd_state(lab: Lab, ctid: int) -> list[str]:
    """networkd's state file of venet0 once it left "configuring" (networkctl needs D-Bus, which
    minbase lacks); the IPv6 link-local address takes its DAD second or two first."""
    out = ""
    for _ in range(300):  # a bound for a link that never gets configured, not a timing assertion
        code, out = lab.vsh(ctid, "cat /run/systemd/netif/links/$(cat /sys/class/net/venet0/ifindex)")
        if code == 0 and "ADMIN_STATE=configuring" not in out.split():
            break
        time.sleep(0.1)
    return out.split()


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_debian_vps_networkd_applies_its_file(lab: Lab) -> None:
    """debian-12 (networkd style): systemd-networkd inside manages venet0 from the node's file, and
    brings the addresses and routes back after the customer flushed them, before and after a restart."""
    debootstrap.ensure_debian(lab.runtime.templates)
    a4, a6 = vps_addrs(0)
    ctid = lab.counter()
    lab.made.append(ctid)
    lab.runtime.create(CreateSpec(ctid=ctid, template="debian-12", hostname="deb.example.com"))
    lab.network.configure(ctid, VpsNet(ips=(a4, a6)))
    lab.runtime.start(ctid)
    wanted = {f"{a4}/32", f"{a6}/128"}
    for restarted in (False, True):
        if restarted:
            lab.stop(ctid)
            lab.runtime.start(ctid)
        assert _systemd_running(lab, ctid) == "running"
        code, out = lab.vsh(ctid, f"cat {inside.NETWORKD_FILE}; systemctl is-active systemd-networkd")
        assert code == 0 and f"Address={a4}/32" in out and "active" in out.split(), out
        state = _networkd_state(lab, ctid)
        assert "ADMIN_STATE=configured" in state and f"NETWORK_FILE={inside.NETWORKD_FILE}" in state, state
        code, out = lab.vsh(ctid, "ip addr flush dev venet0 scope global; ip route flush dev venet0; "
                                  "ip -6 route flush dev venet0; systemctl restart systemd-networkd")
        assert code == 0, out
        found, out = set(), ""
        for _ in range(100):  # networkd applies it asynchronously: a bound, not a timing assertion
            found, out = _addresses(lab, ctid)
            if found == wanted and "tentative" not in out and "default via fe80::1" in out \
                    and "default via 169.254.0.1" in out:  # IPv6 usable once its DAD ended
                break
            time.sleep(0.1)
        assert found == wanted and "default via 169.254.0.1 dev venet0" in out and "default via fe80::1" in out, out
        for addr in (a4, a6):  # minbase has no ping: the test host pings, the VPS answers by its routes
            assert in_ns(lab.peer, "busybox", "ping", "-c", "1", "-W", "2", addr, check=False).returncode == 0, addr
