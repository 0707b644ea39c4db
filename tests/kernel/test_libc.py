"""kernel/libc.py: its types convert, size and align as ctypes' own, and its calls keep errno."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from kernel import libc, seccomp
from kernel import syscalls as sc
from kernel.errors import KernelError
from kernel.storage import loop

pytestmark = pytest.mark.unit

TYPES = ("c_char", "c_ushort", "c_int", "c_uint", "c_long", "c_ulong", "c_uint8", "c_uint32", "c_uint64", "c_void_p",
         "c_size_t")


@pytest.mark.parametrize("name", TYPES)
def test_each_type_is_ctypes_own(name: str) -> None:
    ours, theirs = getattr(libc, name), getattr(ctypes, name)
    assert (libc.sizeof(ours), ctypes.alignment(ours)) == (ctypes.sizeof(theirs), ctypes.alignment(theirs))
    assert ours._type_ == theirs._type_
    if name not in ("c_char", "c_void_p"):
        assert ours(-1).value == theirs(-1).value  # the same wrap-around of a negative value


def test_structures_have_the_kernels_sizes() -> None:
    """The sizes the kernel checks (openat2's and mount_setattr's `size` argument, the loop ioctls)."""
    assert libc.sizeof(sc._OpenHow) == 24
    assert libc.sizeof(sc._MountAttr) == 32
    assert libc.sizeof(loop._LoopInfo64) == 232
    assert libc.sizeof(loop._LoopConfig) == 304
    assert libc.sizeof(seccomp._SockFprog) == 16


def test_a_failing_call_keeps_its_errno_and_a_syscall_returns_a_long() -> None:
    close = libc.function("close")
    assert close(libc.c_int(-1)) == -1 and libc.get_errno() == errno.EBADF
    getpid = libc.function("getpid")
    assert getpid() == os.getpid()
    with pytest.raises(KernelError) as raised:
        sc.setns(-1, 0)
    assert raised.value.errno == errno.EBADF
    assert sc.prlimit(0, 7) == tuple(int(x) for x in __import__("resource").getrlimit(7))


def test_a_seccomp_program_is_copied_whole() -> None:
    program = seccomp.build()
    buffer, fprog = seccomp._fprog(program)
    assert bytes(buffer) == program and fprog.len == len(program) // 8 and fprog.filter == libc.addressof(buffer)
