"""The seccomp program's shape (the behaviour is tested inside VPSs in test_isolation)."""

from __future__ import annotations

import errno
import struct

import pytest

from kernel import seccomp

pytestmark = pytest.mark.unit


def decode(program: bytes) -> list[tuple[int, int, int, int]]:
    return [struct.unpack("<HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]


def test_program_checks_arch_first_and_ends_allowing():
    ins = decode(seccomp.build("x86_64"))
    assert ins[0] == (0x20, 0, 0, 4)
    assert ins[1] == (0x15, 1, 0, 0xC000003E)
    assert ins[2] == (0x06, 0, 0, 0x50000 | errno.ENOSYS)
    assert ins[-1] == (0x06, 0, 0, seccomp.RET_ALLOW)
    assert len(ins) < 4096


def test_every_denied_call_returns_enosys():
    ins = decode(seccomp.build("x86_64"))
    numbers = seccomp.ARCHES["x86_64"].numbers
    for name in ("keyctl", "io_uring_setup", "open_by_handle_at", "init_module", "kexec_load", "bpf"):
        at = ins.index((0x15, 0, 1, numbers[name]))
        assert ins[at + 1] == (0x06, 0, 0, 0x50000 | errno.ENOSYS)


def test_x32_and_forced_umount():
    ins = decode(seccomp.build("x86_64"))
    assert (0x35, 0, 1, 0x40000000) in ins
    at = ins.index((0x15, 0, 3, 166))
    assert ins[at + 2] == (0x45, 0, 1, 1)
    assert ins[at + 3] == (0x06, 0, 0, 0x50000 | errno.EPERM)


def test_aarch64_has_no_x32_check():
    ins = decode(seccomp.build("aarch64"))
    assert (0x35, 0, 1, 0x40000000) not in ins
