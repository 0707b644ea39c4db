"""Console tickets on the panel side (real PostgreSQL and Redis), and the node's check of the panel's signature."""

from __future__ import annotations

import os
import time

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes.models import Node
from panel.vps.choices import VpsState
from panel.vps.console import tickets
from panel.vps.models import VPS, next_ctid
from tests.services import read_env_file
from worker import protocol
from worker.console_relay.tickets import load_trusted_keys, verify

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def r():
    client = tickets.redis_client()
    yield client
    client.close()


@pytest.fixture
def world():
    node = Node.objects.create(name=f"con-{os.getpid()}")
    reseller = User.objects.create_user("con-acme", role=Role.RESELLER)
    carol = User.objects.create_user("con-carol", role=Role.CUSTOMER, owner=reseller)
    dave = User.objects.create_user("con-dave", role=Role.CUSTOMER, owner=reseller)

    def vps(customer, **extra):
        return VPS.objects.create(ctid=next_ctid(), node=node, customer=customer, hostname=f"h{next_ctid()}",
                                  template="busybox", state=extra.pop("state", VpsState.RUNNING), **extra)

    return node, reseller, carol, dave, vps


def test_a_ticket_is_used_once_by_its_user_for_its_vps(world, r):
    _node, _reseller, carol, _dave, vps = world
    mine = vps(carol)
    ticket_id = tickets.issue(carol, mine, "console", client=r)
    assert 0 < r.ttl(tickets.KEY_PREFIX + ticket_id) <= protocol.CONSOLE_TICKET_SECONDS
    issued = tickets.take(ticket_id, user_id=carol.pk, ctid=mine.ctid, client=r)
    assert (issued.ticket.ctid, issued.ticket.mode, issued.ticket.user_id) == (mine.ctid, "console", carol.pk)
    with pytest.raises(tickets.TicketRefused, match="already used"):
        tickets.take(ticket_id, user_id=carol.pk, ctid=mine.ctid, client=r)


def test_a_ticket_for_another_user_or_vps_is_refused_and_spent(world, r):
    _node, _reseller, carol, dave, vps = world
    mine, other = vps(carol), vps(carol)
    stolen = tickets.issue(carol, mine, "console", client=r)
    with pytest.raises(tickets.TicketRefused, match="issued to someone else"):
        tickets.take(stolen, user_id=dave.pk, ctid=mine.ctid, client=r)
    with pytest.raises(tickets.TicketRefused, match="already used"):  # trying it spent it
        tickets.take(stolen, user_id=carol.pk, ctid=mine.ctid, client=r)
    moved = tickets.issue(carol, mine, "shell", client=r)
    with pytest.raises(tickets.TicketRefused, match="another VPS"):
        tickets.take(moved, user_id=carol.pk, ctid=other.ctid, client=r)


def test_an_expired_ticket_is_refused(world, r):
    _node, _reseller, carol, _dave, vps = world
    mine = vps(carol)
    ticket_id = tickets.issue(carol, mine, "console", client=r)
    record = r.get(tickets.KEY_PREFIX + ticket_id)
    later = time.time() + protocol.CONSOLE_TICKET_SECONDS + 1  # Redis forgets it by then too (its TTL)
    with pytest.raises(tickets.TicketRefused, match="expired"):
        tickets.parse(record, user_id=carol.pk, ctid=mine.ctid, now=later)


def test_who_gets_a_ticket(world, r):
    _node, reseller, carol, dave, vps = world
    mine = vps(carol)
    assert tickets.issue(reseller, mine, "console", client=r)  # the customer's reseller may
    with pytest.raises(PermissionDenied):
        tickets.issue(dave, mine, "console", client=r)
    with pytest.raises(ValidationError, match="start it first"):
        tickets.issue(carol, vps(carol, state=VpsState.STOPPED), "console", client=r)
    with pytest.raises(PermissionDenied, match="suspended"):
        tickets.issue(carol, vps(carol, suspended=True, suspend_reason="unpaid"), "console", client=r)
    with pytest.raises(ValidationError, match="Unknown console mode"):
        tickets.issue(carol, mine, "root", client=r)


def test_the_node_accepts_the_panels_signature(world, r):
    node, _reseller, carol, _dave, vps = world
    mine = vps(carol)
    issued = tickets.take(tickets.issue(carol, mine, "shell", client=r), user_id=carol.pk, ctid=mine.ctid, client=r)
    request = protocol.ConsoleOpen(session="s" * 32, ticket=issued.ticket.to_dict(), signature=issued.signature,
                                   cols=80, rows=24)
    node_keys = load_trusted_keys(read_env_file(os.environ["CTPANEL_TEST_NODE_ENV"])["CTPANEL_TRUSTED_CERTS"])
    assert verify(request, node_keys, node=node.name, claim=lambda _id: True).ctid == mine.ctid


def test_the_ticket_view_and_the_page(world, r):
    _node, _reseller, carol, dave, vps = world
    mine = vps(carol)
    browser = Client()
    browser.force_login(carol)
    assert browser.get(f"/vps/{mine.ctid}/console/?mode=shell").status_code == 200
    answer = browser.post(f"/vps/{mine.ctid}/console/ticket/", {"mode": "shell"}).json()
    assert tickets.take(answer["ticket"], user_id=carol.pk, ctid=mine.ctid, client=r).ticket.mode == "shell"
    assert browser.get(f"/vps/{mine.ctid}/console/ws/").status_code == 426
    browser.force_login(dave)
    assert browser.post(f"/vps/{mine.ctid}/console/ticket/").status_code == 404



def test_the_ticket_view_says_so_when_redis_is_down(world, settings):
    _node, _reseller, carol, _dave, vps = world
    mine = vps(carol)
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    browser = Client()
    browser.force_login(carol)
    answer = browser.post(f"/vps/{mine.ctid}/console/ticket/", {"mode": "shell"})
    assert answer.status_code == 503
    assert "console service cannot be reached" in answer.json()["error"]
