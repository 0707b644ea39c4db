from django.urls import reverse

from panel.core.tables import Column, Table


def webhook_url(hook) -> str:
    return reverse("core:webhook", args=[hook.pk])


class WebhookTable(Table):
    columns = [
        Column("name", link=webhook_url),
        Column("url", "URL"),
        Column("events", orderable=False, template="notify/cells/events.html"),
        Column("owner__username", "Owner"),
        Column("active", template="plans/cells/active.html"),
        Column("created"),
    ]
    default_order = "name"
    empty_text = "No webhooks yet."


class NoticeTable(Table):
    """Notices render as a list (notify/notice_list.html); the table orders and pages them."""

    columns = [Column("created"), Column("title"), Column("level")]
    default_order = "-created"
    empty_text = "No notices."


class DeliveryTable(Table):
    columns = [
        Column("created"),
        Column("event"),
        Column("state", template="notify/cells/state.html"),
        Column("attempts"),
        Column("response_code", "HTTP"),
        Column("error"),
    ]
    default_order = "-created"
    per_page = 10
    empty_text = "Nothing delivered yet."
