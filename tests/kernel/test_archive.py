"""Template tarballs: hostile members are refused; the busybox template builds and unpacks."""

from __future__ import annotations

import io
import os
import tarfile

import pytest

from kernel import archive
from kernel.config import NodeConfig
from kernel.errors import InvalidArgument, NotFound
from kernel.templates import TemplateCache, TemplateMeta


def make_tar(path, members) -> str:
    """members: (name, type, extra) with extra = data bytes or link target."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = extra
                tar.addfile(info)
            elif kind == tarfile.REGTYPE:
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
            else:
                tar.addfile(info)
    return str(path)


REG, DIR, SYM, LNK = tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

HOSTILE = {
    "absolute": [("/etc/passwd", REG, b"x")],
    "dotdot": [("a/../../x", REG, b"x")],
    "symlink-escape": [("a", DIR, b""), ("a/up", SYM, "../../outside")],
    "device": [("dev/sda", tarfile.BLKTYPE, b"")],
    "char-device": [("dev/mem", tarfile.CHRTYPE, b"")],
    "fifo": [("fifo", tarfile.FIFOTYPE, b"")],
    "hardlink-out": [("x", LNK, "../etc/shadow")],
    "hardlink-abs": [("x", LNK, "/etc/shadow")],
}


@pytest.mark.unit
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_scan_refuses_hostile_members(tmp_path, case):
    with pytest.raises(InvalidArgument):
        archive.scan(make_tar(tmp_path / "t.tar.gz", HOSTILE[case]))


@pytest.mark.unit
def test_clean_names():
    assert archive.clean_name("./a//b/./c") == "a/b/c"
    assert archive.clean_name("./") == ""


@pytest.mark.kernel
def test_symlink_then_member_through_it_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    tar = make_tar(tmp_path / "t.tar.gz", [("d", SYM, str(outside)), ("d/owned", REG, b"x")])
    with pytest.raises(InvalidArgument):
        archive.unpack(tar, str(dest))
    assert os.listdir(outside) == []


@pytest.mark.kernel
def test_unpack_keeps_ids_modes_and_links(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    members = [
        ("./", DIR, b""),
        ("bin", DIR, b""),
        ("bin/tool", REG, b"#!/bin/sh\n"),
        ("bin/alias", SYM, "/bin/tool"),
        ("bin/hard", LNK, "bin/tool"),
        ("deep/er/file", REG, b"no parent entries"),
    ]
    path = tmp_path / "t.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            info.type, info.uid, info.gid = kind, 1000, 1001
            info.mode = 0o4755 if name == "bin/tool" else 0o755
            if kind in (SYM, LNK):
                info.linkname = extra
                tar.addfile(info)
            elif kind == REG:
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
            else:
                tar.addfile(info)
    result = archive.unpack(str(path), str(dest))
    assert (result.files, result.symlinks, result.hardlinks) == (2, 1, 1)
    st = os.stat(dest / "bin/tool")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_nlink) == (1000, 1001, 0o4755, 2)
    assert os.readlink(dest / "bin/alias") == "/bin/tool"
    assert os.lstat(dest / "bin/alias").st_uid == 1000
    assert (dest / "deep/er/file").read_bytes() == b"no parent entries"


@pytest.mark.kernel
def test_busybox_template_builds_verifies_and_unpacks(tmp_path):
    cache = TemplateCache(NodeConfig(state_root=str(tmp_path / "state")))
    template = cache.ensure_busybox()
    meta = template.meta
    assert (meta.name, meta.distro, meta.init, meta.halt_signal) == ("busybox", "busybox", "/sbin/init", "SIGUSR2")
    assert meta.checksum.startswith("sha256:") and meta.arch == os.uname().machine
    assert cache.ensure_busybox() == template  # cached: not rebuilt
    assert cache.verify("busybox") == template
    assert cache.names() == ["busybox"]
    dest = tmp_path / "root"
    dest.mkdir()
    cache.install("busybox", str(dest))
    assert os.readlink(dest / "sbin/init") == "/bin/busybox"
    assert (dest / "etc/inittab").read_text().startswith("# busybox init")
    assert os.stat(dest / "tmp").st_mode & 0o7777 == 0o1777
    with open(template.tarball, "r+b") as fh:
        fh.seek(100)
        fh.write(b"tampered")
    with pytest.raises(InvalidArgument):
        cache.verify("busybox")
    with pytest.raises(NotFound):
        cache.get("debian-12")
    with pytest.raises(InvalidArgument):
        cache.get("../x")


@pytest.mark.kernel
def test_import_refuses_hostile_tarball(tmp_path):
    cache = TemplateCache(NodeConfig(state_root=str(tmp_path / "state")))
    bad = make_tar(tmp_path / "bad.tar.gz", HOSTILE["device"])
    meta = TemplateMeta(name="bad", version="1", checksum="", distro="x", release="1", arch="x86_64")
    with pytest.raises(InvalidArgument):
        cache.add(bad, meta)
    assert cache.names() == []
