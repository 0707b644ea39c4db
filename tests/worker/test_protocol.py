import pytest

from kernel.ubc.accounting import ROWS
from worker import protocol


def ping(**change):
    body = protocol.PingRequest(node="n1", operation_id="op-1").to_dict()
    return {**body, **change}


def test_request_round_trips_through_json_data():
    request = protocol.PingRequest.from_dict(ping())
    assert request == protocol.PingRequest(node="n1", operation_id="op-1")
    assert request.to_dict()["schema"] == protocol.SCHEMA_VERSION


def test_newer_minor_version_is_read_and_unknown_fields_ignored():
    request = protocol.PingRequest.from_dict(ping(schema="1.9", added_later=True))
    assert request.node == "n1"


@pytest.mark.parametrize("schema", ["2.0", "0.9"])
def test_other_major_version_is_refused_with_a_clear_error(schema):
    with pytest.raises(protocol.UnsupportedSchema, match="upgrade the older"):
        protocol.PingRequest.from_dict(ping(schema=schema))


@pytest.mark.parametrize("schema", [None, "", "1", "one.zero", 1.0])
def test_malformed_schema_is_invalid(schema):
    with pytest.raises(protocol.ProtocolError) as info:
        protocol.PingRequest.from_dict(ping(schema=schema))
    assert info.value.code == protocol.ErrorCode.PROTOCOL_INVALID


def test_missing_and_mistyped_fields_are_refused():
    body = ping()
    del body["node"]
    with pytest.raises(protocol.ProtocolError, match="missing fields node"):
        protocol.PingRequest.from_dict(body)
    with pytest.raises(protocol.ProtocolError, match="operation_id: expected str"):
        protocol.PingRequest.from_dict(ping(operation_id=5))
    with pytest.raises(protocol.ProtocolError, match="expected an object"):
        protocol.PingRequest.from_dict([ping()])


def test_delivery_must_match_what_the_body_names():
    request = protocol.PingRequest.from_dict(ping())
    request.check_delivery(task=protocol.TASK_PING, node="n1", task_id="op-1")
    for task, node, task_id in [("node.destroy", "n1", "op-1"), (protocol.TASK_PING, "n2", "op-1"),
                                (protocol.TASK_PING, "n1", "op-2")]:
        with pytest.raises(protocol.MisroutedMessage):
            request.check_delivery(task=task, node=node, task_id=task_id)


def test_report_status_is_checked():
    with pytest.raises(protocol.ProtocolError, match="unknown status"):
        protocol.Report(operation_id="x", node="n1", status="done")
    report = protocol.Report.from_dict(
        {"schema": "1.0", "operation_id": "x", "node": "n1", "status": "failed", "error_code": "e"}
    )
    assert report.facts == {} and report.log == []


@pytest.mark.parametrize("name", ["local", "node-2", "a", "x" * 32])
def test_valid_node_names(name):
    assert protocol.node_queue(name) == f"node.{name}"


@pytest.mark.parametrize("name", ["", "-a", "a-", "Node", "a_b", "a.b", "x" * 33, "a/b", "a\nb", None])
def test_invalid_node_names(name):
    with pytest.raises(protocol.ProtocolError):
        protocol.validate_node_name(name)


def test_every_error_code_has_a_message_for_people():
    codes = [v for k, v in vars(protocol.ErrorCode).items() if k.isupper() and isinstance(v, str)]
    assert set(codes) == set(protocol.ErrorCode.MESSAGES)


def test_limits_are_checked_by_name_and_value():
    assert protocol.check_limits({"ram": 512 * 2**20, "cpus": 2}) == {"ram": 536870912, "cpus": 2}
    with pytest.raises(protocol.ProtocolError, match="unknown names privvmpages"):
        protocol.check_limits({"privvmpages": 1})
    for bad in (-1, 1.5, "1", True, None):
        with pytest.raises(protocol.ProtocolError, match="non-negative integer"):
            protocol.check_limits({"ram": bad})


def test_usage_batch_samples_are_checked():
    sample = {"ctid": 101, "epoch": "e1", "cpu_ns": 5, "ram_bytes": 1024, "beancounters": {}}
    batch = protocol.UsageBatch.from_dict(
        {"schema": "1.0", "node": "n1", "sent_at": 1.5, "interval": 60, "samples": [sample]}
    )
    assert batch.samples == [sample]
    for bad in ({"ctid": "101", "epoch": "e"}, {"ctid": 101}, {"ctid": 101, "epoch": "e", "cpu_ns": -1},
                {"ctid": 101, "epoch": "e", "net_rx_bytes": 1.5}):
        with pytest.raises(protocol.ProtocolError):
            protocol.UsageBatch(node="n1", sent_at=0, interval=60, samples=[bad])


def test_the_accounting_rows_are_the_kernels() -> None:
    assert set(protocol.ACCOUNTING_ROWS) == set(ROWS)
