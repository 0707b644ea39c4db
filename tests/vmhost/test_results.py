"""Unit tests (host side) for how the vm tier judges a run: collected vs ran vs failed."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.vmhost.results import Run, evaluate, junit_counts, junit_document, load, split_nodeid

A = "tests/vmhost/test_a.py::test_one"
B = "tests/vmhost/test_a.py::TestX::test_two[p-1]"


def junit(tests: int, failures: int = 0, errors: int = 0) -> str:
    cases = "".join(f'<testcase classname="c" name="t{i}" time="0" />' for i in range(tests))
    return (f'<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests">'
            f'<testsuite name="vm" errors="{errors}" failures="{failures}" skipped="0" '
            f'tests="{tests}" time="1.0">{cases}</testsuite></testsuites>')


def progress(*items: tuple[str, str]) -> list[dict]:
    recs: list[dict] = []
    for nodeid, outcome in items:
        recs.append({"nodeid": nodeid, "when": "setup", "outcome": "passed"})
        recs.append({"nodeid": nodeid, "when": "call", "outcome": outcome})
        recs.append({"nodeid": nodeid, "when": "teardown", "outcome": "passed"})
        recs.append({"nodeid": nodeid, "finished": True})
    return recs


def test_all_passed_is_ok_and_junit_kept_verbatim() -> None:
    run = Run(collected=[A, B], progress=progress((A, "passed"), (B, "passed")),
              junit=junit(2), pytest_exit=0)
    verdict = evaluate(run)
    assert verdict.ok
    assert (verdict.collected, verdict.finished, len(verdict.passed)) == (2, 2, 2)
    assert junit_document(run, verdict) == run.junit


def test_a_failed_test_fails_the_tier() -> None:
    run = Run(collected=[A, B], progress=progress((A, "passed"), (B, "failed")),
              junit=junit(2, failures=1), pytest_exit=1)
    verdict = evaluate(run)
    assert not verdict.ok
    assert verdict.failed == [B]
    assert junit_document(run, verdict) == run.junit  # already shows the failure


def test_fewer_ran_than_collected_fails_even_without_failures() -> None:
    # The guest died after A: no JUnit file, no pytest exit status.
    run = Run(collected=[A, B], progress=progress((A, "passed")))
    verdict = evaluate(run)
    assert not verdict.ok
    assert verdict.not_run == [B]
    doc = junit_document(run, verdict)
    counts = junit_counts(doc)
    assert counts["tests"] == 3  # A, B as an error, and the tier-level error
    assert counts["errors"] == 2
    root = ET.fromstring(doc)  # noqa: S314 - built by the code under test
    names = {(c.get("classname"), c.get("name")) for c in root.iter("testcase")}
    assert ("tests.vmhost.test_a.TestX", "test_two[p-1]") in names


def test_not_run_tests_are_added_to_an_existing_junit() -> None:
    # e.g. pytest stopped early (-x, or a crash inside a test) but still wrote its file.
    run = Run(collected=[A, B], progress=progress((A, "passed")), junit=junit(1), pytest_exit=0)
    verdict = evaluate(run)
    assert not verdict.ok
    assert junit_counts(junit_document(run, verdict))["errors"] == 2


def test_a_skipped_test_fails_the_tier() -> None:
    run = Run(collected=[A], progress=progress((A, "skipped")), junit=junit(1), pytest_exit=0)
    verdict = evaluate(run)
    assert verdict.skipped == [A]
    assert not verdict.ok


def test_zero_collected_fails() -> None:
    run = Run(collected=[], progress=[], junit=junit(0), pytest_exit=5)
    verdict = evaluate(run)
    assert not verdict.ok
    assert any("no vm tests" in p for p in verdict.problems)
    assert junit_counts(junit_document(run, verdict))["errors"] == 1


def test_nothing_came_back_fails() -> None:
    verdict = evaluate(Run(host_problems=["TIMEOUT"]))
    assert not verdict.ok
    assert "TIMEOUT" in verdict.problems
    assert any("never finished collecting" in p for p in verdict.problems)


def test_collection_error_reported_only_by_junit_fails() -> None:
    run = Run(collected=[A], progress=progress((A, "passed")), junit=junit(2, errors=1),
              pytest_exit=2)
    assert not evaluate(run).ok


def test_split_nodeid_matches_pytest_junitxml() -> None:
    assert split_nodeid(A) == ("tests.vmhost.test_a", "test_one")
    assert split_nodeid("t/x.py::C::f[a::b/c]") == ("t.x.C", "f[a::b/c]")


def test_load_tolerates_a_line_cut_short_by_a_crash(tmp_path: Path) -> None:
    (tmp_path / "collected.json").write_text(json.dumps([A, B]))
    lines = [json.dumps(r) for r in progress((A, "passed"))]
    (tmp_path / "progress.jsonl").write_text("\n".join(lines) + '\n{"nodeid": "tes')
    (tmp_path / "junit.xml").write_text("<testsuites><testsu")
    run = load(tmp_path, [])
    assert run.collected == [A, B]
    assert run.junit is None
    verdict = evaluate(run)
    assert verdict.not_run == [B]
    assert not verdict.ok
