"""Safe reads and writes inside a VPS volume from the host (SECURITY.md "Writing into a
customer's files"): planted symlinks, FIFOs and swapped directories never reach the host."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from kernel import vpsfiles
from kernel.errors import InvalidArgument, KernelError

# -- pure validation ----------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("name", ["a", "web1", "web-1.example.com", "x" * 63, ".".join(["a" * 63] * 3)])
def test_good_hostnames(name):
    assert vpsfiles.check_hostname(name) == name


@pytest.mark.unit
@pytest.mark.parametrize(
    "name",
    ["", "-a", "a-", "a..b", "a.", "a_b", "x" * 64, ".".join(["a" * 63] * 4), "a\nb", "a\0", "ä.com", "a b"],
)
def test_bad_hostnames(name):
    with pytest.raises(InvalidArgument):
        vpsfiles.check_hostname(name)


@pytest.mark.unit
def test_hosts_keeps_customer_lines_and_replaces_its_block():
    first = vpsfiles.render_hosts("10.0.0.5 db\n", "web1.example.com")
    assert "127.0.1.1\tweb1.example.com web1" in first and "10.0.0.5 db" in first
    second = vpsfiles.render_hosts(first, "web2")
    assert "web1" not in second and "127.0.1.1\tweb2" in second
    assert second.count("10.0.0.5 db") == 1


@pytest.mark.unit
def test_resolv_conf_validates_every_value():
    text = vpsfiles.render_resolv_conf(["198.51.100.53", "2001:db8::53"], ["example.com"])
    assert text.splitlines()[1:] == ["search example.com", "nameserver 198.51.100.53", "nameserver 2001:db8::53"]
    for servers, search in ((["198.51.100.53\nnameserver 1.1.1.1"], []), (["evil"], []), ([], ["a\nb"])):
        with pytest.raises(InvalidArgument):
            vpsfiles.render_resolv_conf(servers, search)


# -- against a real directory (root: the files are chowned) --------------------------------------


@pytest.fixture
def volume(tmp_path):
    """A VPS-like root beside host canary files it must never reach."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    canary = tmp_path / "canary"
    canary.write_text("host secret\n")
    return root, canary


def write_all(root) -> None:
    with vpsfiles.VpsRoot(str(root)) as vps:
        vpsfiles.write_hostname(vps, "web1.example.com")
        vpsfiles.write_hosts(vps, "web1.example.com")
        vpsfiles.write_resolv_conf(vps, ["198.51.100.53"])


@pytest.mark.kernel
def test_writes_are_atomic_owned_and_moded(volume):
    root, _ = volume
    write_all(root)
    st = os.stat(root / "etc/hostname")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, 0, 0o644)
    assert (root / "etc/hostname").read_text() == "web1.example.com\n"
    assert sorted(os.listdir(root / "etc")) == ["hostname", "hosts", "resolv.conf"]


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["absolute", "dotdot", "proc-root"])
def test_planted_symlinks_never_reach_the_host(volume, how):
    root, canary = volume
    target = {"absolute": str(canary), "dotdot": "../../canary", "proc-root": f"/proc/1/root{canary}"}[how]
    for name in ("hostname", "hosts", "resolv.conf"):
        os.symlink(target, root / "etc" / name)
    write_all(root)
    assert canary.read_text() == "host secret\n"
    assert not (root / "etc/hostname").is_symlink()


@pytest.mark.kernel
def test_symlinked_parent_resolves_inside_the_root(volume, tmp_path):
    root, canary = volume
    (root / "etc").rmdir()
    os.symlink(str(tmp_path), root / "etc")  # /etc -> host dir, absolute
    (root / str(tmp_path).lstrip("/")).mkdir(parents=True)
    write_all(root)
    assert canary.read_text() == "host secret\n"
    assert not (tmp_path / "hostname").exists()
    assert (root / str(tmp_path).lstrip("/") / "hostname").exists()


@pytest.mark.kernel
def test_fifo_neither_hangs_nor_is_read(volume):
    root, _ = volume
    os.mkfifo(root / "etc/hosts")
    os.mkfifo(root / "etc/resolv.conf")
    started = time.monotonic()
    with vpsfiles.VpsRoot(str(root)) as vps:
        with pytest.raises(InvalidArgument):
            vps.read("/etc/hosts")
        write_all(root)
    assert time.monotonic() - started < 5
    assert (root / "etc/hosts").is_file()


@pytest.mark.kernel
def test_directory_swapped_for_a_symlink_in_a_loop(volume, tmp_path):
    root, canary = volume
    outside = tmp_path / "outside"
    outside.mkdir()
    stop = threading.Event()

    def swap() -> None:
        real, link = root / "etc", root / "etc.link"
        spare = root / "etc.real"
        while not stop.is_set():
            try:
                os.symlink(str(outside), link)
                os.rename(real, spare)
                os.rename(link, real)
                os.rename(real, link)
                os.rename(spare, real)
                os.unlink(link)
            except OSError:
                pass

    thread = threading.Thread(target=swap)
    thread.start()
    try:
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            with contextlib.suppress(KernelError):  # refusing is fine; writing outside is not
                write_all(root)
    finally:
        stop.set()
        thread.join()
    assert os.listdir(outside) == []
    assert canary.read_text() == "host secret\n"


@pytest.mark.kernel
def test_read_refuses_big_and_special_files(volume):
    root, _ = volume
    (root / "etc/big").write_bytes(b"x" * 100)
    os.symlink("/etc/passwd", root / "etc/link")
    with vpsfiles.VpsRoot(str(root)) as vps:
        assert vps.read("/etc/big", limit=100) == b"x" * 100
        with pytest.raises(KernelError):
            vps.read("/etc/big", limit=99)
        with pytest.raises(InvalidArgument):
            vps.read("/etc/link")
        with pytest.raises(InvalidArgument):
            vps.write("/etc/", "x")
        with pytest.raises(InvalidArgument):
            vps.write("/etc/a\nb", "x")
        (root / "etc/dir").mkdir()
        with pytest.raises(InvalidArgument):
            vps.write("/etc/dir", "x")


@pytest.mark.kernel
def test_makedirs_stays_inside(volume, tmp_path):
    root, _ = volume
    os.symlink(str(tmp_path / "escape"), root / "var")
    with vpsfiles.VpsRoot(str(root)) as vps:
        with pytest.raises(KernelError):
            vps.makedirs("/var/lib/x")  # the dangling link's target is looked up inside: absent
        (root / str(tmp_path / "escape").lstrip("/")).mkdir(parents=True)
        vps.makedirs("/var/lib/x")
    assert not (tmp_path / "escape").exists()
    assert (root / str(tmp_path / "escape").lstrip("/") / "lib/x").is_dir()
