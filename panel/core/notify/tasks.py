"""Panel worker tasks (queue `panel`) for notices and webhooks."""

from celery import shared_task

from panel.core.notify import services


@shared_task(name=services.TASK_SEND_NOTICE_EMAIL, ignore_result=True)
def send_notice_email(notice_id: int) -> None:
    services.send_notice_email(notice_id)


@shared_task(name=services.TASK_DELIVER_WEBHOOK, bind=True, ignore_result=True, max_retries=len(services.BACKOFF))
def deliver_webhook(self, delivery_id: str) -> None:
    retry_in = services.deliver(delivery_id)
    if retry_in is not None:
        raise self.retry(countdown=retry_in)
