"""Console tickets: issued to a signed-in user for one VPS and mode, used once, within 30 seconds.

A ticket lives in Redis under a random id (the only thing the browser gets) with its payload and the
panel's signature over it; taking it is one GETDEL, so it can be used once. The node's relay checks the
signature, node, expiry and single use again before it opens anything.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from panel.core.permissions import CHANGE
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from worker import protocol

KEY_PREFIX = "ctpanel:console:ticket:"


class TicketRefused(Exception):
    """The ticket is unknown, used, expired, or not for this user or VPS."""


@dataclass(frozen=True)
class Issued:
    ticket: protocol.ConsoleTicket
    signature: str


@functools.cache
def _signing_key() -> rsa.RSAPrivateKey:
    with open(settings.CELERY_SECURITY_KEY, "rb") as fh:
        key = serialization.load_pem_private_key(fh.read(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return key


def sign(ticket: protocol.ConsoleTicket) -> str:
    """The panel's signature over the ticket (what the relay verifies with the panel's certificate)."""
    signature = _signing_key().sign(ticket.signed_bytes(), padding.PKCS1v15(), hashes.SHA256())
    return base64.b64encode(signature).decode()


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def check_access(user: Any, vps: VPS) -> None:
    """Who may open a console: whoever may change the VPS, while it runs and is not suspended."""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        raise PermissionDenied("Sign in first.")
    if not VPS.objects.can(user, CHANGE, vps):
        raise PermissionDenied("You may not use this VPS's console.")
    if vps.suspended:
        raise PermissionDenied(f"This VPS is suspended: {vps.suspend_reason or 'ask your provider'}.")
    if vps.state != VpsState.RUNNING:
        raise ValidationError("The console is there while the VPS runs; start it first.")


def issue(user: Any, vps: VPS, mode: str, *, client: redis.Redis | None = None) -> str:
    """A new ticket id for `user` to open `mode` of `vps` once within CONSOLE_TICKET_SECONDS."""
    if mode not in protocol.CONSOLE_MODES:
        raise ValidationError(f"Unknown console mode {mode!r}.")
    check_access(user, vps)
    ticket = protocol.ConsoleTicket(
        ticket_id=secrets.token_urlsafe(24), user_id=user.pk, username=user.get_username(), ctid=vps.ctid,
        node=vps.node.name, mode=mode, expires=time.time() + protocol.CONSOLE_TICKET_SECONDS)
    record = json.dumps({"ticket": ticket.to_dict(), "signature": sign(ticket)})
    client = client or redis_client()
    client.set(redis_key(ticket.ticket_id), record, ex=protocol.CONSOLE_TICKET_SECONDS, nx=True)
    return ticket.ticket_id


def parse(record: bytes | None, *, user_id: Any, ctid: int, now: float | None = None) -> Issued:
    """The ticket taken from Redis (None: unknown or already used), checked against who uses it where."""
    if record is None:
        raise TicketRefused("This console ticket is unknown, expired or already used.")
    data = json.loads(record)
    ticket = protocol.ConsoleTicket.from_dict(data["ticket"])
    if (time.time() if now is None else now) > ticket.expires:
        raise TicketRefused("This console ticket has expired.")
    if ticket.user_id != user_id:
        raise TicketRefused("This console ticket was issued to someone else.")
    if ticket.ctid != ctid:
        raise TicketRefused("This console ticket is for another VPS.")
    return Issued(ticket, data["signature"])


def redis_key(ticket_id: Any) -> str:
    """Where a ticket id the browser sent is stored (TicketRefused for what cannot be one)."""
    if not isinstance(ticket_id, str) or not 16 <= len(ticket_id) <= 64:
        raise TicketRefused("This console ticket is malformed.")
    return KEY_PREFIX + ticket_id


def take(ticket_id: str, *, user_id: Any, ctid: int, client: redis.Redis | None = None) -> Issued:
    """Use a ticket (once: it is gone afterwards, whether it was accepted or not)."""
    client = client or redis_client()
    return parse(client.getdel(redis_key(ticket_id)), user_id=user_id, ctid=ctid)
