"""Notices (in the panel and by e-mail) and webhooks.

Notices: e-mail goes through Django's backend (console in dev, locmem in
tests, SMTP in production) from the panel worker after commit, so a slow
mail server never holds a request.

Webhooks: admins and resellers register URLs; events are POSTed signed and retried.

Each event becomes one `WebhookDelivery` row per matching webhook (a row
before it is a message), delivered by the panel worker after commit. The
body is JSON; the signature header is

    X-Ctpanel-Signature: sha256=HEX(HMAC-SHA256(secret, TIMESTAMP + "." + BODY))

with TIMESTAMP in `X-Ctpanel-Timestamp` (seconds since the epoch), so a
receiver can refuse stale replays. `X-Ctpanel-Delivery` is the delivery id:
a delivery can arrive twice (a retry after a lost answer), receivers
deduplicate on it. Failed attempts are retried after BACKOFF seconds, then
the delivery is marked failed. Targets on loopback, private or link-local
addresses are refused unless CTPANEL_WEBHOOK_ALLOW_PRIVATE is set, and
redirects are never followed (no server-side request forgery into the
panel's own network).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from panel.celery import app
from panel.core.notify.choices import DeliveryState, NoticeLevel
from panel.core.notify.models import Notice, Webhook, WebhookDelivery
from panel.core.permissions import is_admin

log = logging.getLogger(__name__)

TASK_SEND_NOTICE_EMAIL = "panel.send_notice_email"
TASK_DELIVER_WEBHOOK = "panel.deliver_webhook"
# Seconds before attempt 2, 3, ...; each stays below the broker's visibility timeout.
BACKOFF = (10, 30, 120, 600, 1800, 3000)
TIMEOUT_SECONDS = 10
EVENT_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_*]+)+$|^\*$")


def notify(recipient: Any, event: str, title: str, body: str = "", *, level: str = NoticeLevel.INFO,
           email: bool = True) -> Notice:
    """A notice in `recipient`'s list, and (after commit) an e-mail if they have an address."""
    notice = Notice.objects.create(recipient=recipient, event=event, level=level, title=title, body=body)
    if email and recipient.email:
        transaction.on_commit(lambda: app.send_task(TASK_SEND_NOTICE_EMAIL, args=[notice.pk]))
    return notice


def mark_read(notice: Notice) -> Notice:
    if notice.read_at is None:
        notice.read_at = timezone.now()
        notice.save(update_fields=["read_at"])
    return notice


def send_notice_email(notice_id: int) -> bool:
    """Send a notice's e-mail once (a redelivered task does not send it again)."""
    with transaction.atomic():
        notice = Notice.objects.select_for_update().select_related("recipient").filter(pk=notice_id).first()
        if notice is None or notice.emailed_at is not None or not notice.recipient.email:
            return False
        send_mail(f"[ctpanel] {notice.title}", notice.body or notice.title, None, [notice.recipient.email])
        notice.emailed_at = timezone.now()
        notice.save(update_fields=["emailed_at"])
    log.info("notice %s e-mailed to user %s", notice.pk, notice.recipient_id)
    return True


def validate_events(events: Any) -> list[str]:
    if not isinstance(events, list) or not all(isinstance(e, str) and EVENT_RE.match(e) for e in events):
        raise ValidationError({"events": 'A list of event names or patterns, e.g. ["vps.created", "vps.*"].'})
    return events


def validate_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"url": "Use an http:// or https:// URL."})
    return url


def create_webhook(owner: Any, *, name: str, url: str, events: list[str] | None = None,
                   active: bool = True) -> Webhook:
    if not (is_admin(owner) or getattr(owner, "is_reseller", False)):
        raise PermissionDenied("Only admins and resellers register webhooks.")
    return Webhook.objects.create(owner=owner, name=name, url=validate_url(url),
                                  events=validate_events(events or []), active=active)


def emit(event: str, data: dict[str, Any], *, tenant: Any = None) -> list[WebhookDelivery]:
    """Queue `event` for every active webhook that may see it.

    `tenant` is the user the event is about (a customer or reseller): admins'
    webhooks get every event, a reseller's those of itself and its customers.
    """
    payload = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    owners = Q(owner__role="admin")
    if tenant is not None:
        owners |= Q(owner=tenant)
        if getattr(tenant, "owner_id", None):
            owners |= Q(owner_id=tenant.owner_id)
    hooks = [h for h in Webhook.objects.filter(owners, active=True, owner__is_active=True) if h.wants(event)]
    deliveries = [WebhookDelivery.objects.create(webhook=h, event=event, payload=payload) for h in hooks]
    for delivery in deliveries:
        transaction.on_commit(lambda pk=str(delivery.pk): app.send_task(TASK_DELIVER_WEBHOOK, args=[pk]))
    return deliveries


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _check_target(url: str) -> None:
    if settings.CTPANEL_WEBHOOK_ALLOW_PRIVATE:
        return
    host = urllib.parse.urlsplit(url).hostname or ""
    for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP):
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise OSError(f"{host} resolves to {address}, which is not a public address")


def deliver(delivery_id: str) -> int | None:
    """Try one delivery now. Returns seconds until the next attempt, or None when done."""
    with transaction.atomic():
        delivery = (WebhookDelivery.objects.select_for_update().select_related("webhook")
                    .filter(pk=delivery_id, state=DeliveryState.PENDING).first())
        if delivery is None:
            return None
        hook = delivery.webhook
        body = json.dumps({"id": str(delivery.pk), "event": delivery.event, "created": delivery.created.isoformat(),
                           "data": delivery.payload}, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        request = urllib.request.Request(hook.url, data=body, method="POST", headers={  # noqa: S310 - http(s) only
            "Content-Type": "application/json",
            "User-Agent": "ctpanel-webhooks/1",
            "X-Ctpanel-Event": delivery.event,
            "X-Ctpanel-Delivery": str(delivery.pk),
            "X-Ctpanel-Timestamp": timestamp,
            "X-Ctpanel-Signature": signature(hook.secret, timestamp, body),
        })
        delivery.attempts += 1
        try:
            _check_target(hook.url)
            with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
                delivery.response_code = response.status
                delivery.error = ""
        except urllib.error.HTTPError as exc:
            delivery.response_code, delivery.error = exc.code, f"HTTP {exc.code} {exc.reason}"[:500]
        except (OSError, ValueError) as exc:
            delivery.response_code, delivery.error = None, str(exc)[:500] or type(exc).__name__
        now = timezone.now()
        retry_in = None
        if delivery.response_code is not None and 200 <= delivery.response_code < 300:
            delivery.state, delivery.delivered_at, delivery.next_attempt_at = DeliveryState.DELIVERED, now, None
        elif delivery.attempts > len(BACKOFF):
            delivery.state, delivery.next_attempt_at = DeliveryState.FAILED, None
        else:
            retry_in = BACKOFF[delivery.attempts - 1]
            delivery.next_attempt_at = now + datetime.timedelta(seconds=retry_in)
        delivery.save()
    if delivery.state != DeliveryState.DELIVERED:
        log.warning("webhook %s delivery %s attempt %d: %s", hook.pk, delivery.pk, delivery.attempts,
                    delivery.error or delivery.response_code)
    return retry_in
