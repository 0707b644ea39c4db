"""Node set-up steps run by `./ctl up` (as root).

    python -m worker.setup sysctl PROFILE   raise the node's sysctls to PROFILE
    python -m worker.setup cgroups          favordynmods on the cgroup2 mount (fast VPS starts and execs)
    python -m worker.setup templates [--with debian-12]
                                            build the busybox OS template, and the named Debian ones
                                            (debootstrap, cached in /var/cache/ctpanel/templates)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kernel import debootstrap, sysctl
from kernel.errors import KernelError


def apply_sysctl(profile_path: Path) -> int:
    try:
        changes = sysctl.raise_to(sysctl.parse_profile(profile_path.read_text()))
    except KernelError as exc:
        print(f"sysctl profile: {exc}", file=sys.stderr)
        return 1
    for change in changes:
        if change.note == "raised":
            print(f"sysctl {change.name}: {change.old} -> {change.new}", file=sys.stderr)
        elif change.note != "kept":
            print(f"sysctl {change.name}: {change.note}", file=sys.stderr)
    return 0


def tune_cgroups() -> int:
    from kernel.cgroups import tuning

    try:
        point = tuning.favor_dynmods()
    except KernelError as exc:
        print(f"cgroups: cannot set {tuning.OPTION}: {exc}", file=sys.stderr)
        return 1
    if point:
        print(f"cgroups: {tuning.OPTION} set on {point}", file=sys.stderr)
    return 0


def build_templates(extra: list[str]) -> int:
    from worker.config import ConfigError, NodeConfig
    from worker.vps import BUSYBOX, ensure_template, runtime

    try:
        config = NodeConfig.from_env()
    except ConfigError as exc:
        print(f"templates: {exc}", file=sys.stderr)
        return 1
    rt = runtime(config)
    for name in [BUSYBOX, *extra]:
        try:
            if name == BUSYBOX:
                ensure_template(rt, BUSYBOX)
            else:
                debootstrap.ensure_debian(rt.templates, name)
        except KernelError as exc:
            print(f"templates: cannot build {name}: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.setup")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("sysctl", help="raise sysctls to the node profile (never lowers)")
    p.add_argument("profile", type=Path)
    sub.add_parser("cgroups", help="set favordynmods on the cgroup2 mount (cgroup migrations without an RCU wait)")
    p = sub.add_parser("templates", help="build the busybox OS template")
    p.add_argument("--with", dest="extra", action="append", default=[], choices=sorted(debootstrap.RELEASES),
                   help="also a Debian template (debootstrap; minutes the first time, then cached)")
    args = parser.parse_args(argv)
    if args.command == "templates":
        return build_templates(args.extra)
    if args.command == "cgroups":
        return tune_cgroups()
    return apply_sysctl(args.profile)


if __name__ == "__main__":
    sys.exit(main())
