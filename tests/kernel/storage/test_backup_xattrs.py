"""Backups keep extended attributes: user.*, file capabilities and POSIX ACLs (access and default).

The ACL test is end to end: after backup → destroy → restore to a new CTID,
user 1000 inside the restored VPS reads a root-only file through its ACL
(and cannot read its twin without one). Restores refuse other names.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import tarfile

import pytest

from kernel.errors import InvalidArgument
from kernel.runtime import CreateSpec, Runtime
from kernel.storage.backup import TARBALL, Backups
from kernel.storage.base import no_quiesce
from kernel.storage.volumes import Storage
from tests.kernel.storage.conftest import next_ctid

pytestmark = pytest.mark.kernel

ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
UNDEFINED = 0xFFFFFFFF


def acl(user: int, perm: int) -> bytes:
    """A POSIX ACL xattr (linux/posix_acl_xattr.h): owner rw, `user` with `perm`, nobody else."""
    entries = [(ACL_USER_OBJ, 6, UNDEFINED), (ACL_USER, perm, user), (ACL_GROUP_OBJ, 0, UNDEFINED),
               (ACL_MASK, perm, UNDEFINED), (ACL_OTHER, 0, UNDEFINED)]
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


CAP_NET_RAW_V2 = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)  # vfs_cap_data v2, effective
ATTRS = {
    "secret": {"system.posix_acl_access": acl(1000, 4)},
    "shared": {"system.posix_acl_default": acl(1000, 7), "user.purpose": b"drop box"},
    "tool": {"security.capability": CAP_NET_RAW_V2, "user.blob": b"\xff\x00\xfe binary"},
}


@pytest.fixture
def backups(storage: Storage, tmp_path) -> Backups:
    return Backups(storage, str(tmp_path / "backups"))


def xattrs(path: str) -> dict[str, bytes]:
    return {k: os.getxattr(path, k, follow_symlinks=False) for k in sorted(os.listxattr(path, follow_symlinks=False))}


@pytest.mark.parametrize("pool", ["img", "fast"])
def test_xattrs_and_acls_survive_backup_and_restore(
    pool: str, make_vps, pool_runtime: Runtime, storage: Storage, backups: Backups
) -> None:
    ctid = make_vps(pool, start=False)
    root = storage.activate(ctid)
    with open(os.path.join(root, "etc/passwd"), "a") as fh:
        fh.write("alice:x:1000:1000::/:/bin/sh\n")
    for name, content in (("secret", "acl-ok\n"), ("twin", "no-acl\n"), ("tool", "#!/bin/sh\n")):
        with open(os.path.join(root, name), "w") as fh:
            fh.write(content)
        os.chmod(os.path.join(root, name), 0o600)
    os.mkdir(os.path.join(root, "shared"), 0o700)
    for name, attrs in ATTRS.items():
        for key, value in attrs.items():
            os.setxattr(os.path.join(root, name), key, value)
    before = {name: xattrs(os.path.join(root, name)) for name in ATTRS}
    assert all(set(ATTRS[n]) <= set(before[n]) for n in ATTRS)

    info = backups.backup(ctid, quiesce=no_quiesce)
    pool_runtime.destroy(ctid)
    storage.destroy(ctid)
    target = next_ctid()
    try:
        backups.restore(info.path, target)
        new_root = storage.get(target).root
        assert {name: xattrs(os.path.join(new_root, name)) for name in ATTRS} == before
        pool_runtime.create(CreateSpec(ctid=target, template="busybox", adopt=True))
        pool_runtime.start(target)
        for name, expected in (("secret", 0), ("twin", 1)):
            result = pool_runtime.exec(target, ["su", "-s", "/bin/sh", "alice", "-c", f"cat /{name}"], timeout=30)
            assert (result.returncode != 0) == bool(expected), result
        assert b"acl-ok" in pool_runtime.exec(target, ["su", "-s", "/bin/sh", "alice", "-c", "cat /secret"]).stdout
    finally:
        pool_runtime.stop(target, fast=True)
        pool_runtime.destroy(target)
        storage.destroy(target)
    assert storage.leftovers(target) == []


@pytest.mark.parametrize("name", ["trusted.overlay.opaque", "security.selinux", "user."])
def test_restore_refuses_other_extended_attributes(name: str, make_volume, storage: Storage, backups: Backups) -> None:
    ctid = make_volume("dev")
    info = backups.backup(ctid, quiesce=no_quiesce)
    tarball = os.path.join(info.path, TARBALL)
    with tarfile.open(tarball, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        top = tarfile.TarInfo(".")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        member = tarfile.TarInfo("file")
        member.size, member.mode = 1, 0o644
        member.pax_headers = {f"SCHILY.xattr.{name}": "y"}
        tar.addfile(member, io.BytesIO(b"x"))
    meta_path = os.path.join(info.path, "backup.json")
    with open(meta_path) as fh:
        meta = json.load(fh)
    with open(tarball, "rb") as fh:
        meta["sha256"] = hashlib.sha256(fh.read()).hexdigest()
    with open(meta_path, "w") as fh:
        json.dump(meta, fh)
    target = next_ctid()
    with pytest.raises(InvalidArgument, match="extended attribute"):
        backups.restore(info.path, target)
    assert storage.find(target) is None and storage.leftovers(target) == []
