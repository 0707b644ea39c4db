"""The usage sampler's quota refresh holds the VPS's lock for the writes only (logic, with fakes:
the real second-level quota runs in the vm tier, tests/vmhost/test_vps_quota.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from kernel.errors import Busy
from kernel.storage.volumes import QuotaFile
from worker import quotas

pytestmark = pytest.mark.unit

FILE = QuotaFile("/var/lib/ctpanel/quota/user.1000", "bytes=1\n", 0o400, 1000, 0)


class FakeStorage:
    def __init__(self, rt: FakeRuntime, *, quotaugidlimit: int = 4, mounted: bool = True) -> None:
        self.rt, self.quotaugidlimit, self.mounted = rt, quotaugidlimit, mounted
        self.events: list[str] = []

    def find(self, ctid: int) -> SimpleNamespace:
        return SimpleNamespace(limits=SimpleNamespace(quotaugidlimit=self.quotaugidlimit))

    def active(self, ctid: int) -> bool:
        return self.mounted

    def quota_files(self, ctid: int) -> list[QuotaFile]:
        self.events.append("read locked" if self.rt.locked else "read")
        return [FILE]

    def publish_quota(self, ctid: int, files: list[QuotaFile] | None = None) -> int:
        assert files == [FILE], "the files read before the lock are the ones written"
        self.events.append("write locked" if self.rt.locked else "write")
        return len(files)


class FakeRuntime:
    def __init__(self, **storage: object) -> None:
        self.locked = False
        self.held_elsewhere = False
        self.storage = FakeStorage(self, **storage)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def lock(self, ctid: int, *, now: bool = False) -> Iterator[None]:
        assert now, "the sampler never waits for an operation's lock"
        if self.held_elsewhere:
            raise Busy(f"CT {ctid} locked")
        self.locked = True
        try:
            yield
        finally:
            self.locked = False


def test_usage_is_read_before_the_lock_and_written_under_it() -> None:
    rt = FakeRuntime()
    assert quotas.refresh(rt, 101) == 1  # type: ignore[arg-type]
    assert rt.storage.events == ["read", "write locked"]


def test_a_locked_vps_is_skipped_and_nothing_is_written() -> None:
    rt = FakeRuntime()
    rt.held_elsewhere = True
    assert quotas.refresh(rt, 101) == 0  # type: ignore[arg-type]
    assert "write" not in " ".join(rt.storage.events)


@pytest.mark.parametrize("storage", [{"quotaugidlimit": 0}, {"mounted": False}])
def test_without_the_second_level_or_a_mounted_volume_nothing_is_read(storage: dict[str, object]) -> None:
    rt = FakeRuntime(**storage)
    assert quotas.refresh(rt, 101) == 0  # type: ignore[arg-type]
    assert rt.storage.events == []
