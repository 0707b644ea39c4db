"""The node sysctl profile: parsing and raise-only application."""

import subprocess
import sys
from pathlib import Path

import pytest

from kernel import sysctl
from kernel.errors import InvalidArgument

TOP = Path(__file__).resolve().parents[2]


@pytest.fixture
def proc_sys(tmp_path):
    for name, value in {"kernel/pty/max": "4096", "fs/inotify/max_user_instances": "99999"}.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{value}\n")
    return tmp_path


def test_profile_parsing():
    text = "# comment\nkernel.pty.max = 262144\n\n; other\nfs/inotify/max_user_instances=8192 # why\n"
    assert sysctl.parse_profile(text) == {"kernel.pty.max": 262144, "fs.inotify.max_user_instances": 8192}


@pytest.mark.parametrize("line", ["kernel.pty.max", "a.b = x", "../../etc/passwd = 1", "a..b = 1"])
def test_bad_profile_lines_are_refused(line):
    with pytest.raises(InvalidArgument):
        sysctl.parse_profile(line)


def test_values_are_raised_never_lowered(proc_sys):
    changes = sysctl.raise_to(
        {"kernel.pty.max": 262144, "fs.inotify.max_user_instances": 8192, "net.absent.key": 1}, root=str(proc_sys)
    )
    assert [(c.name, c.old, c.new, c.note) for c in changes] == [
        ("kernel.pty.max", 4096, 262144, "raised"),
        ("fs.inotify.max_user_instances", 99999, 99999, "kept"),
        ("net.absent.key", None, None, "absent on this kernel"),
    ]
    assert (proc_sys / "kernel/pty/max").read_text() == "262144\n"


CHILD = """
from kernel import sysctl
wanted = int(sysctl.read("net.core.somaxconn")) + 7
change = sysctl.raise_to({"net.core.somaxconn": wanted})[0]
print(change.note, sysctl.read("net.core.somaxconn"), wanted)
"""


@pytest.mark.kernel
def test_raise_in_a_private_network_namespace():
    """A real /proc/sys write, in a network namespace of the test's own (the host's stays untouched)."""
    host_value = sysctl.read("net.core.somaxconn")
    out = subprocess.run(["unshare", "--net", sys.executable, "-c", CHILD], check=True, capture_output=True,
                         text=True, cwd=TOP).stdout
    note, now, wanted = out.split()
    assert (note, now) == ("raised", wanted)
    assert sysctl.read("net.core.somaxconn") == host_value
