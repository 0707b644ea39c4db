"""Fixtures for the vzctl/vzlist tests: a private node (state, conf dir, cgroup prefix, id window).

The CLI runs in-process (`run`), with fd 0 replaced by what the test feeds it
and fds 1/2 captured; tests that need a real terminal run it as a subprocess
(`CLI_ENV`). Every VPS is made through `ctid`, whose finalizer removes it and
checks that nothing of it is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator

import pytest

from kernel import cgroups
from kernel import syscalls as sc
from kernel.config import DEFAULT_ID_BASE
from kernel.net.config import NetConfig
from kernel.net.network import Network
from kernel.run import run as sh
from kernel.runtime import Runtime
from tests.kernel import leftovers
from worker.cli import vzctl, vzlist, vzubc
from worker.cli.config import CliConfig

# An id window of 16 ranges per session PID, above the kernel tests' windows (tests/kernel/conftest.py).
ID_BASE = DEFAULT_ID_BASE + 700 * 64 * 65536 + (os.getpid() % 250) * 16 * 65536


@pytest.fixture(scope="session")
def cli_env() -> Iterator[dict[str, str]]:
    top = tempfile.mkdtemp(prefix="ctpanel-cli-test-")
    env = {
        "CTPANEL_NODE_NAME": f"cli{os.getpid()}",
        "CTPANEL_STATE_ROOT": os.path.join(top, "state"),
        "CTPANEL_CGROUP_PREFIX": f"ctpanel-cli-{os.getpid()}",
        "CTPANEL_CONF_DIR": os.path.join(top, "conf"),
        "CTPANEL_IDMAP_REGISTRY": os.path.join(top, "idmap", "ranges.json"),
        "CTPANEL_ID_BASE": str(ID_BASE),
        # vzctl builds the node worker's wired runtime: the node's host side is a namespace of the tests.
        "CTPANEL_NET_HOST_NETNS": f"ctpanel-cli-{os.getpid()}",
    }
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)  # inits started by the CLI land here, as under the supervisor
    sh(["ip", "netns", "add", env["CTPANEL_NET_HOST_NETNS"]])
    network = Network(CliConfig.from_env(env).kernel(), NetConfig(host_netns=env["CTPANEL_NET_HOST_NETNS"]))
    try:
        network.setup_node()  # what the node worker does at its start
        yield env
    finally:
        network.teardown_node()
        sh(["ip", "netns", "del", env["CTPANEL_NET_HOST_NETNS"]])
        driver = cgroups.detect(env["CTPANEL_CGROUP_PREFIX"])
        for mount in driver.hierarchies().values():
            path = os.path.join(mount, env["CTPANEL_CGROUP_PREFIX"])
            for sub in sorted((d for d, _, _ in os.walk(path)), key=len, reverse=True):
                with contextlib.suppress(OSError):
                    os.rmdir(sub)
        shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def env(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in cli_env.items():
        monkeypatch.setenv(key, value)
    return cli_env


@pytest.fixture(scope="session")
def cli_runtime(cli_env: dict[str, str]) -> Runtime:
    rt = Runtime(CliConfig.from_env(cli_env).kernel())
    rt.templates.ensure_busybox()
    return rt


_next_ctid = iter(range(5000, 100000))


@pytest.fixture
def ctid(cli_runtime: Runtime, env: dict[str, str]) -> Iterator[int]:
    """A free CTID; whatever the test made with it is removed and checked afterwards."""
    number = next(_next_ctid)
    yield number
    ids = cli_runtime.ids.lookup(number)
    leftovers.force_remove(cli_runtime, number)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(env["CTPANEL_CONF_DIR"], f"{number}.conf"))
    assert leftovers.of(cli_runtime, number, ids.start if ids else None) == []


@contextlib.contextmanager
def stdin_from(data: bytes) -> Iterator[None]:
    """fd 0 reads `data` then EOF (the CLI relays fd 0, never pytest's own stdin)."""
    r, w = os.pipe()
    os.write(w, data)  # small: fits in the pipe buffer
    os.close(w)
    saved = os.dup(0)
    os.dup2(r, 0)
    os.close(r)
    try:
        yield
    finally:
        os.dup2(saved, 0)
        os.close(saved)


@pytest.fixture
def run(env: dict[str, str], capfd: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """run("vzctl"|"vzlist"|"vzubc", *args, stdin=b"") -> (exit code, stdout, stderr)."""

    def call(program: str, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
        capfd.readouterr()
        main = {"vzctl": vzctl.main, "vzlist": vzlist.main, "vzubc": vzubc.main}[program]
        with stdin_from(stdin):
            code = main(list(args))
        sys.stdout.flush()
        out, err = capfd.readouterr()
        return code, out, err

    return call
