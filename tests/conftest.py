"""Tiers, and the services the integration and browser tiers share.

Every test belongs to exactly one tier (a marker; unmarked tests are
`unit`). A tier that cannot run here fails with a message that says what
is missing; nothing is skipped silently.
"""

from __future__ import annotations

import os
import shutil

import pytest

TIERS = ("unit", "kernel", "integration", "browser", "vm")
CHROMIUM = "/usr/bin/chromium"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        tiers = [m.name for m in item.iter_markers() if m.name in TIERS]
        if not tiers:
            item.add_marker(pytest.mark.unit)
        elif len(set(tiers)) > 1:
            raise pytest.UsageError(f"{item.nodeid} is marked for several tiers: {sorted(set(tiers))}")
    # Cheap tiers first; the browser tier last: Playwright's sync API keeps an event
    # loop running in the main thread until its session ends (pyroute2 needs its own).
    order = {tier: n for n, tier in enumerate(TIERS)}
    items.sort(key=lambda item: order[next(m.name for m in item.iter_markers() if m.name in TIERS)])


def pytest_collection_finish(session: pytest.Session) -> None:
    selected = {m.name for item in session.items for m in item.iter_markers() if m.name in TIERS}
    problems = []
    if "kernel" in selected and os.geteuid() != 0:
        problems.append("the kernel tier needs root: run `sudo ./ctl test`")
    if {"integration", "browser"} & selected and not os.environ.get("CTPANEL_TEST_NODE_ENV"):
        problems.append("the integration and browser tiers need the test services: run them through "
                        "`./ctl test [pytest args]`, which starts PostgreSQL and Redis for tests")
    if "browser" in selected and not shutil.which(CHROMIUM):
        problems.append(f"the browser tier needs Debian's chromium at {CHROMIUM}: run `./ctl test`, "
                        "which installs it")
    required = [t for t in os.environ.get("CTPANEL_REQUIRE_TIERS", "").split(",") if t]
    problems += [f"no test of the {tier} tier was collected" for tier in required if tier not in selected]
    if problems:
        raise pytest.UsageError("\n".join(problems))


def pytest_configure(config: pytest.Config) -> None:
    # Django-dependent fixtures live in tests.services; the vm tier runs
    # without pytest-django and must not import them.
    if config.pluginmanager.has_plugin("django"):
        config.pluginmanager.import_plugin("tests.services")

