"""Judge a vm-tier run and write its JUnit file (pure logic, unit-tested on the host).

The tier passes only when tests were collected, every collected test
finished, none failed, errored or was skipped, and pytest itself exited 0. Tests that
never ran (guest crashed, timeout) are added to the JUnit file as errors,
so a reader of that file alone sees the failure too.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

TIER_CLASSNAME = "tests.vmhost"
TIER_NAME = "vm_tier"


@dataclass
class Run:
    """What came back from the guest; None where nothing came back."""

    collected: list[str] | None = None
    progress: list[dict] = field(default_factory=list)
    junit: str | None = None
    pytest_exit: int | None = None
    host_problems: list[str] = field(default_factory=list)  # timeout, QEMU crash...


@dataclass
class Verdict:
    collected: int
    finished: int
    passed: list[str]
    failed: list[str]
    skipped: list[str]
    not_run: list[str]
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def junit_counts(text: str) -> dict[str, int]:
    """tests/failures/errors/skipped summed over the testsuites of a JUnit document."""
    root = ET.fromstring(text)  # noqa: S314 - our own guest's pytest wrote it
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    for suite in suites:
        for key in counts:
            counts[key] += int(suite.get(key, "0"))
    return counts


def outcomes(progress: list[dict]) -> tuple[list[str], dict[str, str]]:
    """Finished node ids in order, and each test's outcome from its phase reports."""
    finished: list[str] = []
    outcome: dict[str, str] = {}
    for rec in progress:
        nodeid = rec.get("nodeid")
        if nodeid is None:
            continue
        if rec.get("finished"):
            if nodeid not in finished:
                finished.append(nodeid)
            continue
        if rec.get("outcome") == "failed":
            outcome[nodeid] = "failed"
        elif rec.get("outcome") == "skipped" and outcome.get(nodeid) != "failed":
            outcome[nodeid] = "skipped"
        else:
            outcome.setdefault(nodeid, "passed")
    return finished, outcome


def evaluate(run: Run) -> Verdict:
    finished, outcome = outcomes(run.progress)
    collected = run.collected or []
    done = set(finished)
    not_run = [n for n in collected if n not in done]
    passed = [n for n in finished if outcome.get(n) == "passed"]
    failed = [n for n in finished if outcome.get(n) == "failed"]
    skipped = [n for n in finished if outcome.get(n) == "skipped"]
    problems = list(run.host_problems)
    if run.collected is None:
        problems.append("the guest never finished collecting tests")
    elif not collected:
        problems.append("no vm tests were collected")
    if not_run:
        problems.append(f"{len(not_run)} of {len(collected)} collected vm tests did not run: "
                        + ", ".join(not_run))
    if failed:
        problems.append(f"{len(failed)} vm tests failed: " + ", ".join(failed))
    if skipped:  # the project's rule: nothing is skipped silently
        problems.append(f"{len(skipped)} vm tests were skipped: " + ", ".join(skipped))
    if run.junit is None:
        problems.append("the guest's pytest wrote no JUnit file")
    else:
        counts = junit_counts(run.junit)
        if counts["failures"] or counts["errors"]:
            problems.append(f"JUnit reports {counts['failures']} failures and "
                            f"{counts['errors']} errors")
    if run.pytest_exit is None:
        problems.append("the guest's pytest did not exit")
    elif run.pytest_exit != 0:
        problems.append(f"the guest's pytest exited with {run.pytest_exit}")
    return Verdict(len(collected), len(finished), passed, failed, skipped, not_run, problems)


def split_nodeid(nodeid: str) -> tuple[str, str]:
    """(classname, name) as pytest's junitxml derives them from a node id."""
    path, bracket, params = nodeid.partition("[")
    names = path.split("::")
    names[0] = re.sub(r"\.py$", "", names[0].replace("/", "."))
    names[-1] += bracket + params
    return ".".join(names[:-1]), names[-1]


def _error_case(classname: str, name: str, message: str) -> ET.Element:
    case = ET.Element("testcase", classname=classname, name=name, time="0")
    err = ET.SubElement(case, "error", message=message)
    err.text = message
    return case


def _speaks_for_itself(run: Run, verdict: Verdict) -> bool:
    """The guest's JUnit already shows the failure, and nothing else went wrong."""
    assert run.junit is not None
    counts = junit_counts(run.junit)
    return bool(run.collected and not verdict.not_run and not run.host_problems
                and (counts["failures"] or counts["errors"]))


def junit_document(run: Run, verdict: Verdict) -> str:
    """The JUnit XML to hand back: the guest's own, plus error cases for what it lacks."""
    if run.junit is not None:
        root = ET.fromstring(run.junit)  # noqa: S314 - our own guest's pytest wrote it
        suite = root if root.tag == "testsuite" else root.find("testsuite")
        if suite is None:
            suite = ET.SubElement(root, "testsuite", name="vm")
    else:
        root = ET.Element("testsuites")
        suite = ET.SubElement(root, "testsuite", name="vm")
        _, outcome = outcomes(run.progress)
        for nodeid in verdict.passed + verdict.failed + verdict.skipped:
            classname, name = split_nodeid(nodeid)
            case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
            if outcome[nodeid] == "failed":
                ET.SubElement(case, "failure", message="failed (see the guest's console log)")
            elif outcome[nodeid] == "skipped":
                ET.SubElement(case, "skipped", message="skipped")
    added = []
    for nodeid in verdict.not_run:
        classname, name = split_nodeid(nodeid)
        added.append(_error_case(classname, name,
                                 "did not finish: the VM stopped (crash, panic or timeout) before this test ended"))
    if run.junit is not None and (verdict.ok or _speaks_for_itself(run, verdict)):
        return run.junit
    if not verdict.ok:
        # One case that names every problem, so the file alone shows the tier failed.
        added.append(_error_case(TIER_CLASSNAME, TIER_NAME, "; ".join(verdict.problems)))
    for case in added:
        suite.append(case)
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("time", suite.get("time", "0"))
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def load(results: Path, host_problems: list[str]) -> Run:
    """Read what the guest left in the results share."""
    run = Run(host_problems=list(host_problems))
    collected = results / "collected.json"
    if collected.exists():
        run.collected = json.loads(collected.read_text())
    progress = results / "progress.jsonl"
    if progress.exists():
        for line in progress.read_text().splitlines():
            try:
                run.progress.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a crash; what came before counts
    junit = results / "junit.xml"
    if junit.exists() and junit.stat().st_size:
        text = junit.read_text()
        try:
            junit_counts(text)
            run.junit = text
        except ET.ParseError:
            run.host_problems.append("the guest's JUnit file is truncated")
    guest = results / "guest.json"
    if guest.exists():
        try:
            status = json.loads(guest.read_text())
        except json.JSONDecodeError:
            status = {}
        run.pytest_exit = status.get("pytest_exit")
        if status.get("error"):
            run.host_problems.append("the guest's stage 2 failed: "
                                     + status["error"].strip().splitlines()[-1])
    return run
