"""The machine-wide id-range allocator and the node-local registry."""

from __future__ import annotations

import itertools
import os

import pytest

from kernel.config import NodeConfig
from kernel.errors import AlreadyExists, InvalidArgument, NoSpace, NotFound
from kernel.idrange import RANGE_SIZE, IdAllocator, IdRange
from kernel.registry import Record, Registry

pytestmark = pytest.mark.unit


def config(tmp_path, node="n1", **kw) -> NodeConfig:
    return NodeConfig(
        node=node,
        state_root=str(tmp_path / node),
        idmap_registry=str(tmp_path / "idmap" / "ranges.json"),
        **kw,
    )


def test_ranges_are_high_disjoint_and_idempotent(tmp_path):
    ids = IdAllocator(config(tmp_path))
    a, b = ids.allocate(101), ids.allocate(102)
    assert a.start >= 100000 and b.start >= 100000
    assert a.size == b.size == RANGE_SIZE
    assert not a.overlaps(b)
    assert ids.allocate(101) == a
    assert ids.lookup(102) == b
    assert a.map_line() == f"0 {a.start} 65536\n"


def test_two_nodes_on_one_machine_share_the_registry(tmp_path):
    one, two = IdAllocator(config(tmp_path, "n1")), IdAllocator(config(tmp_path, "n2"))
    a, b = one.allocate(101), two.allocate(101)
    assert not a.overlaps(b)
    assert one.owned() == {101: a} and two.owned() == {101: b}


def test_release_frees_the_slot_for_reuse(tmp_path):
    ids = IdAllocator(config(tmp_path))
    a = ids.allocate(101)
    ids.allocate(102)
    ids.release(101)
    ids.release(101)
    assert ids.lookup(101) is None
    assert ids.allocate(103) == a


def test_concurrent_allocations_never_overlap(tmp_path):
    cfg = config(tmp_path)
    IdAllocator(cfg)
    children = []
    for worker in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 0
            try:
                ids = IdAllocator(NodeConfig(**{**cfg.__dict__, "node": f"w{worker}"}))
                for ctid in range(101, 111):
                    ids.allocate(ctid)
            except BaseException:
                code = 1
            os._exit(code)
        children.append(pid)
    assert all(os.waitpid(pid, 0)[1] == 0 for pid in children)
    ranges = []
    for worker in range(4):
        ranges += IdAllocator(NodeConfig(**{**cfg.__dict__, "node": f"w{worker}"})).owned().values()
    assert len(ranges) == 40
    starts = sorted(r.start for r in ranges)
    assert all(b - a >= RANGE_SIZE for a, b in itertools.pairwise(starts))


def test_exhaustion_is_reported(tmp_path):
    ids = IdAllocator(config(tmp_path, id_base=2**32 - 2 * RANGE_SIZE))
    ids.allocate(101)
    with pytest.raises(NoSpace):
        ids.allocate(102)


def test_overlap_logic():
    assert IdRange(100000).overlaps(IdRange(100000 + RANGE_SIZE - 1))
    assert not IdRange(100000).overlaps(IdRange(100000 + RANGE_SIZE))


@pytest.mark.parametrize("ctid", [0, 1, 99, -5, 2**31, "101", True])
def test_bad_ctids_are_refused(tmp_path, ctid):
    with pytest.raises(InvalidArgument):
        IdAllocator(config(tmp_path)).allocate(ctid)


def record(ctid=101, node="n1", **kw) -> Record:
    return Record(ctid=ctid, node=node, id_start=1 << 30, id_size=RANGE_SIZE, volume="/v",
                  template="busybox", **kw)


def test_registry_round_trip(tmp_path):
    reg = Registry(config(tmp_path))
    reg.add(record(cgroups={"memory": "/sys/fs/cgroup/memory/ctpanel/101"}, interfaces={"veth": "ve101"}))
    with pytest.raises(AlreadyExists):
        reg.add(record())
    got = reg.get(101)
    assert got == record(cgroups={"memory": "/sys/fs/cgroup/memory/ctpanel/101"}, interfaces={"veth": "ve101"})
    reg.put(record(hostname="a.example.com"))
    assert reg.get(101).hostname == "a.example.com"
    assert reg.ctids() == [101]
    assert not [n for n in os.listdir(tmp_path / "n1" / "ct") if n.endswith(".tmp")]
    reg.remove(101)
    reg.remove(101)
    with pytest.raises(NotFound):
        reg.get(101)


def test_registry_ignores_unknown_fields_and_foreign_nodes(tmp_path):
    cfg = config(tmp_path)
    reg = Registry(cfg)
    reg.put(record(node="other"))
    assert reg.find(101) is None
    with pytest.raises(NotFound):
        reg.get(101)
    data = record().to_json() | {"future_field": 1}
    assert Record.from_json(data) == record()


@pytest.mark.parametrize("kw", [{"node": "a/b"}, {"cgroup_prefix": ".."}, {"state_root": "rel"}])
def test_bad_node_config(kw):
    with pytest.raises(InvalidArgument):
        NodeConfig(**kw)
