"""Fetch and cache Debian's stock kernel for the vm tier.

The kernel comes from Debian's own archive through apt (`apt-get download`
of the package that `linux-image-amd64` depends on, unpacked with
`dpkg -x`; no bootloader, nothing installed on the host). An unpacked
kernel is kept under the cache directory and reused while apt offers no
newer one, so the tier also runs when the archive cannot be reached.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

META_PACKAGE = "linux-image-amd64"
COMPLETE = ".complete"


class KernelFetchError(RuntimeError):
    """The guest kernel could not be fetched and none is cached."""


@dataclass(frozen=True)
class GuestKernel:
    release: str  # e.g. 6.1.0-56-amd64, the name of its lib/modules directory
    root: Path  # the unpacked package

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def modules_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.release


def _log(msg: str) -> None:
    print(f"vmhost: {msg}", flush=True)


def _apt(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)


def _candidate_package() -> str | None:
    """The versioned image package the meta package points at, from local apt lists."""
    res = _apt(["apt-cache", "show", "--no-all-versions", META_PACKAGE])
    if res.returncode != 0:
        return None
    m = re.search(r"^Depends:\s*(linux-image-[^\s,(]+)", res.stdout, re.MULTILINE)
    return m.group(1) if m else None


def _release_of(package: str) -> str:
    return package.removeprefix("linux-image-")


def _cached(cache: Path) -> list[GuestKernel]:
    found = []
    for d in sorted((cache / "kernel").glob("*")):
        if not d.name.startswith(".") and (d / COMPLETE).exists():  # .name: being built
            found.append(GuestKernel(d.name, d))
    return found


def _download(package: str, debs: Path) -> Path:
    debs.mkdir(parents=True, exist_ok=True)
    for old in debs.glob("*.deb"):
        old.unlink()
    cmd = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", package]
    res = _apt(cmd, cwd=debs)
    if res.returncode != 0:
        raise KernelFetchError(f"`{' '.join(cmd)}` failed:\n{res.stderr.strip()}")
    found = list(debs.glob(f"{package}_*.deb"))
    if len(found) != 1:
        raise KernelFetchError(f"apt-get download left {found!r} in {debs}")
    return found[0]


def _unpack(deb: Path, release: str, cache: Path) -> GuestKernel:
    """dpkg -x into a temporary directory, index the modules, then rename into place."""
    kdir = cache / "kernel"
    kdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{release}.", dir=kdir))
    try:
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True)
        # Debian builds modules.dep in the package's postinst; there is no kmod
        # on every host, so busybox's depmod writes modules.dep and
        # modules.alias (read by busybox's modprobe in the initramfs and guest).
        subprocess.run(["busybox", "depmod", "-b", str(tmp), release], check=True)
        kernel = GuestKernel(release, tmp)
        if not kernel.vmlinuz.exists() or not (kernel.modules_dir / "modules.dep").exists():
            raise KernelFetchError(f"{deb} has no {kernel.vmlinuz.name} or modules")
        (tmp / COMPLETE).write_text(deb.name + "\n")
        final = kdir / release
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        return GuestKernel(release, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def ensure_kernel(cache: Path) -> GuestKernel:
    """Return the newest kernel apt offers, fetching it when it is not cached.

    `apt-get update` runs only when the local lists know no kernel package
    (fresh machine) or the download fails for want of current lists.
    """
    cache.mkdir(parents=True, exist_ok=True)
    cached = {k.release: k for k in _cached(cache)}
    package = _candidate_package()
    if package and _release_of(package) in cached:
        return cached[_release_of(package)]
    updated = False
    if package is None:
        _log("apt lists know no kernel package: apt-get update")
        _apt(["apt-get", "-q", "update"])
        updated = True
        package = _candidate_package()
        if package is None:
            if cached:
                return _newest(cached)
            raise KernelFetchError(f"apt knows no {META_PACKAGE} even after apt-get update")
        if _release_of(package) in cached:
            return cached[_release_of(package)]
    _log(f"fetching {package} with apt-get download")
    try:
        deb = _download(package, cache / "debs")
    except KernelFetchError as err:
        if updated:
            if cached:
                _log(f"{err}\nusing the cached kernel")
                return _newest(cached)
            raise
        _log("download failed; lists may be stale: apt-get update and retry")
        _apt(["apt-get", "-q", "update"])
        package = _candidate_package() or package
        if _release_of(package) in cached:
            return cached[_release_of(package)]
        try:
            deb = _download(package, cache / "debs")
        except KernelFetchError as err2:
            if cached:
                _log(f"{err2}\nusing the cached kernel")
                return _newest(cached)
            raise
    kernel = _unpack(deb, _release_of(package), cache)
    deb.unlink()
    for release, old in cached.items():
        if release != kernel.release:
            shutil.rmtree(old.root, ignore_errors=True)
    return kernel


def _newest(cached: dict[str, GuestKernel]) -> GuestKernel:
    def key(release: str) -> list[int]:
        return [int(x) for x in re.findall(r"\d+", release)]

    return cached[max(cached, key=key)]


def cache_dir() -> Path:
    return Path(os.environ.get("CTPANEL_VM_CACHE", "/var/cache/ctpanel/vm"))
