"""`vztmpl import`: any rootfs tarball becomes a template whose metadata the runtime honours."""

from __future__ import annotations

import os
import tarfile

import pytest

from kernel.runtime import Runtime
from worker.cli import codes, vztmpl
from worker.cli.config import CliConfig

pytestmark = pytest.mark.kernel
ALT_INIT = "#!/bin/busybox sh\nexec /bin/busybox init\n"  # busybox's init, reached by another path


def alt_rootfs(cli_runtime: Runtime, tmp_path) -> str:
    """The busybox template's tree without /sbin/init, booting through /etc/alt-init instead."""
    tree = tmp_path / "tree"
    tree.mkdir()
    cli_runtime.templates.install("busybox", str(tree))
    (tree / "sbin" / "init").unlink()
    (tree / "etc" / "alt-init").write_text(ALT_INIT)
    (tree / "etc" / "alt-init").chmod(0o755)
    tarball = str(tmp_path / "alt.tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(tree, arcname=".")
    return tarball


def vztmpl_run(env: dict[str, str], *args: str) -> int:
    return codes.handled(lambda: vztmpl.run(list(args), CliConfig.from_env(env)))


def test_an_imported_template_boots_through_the_init_it_names(run, ctid: int, env, cli_runtime: Runtime,
                                                               tmp_path, capfd) -> None:
    tarball = alt_rootfs(cli_runtime, tmp_path)
    assert vztmpl_run(env, "import", "alt", tarball) == codes.BAD_VALUE  # no /sbin/init in it: refused now
    assert "has no /sbin/init" in capfd.readouterr().err
    assert vztmpl_run(env, "import", "alt", tarball, "--init", "/etc/alt-init", "--halt-signal", "SIGRTMIN+4",
                      "--version", "2026.11") == codes.OK
    try:
        meta = cli_runtime.templates.verify("alt").meta
        assert (meta.init, meta.halt_signal, meta.version) == ("/etc/alt-init", "SIGRTMIN+4", "2026.11")
        assert run("vzctl", "create", str(ctid), "--ostemplate", "alt")[0] == 0
        assert run("vzctl", "start", str(ctid))[0] == 0
        code, out, _ = run("vzctl", "exec2", str(ctid), "tr '\\0' ' ' < /proc/1/cmdline")
        assert (code, out.split()) == (0, ["/bin/busybox", "init"])  # PID 1 came from /etc/alt-init
        assert not os.path.exists(os.path.join(cli_runtime.volume_path(ctid), "sbin", "init"))
        assert run("vzctl", "stop", str(ctid), "--fast")[0] == 0
        assert run("vzctl", "destroy", str(ctid))[0] == 0
    finally:
        assert vztmpl_run(env, "remove", "alt") == codes.OK
    assert vztmpl_run(env, "remove", "alt") == codes.TEMPLATE_NOT_FOUND


@pytest.mark.parametrize(("args", "message"), [
    (("--halt-signal", "SIGKILL"), "Bad signal"),
    (("--halt-signal", "SIGRTMIN+99"), "Bad signal"),
    (("--init", "../sbin/init"), "Bad init path"),
    (("--init", "/sbin/../../init"), "Bad init path"),
])
def test_bad_metadata_is_refused_and_imports_nothing(env, cli_runtime: Runtime, tmp_path, capfd, args, message):
    tarball = str(tmp_path / "t.tar")
    with tarfile.open(tarball, "w") as tar:
        tar.add(__file__, arcname="sbin/init")
    assert vztmpl_run(env, "import", "bad", tarball, *args) == codes.BAD_VALUE
    assert message in capfd.readouterr().err
    assert "bad" not in cli_runtime.templates.names()
