"""The whole suite: host tiers with pytest, then the vm tier inside QEMU.

    python -m tests.run            every tier; a closing line "ctpanel: N passed, N failed"
    python -m tests.run ARGS...    pytest ARGS on the host only (one file, -k, -m ...)

`./ctl test` calls this after starting the test services and the static checks.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
HOST_TIERS = ("unit", "kernel", "integration", "browser")


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def add(self, other: Counts) -> None:
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped


def junit_counts(path: Path) -> Counts:
    """Passed, failed (failures and errors) and skipped cases of a pytest JUnit XML file."""
    root = ET.parse(path).getroot()  # noqa: S314 - our own pytest's output
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = Counts()
    for suite in suites:
        total = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        counts.add(Counts(total - failed - skipped, failed, skipped))
    return counts


def run_host(junit: Path) -> int:
    env_require = {"CTPANEL_REQUIRE_TIERS": ",".join(HOST_TIERS)}
    argv = [sys.executable, "-m", "pytest", "-m", "not vm", f"--junit-xml={junit}", "-p", "no:cacheprovider"]
    return subprocess.call(argv, cwd=TOP, env={**os.environ, **env_require})


def run_vm(junit: Path) -> int:
    if not (TOP / "tests" / "vmhost" / "__main__.py").exists():
        print("ctpanel: the vm tier is not part of this tree yet", file=sys.stderr)
        junit.write_text('<testsuite name="vm" tests="0" failures="0" errors="0" skipped="0"/>')
        return 0
    return subprocess.call([sys.executable, "-m", "tests.vmhost", "--junit-xml", str(junit)], cwd=TOP)


def remove_empty_cgroups(run: str) -> None:
    """This run's cgroup prefixes (`ctpanel-test-<run>` and the suffixed ones of extra test nodes),
    once the tests have left them empty: rmdir only, so a VPS a test failed to stop stays visible."""
    for hierarchy in Path("/sys/fs/cgroup").glob("*"):
        for prefix in [*hierarchy.glob(f"ctpanel-test-{run}"), *hierarchy.glob(f"ctpanel-test-{run}-*")]:
            for directory in sorted((p for p in prefix.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    directory.rmdir()
            with contextlib.suppress(OSError):
                prefix.rmdir()


def main(argv: list[str]) -> int:
    try:
        return _main(argv)
    finally:
        if os.environ.get("CTPANEL_TEST_RUN"):
            remove_empty_cgroups(os.environ["CTPANEL_TEST_RUN"])


def _main(argv: list[str]) -> int:
    if argv:
        return subprocess.call([sys.executable, "-m", "pytest", *argv], cwd=TOP)
    total = Counts()
    status = 0
    with tempfile.TemporaryDirectory(prefix="ctpanel-junit-") as tmp:
        for name, runner in (("host tiers", run_host), ("vm tier", run_vm)):
            junit = Path(tmp, f"{name.replace(' ', '-')}.xml")
            code = runner(junit)
            if not junit.exists():
                print(f"ctpanel: the {name} produced no results (exit {code})", file=sys.stderr)
                total.failed += 1
                status = status or code or 1
                continue
            counts = junit_counts(junit)
            total.add(counts)
            if code != 0 or counts.failed:
                status = status or code or 1
    if total.skipped:
        print(f"ctpanel: {total.skipped} tests were skipped; every tier must run in CI", file=sys.stderr)
        status = status or 1
    print(f"ctpanel: {total.passed} passed, {total.failed} failed")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
