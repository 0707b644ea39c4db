"""vzctl create --layout, vzctl set --diskspace/--diskinodes/--quotaugidlimit, vzlist's disk columns
and vzquota, on a node whose storage.json names a btrfs and an image pool (real VPSs)."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator

import pytest

from kernel.errors import KernelError
from kernel.runtime import Runtime
from kernel.storage.base import Limits, PoolConfig
from kernel.storage.volumes import Storage, StorageConfig
from tests.kernel import leftovers
from tests.kernel.storage.conftest import btrfs_mount  # noqa: F401 - the session's loop-file btrfs
from tests.worker.cli.conftest import _next_ctid, stdin_from
from worker.cli import conf, vzctl, vzlist, vzquota
from worker.cli.config import CliConfig

pytestmark = pytest.mark.kernel

MiB = 1 << 20
Run = Callable[..., tuple[int, str, str]]


@pytest.fixture(scope="module")
def disk_env(cli_env: dict[str, str], btrfs_mount: str) -> Iterator[dict[str, str]]:  # noqa: F811
    """The CLI's node with pools: `default` (dir, the node default), `fast` (btrfs), `img` (image)."""
    top = tempfile.mkdtemp(prefix="ctpanel-cli-disk-")
    env = {**cli_env, "CTPANEL_STATE_ROOT": os.path.join(top, "state"), "CTPANEL_CONF_DIR": os.path.join(top, "conf")}
    node = CliConfig.from_env(env).kernel()
    config = StorageConfig(
        pools=(PoolConfig("default", "dir", node.private_dir),
               PoolConfig("fast", "btrfs", os.path.join(btrfs_mount, "cli")),
               PoolConfig("img", "image", os.path.join(top, "img"), {"default_size": str(64 * MiB)})),
        default="default",
        backup_dir=os.path.join(top, "backup"),
    )
    storage = Storage(node, config)
    storage.setup()
    storage.save_config()  # what the node worker does at start; the CLI reads it
    try:
        yield env
    finally:
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def disk_runtime(disk_env: dict[str, str]) -> Runtime:
    rt = Runtime(CliConfig.from_env(disk_env).kernel())
    rt.templates.ensure_busybox()
    return rt


@pytest.fixture
def drun(disk_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> Run:
    """drun("vzctl"|"vzlist"|"vzquota", *args) -> (exit code, stdout, stderr) on the pooled node."""
    for key, value in disk_env.items():
        monkeypatch.setenv(key, value)

    def call(program: str, *args: str) -> tuple[int, str, str]:
        capfd.readouterr()
        main = {"vzctl": vzctl.main, "vzlist": vzlist.main, "vzquota": vzquota.main}[program]
        with stdin_from(b""):
            code = main(list(args))
        sys.stdout.flush()
        out, err = capfd.readouterr()
        return code, out, err

    return call


@pytest.fixture
def ctid(disk_runtime: Runtime) -> Iterator[int]:
    number = next(_next_ctid)
    yield number
    leftovers.force_remove(disk_runtime, number)
    with contextlib.suppress(KernelError):
        disk_runtime.storage.destroy(number)
    assert leftovers.of(disk_runtime, number) == []
    assert disk_runtime.storage.leftovers(number) == []


def columns(drun: Run, ctid: int, fields: str) -> list[str]:
    code, out, err = drun("vzlist", "-H", "-o", fields, str(ctid))
    assert code == 0, err
    return out.split()


def sh(rt: Runtime, ctid: int, script: str) -> tuple[int, str]:
    result = rt.exec(ctid, ["sh", "-c", script], timeout=120)
    return result.returncode, (result.stdout + result.stderr).decode()


def test_btrfs_layout_limits_live_and_saved(drun: Run, ctid: int, disk_runtime: Runtime, disk_env) -> None:
    code, _, err = drun("vzctl", "create", str(ctid), "--ostemplate", "busybox", "--layout", "btrfs",
                        "--diskspace", "64M", "--diskinodes", "100000:120000")
    assert code == 0, err
    assert columns(drun, ctid, "layout,diskspace.s,diskspace.h,diskinodes.s,diskinodes.h") == [
        "fast/btrfs", "65536", "65536", "100000", "120000"]
    values = conf.read_ct_conf(disk_env["CTPANEL_CONF_DIR"], ctid)
    saved = (values["DISKSPACE"], values["DISKINODES"], values["QUOTAUGIDLIMIT"])
    assert saved == ("65536:65536", "100000:120000", "0")
    driver = disk_runtime.storage.pool("fast")
    assert driver.qgroup(ctid)[2] == 64 * MiB

    assert drun("vzctl", "start", str(ctid))[0] == 0
    code, _, err = drun("vzctl", "set", str(ctid), "--diskspace", "20480:32M", "--save")
    assert code == 0, err
    assert driver.qgroup(ctid)[2] == 32 * MiB  # applied while running
    assert conf.read_ct_conf(disk_env["CTPANEL_CONF_DIR"], ctid)["DISKSPACE"] == "20480:32768"
    code, out = sh(disk_runtime, ctid, "dd if=/dev/zero of=/fill bs=1M count=48")
    assert code != 0 and "Disk quota exceeded" in out
    used = int(columns(drun, ctid, "diskspace")[0])
    assert 16 * 1024 < used <= 33 * 1024

    code, _, err = drun("vzctl", "set", str(ctid), "--quotaugidlimit", "5")
    assert code == 62 and "btrfs has no user/group quota" in err
    assert drun("vzctl", "set", str(ctid), "--diskspace", "32M:16M")[0] == 21
    assert drun("vzctl", "set", str(ctid), "--diskspace", "lots")[0] == 21
    assert driver.qgroup(ctid)[2] == 32 * MiB  # refused changes left it alone
    code, _, err = drun("vzctl", "set", str(ctid), "--diskspace", "unlimited")
    assert code == 0, err
    assert driver.qgroup(ctid)[2] == 0 and columns(drun, ctid, "diskspace.h") == ["unlimited"]


def test_image_grow_shrink_and_refusals(drun: Run, ctid: int, disk_runtime: Runtime) -> None:
    code, _, err = drun("vzctl", "create", str(ctid), "--ostemplate", "busybox", "--layout", "img",
                        "--diskspace", "64M", "--diskinodes", "4096")
    assert code == 0, err
    assert columns(drun, ctid, "layout,diskinodes.h") == ["img/image", "4096"]
    assert drun("vzctl", "start", str(ctid))[0] == 0
    code, out = sh(disk_runtime, ctid, "df -k / | tail -n 1")
    assert code == 0 and 48 * 1024 < int(out.split()[1]) <= 64 * 1024
    inodes = int(columns(drun, ctid, "diskinodes")[0])
    assert 0 < inodes < 4096

    code, _, err = drun("vzctl", "set", str(ctid), "--diskspace", "48M")
    assert code == 62 and "stopped" in err  # ext4 shrinks offline only
    code, _, err = drun("vzctl", "set", str(ctid), "--diskspace", "96M")
    if code != 0:  # this host's root lacks CAP_SYS_RESOURCE: no online grow (the vm tier has it)
        assert code == 62 and "CAP_SYS_RESOURCE" in err
    sh(disk_runtime, ctid, "dd if=/dev/urandom of=/data bs=1M count=40")
    assert drun("vzctl", "stop", str(ctid))[0] == 0

    code, _, err = drun("vzctl", "set", str(ctid), "--diskspace", "24M")
    assert code == 62 and "does not fit" in err
    code, _, err = drun("vzctl", "set", str(ctid), "--diskspace", "128M")
    assert code == 0, err
    code, _, err = drun("vzctl", "set", str(ctid), "--diskspace", "100M")
    assert code == 0, err
    assert drun("vzctl", "start", str(ctid))[0] == 0
    code, out = sh(disk_runtime, ctid, "df -k / | tail -n 1; ls -l /data")
    assert code == 0 and 80 * 1024 < int(out.split()[1]) <= 100 * 1024 and "41943040" in out
    assert columns(drun, ctid, "diskspace.h") == [str(100 * 1024)]


def test_layout_choice_and_node_default(drun: Run, ctid: int, disk_runtime: Runtime) -> None:
    code, _, err = drun("vzctl", "create", str(ctid), "--ostemplate", "busybox", "--layout", "zfs")
    assert code == 21 and "no such pool or driver" in err
    assert disk_runtime.registry.find(ctid) is None and disk_runtime.storage.find(ctid) is None
    assert drun("vzctl", "create", str(ctid), "--ostemplate", "busybox")[0] == 0
    assert columns(drun, ctid, "layout") == ["default/dir"]


def test_vzquota_first_level_and_second_level_off(drun: Run, ctid: int) -> None:
    assert drun("vzquota", "stat", str(ctid))[0] == 43
    code, _, err = drun("vzctl", "create", str(ctid), "--ostemplate", "busybox", "--layout", "fast",
                        "--diskspace", "50M:60M")
    assert code == 0, err
    code, out, err = drun("vzquota", "stat", str(ctid))
    assert code == 0, err
    blocks = out.splitlines()[1].split()
    assert blocks[0] == "1k-blocks" and int(blocks[1]) > 0 and blocks[2:] == [str(50 * 1024), str(60 * 1024)]
    code, _, err = drun("vzquota", "setlimit", str(ctid), "-u", "root", "--blocks", "1M")
    assert code == 67 and "--quotaugidlimit" in err
    assert drun("vzquota", "setlimit", str(ctid))[0] == 20


def test_sizes_parse_as_openvz_does() -> None:
    from worker.cli import disk

    assert disk.parse_pair("1024", blocks=True) == (MiB, MiB)
    assert disk.parse_pair("1G:2g", blocks=True) == (1 << 30, 2 << 30)
    assert disk.parse_pair("unlimited", blocks=False) == (0, 0)
    assert disk.parse_pair("10:unlimited", blocks=False) == (10, 0)
    assert disk.conf_values(Limits(diskspace=(MiB, 0), diskinodes=(5, 7), quotaugidlimit=3)) == {
        "DISKSPACE": "1024:unlimited", "DISKINODES": "5:7", "QUOTAUGIDLIMIT": "3"}
    for bad in ("1X", "-1", "1.5G", ""):
        with pytest.raises(vzctl.Fail):
            disk.parse_size(bad, blocks=True)
    with pytest.raises(vzctl.Fail):
        disk.parse_size("10M", blocks=False)
