"""`vzquota` end to end on the guest's stock kernel (this host lacks ext4's quota format).

setlimit by the VPS's own user name, show, stat, the per-user file inside,
and the limit enforced on that user's writes while another user writes on.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from kernel.storage.base import Limits, PoolConfig
from kernel.storage.volumes import QUOTA_DIR, Storage, StorageConfig
from tests.vmhost.test_storage_quota import write_as
from worker.cli import codes, vzquota
from worker.cli.codes import Fail
from worker.cli.config import CliConfig

pytestmark = pytest.mark.vm

MiB = 1 << 20
CTID = 4343


@pytest.fixture
def node(scratch: Path) -> Iterator[tuple[CliConfig, Storage]]:
    top = Path(tempfile.mkdtemp(prefix="vzquota-", dir=scratch))
    config = CliConfig.from_env({"CTPANEL_NODE_NAME": "vm", "CTPANEL_STATE_ROOT": str(top / "state"),
                                 "CTPANEL_CGROUP_PREFIX": "ctpanel-vzquota", "CTPANEL_CONF_DIR": str(top / "conf"),
                                 "CTPANEL_IDMAP_REGISTRY": str(top / "ids.json")})
    store = Storage(config.kernel(), StorageConfig((PoolConfig("img", "image", str(top / "img")),), "img",
                                                   str(top / "backup")))
    store.setup()
    store.save_config()  # as the node worker does: the CLI finds the pool there
    try:
        yield config, store
    finally:
        store.destroy(CTID)
        assert store.leftovers(CTID) == []


def test_vzquota_sets_a_users_limit_by_name_and_the_user_sees_it(node, capsys: pytest.CaptureFixture[str]) -> None:
    config, store = node
    root = store.create(CTID, None, Limits(diskspace=(0, 128 * MiB), quotaugidlimit=4), "img")
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc/passwd"), "w") as fh:
        fh.write("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n")
    for uid in (1000, 1001):
        os.mkdir(os.path.join(root, f"home{uid}"), 0o755)
        os.chown(os.path.join(root, f"home{uid}"), uid, uid)

    assert vzquota.run(["setlimit", str(CTID), "-u", "alice", "--blocks", "1024:2M", "--inodes", "100"], config) == 0
    with pytest.raises(Fail) as refused:  # main() prints it and exits with the code
        vzquota.run(["setlimit", str(CTID), "-u", "bob"], config)
    assert refused.value.code == codes.BAD_VALUE
    capsys.readouterr()
    assert vzquota.run(["show", str(CTID), "-u"], config) == 0
    rows = {line.split()[1]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["1000"][3:5] == ["1024", "2048"] and rows["1000"][6:] == ["100", "100"]

    dirfd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        written, err = write_as(1000, dirfd, "home1000/big")
        assert err == errno.EDQUOT and written <= 2 * MiB
        assert write_as(1001, dirfd, "home1001/big") == (4 * MiB, 0)
    finally:
        os.close(dirfd)

    assert vzquota.run(["publish", str(CTID)], config) == 0
    mine = Path(root) / QUOTA_DIR.lstrip("/") / "user.1000"
    st = mine.stat()
    assert (st.st_uid, st.st_mode & 0o777) == (1000, 0o400)
    lines = mine.read_text().splitlines()
    assert f"bhard={2 * MiB}" in lines and f"bsoft={MiB}" in lines and "ihard=100" in lines
    capsys.readouterr()
    assert vzquota.run(["stat", str(CTID)], config) == 0
    assert "quotaugidlimit 4" in capsys.readouterr().out
