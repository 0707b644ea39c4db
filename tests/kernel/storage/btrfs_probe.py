"""A static x86_64 program that opens "." and makes one btrfs ioctl on it, for use inside a VPS.

The VPS's busybox has no btrfs tool; this probe does what `btrfs subvolume
create` / `btrfs subvolume snapshot . NAME` would. It exits with the ioctl's
errno (0 on success), or with open's errno. Assembled once with GNU as:

    mov eax, 2; lea rdi, [rip+dot]; mov esi, O_DIRECTORY; xor edx, edx; syscall   # open(".")
    test rax, rax; js done
    mov [rip+args], rax                 # args.fd = that fd (the snapshot's source)
    mov rdi, rax; mov eax, 16; mov esi, CMD; lea rdx, [rip+args]; syscall        # ioctl
    done: neg rax; mov rdi, rax; mov eax, 60; syscall                            # exit(-ret)
    dot: .asciz "."
    args: struct btrfs_ioctl_vol_args(_v2), 4096 bytes
"""

from __future__ import annotations

import struct

from kernel.storage import btrfsio
from tests.kernel import probes

_CODE = bytes.fromhex(
    "b802000000488d3d38000000be0000010031d20f054885c0781d488905250000004889c7b810000000"
    "be44332211488d15110000000f0548f7d84889c7b83c0000000f05"
)
_CMD_AT = 0x2A  # the imm32 of `mov esi, CMD`

#: name -> (ioctl command, offset of name[] in its argument struct)
IOCTLS = {
    "subvol_create": (btrfsio._ioc(btrfsio._W, 14, 4096), 8),
    "subvol_create_v2": (btrfsio.IOC_SUBVOL_CREATE_V2, 56),
    "snap_create": (btrfsio._ioc(btrfsio._W, 1, 4096), 8),
    "snap_create_v2": (btrfsio.IOC_SNAP_CREATE_V2, 56),
}


def program(ioctl: str, name: str) -> bytes:
    cmd, name_at = IOCTLS[ioctl]
    code = bytearray(_CODE)
    struct.pack_into("<I", code, _CMD_AT, cmd)
    args = bytearray(4096)
    args[name_at : name_at + len(name)] = name.encode()
    binary = bytearray(probes.elf(bytes(code) + b".\0" + bytes(args)))
    struct.pack_into("<I", binary, 64 + 4, 7)  # p_flags RWX: the program stores the fd into args
    return bytes(binary)
