"""Pure logic of the storage interface: limits, pool config, the driver registry, NotSupported."""

from __future__ import annotations

import pytest

from kernel.config import NodeConfig
from kernel.errors import InvalidArgument, NotSupported
from kernel.storage import drivers
from kernel.storage.base import Driver, Limits, PoolConfig, no_quiesce
from kernel.storage.volumes import StorageConfig


def test_limits_validate_and_round_trip() -> None:
    limits = Limits(diskspace=(1 << 30, 2 << 30), diskinodes=(0, 100000), quotaugidlimit=50)
    assert limits.space == 2 << 30 and limits.inodes == 100000
    assert Limits.from_json(limits.to_json()) == limits
    assert Limits(diskspace=(5, 0)).space == 5  # only a soft value: it is the limit
    for bad in ({"diskspace": (2, 1)}, {"diskinodes": (-1, 0)}, {"quotaugidlimit": -1}):
        with pytest.raises(InvalidArgument):
            Limits(**bad)
    with pytest.raises(InvalidArgument):
        Limits.from_json({"diskspace": ["1", 2]})


def test_pool_config_and_registry() -> None:
    with pytest.raises(InvalidArgument):
        PoolConfig("Bad Name", "dir", "/x")
    with pytest.raises(InvalidArgument):
        PoolConfig("ok", "dir", "relative")
    with pytest.raises(InvalidArgument, match="unknown driver"):
        drivers.load(PoolConfig("p", "zfs", "/x"))
    assert set(drivers.DRIVERS) == {"dir", "btrfs", "image"}
    caps = drivers.capabilities()
    assert caps["btrfs"].instant_clone and not caps["btrfs"].diskinodes
    assert caps["image"].ugid_quota and caps["image"].own_df
    assert not caps["dir"].diskspace


def test_base_driver_raises_not_supported() -> None:
    driver = Driver(PoolConfig("p", "dir", "/x"))
    for call in (
        lambda: driver.create(100, None, Limits()),
        lambda: driver.snapshot_create(100, "s", no_quiesce),
        lambda: driver.set_ugid_quota(100, "user", 1000, (0, 1), (0, 0)),
        lambda: driver.set_limits(100, Limits(), Limits(diskspace=(0, 1))),
    ):
        with pytest.raises(NotSupported):
            call()
    driver.set_limits(100, Limits(), Limits())  # nothing to change: fine


def test_storage_config_default_and_file(tmp_path) -> None:
    node = NodeConfig(node="n1", state_root=str(tmp_path), idmap_registry=str(tmp_path / "ids.json"))
    default = StorageConfig.for_node(node)
    assert [(p.name, p.driver, p.path) for p in default.pools] == [("default", "dir", node.private_dir)]
    (tmp_path / "storage.json").write_text(
        '{"default": "img", "backup_dir": "/srv/b", "pools": ['
        '{"name": "img", "driver": "image", "path": "/vz/img", "options": {"default_size": "1"}}]}'
    )
    config = StorageConfig.for_node(node)
    assert config.default == "img" and config.backup_dir == "/srv/b"
    assert config.pools[0].options == {"default_size": "1"}
    with pytest.raises(InvalidArgument):
        StorageConfig(pools=config.pools, default="nope", backup_dir="/b")
