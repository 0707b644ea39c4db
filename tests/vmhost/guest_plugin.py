"""pytest plugin loaded inside the VM (`-p tests.vmhost.guest_plugin`).

It records, as they happen, which tests were collected and which finished,
in the results share, so the host can tell "failed" from "never ran" even
when the guest dies before pytest writes its JUnit file. On a default run
(no paths given) it collects only modules whose source says `mark.vm`,
so host-only test modules are never imported inside the VM.
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

import pytest

COLLECTED = "collected.json"
PROGRESS = "progress.jsonl"


def _results() -> Path | None:
    d = os.environ.get("CTPANEL_VM_RESULTS")
    return Path(d) if d else None


def _append(record: dict) -> None:
    results = _results()
    if results is None:
        return
    with open(results / PROGRESS, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return None  # paths or node ids given explicitly: collect what was asked
    if collection_path.is_dir() or collection_path.suffix != ".py":
        return None
    name = collection_path.name
    if name == "conftest.py" or not any(
        fnmatch.fnmatch(name, pat) for pat in config.getini("python_files")
    ):
        return None
    try:
        source = collection_path.read_text(errors="replace")
    except OSError:
        return None
    return "mark.vm" not in source or None


def pytest_collection_finish(session: pytest.Session) -> None:
    results = _results()
    if results is None:
        return
    tmp = results / (COLLECTED + ".tmp")
    tmp.write_text(json.dumps([item.nodeid for item in session.items]) + "\n")
    tmp.rename(results / COLLECTED)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _append({"nodeid": report.nodeid, "when": report.when, "outcome": report.outcome})


def pytest_runtest_logfinish(nodeid: str) -> None:
    _append({"nodeid": nodeid, "finished": True})


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _append({"sessionfinish": int(exitstatus)})
