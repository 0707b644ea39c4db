"""The node's check of console tickets: the panel's signature, node, expiry, single use (pure logic)."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from worker import protocol
from worker.console_relay.tickets import TicketRefused, load_trusted_keys, verify
from worker.keys import generate

NOW = 1_800_000_000.0


@pytest.fixture(scope="module")
def panel_pair():
    return generate("panel")


@pytest.fixture(scope="module")
def keys(panel_pair):
    return [x509.load_pem_x509_certificate(panel_pair[1]).public_key()]


def ticket(**changes) -> protocol.ConsoleTicket:
    fields = dict(ticket_id="t" * 32, user_id=7, username="carol", ctid=101, node="n1", mode="console",
                  expires=NOW + protocol.CONSOLE_TICKET_SECONDS)
    return protocol.ConsoleTicket(**{**fields, **changes})


def signed(key_pem: bytes, t: protocol.ConsoleTicket, *, send: protocol.ConsoleTicket | None = None):
    key = serialization.load_pem_private_key(key_pem, password=None)
    signature = base64.b64encode(key.sign(t.signed_bytes(), padding.PKCS1v15(), hashes.SHA256())).decode()
    return protocol.ConsoleOpen(session="s" * 32, ticket=(send or t).to_dict(), signature=signature, cols=80, rows=24)


def claims():
    used: set[str] = set()

    def claim(ticket_id: str) -> bool:
        if ticket_id in used:
            return False
        used.add(ticket_id)
        return True

    return claim


def test_a_signed_ticket_for_this_node_is_accepted_once(panel_pair, keys):
    claim = claims()
    request = signed(panel_pair[0], ticket())
    assert verify(request, keys, node="n1", claim=claim, now=NOW).ctid == 101
    with pytest.raises(TicketRefused, match="already used"):
        verify(request, keys, node="n1", claim=claim, now=NOW + 1)


def test_expired_and_overlong_tickets_are_refused(panel_pair, keys):
    with pytest.raises(TicketRefused, match="expired"):
        verify(signed(panel_pair[0], ticket()), keys, node="n1", claim=claims(),
               now=NOW + protocol.CONSOLE_TICKET_SECONDS + 0.5)
    with pytest.raises(TicketRefused, match="expired"):  # valid for an hour: not a ticket the panel issues
        verify(signed(panel_pair[0], ticket(expires=NOW + 3600)), keys, node="n1", claim=claims(), now=NOW)


def test_a_ticket_for_another_node_is_refused(panel_pair, keys):
    with pytest.raises(TicketRefused, match="node 'n1', this is 'n2'"):
        verify(signed(panel_pair[0], ticket()), keys, node="n2", claim=claims(), now=NOW)


@pytest.mark.parametrize("change", [{"ctid": 102}, {"user_id": 8}, {"mode": "shell"}, {"expires": NOW + 29}])
def test_a_ticket_changed_after_signing_is_refused(panel_pair, keys, change):
    original = ticket()
    request = signed(panel_pair[0], original, send=dataclasses.replace(original, **change))
    with pytest.raises(TicketRefused, match="not signed by the panel"):
        verify(request, keys, node="n1", claim=claims(), now=NOW)


def test_a_ticket_signed_by_another_key_is_refused(keys):
    other_key, _ = generate("node-n1")  # e.g. a node's own key: nodes cannot issue tickets
    with pytest.raises(TicketRefused, match="not signed by the panel"):
        verify(signed(other_key, ticket()), keys, node="n1", claim=claims(), now=NOW)


def test_malformed_requests_are_refused(panel_pair, keys):
    request = signed(panel_pair[0], ticket())
    with pytest.raises(TicketRefused, match="malformed"):
        verify(dataclasses.replace(request, signature="not base64!"), keys, node="n1", claim=claims(), now=NOW)
    with pytest.raises(TicketRefused, match="malformed"):
        verify(dataclasses.replace(request, ticket={"ctid": 101}), keys, node="n1", claim=claims(), now=NOW)
    with pytest.raises(TicketRefused, match="unknown mode"):
        verify(signed(panel_pair[0], ticket(mode="root")), keys, node="n1", claim=claims(), now=NOW)


def test_a_refused_ticket_is_not_claimed(panel_pair, keys):
    claim = claims()
    good = ticket()
    with pytest.raises(TicketRefused):
        verify(signed(panel_pair[0], good), keys, node="n2", claim=claim, now=NOW)
    assert verify(signed(panel_pair[0], good), keys, node="n1", claim=claim, now=NOW)


def test_the_trust_store_is_a_directory_or_a_file(tmp_path, panel_pair):
    (tmp_path / "panel.crt").write_bytes(panel_pair[1])
    assert len(load_trusted_keys(str(tmp_path))) == 1
    assert len(load_trusted_keys(str(tmp_path / "panel.crt"))) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no RSA certificate"):
        load_trusted_keys(str(empty))


def test_console_sizes_and_session_ids_are_bounded():
    assert protocol.console_size(80, 24) == (80, 24)
    for cols, rows in ((0, 24), (80, 1001), (True, 24), ("80", 24)):
        with pytest.raises(protocol.ProtocolError):
            protocol.console_size(cols, rows)
    with pytest.raises(protocol.ProtocolError):
        protocol.console_stream_keys("../../x")
