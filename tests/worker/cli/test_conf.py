"""CTID.conf and ve-<name>.conf-sample files: format, atomic writes, agreement with vswap.json."""

from __future__ import annotations

import json
import os
import tomllib

import pytest

from worker.cli import conf
from worker.cli.config import SAMPLES, CliConfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def test_samples_are_generated_from_vswap_json_and_match_it(tmp_path) -> None:
    with open(SAMPLES, encoding="utf-8") as fh:
        samples = json.load(fh)["samples"]
    written = conf.ensure_samples(str(tmp_path), SAMPLES)
    assert sorted(os.path.basename(p) for p in written) == sorted(f"ve-{n}.conf-sample" for n in samples)
    for name, sample in samples.items():
        with open(tmp_path / f"ve-{name}.conf-sample", encoding="utf-8") as fh:
            values = conf.parse_conf(fh.read())
        assert conf.limits_from_conf(values) == sample["limits"]
    with open(tmp_path / "ve-vswap-256m.conf-sample", encoding="utf-8") as fh:
        text = fh.read()
    assert 'PHYSPAGES="0:65536"' in text and 'DISKSPACE="2097152:2097152"' in text
    assert conf.ensure_samples(str(tmp_path), SAMPLES) == []  # unchanged: not rewritten


def test_samples_follow_a_changed_file(tmp_path) -> None:
    with open(SAMPLES, encoding="utf-8") as fh:
        data = json.load(fh)
    data["samples"]["vswap-256m"]["limits"]["numproc"] = 77
    changed = tmp_path / "vswap.json"
    changed.write_text(json.dumps(data))
    out = tmp_path / "conf"
    conf.ensure_samples(str(out), SAMPLES)
    assert conf.ensure_samples(str(out), str(changed)) == [str(out / "ve-vswap-256m.conf-sample")]
    values = conf.parse_conf((out / "ve-vswap-256m.conf-sample").read_text())
    assert values["NUMPROC"] == "77:77"


def test_a_sample_missing_a_limit_is_refused(tmp_path) -> None:
    with open(SAMPLES, encoding="utf-8") as fh:
        data = json.load(fh)
    del data["samples"]["vswap-1g"]["limits"]["ram"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="vswap-1g"):
        conf.load_samples(str(bad))


def test_conf_format_round_trip_and_refusals(tmp_path) -> None:
    values = {"HOSTNAME": "a.example.com", "ONBOOT": "no", "PHYSPAGES": "0:unlimited"}
    conf.write_ct_conf(str(tmp_path), 101, values)
    assert conf.read_ct_conf(str(tmp_path), 101) == values
    assert os.listdir(tmp_path) == ["101.conf"]  # no temp file left
    assert conf.limits_from_conf(conf.limits_to_conf(dict.fromkeys(conf.LIMIT_KEYS, 0))) == dict.fromkeys(
        conf.LIMIT_KEYS, 0
    )
    for bad in ('a"b', "a\nb", "a\\b"):
        with pytest.raises(ValueError):
            conf.format_conf({"HOSTNAME": bad}, "")
    with pytest.raises(ValueError):
        conf.parse_conf("HOSTNAME=unquoted\n")


def test_config_from_env_needs_no_broker() -> None:
    config = CliConfig.from_env({})
    assert (config.node, config.state_root) == ("local", "/var/lib/ctpanel/node/local")
    assert config.conf_dir == "/etc/ctpanel/ct"
    config = CliConfig.from_env({"CTPANEL_NODE_NAME": "n1", "CTPANEL_CGROUP_PREFIX": "cp"})
    assert (config.state_root, config.kernel().cgroup_prefix) == ("/var/lib/ctpanel/node/n1", "cp")


def test_console_scripts_are_declared() -> None:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        scripts = tomllib.load(fh)["project"]["scripts"]
    assert scripts["vzctl"] == "worker.cli.vzctl:main"
    assert scripts["vzlist"] == "worker.cli.vzlist:main"
