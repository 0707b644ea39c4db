import hashlib
import hmac
import http.server
import json
import threading
from collections.abc import Iterator

import pytest
from django.core import mail
from django.test import override_settings

from panel.core.notify import services as notify
from panel.core.notify.choices import DeliveryState
from panel.core.notify.models import Notice, WebhookDelivery
from tests.panel.tenants import make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


class Receiver(http.server.BaseHTTPRequestHandler):
    """A webhook receiver on 127.0.0.1 that answers with the next queued status."""

    statuses: list[int]
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(self.statuses.pop(0) if self.statuses else 200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, type[Receiver]]]:
    handler = type("Handler", (Receiver,), {"statuses": [], "received": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook", handler
    server.shutdown()
    server.server_close()


def test_notice_is_listed_and_emailed_once(django_capture_on_commit_callbacks):
    t = make_tenants()
    with django_capture_on_commit_callbacks() as callbacks:
        notice = notify.notify(t.customer1, "traffic.80_percent", "80 % of your traffic used", "vps1: 80 of 100 GB")
    assert len(callbacks) == 1  # the e-mail is queued for the panel worker after commit
    assert list(Notice.objects.restrict(t.customer1)) == [notice]
    assert not Notice.objects.restrict(t.customer2).exists()
    assert notify.send_notice_email(notice.pk) and not notify.send_notice_email(notice.pk)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["customer1@example.com"] and "80 %" in mail.outbox[0].subject
    assert notify.mark_read(notice).read_at is not None


@override_settings(CTPANEL_WEBHOOK_ALLOW_PRIVATE=True)
def test_webhook_is_signed_retried_and_routed_by_tenant(receiver):
    url, handler = receiver
    t = make_tenants()
    admin_hook = notify.create_webhook(t.admin, name="all", url=url)
    r1_hook = notify.create_webhook(t.reseller1, name="r1", url=url, events=["vps.*"])
    notify.create_webhook(t.reseller2, name="r2", url=url)
    with pytest.raises(Exception, match="Only admins and resellers"):
        notify.create_webhook(t.customer1, name="c", url=url)

    deliveries = notify.emit("vps.created", {"ctid": 101}, tenant=t.customer1)
    assert {d.webhook for d in deliveries} == {admin_hook, r1_hook}
    assert notify.emit("user.created", {}, tenant=t.customer1)[0].webhook == admin_hook

    handler.statuses = [500]
    delivery = next(d for d in deliveries if d.webhook == r1_hook)
    assert notify.deliver(str(delivery.pk)) == notify.BACKOFF[0]
    assert notify.deliver(str(delivery.pk)) is None
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.response_code) == (DeliveryState.DELIVERED, 2, 200)
    assert notify.deliver(str(delivery.pk)) is None and len(handler.received) == 2  # never sent again

    headers, body = handler.received[-1]
    expected = hmac.new(r1_hook.secret.encode(), headers["X-Ctpanel-Timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    assert headers["X-Ctpanel-Signature"] == "sha256=" + expected
    assert headers["X-Ctpanel-Event"] == "vps.created" and headers["X-Ctpanel-Delivery"] == str(delivery.pk)
    assert json.loads(body)["data"] == {"ctid": 101}


def test_webhook_gives_up_after_the_backoff_and_refuses_private_targets(receiver):
    url, handler = receiver
    t = make_tenants()
    hook = notify.create_webhook(t.admin, name="local", url=url)
    delivery = notify.emit("vps.started", {}, tenant=None)[0]
    for expected in notify.BACKOFF:
        assert notify.deliver(str(delivery.pk)) == expected
    assert notify.deliver(str(delivery.pk)) is None
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.FAILED and delivery.attempts == len(notify.BACKOFF) + 1
    assert "not a public address" in delivery.error and handler.received == []  # loopback refused by default
    assert WebhookDelivery.objects.filter(webhook=hook).count() == 1
