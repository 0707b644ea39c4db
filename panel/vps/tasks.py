"""Panel worker tasks of the vps app (queue `panel`)."""

import datetime

from celery import shared_task
from django.utils import timezone

from panel.vps.models import IdempotencyKey

TASK_EXPIRE_IDEMPOTENCY_KEYS = "panel.vps_expire_idempotency_keys"
# A retried create is answered from its key this long; after that the key may name a new create.
IDEMPOTENCY_KEEP = datetime.timedelta(hours=24)


def expire_idempotency_keys(now: datetime.datetime | None = None) -> int:
    return IdempotencyKey.objects.filter(created__lt=(now or timezone.now()) - IDEMPOTENCY_KEEP).delete()[0]


@shared_task(name=TASK_EXPIRE_IDEMPOTENCY_KEYS, ignore_result=True)
def expire_idempotency_keys_task() -> None:
    expire_idempotency_keys()
