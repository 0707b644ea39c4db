"""The tiny read/write seam every cgroup driver works through (a fake stands in for tests)."""

from __future__ import annotations

import os
from typing import Protocol

from kernel.errors import from_oserror


class CgroupFS(Protocol):
    def read(self, path: str) -> str: ...
    def write(self, path: str, value: str) -> None: ...
    def mkdir(self, path: str) -> None: ...
    def rmdir(self, path: str) -> None: ...
    def exists(self, path: str) -> bool: ...
    def subdirs(self, path: str) -> list[str]: ...
    def chown(self, path: str, uid: int, gid: int) -> None: ...


class RealFS:
    """cgroupfs through plain syscalls; one write(2) per value as the kernel expects."""

    def read(self, path: str) -> str:
        # Raw reads: the text layer costs more than the kernel (a beancounter table reads
        # thousands of these files per call; memory.oom_control is 25x slower through open()).
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                chunks = [os.read(fd, 65536)]
                while len(chunks[-1]) == 65536:  # a short read is the whole file (seq_file fills the buffer)
                    chunks.append(os.read(fd, 65536))
            finally:
                os.close(fd)
        except OSError as exc:
            raise from_oserror(exc, "cannot read cgroup file") from exc
        return b"".join(chunks).decode("ascii")

    def write(self, path: str, value: str) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            raise from_oserror(exc, f"cannot write {value.strip()!r} to cgroup file") from exc

    def mkdir(self, path: str) -> None:
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            pass
        except OSError as exc:
            raise from_oserror(exc, "cannot create cgroup") from exc

    def rmdir(self, path: str) -> None:
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise from_oserror(exc, "cannot remove cgroup") from exc

    def exists(self, path: str) -> bool:
        return os.path.isdir(path)

    def subdirs(self, path: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(path) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def chown(self, path: str, uid: int, gid: int) -> None:
        try:
            os.chown(path, uid, gid, follow_symlinks=False)
        except OSError as exc:
            raise from_oserror(exc, "cannot delegate cgroup") from exc
