"""Build the guest's initramfs and the vm tier's busybox rootfs.

The initramfs holds Debian's static busybox, the stage-1 init
(`init.sh`) and only the modules needed to reach the real root: virtio,
9p (the host's root, read-only), virtio-blk + ext4 (the scratch disk) and
overlayfs (a writable view of the host's root). Every other module is
loaded later from the full module tree, which the guest sees through 9p.
The archive is written here (newc cpio, gzip), so no `cpio` binary is needed.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.vmhost.guestkernel import GuestKernel

HERE = Path(__file__).resolve().parent
INIT_SCRIPT = HERE / "init.sh"
BUSYBOX = Path("/bin/busybox")

# Loaded in this order by init.sh, each after its dependencies (modules.dep).
BOOT_MODULES = (
    "crc32c_generic",  # ext4 asks the crypto API for crc32c (a softdep modules.dep lacks)
    "virtio_pci",
    "virtio_blk",
    "9pnet_virtio",
    "9p",
    "ext4",
    "overlay",
)


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    for ext in (".ko", ".ko.xz", ".ko.zst", ".ko.gz"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return _norm(base)


def read_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """Parse modules.dep into {module name: (relative path, [dependency paths])}."""
    table = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        table[_module_name(path)] = (path.strip(), deps.split())
    return table


def module_closure(table: dict[str, tuple[str, list[str]]], wanted: list[str]) -> list[str]:
    """Relative paths of `wanted` and their dependencies, each after what it needs."""
    by_path = {p: n for n, (p, _) in table.items()}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        path, deps = table[name]
        for dep in deps:
            visit(by_path[dep])
        order.append(path)

    for name in wanted:
        if _norm(name) not in table:
            raise KeyError(f"module {name} is not in modules.dep (built in?)")
        visit(_norm(name))
    return order


class Cpio:
    """A minimal newc ("070701") cpio writer, enough for an initramfs."""

    def __init__(self) -> None:
        self._buf = io.BytesIO()
        self._ino = 1
        self._dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        nameb = name.encode() + b"\0"
        fields = [self._ino, mode, 0, 0, 2 if mode & 0o040000 else 1, 0, len(data),
                  0, 0, 0, 0, len(nameb), 0]
        self._ino += 1
        hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
        self._buf.write(hdr + nameb)
        self._pad()
        self._buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self._buf.write(b"\0" * (-self._buf.tell() % 4))

    def mkdir(self, name: str) -> None:
        parts = name.strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d not in self._dirs:
                self._dirs.add(d)
                self._entry(d, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if "/" in name:
            self.mkdir(name.rsplit("/", 1)[0])
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name.strip("/"), 0o120777, target.encode())

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self._buf.getvalue()


@dataclass(frozen=True)
class Initramfs:
    path: Path
    modules: tuple[str, ...]


def _sha(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


def ensure_initramfs(kernel: GuestKernel, cache: Path) -> Initramfs:
    """Build (or reuse) the initramfs for `kernel`; rebuilt when init.sh or busybox change."""
    dep = (kernel.modules_dir / "modules.dep").read_text()
    order = module_closure(read_modules_dep(dep), list(BOOT_MODULES))
    init = INIT_SCRIPT.read_bytes()
    busybox = BUSYBOX.read_bytes()
    key = _sha(kernel.release.encode(), init, busybox, "\n".join(order).encode())
    out_dir = cache / "initramfs"
    out = out_dir / f"{kernel.release}-{key}.cpio.gz"
    if out.exists():
        return Initramfs(out, tuple(order))
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "tmp", "lower", "scratch", "newroot"):
        cpio.mkdir(d)
    cpio.file("bin/busybox", busybox, 0o755)
    cpio.file("init", init, 0o755)
    mods = f"lib/modules/{kernel.release}"
    for rel in order:
        cpio.file(f"{mods}/{rel}", (kernel.modules_dir / rel).read_bytes())
    cpio.file("etc/boot-modules", "".join(f"/{mods}/{rel}\n" for rel in order).encode())
    data = gzip.compress(cpio.finish(), compresslevel=6, mtime=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.cpio.gz"):
        old.unlink()
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.rename(out)
    return Initramfs(out, tuple(order))


ROOTFS_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
    "etc/hostname": "ctpanel-vm-busybox\n",
    "etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
    "etc/os-release": 'ID=busybox\nNAME="ctpanel vm-tier busybox rootfs"\n',
    "etc/inittab": "::sysinit:/bin/mount -t proc proc /proc\n::respawn:-/bin/sh\n"
                   "::ctrlaltdel:/sbin/reboot\n::shutdown:/bin/umount -a -r\n",
}
ROOTFS_DIRS = ("bin", "sbin", "etc", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "root",
               "run", "var/log", "var/tmp", "home")


@dataclass(frozen=True)
class BusyboxRootfs:
    directory: Path
    tarball: Path


def ensure_busybox_rootfs(cache: Path) -> BusyboxRootfs:
    """The vm tier's minimal busybox rootfs (a directory and a .tar.gz of it).

    Only for tests inside the VM; the runtime's real template builder lives
    in kernel/. Rebuilt when Debian's busybox changes.
    """
    key = _sha(BUSYBOX.read_bytes())[:12]
    base = cache / "busybox-rootfs"
    final = base / key
    tarball = base / f"{key}.tar.gz"
    if final.is_dir() and tarball.exists():  # the tarball is renamed into place last
        return BusyboxRootfs(final, tarball)
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build.", dir=base))
    try:
        for d in ROOTFS_DIRS:
            (tmp / d).mkdir(parents=True, exist_ok=True)
        for sticky in ("tmp", "var/tmp"):
            os.chmod(tmp / sticky, 0o1777)  # noqa: S103 - a rootfs's /tmp is world-writable
        os.chmod(tmp / "root", 0o700)
        shutil.copy2(BUSYBOX, tmp / "bin/busybox")
        listing = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True,
                                 text=True, check=True).stdout.split()
        for applet in listing:
            link = tmp / applet
            if applet == "bin/busybox" or link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(tmp / "bin/busybox", link.parent))
        for name, text in ROOTFS_FILES.items():
            (tmp / name).write_text(text)
        os.chmod(tmp / "etc/shadow", 0o640)
        tar_tmp = base / f".{key}.tar.gz.tmp"
        with tarfile.open(tar_tmp, "w:gz") as tar:
            for entry in sorted(tmp.iterdir()):
                tar.add(entry, arcname=entry.name)
        for old in base.iterdir():
            if old.name not in (tmp.name, tar_tmp.name):
                if old.is_dir():
                    shutil.rmtree(old)
                else:
                    old.unlink()
        tmp.rename(final)
        tar_tmp.rename(tarball)
        return BusyboxRootfs(final, tarball)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
