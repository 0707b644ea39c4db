"""Root's credentials inside a VPS: the password hash in /etc/shadow and the panel's SSH keys.

Written from the host through `vpsfiles.VpsRoot` (every lookup confined to the
VPS root, files replaced atomically, planted symlinks replaced rather than
followed). Only crypt hashes ever reach the node; the panel never sends a
password. The panel's keys live in a marked block of root's authorized_keys,
so keys root added by hand stay.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Sequence

from kernel.errors import InvalidArgument, KernelError
from kernel.vpsfiles import VpsRoot, check_value

SHADOW = "/etc/shadow"
AUTHORIZED_KEYS = "/root/.ssh/authorized_keys"
KEYS_BEGIN = "# ctpanel: keys begin (managed by the panel; edits inside are replaced)"
KEYS_END = "# ctpanel: keys end"


def check_hash(crypt_hash: str) -> str:
    """A crypt(3) hash such as "$6$salt$..." (no ':' or line breaks: it becomes a shadow field)."""
    check_value(crypt_hash, "password hash")
    if not crypt_hash.startswith("$") or ":" in crypt_hash or " " in crypt_hash or len(crypt_hash) > 512:
        raise InvalidArgument("the password hash is not a crypt(3) hash")
    return crypt_hash


def _mode_and_group(root: VpsRoot, path: str, default: tuple[int, int]) -> tuple[int, int]:
    try:
        fd = root.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except KernelError as exc:
        if exc.errno == 2:
            return default
        raise
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_gid > 65535:
        return default
    return stat.S_IMODE(st.st_mode), st.st_gid


def render_shadow(existing: str, crypt_hash: str, *, today: int | None = None) -> str:
    """`existing` with root's password field (and its last-change day) replaced; a root line added if none."""
    check_hash(crypt_hash)
    day = str(int(time.time() // 86400) if today is None else today)
    lines = existing.splitlines()
    for index, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root" and len(fields) >= 2:
            fields[1] = crypt_hash
            if len(fields) >= 3:
                fields[2] = day
            lines[index] = ":".join(fields)
            break
    else:
        lines.insert(0, f"root:{crypt_hash}:{day}:0:99999:7:::")
    return "\n".join(lines) + "\n"


def set_root_password(root: VpsRoot, crypt_hash: str) -> None:
    """Put `crypt_hash` into root's line of /etc/shadow, keeping the file's mode and group."""
    existing = root.read_text(SHADOW, default="")
    mode, gid = _mode_and_group(root, SHADOW, (0o640, 0))
    root.write(SHADOW, render_shadow(existing, crypt_hash), mode=mode, gid=gid)


def render_authorized_keys(existing: str, keys: Sequence[str]) -> str:
    """`existing` with the panel's block holding exactly `keys` (no block when there are none)."""
    for key in keys:
        check_value(key, "SSH key")
    kept, inside = [], False
    for line in existing.splitlines():
        if line == KEYS_BEGIN:
            inside = True
        elif line == KEYS_END:
            inside = False
        elif not inside:
            kept.append(line)
    block = [KEYS_BEGIN, *keys, KEYS_END] if keys else []
    lines = kept + block
    return "\n".join(lines) + "\n" if lines else ""


def set_authorized_keys(root: VpsRoot, keys: Sequence[str]) -> bool:
    """Make the panel's block of root's authorized_keys hold `keys`; True when the file changed."""
    existing = root.read_text(AUTHORIZED_KEYS, default="")
    wanted = render_authorized_keys(existing, keys)
    if wanted == existing:
        return False
    root.makedirs("/root/.ssh", 0o700)
    root.write(AUTHORIZED_KEYS, wanted, mode=0o600)
    return True
