"""The node's OS template cache: rootfs tarballs with metadata.

Layout: `<state_root>/templates/<name>/rootfs.tar.gz` and `meta.json`. The
`busybox` template is built here from Debian's busybox-static in about a
second; other templates are imported from a tarball plus metadata.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import re
import shutil
import tarfile
import time
from dataclasses import dataclass

from kernel import archive
from kernel.config import NodeConfig
from kernel.errors import InvalidArgument, NotFound
from kernel.run import run
from kernel.statefile import ensure_dir, flocked, read_json, write_json

_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
TARBALL = "rootfs.tar.gz"
META = "meta.json"
BUSYBOX_REVISION = "2"


@dataclass(frozen=True)
class TemplateMeta:
    name: str
    version: str
    checksum: str  # sha256 of the tarball, "sha256:<hex>"
    distro: str
    release: str
    arch: str
    init: str = "/sbin/init"
    halt_signal: str = "SIGUSR2"
    reboot_signal: str = "SIGTERM"
    network_config: str = "none"
    source: str = ""

    def to_json(self) -> dict[str, str]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, str]) -> TemplateMeta:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Template:
    meta: TemplateMeta
    tarball: str


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidArgument(f"bad template name: {name!r}")
    return name


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


class TemplateCache:
    def __init__(self, config: NodeConfig) -> None:
        self.root = ensure_dir(config.template_dir)

    def _dir(self, name: str) -> str:
        return os.path.join(self.root, check_name(name))

    def get(self, name: str) -> Template:
        """The cached template; `NotFound` (vzctl's 91) when it is not there."""
        directory = self._dir(name)
        try:
            meta = TemplateMeta.from_json(read_json(os.path.join(directory, META)))
        except NotFound:
            raise NotFound(f"OS template {name} not found") from None
        return Template(meta, os.path.join(directory, TARBALL))

    def names(self) -> list[str]:
        return sorted(
            n for n in os.listdir(self.root) if os.path.exists(os.path.join(self.root, n, META))
        )

    def verify(self, name: str) -> Template:
        """The template, after checking its tarball against the recorded checksum."""
        template = self.get(name)
        if sha256_file(template.tarball) != template.meta.checksum:
            raise InvalidArgument(f"OS template {name}: checksum mismatch")
        return template

    def add(self, tarball: str, meta: TemplateMeta) -> Template:
        """Import a rootfs tarball: scan every member, copy it in, record its checksum."""
        archive.scan(tarball)
        directory = ensure_dir(self._dir(meta.name), 0o700)
        with flocked(os.path.join(directory, ".lock")):
            target = os.path.join(directory, TARBALL)
            tmp = target + ".tmp"
            shutil.copyfile(tarball, tmp)
            os.chmod(tmp, 0o600)
            os.rename(tmp, target)
            meta = dataclasses.replace(meta, checksum=sha256_file(target))
            write_json(os.path.join(directory, META), meta.to_json())
        return Template(meta, target)

    def remove(self, name: str) -> None:
        shutil.rmtree(self._dir(name), ignore_errors=True)

    def install(self, name: str, dest: str) -> archive.UnpackResult:
        """Unpack the template into the (empty) volume directory `dest`."""
        return archive.unpack(self.get(name).tarball, dest)

    # -- busybox -----------------------------------------------------------------------
    def ensure_busybox(self, busybox: str = "/bin/busybox", name: str = "busybox") -> Template:
        """Build the busybox template unless the cached one was built from this binary."""
        source = sha256_file(busybox)
        try:
            template = self.get(name)
            if template.meta.source == f"{source} rev{BUSYBOX_REVISION}" and os.path.exists(
                template.tarball
            ):
                return template
        except NotFound:
            pass
        banner = run([busybox], check=False).stdout.splitlines()
        version = banner[0].split()[1].lstrip("v") if banner and banner[0].split()[1:] else "?"
        applets = run([busybox, "--list-full"]).stdout.split()
        data = _busybox_tarball(busybox, applets)
        staging = os.path.join(ensure_dir(self.root), f".{name}.{os.getpid()}.tar.gz")
        try:
            with open(staging, "wb") as fh:
                fh.write(data)
            meta = TemplateMeta(
                name=name,
                version=f"{version}-{BUSYBOX_REVISION}",
                checksum="",
                distro="busybox",
                release=version,
                arch=os.uname().machine,
                init="/sbin/init",
                halt_signal="SIGUSR2",
                reboot_signal="SIGTERM",
                network_config="busybox",
                source=f"{source} rev{BUSYBOX_REVISION}",
            )
            return self.add(staging, meta)
        finally:
            if os.path.exists(staging):
                os.unlink(staging)


_INITTAB = """\
# busybox init, as PID 1 of a ctpanel VPS
::sysinit:/etc/init.d/rcS
::ctrlaltdel:/sbin/reboot
console::respawn:/etc/init.d/console
::shutdown:/bin/sync
"""

_RCS = """\
#!/bin/sh
# Run once by init at boot.
[ -r /etc/hostname ] && hostname -F /etc/hostname
ip link set lo up 2>/dev/null
mkdir -p /run /var/log /tmp
[ -x /etc/rc.local ] && /etc/rc.local
exit 0
"""

_CONSOLE = """\
#!/bin/sh
# A shell on /dev/console when it is a terminal (the supervisor's pty); else stay out of the way.
# init reopens /dev/console for each respawn, so a console pty re-bound after a supervisor restart works.
[ -t 0 ] && exec /bin/sh -l
kill -STOP $$
"""

_FILES = {
    "etc/inittab": (_INITTAB, 0o644),
    "etc/init.d/rcS": (_RCS, 0o755),
    "etc/init.d/console": (_CONSOLE, 0o755),
    "etc/passwd": ("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n", 0o644),
    "etc/group": ("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n", 0o644),
    "etc/shadow": ("root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640),
    "etc/hostname": ("localhost\n", 0o644),
    "etc/hosts": ("127.0.0.1\tlocalhost\n::1\tlocalhost\n", 0o644),
    "etc/resolv.conf": ("", 0o644),
    "etc/os-release": ('NAME="BusyBox"\nID=busybox\nPRETTY_NAME="ctpanel busybox"\n', 0o644),
}

_DIRS = {
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "etc": 0o755, "etc/init.d": 0o755, "dev": 0o755, "proc": 0o555, "sys": 0o555,
    "tmp": 0o1777, "root": 0o700, "run": 0o755, "var": 0o755, "var/log": 0o755,
    "home": 0o755, "mnt": 0o755,
}  # fmt: skip


def _busybox_tarball(busybox: str, applets: list[str]) -> bytes:
    """A gzip'ed tar of a minimal busybox root (ids 0, one mtime for every member)."""
    mtime = int(time.time())
    buf = io.BytesIO()

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        entry = tarfile.TarInfo(name)
        entry.type = kind
        entry.mode = mode
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = "root"
        entry.mtime = mtime
        return entry

    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        tar.addfile(info(".", tarfile.DIRTYPE, 0o755))
        for name, mode in _DIRS.items():
            tar.addfile(info(name, tarfile.DIRTYPE, mode))
        with open(busybox, "rb") as fh:
            entry = info("bin/busybox", tarfile.REGTYPE, 0o755)
            entry.size = os.fstat(fh.fileno()).st_size
            tar.addfile(entry, fh)
        for name, (text, mode) in _FILES.items():
            raw = text.encode()
            entry = info(name, tarfile.REGTYPE, mode)
            entry.size = len(raw)
            tar.addfile(entry, io.BytesIO(raw))
        seen = {"bin/busybox"}
        for path in applets:
            name = path.lstrip("/")
            if name in seen or name.count("/") > 2:
                continue
            seen.add(name)
            link = info(name, tarfile.SYMTYPE, 0o777)
            link.linkname = "/bin/busybox"
            tar.addfile(link)
    return buf.getvalue()
