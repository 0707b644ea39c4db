"""The registry from driver name to driver class (Incus's `drivers` map)."""

from __future__ import annotations

from kernel.errors import InvalidArgument
from kernel.storage.base import Capabilities, Driver, PoolConfig
from kernel.storage.btrfs import BtrfsDriver
from kernel.storage.dir import DirDriver
from kernel.storage.image import ImageDriver

DRIVERS: dict[str, type[Driver]] = {cls.name: cls for cls in (DirDriver, BtrfsDriver, ImageDriver)}


def load(pool: PoolConfig) -> Driver:
    """The driver instance that manages `pool`."""
    try:
        return DRIVERS[pool.driver](pool)
    except KeyError:
        raise InvalidArgument(f"pool {pool.name}: unknown driver {pool.driver!r} ({', '.join(DRIVERS)})") from None


def capabilities() -> dict[str, Capabilities]:
    return {name: cls.capabilities for name, cls in DRIVERS.items()}
