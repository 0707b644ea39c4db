"""A dictionary cgroupfs for unit tests of the beancounter readers and writers."""

from __future__ import annotations

from kernel.errors import NotFound


class DictFS:
    def __init__(self, files: dict[str, str] | None = None, dirs: set[str] | None = None) -> None:
        self.files = dict(files or {})
        self.dirs = set(dirs or ())
        self.writes: list[tuple[str, str]] = []

    def read(self, path: str) -> str:
        if path not in self.files:
            raise NotFound(path)
        return self.files[path]

    def write(self, path: str, value: str) -> None:
        if path not in self.files:
            raise NotFound(path)
        self.writes.append((path, value.strip()))
        self.files[path] = value

    def mkdir(self, path: str) -> None:
        self.dirs.add(path)

    def rmdir(self, path: str) -> None:
        self.dirs.discard(path)

    def exists(self, path: str) -> bool:
        return path in self.dirs

    def subdirs(self, path: str) -> list[str]:
        return sorted(d.rsplit("/", 1)[1] for d in self.dirs if d.rsplit("/", 1)[0] == path)

    def chown(self, path: str, uid: int, gid: int) -> None:
        pass
