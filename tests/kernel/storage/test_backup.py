"""Backups taken while a VPS writes, restores to a new CTID, retention, and hostile archives."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
import time

import pytest

from kernel.config import NodeConfig
from kernel.errors import InvalidArgument
from kernel.runtime import CreateSpec, Runtime
from kernel.storage.backup import TARBALL, Backups, freezer
from kernel.storage.base import Limits, PoolConfig, no_quiesce
from kernel.storage.volumes import Storage, StorageConfig
from tests.kernel.storage.conftest import next_ctid

pytestmark = pytest.mark.kernel

MiB = 1 << 20
FILES = 4
# Record i goes to file i % FILES: a dump that read the files at different moments
# would hold later records in later files and miss earlier ones in the first.
WRITER = (
    "mkdir -p /seq; i=0; while :; do echo $i >> /seq/f$((i % " + str(FILES) + ")); i=$((i+1)); done"
)


def records(root: str) -> list[int]:
    found = []
    for n in range(FILES):
        path = os.path.join(root, "seq", f"f{n}")
        if os.path.exists(path):
            with open(path) as fh:
                lines = fh.read().split("\n")
            assert lines[-1] == "", f"f{n} ends inside a record"
            found += [int(x) for x in lines[:-1]]
    return sorted(found)


def manifest(root: str) -> dict[str, tuple]:
    """Everything `ls -lnR` and a checksum would tell about the tree."""
    out = {}
    for top, dirs, files in os.walk(root):
        for name in [".", *dirs, *files] if top == root else [*dirs, *files]:
            path = os.path.normpath(os.path.join(top, name))
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            entry: tuple = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as fh:
                    entry += (hashlib.sha256(fh.read()).hexdigest(), int(st.st_mtime))
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            out[rel] = entry
    return out


@pytest.fixture
def backups(storage: Storage, tmp_path) -> Backups:
    return Backups(storage, str(tmp_path / "backup"))


@pytest.mark.parametrize("pool", ["fast", "img", "dev"])
def test_backup_while_writing_restores_a_gap_free_prefix(
    pool: str, make_vps, pool_runtime: Runtime, storage: Storage, backups: Backups, make_volume
) -> None:
    ctid = make_vps(pool, Limits(diskspace=(0, 96 * MiB)) if pool != "dev" else Limits())
    pool_runtime.exec(ctid, ["sh", "-c", f"({WRITER}) >/dev/null 2>&1 &"], timeout=30)
    root = storage.get(ctid).root
    deadline = time.monotonic() + 30  # a bound for a slow machine, not a timing assertion
    while len(records(root)) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    quiesce = freezer(lambda: pool_runtime.freeze(ctid), lambda: pool_runtime.thaw(ctid))
    info = backups.backup(ctid, quiesce=quiesce, config={"hostname": "seq.example.com"})
    after = len(records(root))
    assert not pool_runtime.status(ctid).frozen
    target = next_ctid()
    try:
        backups.restore(info.path, target)
        restored = records(storage.get(target).root)
        assert restored == list(range(len(restored)))  # no gap, no duplicate
        assert 2000 <= len(restored) < after  # taken while the writer ran
        assert storage.get(target).pool == pool
    finally:
        storage.destroy(target)
    assert storage.leftovers(target) == []


@pytest.mark.parametrize("pool", ["img", "fast"])
def test_backup_destroy_restore_to_new_ctid_is_identical(
    pool: str, make_vps, pool_runtime: Runtime, storage: Storage, backups: Backups
) -> None:
    limits = Limits(diskspace=(80 * MiB, 96 * MiB))
    ctid = make_vps(pool, limits)
    code = pool_runtime.exec(ctid, ["sh", "-c", (
        "adduser -D -u 1000 alice 2>/dev/null || echo 'alice:x:1000:1000::/home/alice:/bin/sh' >> /etc/passwd; "
        "mkdir -p /home/alice /srv/www && chown 1000:1000 /home/alice && "
        "echo secret > /home/alice/notes && chown 1000:1000 /home/alice/notes && chmod 600 /home/alice/notes && "
        "echo page > /srv/www/index.html && chown 65534:65533 /srv/www/index.html && "
        "ln /srv/www/index.html /srv/www/hard && ln -s ../www/index.html /srv/www/soft && "
        "chmod 4755 /bin/busybox && mkdir -m 1777 /srv/drop && mkfifo /srv/fifo"
    )], timeout=30).returncode
    assert code == 0
    pool_runtime.stop(ctid)  # deactivates the volume: activate it again to read the tree
    root = storage.activate(ctid)
    before = manifest(root)
    before.pop("srv/fifo")
    assert before["home/alice/notes"][2:4] == (1000, 1000)
    info = backups.backup(ctid, quiesce=no_quiesce, config={"hostname": "copy.example.com"})
    assert info.skipped == ("srv/fifo",)
    pool_runtime.destroy(ctid)
    storage.destroy(ctid)
    assert storage.find(ctid) is None

    target = next_ctid()
    try:
        restored = backups.restore(info.path, target)
        assert restored.config == {"hostname": "copy.example.com"}
        assert storage.get(target).limits == limits
        new_root = storage.get(target).root
        after = manifest(new_root)
        if pool == "img":
            assert after.pop(".")[1:4] == before.pop(".")[1:4]  # mkfs made the root; ids and mode restored
        assert after == before
        if pool == "fast":
            assert storage.usage(target).bytes_limit == 96 * MiB
        pool_runtime.create(CreateSpec(ctid=target, template="busybox", adopt=True))
        pool_runtime.start(target)
        result = pool_runtime.exec(target, ["sh", "-c", "ls -ln /home/alice/notes; cat /home/alice/notes"])
        assert b" 1000 " in result.stdout and b"secret" in result.stdout, result
    finally:
        pool_runtime.stop(target, fast=True)
        pool_runtime.destroy(target)
        storage.destroy(target)
    assert storage.leftovers(target) == []


def test_retention_keeps_the_newest(make_volume, storage: Storage, backups: Backups) -> None:
    ctid = make_volume("fast", Limits(diskspace=(0, 64 * MiB)))
    made = [backups.backup(ctid, quiesce=no_quiesce).id for _ in range(3)]
    assert [b.id for b in backups.list(ctid)] == sorted(made)
    last = backups.backup(ctid, quiesce=no_quiesce, keep=2)
    assert [b.id for b in backups.list(ctid)] == [sorted(made)[-1], last.id]
    assert storage.snapshot_list(ctid) == []  # the temporary snapshots are gone


def test_tampered_tarball_is_refused(make_volume, storage: Storage, backups: Backups) -> None:
    ctid = make_volume("img")
    info = backups.backup(ctid, quiesce=no_quiesce)
    with open(os.path.join(info.path, TARBALL), "ab") as fh:
        fh.write(b"\0")
    target = next_ctid()
    with pytest.raises(InvalidArgument, match="checksum"):
        backups.restore(info.path, target)
    assert storage.find(target) is None


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


HOSTILE = {
    "absolute": [("etc", tarfile.DIRTYPE), ("{outside}/pwned", tarfile.REGTYPE)],
    "dotdot": [("etc", tarfile.DIRTYPE), ("etc/../../../../../../{outside}/pwned", tarfile.REGTYPE)],
    "symlink_then_file": [("escape", tarfile.SYMTYPE, "{outside}"), ("escape/pwned", tarfile.REGTYPE)],
    "relative_symlink_then_file": [("up", tarfile.SYMTYPE, "../../../../../../../.."),
                                   ("up{outside}/pwned", tarfile.REGTYPE)],
    "device_node": [("etc", tarfile.DIRTYPE), ("dev-null", tarfile.CHRTYPE)],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_without_writing_outside(
    case: str, make_volume, storage: Storage, backups: Backups, tmp_path
) -> None:
    ctid = make_volume("dev")
    info = backups.backup(ctid, quiesce=no_quiesce)
    outside = tmp_path / "outside"
    outside.mkdir()
    tarball = os.path.join(info.path, TARBALL)
    with tarfile.open(tarball, "w:gz") as tar:
        tar.addfile(*_member(".", tarfile.DIRTYPE))
        for name, kind, *link in HOSTILE[case]:
            tar.addfile(*_member(name.format(outside=outside), kind,
                                 link=link[0].format(outside=outside) if link else ""))  # fmt: skip
    meta_path = os.path.join(info.path, "backup.json")
    with open(meta_path) as fh:
        meta = json.load(fh)
    with open(tarball, "rb") as fh:
        meta["sha256"] = hashlib.sha256(fh.read()).hexdigest()
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)
    target = next_ctid()
    with pytest.raises(InvalidArgument):
        backups.restore(info.path, target)
    assert list(outside.iterdir()) == []
    assert storage.find(target) is None
    assert storage.leftovers(target) == []


def test_backup_of_unknown_format_is_refused(tmp_path, backups: Backups) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "backup.json").write_text(json.dumps({"format": "other", "version": 1}))
    with pytest.raises(InvalidArgument, match="not a ctpanel backup"):
        backups.restore(str(bad), next_ctid())
    shutil.rmtree(bad)


def without_dir_links(tree: dict[str, tuple]) -> dict[str, tuple]:
    """A directory's link count is the filesystem's (btrfs: 1, ext4: 2 + subdirectories)."""
    return {rel: entry[:4] + entry[5:] if stat.S_ISDIR(entry[0]) else entry for rel, entry in tree.items()}


def test_another_node_restores_from_the_shared_backup_pool(
    make_volume, storage: Storage, backups: Backups, tmp_path
) -> None:
    """Node B (its own state root and pools) reads node A's backup from the pool both mount and
    restores it under the same CTID: B's pool (A's `fast` is not there, so B's default), A's limits,
    identical files; A's volume of that CTID is untouched."""
    limits = Limits(diskspace=(0, 96 * MiB))
    ctid = make_volume("fast", limits)
    root = storage.get(ctid).root
    os.makedirs(os.path.join(root, "home/alice"))
    with open(os.path.join(root, "home/alice/notes"), "w") as fh:
        fh.write("moved with the VPS\n")
    os.chown(os.path.join(root, "home/alice/notes"), 1000, 1000)
    os.symlink("alice/notes", os.path.join(root, "home/link"))
    before = manifest(root)
    info = backups.backup(ctid, quiesce=no_quiesce, config={"hostname": "moved.example.com"})

    node_b = NodeConfig(node="other-node", state_root=str(tmp_path / "b-state"),
                        idmap_registry=str(tmp_path / "b-ids.json"))
    store_b = Storage(node_b, StorageConfig((PoolConfig("local", "image", str(tmp_path / "b-img"),
                                                        {"default_size": str(64 * MiB)}),), "local", backups.dir))
    store_b.setup()
    [seen] = Backups(store_b).list(ctid)  # B's configured backup pool is the shared one
    assert (seen.id, seen.sha256) == (info.id, info.sha256)
    try:
        restored = Backups(store_b).restore(seen.path, ctid)
        assert restored.config == {"hostname": "moved.example.com"}
        volume = store_b.get(ctid)
        assert (volume.pool, volume.driver, volume.limits) == ("local", "image", limits)
        assert volume.root.startswith(str(tmp_path / "b-img"))
        after = manifest(volume.root)
        assert after.pop(".")[1:4] == before.pop(".")[1:4]  # mkfs made the root; its ids and mode restored
        after.pop("lost+found", None)  # ext4's own, not the VPS's
        assert without_dir_links(after) == without_dir_links(before)
        assert os.path.getsize(store_b.pool("local").image(ctid)) == 96 * MiB  # the diskspace applied
        assert ctid in store_b.volumes()
        assert storage.get(ctid).root == root and manifest(root) == {**before, ".": manifest(root)["."]}
    finally:
        store_b.destroy(ctid)
    assert store_b.leftovers(ctid) == []
