"""Reading and writing files inside a VPS volume from the host, safely.

A VPS root owns every byte of its volume and can plant symlinks, FIFOs and
swap directories while the host works (SECURITY.md, "Writing into a
customer's files"). So nothing here opens a path by name: the volume root is
opened once as a directory fd, and every lookup goes through `openat2` with
RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV (an absolute or
`..` symlink resolves inside the VPS, never above it). Writes create a temp
file with O_CREAT|O_EXCL|O_NOFOLLOW in the resolved parent and rename it
within that same directory fd; reads use O_NOFOLLOW|O_NONBLOCK and accept only
regular files. Values are checked for newlines and NULs before they are
written into a config file.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
import stat
from collections.abc import Iterable, Iterator, Sequence

from kernel import syscalls as sc
from kernel.errors import Busy, InvalidArgument, KernelError, LimitReached, from_oserror

_RESOLVE = sc.RESOLVE_IN_ROOT | sc.RESOLVE_NO_MAGICLINKS | sc.RESOLVE_NO_XDEV
_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")

MAX_READ = 1 << 20
_RETRIES = 64


def check_value(value: str, what: str = "value") -> str:
    """Refuse values that could add lines or cut a config file short."""
    if any(c in value for c in "\n\r\0"):
        raise InvalidArgument(f"{what} must not contain newlines or NUL")
    return value


def check_hostname(name: str) -> str:
    """A hostname per RFC 1123 (letters, digits, hyphens; labels of 1-63; 253 in all)."""
    check_value(name, "hostname")
    if not name or len(name) > 253 or name.endswith("."):
        raise InvalidArgument(f"bad hostname: {name!r}")
    if not all(_LABEL.match(label) for label in name.split(".")):
        raise InvalidArgument(f"bad hostname: {name!r}")
    return name


def _split(path: str) -> tuple[str, str]:
    """(parent inside the VPS, last component); the path must name a file, not '.' or '..'."""
    check_value(path, "path")
    parent, _, name = path.rstrip("/").rpartition("/")
    if not name or name in (".", ".."):
        raise InvalidArgument(f"bad path inside the VPS: {path!r}")
    return parent or "/", name


class VpsRoot:
    """A VPS volume opened once as a directory fd; every other lookup starts from it."""

    def __init__(self, path: str) -> None:
        try:
            self.fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise from_oserror(exc, "cannot open VPS root") from exc
        self.path = path

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> VpsRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lookups -------------------------------------------------------------------
    def open(self, path: str, flags: int, mode: int = 0) -> int:
        """openat2 from the VPS root, confined to it; raises `KernelError` subclasses."""
        check_value(path, "path")
        for _ in range(_RETRIES):
            try:
                return sc.openat2(self.fd, path, flags, _RESOLVE, mode)
            except Busy:
                continue  # EAGAIN: a rename raced the lookup; openat2 asks us to retry
        raise Busy("the VPS keeps renaming along the path", path=path)

    @contextlib.contextmanager
    def directory(self, path: str) -> Iterator[int]:
        """The directory at `path` inside the VPS, open as an O_PATH fd for the `with` block."""
        fd = self.open(path, os.O_PATH | os.O_DIRECTORY)
        try:
            yield fd
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------------
    def read(self, path: str, limit: int = MAX_READ) -> bytes:
        """The content of a regular file; a FIFO, device, directory or symlink is refused."""
        fd = self.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise InvalidArgument("not a regular file", path=path)
            if st.st_size > limit:
                raise LimitReached(f"file larger than {limit} bytes", path=path)
            chunks = []
            total = 0
            while chunk := os.read(fd, 65536):
                total += len(chunk)
                if total > limit:
                    raise LimitReached(f"file larger than {limit} bytes", path=path)
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def read_text(self, path: str, default: str | None = None) -> str:
        """Like `read`, decoded; `default` when the file is missing (if given)."""
        try:
            return self.read(path).decode("utf-8", errors="replace")
        except KernelError as exc:
            if default is not None and exc.errno == 2:
                return default
            raise

    # -- writing ---------------------------------------------------------------------
    def write(
        self, path: str, data: bytes | str, *, mode: int = 0o644, uid: int = 0, gid: int = 0
    ) -> None:
        """Atomically replace the file at `path` (a planted symlink is replaced, not followed).

        `uid`/`gid` are ids as the VPS sees them: on disk they are the same,
        because the volume is only ever mounted into the VPS through an idmapped mount.
        """
        if isinstance(data, str):
            data = data.encode()
        parent, name = _split(path)
        if not (0 <= uid <= 65535 and 0 <= gid <= 65535):
            raise InvalidArgument("ids inside a VPS are 0..65535")
        with self.directory(parent) as dirfd:
            tmp = f".{name}.ctpanel-{secrets.token_hex(6)}"
            try:
                fd = os.open(
                    tmp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    0o600,
                    dir_fd=dirfd,
                )
            except OSError as exc:
                raise from_oserror(exc, f"cannot create a file in {parent}") from exc
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, mode)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._refuse_directory(dirfd, name, path)
                os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
            except BaseException as exc:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dirfd)
                if isinstance(exc, OSError):
                    raise from_oserror(exc, f"cannot write {path}") from exc
                raise

    def ensure(self, path: str, data: bytes | str, *, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        """`write` unless the file already is exactly that (a regular file with these owner, mode
        and content): what every start writes again then costs no new file and no fsync."""
        if isinstance(data, str):
            data = data.encode()
        try:
            fd = self.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except KernelError:
            fd = -1  # missing, or not a file to read: written
        if fd >= 0:
            try:
                st = os.fstat(fd)
                owner_mode = (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
                same = (stat.S_ISREG(st.st_mode) and owner_mode == (uid, gid, mode) and st.st_size == len(data)
                        and os.pread(fd, len(data) + 1, 0) == data)
            finally:
                os.close(fd)
            if same:
                return
        self.write(path, data, mode=mode, uid=uid, gid=gid)

    @staticmethod
    def _refuse_directory(dirfd: int, name: str, path: str) -> None:
        try:
            st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise InvalidArgument("a directory is in the way", path=path)

    def makedirs(self, path: str, mode: int = 0o755) -> None:
        """Create missing directories along `path`, one component at a time from the root."""
        check_value(path, "path")
        current = "/"
        for part in [p for p in path.split("/") if p]:
            if part in (".", ".."):
                raise InvalidArgument(f"bad path inside the VPS: {path!r}")
            with self.directory(current) as dirfd:
                try:
                    os.mkdir(part, mode, dir_fd=dirfd)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise from_oserror(exc, f"cannot create {path}") from exc
            current = os.path.join(current, part)
        # Fails if the last component is a symlink to a non-directory or a file.
        with self.directory(path):
            pass


# -- writers for the files the panel manages ---------------------------------------------

_HOSTS_BEGIN = "# ctpanel: managed block begin"
_HOSTS_END = "# ctpanel: managed block end"


def write_hostname(root: VpsRoot, hostname: str) -> None:
    root.write("/etc/hostname", check_hostname(hostname) + "\n")


def render_hosts(existing: str, hostname: str) -> str:
    """/etc/hosts with ctpanel's block replaced and the customer's own lines kept."""
    check_hostname(hostname)
    short = hostname.split(".", 1)[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    block = [
        _HOSTS_BEGIN,
        "127.0.0.1\tlocalhost",
        f"127.0.1.1\t{names}",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        _HOSTS_END,
    ]
    kept: list[str] = []
    inside = False
    for line in existing.splitlines():
        if line == _HOSTS_BEGIN:
            inside = True
        elif line == _HOSTS_END:
            inside = False
        elif not inside:
            kept.append(line)
    return "\n".join([*block, *kept]) + "\n"


def write_hosts(root: VpsRoot, hostname: str) -> None:
    try:
        existing = root.read_text("/etc/hosts", default="")
    except InvalidArgument:
        existing = ""  # a symlink, FIFO or device planted there: replaced, never read
    root.write("/etc/hosts", render_hosts(existing, hostname))


def render_resolv_conf(nameservers: Sequence[str], search: Iterable[str] = ()) -> str:
    lines = ["# written by ctpanel"]
    domains = [check_hostname(d) for d in search]
    if domains:
        lines.append("search " + " ".join(domains))
    for server in nameservers:
        check_value(server, "nameserver")
        try:
            lines.append(f"nameserver {ipaddress.ip_address(server)}")
        except ValueError:
            raise InvalidArgument(f"bad nameserver address: {server!r}") from None
    return "\n".join(lines) + "\n"


def write_resolv_conf(root: VpsRoot, nameservers: Sequence[str], search: Iterable[str] = ()) -> None:
    root.write("/etc/resolv.conf", render_resolv_conf(nameservers, search))
