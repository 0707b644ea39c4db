"""`vztmpl`: the node's OS templates (docs/cli.md).

    vztmpl list                             the cached templates with version, init and checksum
    vztmpl import NAME TARBALL [--version V] [--distro D] [--release R] [--arch A]
                  [--init PATH] [--halt-signal SIG] [--reboot-signal SIG] [--network-config STYLE]
    vztmpl remove NAME

`import` takes any rootfs tarball (gzip, xz or plain) with the metadata the runtime uses:
the init to run as PID 1 (it must be in the tarball), the signals that ask that init to halt
and to reboot, and the style of the network files written inside (kernel/net/inside.py).
Every member is scanned before anything is copied (absolute names, `..`, links out of the
root and device nodes are refused: kernel/archive.py). OpenVZ kept such tarballs in
/vz/template/cache; here they live in the node's template cache, with a checksum.
"""

from __future__ import annotations

import signal
import sys
from typing import TYPE_CHECKING

from worker.cli import codes
from worker.cli.codes import Fail
from worker.cli.config import CliConfig

if TYPE_CHECKING:
    import argparse

    from kernel.templates import TemplateCache


def _parser() -> argparse.ArgumentParser:
    import argparse

    from kernel.net.inside import STYLES

    parser = argparse.ArgumentParser(prog="vztmpl", description="OS templates of this ctpanel node.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="the cached templates")
    p = sub.add_parser("import", help="import a rootfs tarball as a template")
    p.add_argument("name")
    p.add_argument("tarball")
    p.add_argument("--version", default="1")
    p.add_argument("--distro", default="")
    p.add_argument("--release", default="")
    p.add_argument("--arch", default="amd64")
    p.add_argument("--init", default="/sbin/init", help="absolute path of PID 1 inside")
    p.add_argument("--halt-signal", default="SIGUSR2", help="what asks the init to halt (busybox: SIGUSR2; "
                   "systemd: SIGRTMIN+4)")
    p.add_argument("--reboot-signal", default="SIGTERM")
    p.add_argument("--network-config", default="none", choices=STYLES)
    sub.add_parser("remove", help="remove a template from the cache").add_argument("name")
    return parser


def check_signal(name: str) -> str:
    """A signal name init understands: SIGxxx or SIGRTMIN+n / SIGRTMAX-n (systemd's halt is SIGRTMIN+4)."""
    base, sign, offset = name.partition("+") if "+" in name else name.partition("-")
    if base in ("SIGRTMIN", "SIGRTMAX") and (not sign or offset.isdigit()):
        value = getattr(signal, base) + (int(offset or 0) if sign == "+" else -int(offset or 0))
        if signal.SIGRTMIN <= value <= signal.SIGRTMAX:
            return name
    elif not sign and name.startswith("SIG") and name in signal.Signals.__members__ and name not in ("SIGKILL",
                                                                                                    "SIGSTOP"):
        return name
    raise Fail(codes.BAD_VALUE, f"Bad signal: {name!r} (a name such as SIGUSR2 or SIGRTMIN+4)")


def _init_in(tarball: str, init: str) -> None:
    """The init must be a file (or a link) in the tarball: a template that cannot boot is refused now,
    not at its first start."""
    import tarfile

    if not init.startswith("/") or ".." in init.split("/") or "\n" in init:
        raise Fail(codes.BAD_VALUE, f"Bad init path: {init!r} (an absolute path inside the VPS)")
    wanted = init.strip("/")
    try:
        with tarfile.open(tarball) as tar:
            names = {member.name.removeprefix("./").strip("/") for member in tar}
    except (OSError, tarfile.TarError) as exc:
        raise Fail(codes.BAD_VALUE, f"Cannot read {tarball}: {exc}") from None
    if wanted not in names:
        raise Fail(codes.BAD_VALUE, f"{tarball} has no {init}: give the template's init with --init")


def _import(cache: TemplateCache, ns: argparse.Namespace) -> int:
    from kernel.templates import TemplateMeta, check_name

    meta = TemplateMeta(name=check_name(ns.name), version=ns.version, checksum="", distro=ns.distro,
                        release=ns.release, arch=ns.arch, init=ns.init, halt_signal=check_signal(ns.halt_signal),
                        reboot_signal=check_signal(ns.reboot_signal), network_config=ns.network_config,
                        source=f"imported from {ns.tarball}")
    _init_in(ns.tarball, ns.init)
    template = cache.add(ns.tarball, meta)
    print(f"Template {meta.name} imported ({template.meta.checksum})")
    return codes.OK


def run(argv: list[str], config: CliConfig) -> int:
    from kernel.templates import TemplateCache, check_name

    try:
        ns = _parser().parse_args(argv)
    except SystemExit as exc:
        return codes.OK if exc.code == 0 else codes.BAD_SYNTAX
    cache = TemplateCache(config.kernel())
    if ns.command == "import":
        return _import(cache, ns)
    if ns.command == "remove":
        if check_name(ns.name) not in cache.names():
            raise Fail(codes.TEMPLATE_NOT_FOUND, f"OS template {ns.name} not found")
        cache.remove(ns.name)
        return codes.OK
    for name in cache.names():
        meta = cache.get(name).meta
        print(f"{meta.name:<16} {meta.version:<10} {meta.init:<16} {meta.halt_signal:<12} {meta.checksum}")
    return codes.OK


def main(argv: list[str] | None = None) -> int:
    return codes.command_main(run, argv)


if __name__ == "__main__":
    sys.exit(main())
