"""A VPS that keeps hitting a limit: its customer is told once a day per row, webhooks hear of it."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from panel.core.notify import services as notify
from panel.core.notify.models import Notice, WebhookDelivery
from panel.usage import alerts
from panel.usage.models import FailEvent
from tests.panel.usage.world import build

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_a_limit_hit_hour_after_hour_is_told_once_a_day_and_a_burst_is_not():
    w = build()
    hook = notify.create_webhook(w.t.reseller1, name="r1", url="https://hooks.example/r1", events=["vps.*"])
    now = timezone.now()
    one, two = w.vpss["customer1"], w.vpss["customer2"]
    for hours_ago in (1, 3, 5):  # three different hours: the VPS outgrows its plan
        FailEvent.objects.create(vps=one, time=now - datetime.timedelta(hours=hours_ago), resource="numproc", count=2)
    for minutes_ago in (1, 2, 3, 4):  # one burst in one hour: not worth a notice
        FailEvent.objects.create(vps=two, time=now - datetime.timedelta(minutes=minutes_ago), resource="physpages",
                                 count=9)

    assert alerts.notify_repeated_failcnt(now) == 1
    notice = Notice.objects.get(event=alerts.EVENT)
    assert notice.recipient == w.t.customer1
    assert notice.title == "VPS customer1-vps: the processes and threads limit keeps being hit"
    assert "3 different hours" in notice.body and "6 in all" in notice.body
    [delivery] = WebhookDelivery.objects.filter(webhook=hook)
    assert (delivery.event, delivery.payload["resource"], delivery.payload["ctid"]) == (alerts.EVENT, "numproc",
                                                                                        one.ctid)

    assert alerts.notify_repeated_failcnt(now + datetime.timedelta(hours=1)) == 0  # told already today
    for hours_later in (20, 22, 24):
        FailEvent.objects.create(vps=one, time=now + datetime.timedelta(hours=hours_later), resource="numproc",
                                 count=1)
    assert alerts.notify_repeated_failcnt(now + datetime.timedelta(hours=20, minutes=5)) == 0  # still rising
    assert alerts.notify_repeated_failcnt(now + datetime.timedelta(hours=24, minutes=5)) == 1  # a day later
