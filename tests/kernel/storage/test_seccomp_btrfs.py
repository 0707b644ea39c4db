"""The seccomp program's btrfs ioctl rule, run through a small classic-BPF interpreter.

Inside a VPS the rule is exercised by test_nested_subvolume.py; here every
path through the program is checked without a kernel: the four creating
commands (whatever the upper half of the argument), other ioctls, and the
rules around it (umount2 MNT_FORCE, denied calls, foreign architectures).
"""

from __future__ import annotations

import errno
import struct

import pytest

from kernel import seccomp
from kernel.storage import btrfsio

pytestmark = pytest.mark.unit

ALLOW = seccomp.RET_ALLOW
X86_64 = seccomp.ARCHES["x86_64"]


def run(program: bytes, nr: int, args: tuple[int, ...] = (), arch: int = X86_64.audit) -> int:
    """Evaluate the filter on a `struct seccomp_data` (nr, arch, ip, args[6])."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * 6)[:6])
    ins = [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = ins[pc]
        pc += 1
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            acc = struct.unpack_from("<I", data, k)[0]
        elif code in (0x15, 0x35, 0x45):  # JEQ, JGE, JSET with a constant
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")


def eperm() -> int:
    return 0x00050000 | errno.EPERM


@pytest.mark.parametrize("cmd", seccomp.DENY_IOCTL)
def test_subvolume_and_snapshot_creation_is_refused(cmd: int) -> None:
    program = seccomp.build("x86_64")
    nr = X86_64.numbers["ioctl"]
    assert run(program, nr, (3, cmd, 0)) == eperm()
    assert run(program, nr, (3, cmd | (0xDEAD << 32), 0)) == eperm()  # the kernel uses the low 32 bits


def test_the_refused_commands_are_the_creating_btrfs_ioctls() -> None:
    v1 = {btrfsio._ioc(btrfsio._W, nr, 4096) for nr in (1, 14)}  # SNAP_CREATE, SUBVOL_CREATE
    assert set(seccomp.DENY_IOCTL) == v1 | {btrfsio.IOC_SNAP_CREATE_V2, btrfsio.IOC_SUBVOL_CREATE_V2}


def test_other_calls_keep_their_verdicts() -> None:
    program = seccomp.build("x86_64")
    ioctl, umount2 = X86_64.numbers["ioctl"], X86_64.numbers["umount2"]
    for cmd in (0x5401, btrfsio.IOC_SYNC, btrfsio.IOC_INO_LOOKUP, btrfsio.IOC_SUBVOL_GETFLAGS):  # TCGETS...
        assert run(program, ioctl, (3, cmd, 0)) == ALLOW
    assert run(program, umount2, (0, 1)) == eperm()  # MNT_FORCE
    assert run(program, umount2, (0, 0)) == ALLOW
    assert run(program, X86_64.numbers["keyctl"]) == 0x00050000 | errno.ENOSYS
    assert run(program, 39) == ALLOW  # getpid
    assert run(program, 39, arch=0x40000003) == 0x00050000 | errno.ENOSYS  # i386
