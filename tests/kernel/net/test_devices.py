"""Device grants (TUN, FUSE, an admin-chosen node) and NICs moved into a VPS, tested from inside."""

from __future__ import annotations

from dataclasses import replace

import pytest

from kernel.errors import InvalidArgument, PermissionDenied
from kernel.net.config import VpsNet
from kernel.net.devices import FEATURES, Grant
from kernel.net.ip import IP
from kernel.net.network import Network
from tests.kernel.net.conftest import Lab, vps_addrs

pytestmark = pytest.mark.kernel

TAP = "tunctl -t tap7 && ip link show tap7"


def _dev(lab: Lab, ctid: int) -> set[str]:
    _, out = lab.vsh(ctid, "cd /dev && find . ! -path './pts/*' ! -path './shm/*'")
    return set(out.split())


def test_tun_works_inside_after_the_grant_and_grants_nothing_else(lab: Lab) -> None:
    a = lab.vps(VpsNet(ips=(vps_addrs(0)[0],)))
    before = _dev(lab, a)
    assert lab.vsh(a, TAP)[0] != 0
    code, out = lab.vsh(a, "mkdir -p /dev/net && mknod /dev/net/tun c 10 200")
    assert code != 0, out  # no CAP_MKNOD over the host's devices in a user namespace
    lab.vsh(a, "rm -rf /dev/net")

    lab.network.grant_device(a, FEATURES["tun"])  # live
    code, out = lab.vsh(a, TAP)
    assert code == 0, out
    assert _dev(lab, a) - before == {"./net", "./net/tun"}
    _, mode = lab.vsh(a, "stat -c '%a %u %t:%T' /dev/net/tun; chmod 600 /dev/net/tun")
    assert mode.split()[:3] == ["666", "65534", "a:c8"]  # the owner is the node's root, unmapped here
    assert "Operation not permitted" in mode
    with IP(lab.host) as h:
        assert h.link("tap7") is None
    # Still only that: FUSE and a block device are not there, and cannot be made.
    assert lab.vsh(a, "test -e /dev/fuse")[0] != 0
    assert lab.vsh(a, "mknod /dev/sda b 8 0")[0] != 0

    lab.stop(a)
    lab.runtime.start(a)
    assert lab.vsh(a, TAP)[0] == 0  # granted again at start
    assert lab.network.revoke_device(a, "net/tun")  # live
    assert lab.vsh(a, "tunctl -t tap8")[0] != 0
    lab.stop(a)
    lab.runtime.start(a)
    assert lab.vsh(a, TAP)[0] != 0
    assert _dev(lab, a) == before


def test_fuse_grant_opens_and_mounts(lab: Lab) -> None:
    a = lab.vps(VpsNet())
    script = (
        "mkdir -p /mnt/f && test -c /dev/fuse && exec 3<>/dev/fuse && "
        "mount -t fuse -o fd=3,rootmode=40000,user_id=0,group_id=0 ctpfuse /mnt/f && "
        "grep ' /mnt/f fuse' /proc/mounts; umount -l /mnt/f"
    )
    assert lab.vsh(a, script)[0] != 0
    assert lab.vsh(a, "mknod /dev/fuse c 10 229")[0] != 0
    lab.network.grant_device(a, FEATURES["fuse"])
    code, out = lab.vsh(a, script)
    assert code == 0 and "ctpfuse /mnt/f fuse" in out, out


def test_admin_device_only_where_the_node_allows_it(lab: Lab) -> None:
    a = lab.vps(VpsNet())
    b = lab.vps(VpsNet())
    zero = Grant("ctp/zero", "c", 1, 5, "r")
    with pytest.raises(PermissionDenied):
        lab.network.grant_device(a, zero)
    node = Network(lab.network.node, replace(lab.network.net, device_allow=(f"{a}:c:1:5",)))
    node.grant_device(a, zero)
    with pytest.raises(PermissionDenied):
        node.grant_device(b, zero)
    with pytest.raises(PermissionDenied):
        node.grant_device(a, Grant("ctp/mem", "c", 1, 1, "r"))  # another device for the same VPS
    code, out = lab.vsh(a, "head -c 3 /dev/ctp/zero | od -An -tx1")
    assert code == 0 and out.split() == ["00", "00", "00"], out
    assert lab.vsh(a, "echo x > /dev/ctp/zero")[0] != 0  # granted read-only
    assert lab.vsh(b, "test -e /dev/ctp/zero")[0] != 0


def test_netdev_add_moves_a_nic_in_and_back(lab: Lab) -> None:
    a = lab.vps(VpsNet(ips=(vps_addrs(0)[0],)))
    with IP(lab.host) as h:
        h.veth_add("ctpnic0", "ctpnic0p")
    lab.network.netdev_add(a, "ctpnic0")
    assert lab.vsh(a, "ip link show ctpnic0")[0] == 0
    with IP(lab.host) as h:
        assert h.link("ctpnic0") is None and h.link("ctpnic0p") is not None
    lab.network.netdev_del(a, "ctpnic0")
    assert lab.vsh(a, "ip link show ctpnic0")[0] != 0
    with IP(lab.host) as h:
        assert h.link("ctpnic0") is not None
    for refused in ("up0", "lo", lab.network.registry.get(a).interfaces["venet0"]):
        with pytest.raises(InvalidArgument):
            lab.network.netdev_add(a, refused)
    # Given while stopped: moved in at start.
    lab.stop(a)
    lab.network.netdev_add(a, "ctpnic0")
    lab.runtime.start(a)
    assert lab.vsh(a, "ip link show ctpnic0")[0] == 0
