"""The Debian template builder's pure parts: which mirror apt uses, what the tarball leaves out."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from kernel import archive, debootstrap


def test_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    listd = tmp_path / "sources.list.d"
    listd.mkdir()
    (listd / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "# a comment\nTypes: deb deb-src\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n")
    assert debootstrap.apt_mirror((str(tmp_path / "missing.list"), str(listd))) == "http://mirror.example/debian"
    one = tmp_path / "sources.list"
    one.write_text("# deb http://old.example/debian bookworm main\n"
                   "deb [arch=amd64 signed-by=/k.gpg] https://one.example/debian bookworm main contrib\n")
    assert debootstrap.apt_mirror((str(one), str(listd))) == "https://one.example/debian"
    assert debootstrap.apt_mirror((str(one),), suite="trixie") == debootstrap.DEFAULT_MIRROR


def test_tarball_leaves_out_special_files_and_runtime_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for d in ("dev/pts", "proc/1", "run/lock", "etc", "var/lib/apt/lists/partial", "tmp"):
        (root / d).mkdir(parents=True)
    (root / "dev/null-copy").write_text("")
    (root / "proc/1/status").write_text("")
    (root / "var/lib/apt/lists/deb.debian.org_dists").write_text("x")
    (root / "etc/os-release").write_text("ID=debian\n")
    os.mkfifo(root / "etc/initctl")
    os.symlink("/lib/systemd/systemd", root / "init")
    dest = tmp_path / "rootfs.tar.gz"
    debootstrap._tar(str(root), str(dest))
    with tarfile.open(dest) as tar:
        names = set(tar.getnames())
    assert names == {".", "./dev", "./proc", "./run", "./etc", "./etc/os-release", "./var", "./var/lib",
                     "./var/lib/apt", "./var/lib/apt/lists", "./var/lib/apt/lists/partial", "./tmp", "./init"}
    assert archive.scan(str(dest)) == len(names)  # nothing the unpacker refuses
