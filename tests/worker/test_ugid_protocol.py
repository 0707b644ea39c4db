"""VpsRequest.ugid_quotas (schema 1.2): the second-level quotas a node makes a volume's."""

import pytest

from worker import protocol


def quota(kind="user", ident=1000, **fields):
    return {"kind": kind, "id": ident, "space_soft": 0, "space_hard": 2**20, "inodes_soft": 0, "inodes_hard": 0,
            **fields}


def request(limit, *quotas):
    return protocol.VpsRequest(task=protocol.TASK_VPS_SET, ctid=101, node="n1", operation_id="op",
                               limits={"quotaugidlimit": limit}, ugid_quotas=list(quotas))


def test_quotas_round_trip_and_an_older_request_has_none():
    sent = request(2, quota(), quota("group", 50, inodes_soft=10, inodes_hard=20))
    assert protocol.VpsRequest.from_dict(sent.to_dict()) == sent
    older = {k: v for k, v in sent.to_dict().items() if k != "ugid_quotas"} | {"schema": "1.1"}
    assert protocol.VpsRequest.from_dict(older).ugid_quotas == []


@pytest.mark.parametrize(("limit", "quotas", "message"), [
    (0, [quota()], "1 user quotas, but quotaugidlimit is 0"),
    (1, [quota(ident=1), quota(ident=2)], "2 user quotas"),
    (2, [quota(), quota()], "user 1000 appears twice"),
    (1, [quota(kind="project")], "kind must be user or group"),
    (1, [quota(ident=65536)], "0..65535"),
    (1, [quota(ident=-1)], "non-negative"),
    (1, [quota(space_hard=True)], "non-negative integer"),
    (1, [quota(space_soft=2**21)], "space_soft: more than space_hard"),
    (1, [{**quota(), "extra": 1}], "exactly kind, id"),
    (1, ["user 1000"], "exactly kind, id"),
])
def test_bad_quotas_are_refused(limit, quotas, message):
    with pytest.raises(protocol.ProtocolError, match=message):
        request(limit, *quotas)


def test_a_soft_limit_alone_and_one_id_of_each_kind_are_fine():
    assert len(request(1, quota(space_soft=5, space_hard=0), quota("group")).ugid_quotas) == 2
