"""Root's credentials written into a VPS volume from the host: a customer's planted symlinks stay inside it."""

from __future__ import annotations

import os

import pytest

from kernel import credentials
from kernel.errors import KernelError
from kernel.vpsfiles import VpsRoot

pytestmark = pytest.mark.kernel

HASH = "$6$salt$" + "h" * 86


def volume(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "root").mkdir(mode=0o700)
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\ndaemon:*:19000::::::\n")
    os.chmod(root / "etc" / "shadow", 0o640)
    os.chown(root / "etc" / "shadow", 0, 42)
    outside = tmp_path / "host"
    outside.mkdir()
    return root, outside


def test_password_and_keys_land_in_the_vps_with_modes_kept(tmp_path):
    root, _ = volume(tmp_path)
    with VpsRoot(str(root)) as files:
        credentials.set_root_password(files, HASH)
        assert credentials.set_authorized_keys(files, ["ssh-ed25519 AAAAkey me@home"])
        assert not credentials.set_authorized_keys(files, ["ssh-ed25519 AAAAkey me@home"])  # unchanged
    shadow = root / "etc" / "shadow"
    assert shadow.read_text().splitlines()[0].split(":")[:2] == ["root", HASH]
    assert shadow.read_text().splitlines()[1] == "daemon:*:19000::::::"
    st = shadow.stat()
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o640, 0, 42)
    keys = root / "root" / ".ssh" / "authorized_keys"
    assert "ssh-ed25519 AAAAkey me@home" in keys.read_text().splitlines()
    assert keys.stat().st_mode & 0o777 == 0o600 and (root / "root" / ".ssh").stat().st_mode & 0o777 == 0o700


def test_planted_symlinks_are_resolved_inside_the_vps(tmp_path):
    root, outside = volume(tmp_path)
    (outside / "authorized_keys").write_text("host keys\n")
    (outside / "shadow").write_text("host shadow\n")
    # The customer points root's .ssh at the host's directory (an absolute link, and a ../ one).
    os.symlink(str(outside), root / "root" / ".ssh")
    os.unlink(root / "etc" / "shadow")
    os.symlink("../../../host/shadow", root / "etc" / "shadow")
    with VpsRoot(str(root)) as files:
        # Refused, never followed out of the VPS: a symlinked shadow (O_NOFOLLOW), a .ssh that dangles inside.
        with pytest.raises(KernelError):
            credentials.set_root_password(files, HASH)
        with pytest.raises(KernelError):
            credentials.set_authorized_keys(files, ["ssh-ed25519 AAAAkey me@home"])
    assert (outside / "authorized_keys").read_text() == "host keys\n"
    assert (outside / "shadow").read_text() == "host shadow\n"
    assert sorted(os.listdir(outside)) == ["authorized_keys", "shadow"]
