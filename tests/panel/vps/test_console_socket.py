"""The console WebSocket of the real ASGI server (uvicorn): who may open it and which tickets it takes."""

from __future__ import annotations

import json
import os

import pytest
from django.test import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes.models import Node
from panel.vps.choices import VpsState
from panel.vps.console import tickets
from panel.vps.console.models import ConsoleSession
from panel.vps.models import VPS, next_ctid

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def setup(live_panel):
    node = Node.objects.create(name=f"sock-{os.getpid()}")
    carol = User.objects.create_user("sock-carol", role=Role.CUSTOMER)
    dave = User.objects.create_user("sock-dave", role=Role.CUSTOMER)
    mine, other = (VPS.objects.create(ctid=next_ctid(), node=node, customer=carol, hostname=f"s{n}",
                                      template="busybox", state=VpsState.RUNNING) for n in range(2))
    return live_panel, carol, dave, mine, other


def cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def socket(base: str, ctid: int, headers: dict[str, str]):
    host = base.removeprefix("http://")
    return connect(f"ws://{host}/vps/{ctid}/console/ws/", additional_headers=headers, open_timeout=10)


def first_answer(base: str, ctid: int, user, ticket: str) -> tuple[dict, int | None]:
    """What the server says to a signed-in browser of our origin that sends `ticket`, and its close code."""
    with socket(base, ctid, {"Origin": base, "Cookie": cookie(user)}) as ws:
        ws.send(json.dumps({"ticket": ticket, "cols": 80, "rows": 24}))
        answer = json.loads(ws.recv(timeout=15))
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=15)
        return answer, ws.close_code


def test_no_session_or_another_origin_is_refused_before_the_handshake(setup):
    base, carol, _dave, mine, _other = setup
    with pytest.raises(InvalidStatus, match="403"):
        socket(base, mine.ctid, {"Origin": base})
    with pytest.raises(InvalidStatus, match="403"):
        socket(base, mine.ctid, {"Origin": "http://evil.example", "Cookie": cookie(carol)})
    with pytest.raises(InvalidStatus, match="403"):
        socket(base, mine.ctid, {"Cookie": cookie(carol)})  # browsers always send Origin


def test_tickets_of_another_user_or_vps_and_used_ones_are_refused(setup):
    base, carol, dave, mine, other = setup
    stolen = tickets.issue(carol, mine, "console")
    answer, code = first_answer(base, mine.ctid, dave, stolen)
    assert answer == {"error": "This console ticket was issued to someone else."} and code == 4403
    answer, _ = first_answer(base, mine.ctid, carol, stolen)  # spent by the attempt
    assert answer == {"error": "This console ticket is unknown, expired or already used."}
    answer, _ = first_answer(base, other.ctid, carol, tickets.issue(carol, mine, "console"))
    assert answer == {"error": "This console ticket is for another VPS."}
    answer, _ = first_answer(base, mine.ctid, carol, "x")
    assert answer == {"error": "This console ticket is malformed."}
    assert not ConsoleSession.objects.exists()  # nothing was opened
