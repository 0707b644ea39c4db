"""Debian OS templates: Debian's debootstrap (minbase) plus systemd as init, cached as a tarball.

`ensure_debian(templates)` puts `debian-12` into a node's template cache. The
tarball and its metadata are built once per machine into a cache directory
(default `/var/cache/ctpanel/templates`), so another node, a re-run or a test
session imports it in seconds; a build older than `max_age` is made again
(security updates). debootstrap fetches from the Debian mirror apt already uses
(`/etc/apt/sources.list*`).

The tree is ours while it is built (nothing of a customer's is in it), so it is
adjusted in place: apt's sources, an empty machine-id (each VPS makes its own at
first boot), systemd-networkd enabled (the template's network-config style), a
generator that masks the console getty when /dev/console is not a terminal.
The tarball leaves out device nodes, sockets and the contents of /dev, /proc,
/sys, /run and apt's package lists and caches.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

from kernel import statefile
from kernel.errors import InvalidArgument, KernelError, NotFound
from kernel.run import run
from kernel.templates import Template, TemplateCache, TemplateMeta, sha256_file

CACHE_DIR = "/var/cache/ctpanel/templates"
SOURCES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
MAX_AGE = 30 * 86400.0
REVISION = "2"
#: Beside minbase: systemd as /sbin/init, and `ip` for the network's inside configuration.
INCLUDE = ("systemd-sysv", "iproute2")
#: Directories kept empty in the tarball (the runtime mounts /dev, /proc, /sys; /run is a tmpfs).
EMPTIED = ("dev", "proc", "sys", "run", "tmp")
#: Directories whose files are left out (apt's lists and caches: `apt update` fetches them again).
PRUNED = ("var/lib/apt/lists", "var/cache/apt")
NETWORKD_LINKS = {
    "etc/systemd/system/multi-user.target.wants/systemd-networkd.service":
        "/lib/systemd/system/systemd-networkd.service",
    "etc/systemd/system/sockets.target.wants/systemd-networkd.socket":
        "/lib/systemd/system/systemd-networkd.socket",
}

#: console-getty runs on /dev/console, which is /dev/null when nobody holds the VPS's console (a
#: start without the node supervisor): masked for that boot, so systemd reports "running".
CONSOLE_GENERATOR = "etc/systemd/system-generators/ctpanel-console"
_CONSOLE_GENERATOR = """#!/bin/sh
# ctpanel: /dev/console is /dev/null when no console holder (the node supervisor) started
# this VPS; a getty there can only fail, so it is masked for this boot.
test -t 0 </dev/console 2>/dev/null || ln -sf /dev/null "$2/console-getty.service"
"""


@dataclass(frozen=True)
class Release:
    name: str  # template name
    suite: str  # debootstrap's suite
    version: str


RELEASES = {"debian-12": Release("debian-12", "bookworm", "12")}


def apt_mirror(sources: tuple[str, ...] = SOURCES, suite: str = "bookworm") -> str:
    """The first `deb` URI apt uses for `suite` (one-line and deb822 files), else deb.debian.org."""
    files: list[str] = []
    for path in sources:
        if os.path.isdir(path):
            files += sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith((".list", ".sources")))
        elif os.path.isfile(path):
            files.append(path)
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        for uri in _list_uris(text, suite) if path.endswith(".list") else _deb822_uris(text, suite):
            if uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    return DEFAULT_MIRROR


def _list_uris(text: str, suite: str) -> Iterator[str]:
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
            yield words[1]


def _deb822_uris(text: str, suite: str) -> Iterator[str]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "#")):
                fields[key.strip().lower()] = value.strip()
        if "deb" in fields.get("types", "").split() and suite in fields.get("suites", "").split():
            yield from fields.get("uris", "").split()


def ensure_debian(
    templates: TemplateCache,
    name: str = "debian-12",
    *,
    cache_dir: str = CACHE_DIR,
    mirror: str | None = None,
    max_age: float = MAX_AGE,
) -> Template:
    """The `name` template in `templates`: imported from the machine's cache, built when missing or old."""
    release = RELEASES.get(name)
    if release is None:
        raise InvalidArgument(f"no Debian release is named {name!r} (known: {sorted(RELEASES)})")
    statefile.ensure_dir(cache_dir, 0o700)
    with statefile.flocked(os.path.join(cache_dir, f".{name}.lock")):
        cached = _cached(cache_dir, release, max_age)
        if cached is None:
            cached = _build(cache_dir, release, mirror or apt_mirror(suite=release.suite))
        with contextlib.suppress(NotFound):
            current = templates.get(name)
            if current.meta.checksum == cached.meta.checksum and os.path.exists(current.tarball):
                return current
        return templates.add(cached.tarball, cached.meta)


def _paths(cache_dir: str, release: Release) -> tuple[str, str]:
    return os.path.join(cache_dir, f"{release.name}.tar.gz"), os.path.join(cache_dir, f"{release.name}.json")


def _cached(cache_dir: str, release: Release, max_age: float) -> Template | None:
    tarball, meta_path = _paths(cache_dir, release)
    try:
        meta = TemplateMeta.from_json(statefile.read_json(meta_path))
    except NotFound:
        return None
    if not os.path.exists(tarball) or time.time() - os.stat(tarball).st_mtime > max_age:
        return None
    if not meta.source.endswith(f" rev{REVISION}") or sha256_file(tarball) != meta.checksum:
        return None
    return Template(meta, tarball)


def _build(cache_dir: str, release: Release, mirror: str) -> Template:
    tarball, meta_path = _paths(cache_dir, release)
    work = tempfile.mkdtemp(prefix=f".{release.name}.", dir=cache_dir)
    root = os.path.join(work, "root")
    try:
        run(["debootstrap", "--variant=minbase", f"--include={','.join(INCLUDE)}", release.suite, root, mirror],
            timeout=1800)
        _adjust(root, release, mirror)
        staging = os.path.join(work, "rootfs.tar.gz")
        _tar(root, staging)
        meta = TemplateMeta(
            name=release.name,
            version=f"{release.version}-{time.strftime('%Y%m%d', time.gmtime())}",
            checksum=sha256_file(staging),
            distro="debian",
            release=release.version,
            arch=os.uname().machine,
            init="/sbin/init",
            halt_signal="SIGRTMIN+4",  # systemd: poweroff.target
            reboot_signal="SIGINT",  # systemd: ctrl-alt-del.target (reboot)
            network_config="networkd",
            source=f"debootstrap --variant=minbase {release.suite} {mirror} rev{REVISION}",
        )
        os.rename(staging, tarball)
        statefile.write_json(meta_path, meta.to_json())
        return Template(meta, tarball)
    finally:
        _remove_tree(work)


def _adjust(root: str, release: Release, mirror: str) -> None:
    def write(rel: str, text: str, mode: int = 0o644) -> None:
        path = os.path.join(root, rel)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(path, mode)

    security = "http://deb.debian.org/debian-security"
    write("etc/apt/sources.list", f"deb {mirror} {release.suite} main\n"
          f"deb {mirror} {release.suite}-updates main\n"
          f"deb {security} {release.suite}-security main\n")
    write("etc/machine-id", "")
    write("etc/hostname", "localhost\n")
    write("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    os.makedirs(os.path.join(root, os.path.dirname(CONSOLE_GENERATOR)), exist_ok=True)
    write(CONSOLE_GENERATOR, _CONSOLE_GENERATOR, 0o755)
    for link, target in NETWORKD_LINKS.items():
        path = os.path.join(root, link)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.symlink(target, path)


def _tar(root: str, dest: str) -> None:
    emptied = tuple(f"./{d}/" for d in EMPTIED)
    pruned = tuple(f"./{d}/" for d in PRUNED)

    def keep(member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            return None
        if member.name.startswith(emptied) or (member.name.startswith(pruned) and not member.isdir()):
            return None
        member.uname = member.gname = ""
        return member

    with tarfile.open(dest, "w:gz", compresslevel=6) as tar:
        tar.add(root, arcname=".", filter=keep)


def _mounts_below(path: str) -> list[str]:
    prefix = os.path.realpath(path) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        points = [line.split()[4] for line in fh]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


def _remove_tree(path: str) -> None:
    """Remove a build directory; a failed debootstrap may have left /proc or /sys mounted in it."""
    for point in _mounts_below(path):
        with contextlib.suppress(KernelError):
            run(["umount", "--lazy", point])
    if _mounts_below(path):
        raise KernelError(f"{path}: mounts are left below it; not removing it")
    shutil.rmtree(path, ignore_errors=True)
