"""Pure parts of the VPS data tasks: their protocol fields, and the progress ticker of long ones."""

from __future__ import annotations

import threading

import pytest

from worker import protocol, vpsdata


def request(**fields) -> protocol.VpsRequest:
    return protocol.VpsRequest(**{"node": "n1", "operation_id": "op", "ctid": 101, **fields})


def test_data_tasks_need_their_object_and_take_only_well_formed_names():
    assert request(task=protocol.TASK_VPS_SNAPSHOT, snapshot="before-upgrade").snapshot == "before-upgrade"
    assert request(task=protocol.TASK_VPS_RESTORE, backup="20261128T010203.123456Z").backup
    for fields in ({"task": protocol.TASK_VPS_SNAPSHOT}, {"task": protocol.TASK_VPS_ROLLBACK},
                   {"task": protocol.TASK_VPS_RESTORE}, {"task": protocol.TASK_VPS_REINSTALL},
                   {"task": protocol.TASK_VPS_SNAPSHOT, "snapshot": "../etc"},
                   {"task": protocol.TASK_VPS_SNAPSHOT, "snapshot": "a b"},
                   {"task": protocol.TASK_VPS_RESTORE, "backup": "../../x"},
                   {"task": protocol.TASK_VPS_BACKUP, "keep": -1}, {"task": protocol.TASK_VPS_BACKUP, "keep": True}):
        with pytest.raises(protocol.ProtocolError):
            request(**fields)
    # a 1.1 body read back; a 1.0 reader ignores the new fields (it keeps only what it knows)
    body = request(task=protocol.TASK_VPS_BACKUP, keep=2).to_dict()
    assert body["schema"] == protocol.SCHEMA_VERSION and protocol.VpsRequest.from_dict(body).keep == 2


class Recorder:
    def __init__(self, wanted: int) -> None:
        self.reports: list[tuple[str, int]] = []
        self.enough = threading.Event()
        self.wanted = wanted

    def progress(self, stage: str, percent: int) -> None:
        self.reports.append((stage, percent))
        if len(self.reports) >= self.wanted:
            self.enough.set()


def test_a_long_block_reports_progress_until_it_ends(monkeypatch):
    monkeypatch.setattr(vpsdata, "PROGRESS_SECONDS", 0.01)
    context = Recorder(wanted=3)
    with vpsdata._ticking(context, lambda: ("archive (1 MiB written)", 40)):
        assert context.enough.wait(30)
    count = len(context.reports)
    assert context.reports[0] == ("archive (1 MiB written)", 40)
    assert not any(t.name == "data-progress" for t in threading.enumerate())
    assert len(context.reports) == count
