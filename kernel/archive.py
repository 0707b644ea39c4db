"""Unpacking rootfs tarballs (templates, later backups) without trusting their names.

Refused: absolute names, `..` components, relative symlinks that climb out
of the root, hard links to anything not unpacked before, device nodes and
FIFOs, ids outside 0..65535. Every parent is resolved from the root's dirfd
with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS, so a symlink in the archive can
never redirect a later member. Ids are written as they are in the archive:
on disk a VPS's files keep its own ids (its root is mounted idmapped).
Absolute symlinks are kept: they resolve inside the VPS when the VPS uses them.

With `xattrs=True` (backups), the extended attributes of files and
directories are restored from pax `SCHILY.xattr.*` records, as GNU tar and
star write them: `user.*`, file capabilities and POSIX ACLs only
(`XATTRS`); any other name (trusted.*, security.selinux...) is refused, since
host root would set it.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass

from kernel import syscalls as sc
from kernel.errors import InvalidArgument, from_oserror

_BENEATH = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
_MAX_ID = 65535
PAX_XATTR = "SCHILY.xattr."
#: What backups keep and restores set: user data, file capabilities, POSIX ACLs ("user." is a prefix).
XATTRS = ("user.", "security.capability", "system.posix_acl_access", "system.posix_acl_default")


def xattr_allowed(name: str) -> bool:
    return (name.startswith(XATTRS[0]) and len(name) > len(XATTRS[0])) or name in XATTRS[1:]


def member_xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    """The member's extended attributes (pax SCHILY.xattr.* records); `InvalidArgument` for a refused name."""
    out = {}
    for key, value in member.pax_headers.items():
        if key.startswith(PAX_XATTR):
            name = key[len(PAX_XATTR) :]
            if not xattr_allowed(name):
                raise InvalidArgument(f"extended attribute {name!r} refused in archive: {member.name!r}")
            out[name] = value.encode("utf-8", "surrogateescape")  # tarfile keeps raw bytes that way
    return out


@dataclass(frozen=True)
class UnpackResult:
    files: int
    directories: int
    symlinks: int
    hardlinks: int


def clean_name(name: str) -> str:
    """The member name relative to the root, or `InvalidArgument`; '' is the root itself."""
    if "\0" in name:
        raise InvalidArgument(f"NUL in archive member name {name!r}")
    if name.startswith("/"):
        raise InvalidArgument(f"absolute name in archive: {name!r}")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"'..' in archive member name: {name!r}")
    return "/".join(parts)


def check_member(member: tarfile.TarInfo) -> str:
    """Validate one member; return its clean name."""
    name = clean_name(member.name)
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise InvalidArgument(f"device node, FIFO or special file in archive: {member.name!r}")
    if not (0 <= member.uid <= _MAX_ID and 0 <= member.gid <= _MAX_ID):
        raise InvalidArgument(f"id outside 0..65535 in archive: {member.name!r}")
    if member.issym():
        target = member.linkname
        if "\0" in target or not target:
            raise InvalidArgument(f"bad symlink target for {member.name!r}")
        if not target.startswith("/"):
            joined = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if joined == ".." or joined.startswith("../"):
                raise InvalidArgument(f"symlink escapes the root: {member.name!r} -> {target!r}")
    if member.islnk():
        clean_name(member.linkname)
    if not name and not member.isdir():
        raise InvalidArgument("archive root is not a directory")
    return name


def scan(path: str) -> int:
    """Check every member of the tarball at `path` without unpacking; return the count."""
    count = 0
    with tarfile.open(path, "r:*") as tar:
        for member in tar:
            check_member(member)
            count += 1
    return count


class _Tree:
    """Directory fds below the root, resolved beneath it without following symlinks."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd

    def parent(self, name: str) -> tuple[int, str]:
        head, _, leaf = name.rpartition("/")
        if not head:
            return os.dup(self.root_fd), leaf
        try:
            return sc.openat2(self.root_fd, head, os.O_PATH | os.O_DIRECTORY, _BENEATH), leaf
        except InvalidArgument as exc:  # ELOOP: a symlink stands where a directory should
            raise InvalidArgument(f"archive writes through a symlink: {name!r}") from exc

    def makedirs(self, name: str) -> None:
        current = ""
        for part in name.split("/"):
            current = f"{current}/{part}" if current else part
            dirfd, leaf = self.parent(current)
            try:
                os.mkdir(leaf, 0o755, dir_fd=dirfd)
            except FileExistsError:
                pass
            finally:
                os.close(dirfd)


def unpack(path: str, dest: str, *, xattrs: bool = False) -> UnpackResult:
    """Unpack the tarball at `path` into the existing directory `dest` (with `xattrs`: theirs too)."""
    try:
        root_fd = os.open(dest, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise from_oserror(exc, "cannot open unpack destination") from exc
    tree = _Tree(root_fd)
    dirs: list[tuple[str, tarfile.TarInfo, dict[str, bytes]]] = []
    counts = {"files": 0, "directories": 0, "symlinks": 0, "hardlinks": 0}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                name = check_member(member)
                attrs = member_xattrs(member) if xattrs and not member.issym() else {}
                try:
                    _unpack_one(tar, member, name, tree, dirs, counts, attrs)
                except OSError as exc:
                    raise from_oserror(exc, f"cannot unpack {name or '/'}") from exc
        for name, member, attrs in reversed(dirs):
            _finish_dir(tree, name, member, attrs)
    finally:
        os.close(root_fd)
    return UnpackResult(**counts)


def _replace(dirfd: int, leaf: str) -> None:
    """Make room for a non-directory member (archives may repeat a name)."""
    try:
        st = os.stat(leaf, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"archive replaces a directory with a file: {leaf!r}")
    os.unlink(leaf, dir_fd=dirfd)


def _unpack_one(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    name: str,
    tree: _Tree,
    dirs: list[tuple[str, tarfile.TarInfo, dict[str, bytes]]],
    counts: dict[str, int],
    attrs: dict[str, bytes],
) -> None:
    if member.isdir():
        if name:
            tree.makedirs(name)
        dirs.append((name, member, attrs))
        counts["directories"] += 1
        return
    head = name.rpartition("/")[0]
    if head:
        tree.makedirs(head)
    dirfd, leaf = tree.parent(name)
    try:
        _replace(dirfd, leaf)
        if member.isreg():
            source = tar.extractfile(member)
            fd = os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=dirfd)
            with os.fdopen(fd, "wb") as out:
                if source is not None:
                    shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fchown(fd, member.uid, member.gid)
                os.fchmod(fd, member.mode & 0o7777)
                for key, value in attrs.items():  # after chown (which drops capabilities) and chmod
                    os.setxattr(fd, key, value)
                os.utime(fd, (member.mtime, member.mtime))
            counts["files"] += 1
        elif member.issym():
            os.symlink(member.linkname, leaf, dir_fd=dirfd)
            os.chown(leaf, member.uid, member.gid, dir_fd=dirfd, follow_symlinks=False)
            with contextlib.suppress(OSError):
                os.utime(leaf, (member.mtime, member.mtime), dir_fd=dirfd, follow_symlinks=False)
            counts["symlinks"] += 1
        else:
            src_dirfd, src_leaf = tree.parent(clean_name(member.linkname))
            try:
                st = os.stat(src_leaf, dir_fd=src_dirfd, follow_symlinks=False)
                if not stat.S_ISREG(st.st_mode):
                    raise InvalidArgument(f"hard link to a non-file: {member.name!r}")
                os.link(src_leaf, leaf, src_dir_fd=src_dirfd, dst_dir_fd=dirfd, follow_symlinks=False)
            finally:
                os.close(src_dirfd)
            counts["hardlinks"] += 1
    finally:
        os.close(dirfd)


def _finish_dir(tree: _Tree, name: str, member: tarfile.TarInfo, attrs: dict[str, bytes]) -> None:
    """Directory ids, modes and times last, so read-only directories could be filled first."""
    fd = (
        os.dup(tree.root_fd)
        if not name
        else sc.openat2(tree.root_fd, name, os.O_PATH | os.O_DIRECTORY, _BENEATH)
    )
    try:
        # fchown/fchmod refuse O_PATH fds; go through the fd's /proc entry, which names
        # exactly this inode.
        proc = f"/proc/self/fd/{fd}"
        os.chown(proc, member.uid, member.gid)
        os.chmod(proc, member.mode & 0o7777)
        for key, value in attrs.items():  # a default ACL only now: the members inside carry their own
            os.setxattr(proc, key, value)
        os.utime(proc, (member.mtime, member.mtime))
    finally:
        os.close(fd)
