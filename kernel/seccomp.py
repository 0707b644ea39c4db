"""The VPS seccomp filter (SECURITY.md "seccomp"), as classic BPF built here.

A deny list, not an allow list: a system container runs arbitrary distros,
so everything the kernel already confines to the user namespace stays
allowed. Refused:

- foreign architectures (x86_64: `int 0x80` i386 calls) and the x32 ABI;
- keyctl, add_key, request_key (the keyring is per user id, not per namespace);
- io_uring_*, kexec_*, open_by_handle_at, module calls, bpf, perf_event_open,
  userfaultfd;
- umount2 with MNT_FORCE (EPERM);
- the btrfs ioctls that make a subvolume or snapshot (EPERM): a nested
  subvolume has a qgroup of its own, so data written into it would escape
  the VPS's `diskspace` limit (docs/storage.md).

fanotify_init stays allowed: inside a user namespace the kernel already
confines it (no permission events; marks only on what that namespace owns).

Refused calls return ENOSYS, as LXC does: software falls back as on a kernel
without the feature, and a refusal by this filter is told apart from the
kernel's own EPERM (the tests rely on that).

No pyseccomp: the program is ~40 instructions and building it here keeps
the child's pre-exec path free of library calls.
"""

from __future__ import annotations

import errno
import functools
import struct

from kernel import libc
from kernel import syscalls as sc
from kernel.errors import NotSupported

_LD_W_ABS = 0x20
_JEQ = 0x15
_JGE = 0x35
_JSET = 0x45
_RET = 0x06

RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

_X32_BIT = 0x40000000
_OFF_NR = 0
_OFF_ARCH = 4
_OFF_ARG1_LOW = 24  # args[1], low 32 bits (little endian)


class Arch:
    """`audit` (AUDIT_ARCH_*), syscall `numbers` by name, `x32` (the ABI shares the arch value).
    A plain class: making a named tuple costs ~0.1 ms of vzctl exec's start."""

    __slots__ = ("audit", "numbers", "x32")

    def __init__(self, *, audit: int, numbers: dict[str, int], x32: bool) -> None:
        self.audit = audit
        self.numbers = numbers
        self.x32 = x32


_X86_64 = Arch(
    audit=0xC000003E,
    x32=True,
    numbers={
        "kexec_load": 246,
        "kexec_file_load": 320,
        "open_by_handle_at": 304,
        "init_module": 175,
        "finit_module": 313,
        "delete_module": 176,
        "create_module": 174,
        "keyctl": 250,
        "add_key": 248,
        "request_key": 249,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "bpf": 321,
        "perf_event_open": 298,
        "userfaultfd": 323,
        "umount2": 166,
        "ioctl": 16,
    },
)
_AARCH64 = Arch(
    audit=0xC00000B7,
    x32=False,
    numbers={
        "kexec_load": 104,
        "kexec_file_load": 294,
        "open_by_handle_at": 265,
        "init_module": 105,
        "finit_module": 273,
        "delete_module": 106,
        "keyctl": 219,
        "add_key": 217,
        "request_key": 218,
        "io_uring_setup": 425,
        "io_uring_enter": 426,
        "io_uring_register": 427,
        "bpf": 280,
        "perf_event_open": 241,
        "userfaultfd": 282,
        "umount2": 39,
        "ioctl": 29,
    },
)
ARCHES = {"x86_64": _X86_64, "aarch64": _AARCH64}

#: syscall → errno returned to the VPS
DENY: dict[str, int] = {name: errno.ENOSYS for name in (
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "open_by_handle_at",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "userfaultfd",
)}

#: ioctl commands refused with EPERM: BTRFS_IOC_SNAP_CREATE, _SUBVOL_CREATE, _SNAP_CREATE_V2,
#: _SUBVOL_CREATE_V2 (_IOW(0x94, nr, 4096)). The kernel truncates the command to 32 bits, so
#: comparing the low half of the argument is exact.
DENY_IOCTL: tuple[int, ...] = tuple(0x40000000 | (4096 << 16) | (0x94 << 8) | nr for nr in (1, 14, 23, 24))


def _ins(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def _errno(value: int) -> int:
    return _RET_ERRNO | value


def build(machine: str = sc.MACHINE, deny: dict[str, int] | None = None) -> bytes:
    """The filter as packed `struct sock_filter` instructions (the default one built once per
    process: every start and every exec loads it)."""
    return _default(machine) if deny is None else _build(machine, deny)


@functools.cache
def _default(machine: str) -> bytes:
    return _build(machine, None)


def _build(machine: str, deny: dict[str, int] | None) -> bytes:
    arch = ARCHES.get(machine)
    if arch is None:
        raise NotSupported(f"no seccomp profile for {machine}")
    prog = [
        _ins(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _ins(_JEQ, 1, 0, arch.audit),
        _ins(_RET, 0, 0, _errno(errno.ENOSYS)),
        _ins(_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch.x32:
        prog += [_ins(_JGE, 0, 1, _X32_BIT), _ins(_RET, 0, 0, _errno(errno.ENOSYS))]
    for name, err in (DENY if deny is None else deny).items():
        nr = arch.numbers.get(name)
        if nr is not None:
            prog += [_ins(_JEQ, 0, 1, nr), _ins(_RET, 0, 0, _errno(err))]
    count = len(DENY_IOCTL)
    prog.append(_ins(_JEQ, 0, count + 3, arch.numbers["ioctl"]))  # not ioctl: on to umount2
    prog.append(_ins(_LD_W_ABS, 0, 0, _OFF_ARG1_LOW))
    prog += [_ins(_JEQ, count - 1 - k, 1 if k == count - 1 else 0, cmd) for k, cmd in enumerate(DENY_IOCTL)]
    prog += [_ins(_RET, 0, 0, _errno(errno.EPERM)), _ins(_RET, 0, 0, RET_ALLOW)]
    prog += [
        _ins(_JEQ, 0, 3, arch.numbers["umount2"]),
        _ins(_LD_W_ABS, 0, 0, _OFF_ARG1_LOW),
        _ins(_JSET, 0, 1, sc.MNT_FORCE),
        _ins(_RET, 0, 0, _errno(errno.EPERM)),
        _ins(_RET, 0, 0, RET_ALLOW),
    ]
    return b"".join(prog)


class _SockFprog(libc.Structure):
    _fields_ = [("len", libc.c_ushort), ("filter", libc.c_void_p)]


def install(program: bytes) -> None:
    """Load `program` for this thread and its future children.

    Needs CAP_SYS_ADMIN in the current user namespace (the VPS's), so no
    `no_new_privs` is set: setuid programs inside the VPS keep working.
    """
    sc.seccomp_set_filter(libc.addressof(_fprog(program)[1]))


def prepare(program: bytes) -> None:
    """Make `install(program)`'s `struct sock_fprog` now, in a process about to fork the one that
    installs it: the forked child then only makes the call (its own ctypes work costs it ~0.1 ms,
    most of it copying the pages it writes to)."""
    _fprog(program)


@functools.cache
def _fprog(program: bytes) -> tuple[object, _SockFprog]:
    buf = (libc.c_char * len(program)).from_buffer_copy(program)
    return buf, _SockFprog(len(program) // 8, libc.addressof(buf))
