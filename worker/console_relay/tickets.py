"""The node-side check of a console ticket: the panel's signature, node, expiry, single use."""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections.abc import Callable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from worker import protocol


class TicketRefused(Exception):
    """The relay will not open a session for this request; the message says why (shown to the user)."""


def load_trusted_keys(store: str) -> list[rsa.RSAPublicKey]:
    """The RSA public keys of the certificates in the node's trust store (a file or a directory):
    only the panel's, so only the panel can issue tickets."""
    paths = [os.path.join(store, name) for name in sorted(os.listdir(store))] if os.path.isdir(store) else [store]
    keys = []
    for path in paths:
        with open(path, "rb") as fh:
            key = x509.load_pem_x509_certificate(fh.read()).public_key()
        if isinstance(key, rsa.RSAPublicKey):
            keys.append(key)
    if not keys:
        raise ValueError(f"no RSA certificate in {store}")
    return keys


def verify(request: protocol.ConsoleOpen, keys: list[rsa.RSAPublicKey], *, node: str,
           claim: Callable[[str], bool], now: float | None = None) -> protocol.ConsoleTicket:
    """The ticket of `request` once it is signed by a trusted key, for this node, unexpired and not used
    before (`claim(ticket_id)` is True only the first time); else TicketRefused."""
    try:
        ticket = protocol.ConsoleTicket.from_dict(request.ticket)
        signature = base64.b64decode(request.signature, validate=True)
    except (protocol.ProtocolError, binascii.Error, TypeError) as exc:
        raise TicketRefused(f"malformed ticket: {exc}") from None
    for key in keys:
        try:
            key.verify(signature, ticket.signed_bytes(), padding.PKCS1v15(), hashes.SHA256())
            break
        except InvalidSignature:
            continue
    else:
        raise TicketRefused("ticket not signed by the panel")
    try:
        ticket.check(node=node, now=time.time() if now is None else now)
    except protocol.ProtocolError as exc:
        raise TicketRefused(str(exc)) from None
    if not claim(ticket.ticket_id):
        raise TicketRefused("ticket already used")
    return ticket
