"""Every command that docker-compose.yml, the Dockerfile and the systemd units name exists here."""

from __future__ import annotations

import importlib.util
import itertools
import shlex
import sys
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
INSTALL_DIR = "/opt/ctpanel"
UNITS = sorted((TOP / "deploy" / "systemd").glob("*.service"))


def check_command(argv: list[str]) -> list[str]:
    """What is wrong with one command line of ours (empty when it would run)."""
    problems = []
    program = argv[0]
    if program.startswith(INSTALL_DIR + "/"):
        program = str(TOP / program[len(INSTALL_DIR) + 1:])
    path = Path(program) if "/" in program else VENV_BIN / program
    if not path.exists():
        problems.append(f"program {argv[0]} does not exist ({path})")
    for flag, value in itertools.pairwise(argv):
        if flag in ("-A", "-m") and importlib.util.find_spec(value) is None:
            problems.append(f"module {value} does not exist")
        if value.startswith(INSTALL_DIR + "/") and not (TOP / value[len(INSTALL_DIR) + 1:]).exists():
            problems.append(f"file {value} does not exist")
    for arg in argv[1:]:
        if ":" in arg and arg.split(":")[0].startswith("panel."):
            module, attr = arg.split(":")
            if not hasattr(importlib.import_module(module), attr):
                problems.append(f"{arg} does not exist")
    if "manage.py" in argv[:2] and not (TOP / "manage.py").exists():
        problems.append("manage.py does not exist")
    return problems


def compose_services() -> dict:
    return yaml.safe_load((TOP / "docker-compose.yml").read_text())["services"]


def test_compose_has_the_panel_stack():
    assert {"postgres", "redis", "web", "panel-worker", "beat", "node"} <= set(compose_services())


@pytest.mark.parametrize("name", [n for n, s in compose_services().items() if s.get("image", "").startswith("ctpanel")
                                  or "build" in s])
def test_compose_commands_exist(name):
    command = compose_services()[name]["command"]
    command = [part.replace("${CTPANEL_NODE_NAME:-eval}", "eval") for part in command]
    assert check_command(command) == []


def test_compose_says_the_node_service_is_for_evaluation_only():
    text = (TOP / "docker-compose.yml").read_text()
    assert "evaluation only" in text.lower() and "restarts" in text


def unit_commands(unit: Path) -> list[list[str]]:
    commands = []
    for line in unit.read_text().splitlines():
        key, _, value = line.partition("=")
        if key in ("ExecStart", "ExecStartPre"):
            commands.append(shlex.split(value.replace("${CTPANEL_NODE_NAME}", "n1")))
    return commands


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_unit_commands_exist(unit):
    commands = unit_commands(unit)
    assert commands, f"{unit.name} starts nothing"
    for argv in commands:
        assert check_command(argv) == [], unit.name


def test_node_unit_keeps_vpss_alive_across_restarts():
    text = (TOP / "deploy/systemd/ctpanel-node-worker.service").read_text()
    assert "Delegate=yes" in text and "KillMode=process" in text


def test_panel_units_run_unprivileged():
    for unit in UNITS:
        if "node" not in unit.name:
            assert "User=ctpanel" in unit.read_text(), unit.name


def test_dockerfile_copies_only_what_exists():
    for line in (TOP / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (TOP / source).exists(), source


def test_check_command_notices_what_is_missing():
    assert check_command(["celery", "-A", "panel.nothing", "worker"]) == ["module panel.nothing does not exist"]
    assert check_command(["no-such-program"])
    assert check_command([f"{INSTALL_DIR}/.venv/bin/python", f"{INSTALL_DIR}/deploy/missing.conf"])
