"""Tiny static x86_64 programs that make one raw syscall inside a VPS.

A busybox root has no way to call keyctl or `int 0x80` directly and no
compiler is needed here: each probe is a hand-assembled ELF whose exit
status is the low byte of the syscall's negated return value, so a
refusal with errno E exits with E (and success with 0, or 256-ret).
"""

from __future__ import annotations

import struct

_BASE = 0x400000
_EXIT_WITH_NEG_RAX = bytes.fromhex("48f7d8" "4889c7" "b83c000000" "0f05")  # neg rax; exit(rax)
_ZERO_ARGS = bytes.fromhex("31ff" "31f6" "31d2" "4d31d2" "4d31c0" "4d31c9")  # rdi..r9 = 0


def elf(code: bytes) -> bytes:
    ehsize, phsize = 64, 56
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    header += struct.pack(
        "<HHIQQQIHHHHHH", 2, 0x3E, 1, _BASE + ehsize + phsize, ehsize, 0, 0, ehsize, phsize, 1, 0, 0, 0
    )
    total = ehsize + phsize + len(code)
    program = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, total, total, 0x1000)
    return header + program + code


def syscall(nr: int) -> bytes:
    """syscall(nr, 0, 0, 0, 0, 0, 0) through the 64-bit `syscall` instruction."""
    return elf(b"\x48\xc7\xc0" + struct.pack("<i", nr) + _ZERO_ARGS + b"\x0f\x05" + _EXIT_WITH_NEG_RAX)


def int80(nr: int) -> bytes:
    """An i386 system call through `int 0x80` (nr 20 is getpid there)."""
    return elf(b"\xb8" + struct.pack("<I", nr) + b"\xcd\x80" + _EXIT_WITH_NEG_RAX)


X86_64 = {"keyctl": 250, "io_uring_setup": 425, "open_by_handle_at": 304, "init_module": 175,
          "finit_module": 313, "kexec_load": 246, "getpid": 39}
I386_GETPID = 20
