"""Device grants: TUN, FUSE and admin-chosen device nodes in a VPS's /dev.

How a grant works in a user namespace. The VPS's root cannot create device nodes
(mknod needs CAP_MKNOD in the initial user namespace) and every filesystem it mounts
is nodev, so its /dev holds only what the node put there. For a grant the node
creates the node itself, on the host, as `<state_root>/devices/<CTID>/<name>`, owned
by the host's root with mode 0666/0444/0222 for rw/r/w, and bind-mounts that file at
/dev/<name> in the VPS's mount namespace (the bind keeps the host filesystem's mount
flags, which allow devices). The owner is not mapped in the VPS's user namespace, so
the VPS's root has no DAC override on it and cannot chmod or chown it: the mode is what
everyone in the VPS gets, as on a standard distribution (/dev/net/tun and /dev/fuse are
0666 there); the grant is to the VPS, not to one of its users. A bind of the host's own
node (0600 root on this machine) would be unusable, and changing the host's modes would
grant every VPS at once.

Device cgroup: cgroup v1's `devices` controller and cgroup v2's BPF device programs
both filter opens by type:major:minor. The runtime gives VPSs no device whitelist
(v1: they inherit the node's "a *:* rwm"; v2: no program is attached), because the
user namespace already confines them to the nodes above: a grant therefore needs no
cgroup change on either version. Should a whitelist be added, a grant is one more
`devices.allow` line (v1) or one more entry in the BPF program's table (v2).

TUN inside: opening /dev/net/tun and TUNSETIFF need CAP_NET_ADMIN in the user
namespace owning the VPS's network namespace, which its root has. FUSE: mounting
`fuse` inside a user namespace is allowed by the kernel (FS_USERNS_MOUNT, since 4.18).

Grants are made live in a running VPS and again at every start (the `network` stage,
after the init's root is in place and before it runs). The bind is made by a
non-dumpable child that joins the VPS's user and mount namespaces, with every path
resolved beneath the VPS's /dev without following symlinks.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Callable
from dataclasses import asdict, dataclass

from kernel import statefile
from kernel import syscalls as sc
from kernel.config import NodeConfig, check_ctid
from kernel.errors import InvalidArgument, KernelError, NotFound, PermissionDenied

_BENEATH = sc.RESOLVE_BENEATH | sc.RESOLVE_NO_SYMLINKS | sc.RESOLVE_NO_MAGICLINKS
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}(/[A-Za-z0-9][A-Za-z0-9_.+-]{0,31}){0,2}$")
_AT_FDCWD = -100
_UMOUNT_NOFOLLOW = 0x8
_MODES = {"r": 0o444, "w": 0o222, "rw": 0o666}
PERMS = (*_MODES, "none")


@dataclass(frozen=True)
class Grant:
    """A device node in the VPS's /dev: `name` is its path under /dev (`net/tun`, `ttyS0`)."""

    name: str
    kind: str  # "c" or "b"
    major: int
    minor: int
    perm: str  # r, w, rw

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.kind not in ("c", "b") or self.perm not in _MODES:
            raise InvalidArgument(f"bad device grant {self!r}")
        if not (0 <= self.major < 4096 and 0 <= self.minor < 1 << 20):
            raise InvalidArgument(f"bad device number {self.major}:{self.minor}")

    @property
    def device(self) -> str:
        return f"{self.kind}:{self.major}:{self.minor}"


def check_name(name: str) -> str:
    if not _NAME.match(name) or ".." in name.split("/"):
        raise InvalidArgument(f"bad device name {name!r} (a path under /dev, e.g. net/tun or ttyS0)")
    return name


#: `--features NAME:on`: granted on every node, nothing else needed.
FEATURES = {
    "tun": Grant("net/tun", "c", 10, 200, "rw"),
    "fuse": Grant("fuse", "c", 10, 229, "rw"),
}


def host_device(name: str, root: str = "/dev") -> tuple[str, int, int]:
    """(kind, major, minor) of the host's /dev/NAME (`--devnodes NAME` takes the host's numbers)."""
    try:
        st = os.stat(os.path.join(root, check_name(name)), follow_symlinks=False)
    except FileNotFoundError:
        raise NotFound(f"/dev/{name} does not exist on this node") from None
    if stat.S_ISCHR(st.st_mode):
        return "c", os.major(st.st_rdev), os.minor(st.st_rdev)
    if stat.S_ISBLK(st.st_mode):
        return "b", os.major(st.st_rdev), os.minor(st.st_rdev)
    raise InvalidArgument(f"/dev/{name} is not a device node")


def parse_allow(text: str) -> dict[int, frozenset[str]]:
    """The node's allow list, `CTID:c|b:MAJOR:MINOR` items separated by commas or spaces."""
    out: dict[int, set[str]] = {}
    for item in re.split(r"[,\s]+", text.strip()):
        if not item:
            continue
        parts = item.split(":")
        if (
            len(parts) != 4
            or not parts[0].isdigit()
            or parts[1] not in ("c", "b")
            or not all(p.isdigit() for p in parts[2:])
        ):
            raise InvalidArgument(f"bad device allow item {item!r} (CTID:c|b:MAJOR:MINOR)")
        out.setdefault(int(parts[0]), set()).add(f"{parts[1]}:{int(parts[2])}:{int(parts[3])}")
    return {ctid: frozenset(devices) for ctid, devices in out.items()}


class Devices:
    """Grants of one node; desired state in `<state_root>/devices/<CTID>.json`."""

    def __init__(self, node: NodeConfig, allow: dict[int, frozenset[str]] | None = None) -> None:
        self.node = node
        self.allow = allow or {}
        self.dir = statefile.ensure_dir(node.path("devices"))

    def _path(self, ctid: int) -> str:
        return os.path.join(self.dir, f"{check_ctid(ctid)}.json")

    def _nodes(self, ctid: int) -> str:
        return os.path.join(self.dir, str(check_ctid(ctid)))

    def grants(self, ctid: int) -> tuple[Grant, ...]:
        try:
            return tuple(Grant(**g) for g in statefile.read_json(self._path(ctid)))
        except NotFound:
            return ()

    def allowed(self, ctid: int, grant: Grant) -> bool:
        return grant in FEATURES.values() or grant.device in self.allow.get(ctid, frozenset())

    def grant(self, ctid: int, grant: Grant, *, init_pid: int | None = None) -> None:
        """Store the grant and, with `init_pid` (running), bind it into the VPS at once."""
        if not self.allowed(ctid, grant):
            raise PermissionDenied(f"device {grant.device} is not allowed for CT {ctid} by this node's configuration")
        grants = [g for g in self.grants(ctid) if g.name != grant.name] + [grant]
        statefile.write_json(self._path(ctid), [asdict(g) for g in grants])
        if init_pid is not None:
            self._bind(ctid, grant, init_pid)

    def revoke(self, ctid: int, name: str, *, init_pid: int | None = None) -> bool:
        """Forget the grant of /dev/NAME; with `init_pid` the bind leaves the running VPS at once
        (descriptors its processes hold stay open, as after a chmod)."""
        grants = self.grants(ctid)
        keep = [g for g in grants if g.name != name]
        if len(keep) == len(grants):
            return False
        statefile.write_json(self._path(ctid), [asdict(g) for g in keep])
        self._drop_node(ctid, name)
        if init_pid is not None:
            _in_vps(init_pid, lambda: sc.umount2(f"/dev/{name}", sc.MNT_DETACH | _UMOUNT_NOFOLLOW), f"/dev/{name}")
        return True

    def forget(self, ctid: int) -> None:
        """On destroy: every grant and host-side node of the VPS."""
        for grant in self.grants(ctid):
            self._drop_node(ctid, grant.name)
        with contextlib.suppress(OSError):
            os.rmdir(self._nodes(ctid))
        statefile.remove(self._path(ctid))

    def start(self, ctid: int, init_pid: int) -> None:
        for grant in self.grants(ctid):
            self._bind(ctid, grant, init_pid)

    # -- host side ---------------------------------------------------------------------------
    def _node_file(self, ctid: int, grant: Grant) -> str:
        """(Re)create the host-side node for `grant` (owner: the node's root, unmapped in the VPS)."""
        base = statefile.ensure_dir(self._nodes(ctid))
        path = os.path.join(base, grant.name.replace("/", "!"))
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        kind = stat.S_IFCHR if grant.kind == "c" else stat.S_IFBLK
        os.mknod(path, kind | _MODES[grant.perm], os.makedev(grant.major, grant.minor))
        os.chmod(path, _MODES[grant.perm])  # not reduced by the umask
        return path

    def _drop_node(self, ctid: int, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self._nodes(ctid), name.replace("/", "!")))

    def _bind(self, ctid: int, grant: Grant, init_pid: int) -> None:
        bind_into(init_pid, self._node_file(ctid, grant), grant.name)


def bind_into(init_pid: int, source: str, name: str) -> None:
    """Bind the host file `source` at /dev/NAME of the VPS whose init is `init_pid`: a detached
    copy of `source` made in the node's mount namespace is attached from inside (`_in_vps`);
    parents are created as directories."""
    check_name(name)
    tree = sc.open_tree(_AT_FDCWD, source, sc.OPEN_TREE_CLONE | sc.OPEN_TREE_CLOEXEC)
    try:
        _in_vps(init_pid, lambda: _attach_under_dev(tree, name), f"/dev/{name}")
    finally:
        os.close(tree)


def _in_vps(init_pid: int, action: Callable[[], None], what: str) -> None:
    """Run `action` in a non-dumpable child that joined the VPS's user and mount namespaces as
    the VPS's root: what it creates on the VPS's /dev belongs to the VPS, and it holds no
    privilege over anything but the VPS's own mounts."""
    pidfd = sc.pidfd_open(init_pid)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        code = 1
        try:
            os.close(r)
            sc.prctl(sc.PR_SET_DUMPABLE, 0)
            sc.setns(pidfd, sc.CLONE_NEWUSER | sc.CLONE_NEWNS)
            os.setresgid(0, 0, 0)
            os.setgroups([])
            os.setresuid(0, 0, 0)
            action()
            code = 0
        except BaseException as exc:  # the parent raises it with the message
            with contextlib.suppress(OSError):
                os.write(w, f"{type(exc).__name__}: {exc}".encode()[:1000])
        finally:
            os._exit(code)
    os.close(w)
    os.close(pidfd)
    with os.fdopen(r, "rb") as fh:
        message = fh.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise KernelError(f"{what} in the VPS: {message or 'helper failed'}")


def _attach_under_dev(tree: int, name: str) -> None:  # pragma: no cover - runs in the child
    root = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    parent = sc.openat2(root, "dev", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _BENEATH)
    os.close(root)
    *dirs, leaf = name.split("/")
    for part in dirs:
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, 0o755, dir_fd=parent)
        child = sc.openat2(parent, part, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, _BENEATH)
        os.close(parent)
        parent = child
    with contextlib.suppress(FileExistsError):
        os.close(os.open(leaf, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent))  # fmt: skip
    target = sc.openat2(parent, leaf, os.O_PATH | os.O_CLOEXEC, _BENEATH)
    os.close(parent)
    if stat.S_ISDIR(os.fstat(target).st_mode):
        raise InvalidArgument(f"/dev/{name} is a directory in the VPS")
    sc.attach(tree, target)
