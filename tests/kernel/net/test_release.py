"""A VPS's nft objects go in one batch, whatever is there; netlink sockets are made in the namespace asked for."""

from __future__ import annotations

import os
import subprocess

import pytest

from kernel.config import NodeConfig
from kernel.errors import NotFound
from kernel.net import rules
from kernel.net.config import NetConfig
from kernel.net.ip import IP
from kernel.net.network import Network
from kernel.net.nft import Nft

pytestmark = pytest.mark.kernel

TABLE = "ctpt_rel"


def objects(nft: Nft) -> set[str]:
    """Tables, chains, counters and set/map keys of the namespace's ruleset, as words."""
    found = set()
    for item in nft.list("ruleset"):
        if "table" in item:
            found.add(f"table:{item['table']['name']}")
        elif "chain" in item:
            found.add(f"chain:{item['chain']['name']}")
        elif "counter" in item:
            found.add(f"counter:{item['counter']['name']}")
        for kind in ("set", "map"):
            for element in item.get(kind, {}).get("elem", ()):
                key = element[0] if isinstance(element, list) else element
                found.add(f"{item[kind]['name']}:{key}")
    return found


def test_release_removes_one_vps_whatever_is_there(netns):
    nft = Nft(netns)
    nft.batch(rules.node_table(TABLE, open_tcp=[], open_udp=[]))
    nft.batch(rules.release_vps(TABLE, f"{TABLE}_101", 101, ["vea"]))  # nothing of it there yet
    base = objects(nft)
    for ctid, host in ((101, "vea"), (102, "veb")):
        nft.batch(rules.vps_chains(TABLE, ctid, [host], uplink=None, conntrack_max=10, smtp_block=True, bridged=True))
        nft.batch(f"table netdev {TABLE}_{ctid} {{\n  counter venet0_in {{}}\n}}\n")
    other = objects(nft) - base
    assert {"chain:v101_pre", "counter:v101_ct", "vps_pre:vea", "vps_mark_in:101", f"table:{TABLE}_101"} <= other
    nft.batch(rules.release_vps(TABLE, f"{TABLE}_101", 101, ["vea"]))
    assert objects(nft) == base | {o for o in other if "101" not in o and "vea" not in o}
    assert {"chain:v102_fwd", "vps_ifaces:veb", "vps_mark_pre:102", f"table:{TABLE}_102"} <= objects(nft)
    nft.batch(rules.release_vps(TABLE, f"{TABLE}_101", 101, ["vea"]))  # again: nothing left to remove


def test_release_finds_a_map_entry_no_record_names(netns, tmp_path):
    """Reconcile's case: a veth name no record keeps still jumps to the VPS's chains (the one batch fails)."""
    config = NodeConfig(node="rel", state_root=str(tmp_path / "rel"), idmap_registry=str(tmp_path / "ids.json"))
    network = Network(config, NetConfig(host_netns=netns))
    network.nft.batch(rules.node_table(network.prefix, open_tcp=[], open_udp=[]))
    base = objects(network.nft)
    network.nft.batch(rules.vps_chains(network.prefix, 101, ["vestray"], uplink=None, conntrack_max=10,
                                       smtp_block=False))
    assert "vps_fwd:vestray" in objects(network.nft)
    network.release(101)
    assert objects(network.nft) == base


def test_a_netlink_socket_is_made_in_the_namespace_and_the_caller_stays_home(netns):
    own = os.stat("/proc/thread-self/ns/net").st_ino
    subprocess.run(["ip", "-n", netns, "link", "add", "ctprel0", "type", "veth", "peer", "name", "ctprel1"], check=True)
    with IP(netns) as ip:
        assert {link.name for link in ip.links()} == {"lo", "ctprel0", "ctprel1"}
    with IP() as ip:
        assert "ctprel0" not in {link.name for link in ip.links()}
    assert os.stat("/proc/thread-self/ns/net").st_ino == own
    with pytest.raises(NotFound):
        IP("ctprel-no-such-namespace")


def test_nodes_sharing_a_host_namespace_share_its_nft_lock(tmp_path):
    def network(node: str, netns: str | None) -> Network:
        config = NodeConfig(node=node, state_root=str(tmp_path / node), idmap_registry=str(tmp_path / "ids.json"))
        return Network(config, NetConfig(host_netns=netns))

    assert network("a", "hostns").nft.lock == network("b", "hostns").nft.lock
    assert network("a", "hostns").nft.lock != network("a", None).nft.lock
