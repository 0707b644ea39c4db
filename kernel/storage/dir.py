"""`dir`: each VPS is a plain directory in the pool (no quota; for development)."""

from __future__ import annotations

import os
import shutil

from kernel import archive
from kernel.config import check_ctid
from kernel.errors import AlreadyExists, from_oserror
from kernel.statefile import ensure_dir
from kernel.storage.base import Capabilities, Driver, Limits, Usage


class DirDriver(Driver):
    name = "dir"
    capabilities = Capabilities()

    def setup(self) -> None:
        os.chmod(ensure_dir(self.pool.path, 0o700), 0o700)

    VOLUME_DIRS = (("", ""),)

    def root(self, ctid: int) -> str:
        return os.path.join(self.pool.path, str(check_ctid(ctid)))

    def exists(self, ctid: int) -> bool:
        return os.path.isdir(self.root(ctid))

    def set_limits(self, ctid: int, old: Limits, new: Limits) -> None:
        """Recorded by the caller, never enforced (capabilities say so): development only."""

    def create(self, ctid: int, template: tuple[str, str, str] | None, limits: Limits) -> None:
        root = self.root(ctid)
        try:
            os.mkdir(root, 0o755)
        except FileExistsError:
            raise AlreadyExists(f"CT {ctid}: volume exists", path=root) from None
        except OSError as exc:
            raise from_oserror(exc, "cannot create volume") from exc
        try:
            if template is not None:
                archive.unpack(template[1], root)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def activate(self, ctid: int, limits: Limits) -> str:
        return self.root(ctid)

    def deactivate(self, ctid: int) -> None:
        return None

    def active(self, ctid: int) -> bool:
        return self.exists(ctid)

    def destroy(self, ctid: int) -> None:
        root = self.root(ctid)
        if os.path.lexists(root):
            shutil.rmtree(root)

    def usage(self, ctid: int) -> Usage:
        """Walks the tree (no quota to ask): slow on big volumes, fine for development."""
        used = inodes = 0
        for top, dirs, files in os.walk(self.root(ctid)):
            for name in dirs + files:
                st = os.lstat(os.path.join(top, name))
                used += st.st_blocks * 512
                inodes += 1
        return Usage(bytes_used=used, bytes_limit=0, inodes_used=inodes + 1)
