import datetime

import django_filters

from panel.core.audit.models import JournalEntry, ObjectChange
from panel.core.models import Operation
from panel.core.notify.models import Notice, Webhook, WebhookDelivery


class UtcDateTimeFilter(django_filters.IsoDateTimeFilter):
    """An ISO 8601 date-time, compared in UTC: PostgreSQL refuses offsets beyond ±15:59 (a 500 otherwise)."""

    def filter(self, qs, value):
        return super().filter(qs, value.astimezone(datetime.UTC) if value else value)


class ContentObjectFilterSet(django_filters.FilterSet):
    """`object_type=app_label.model` and `object_id=...` select one object's rows."""

    object_type = django_filters.CharFilter(method="filter_object_type")

    def filter_object_type(self, queryset, name, value):
        app_label, _, model = value.lower().partition(".")
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)


class ObjectChangeFilterSet(ContentObjectFilterSet):
    time_after = UtcDateTimeFilter(field_name="time", lookup_expr="gte")
    time_before = UtcDateTimeFilter(field_name="time", lookup_expr="lt")

    class Meta:
        model = ObjectChange
        fields = ["user", "action", "source", "request_id", "object_id"]


class JournalEntryFilterSet(ContentObjectFilterSet):
    class Meta:
        model = JournalEntry
        fields = ["author", "kind", "object_id"]


class OperationFilterSet(django_filters.FilterSet):
    class Meta:
        model = Operation
        fields = ["status", "action", "node_name", "target_type", "target_id", "user", "request_id"]


class NoticeFilterSet(django_filters.FilterSet):
    unread = django_filters.BooleanFilter(field_name="read_at", lookup_expr="isnull")

    class Meta:
        model = Notice
        fields = ["event", "level"]


class WebhookFilterSet(django_filters.FilterSet):
    class Meta:
        model = Webhook
        fields = ["owner", "active"]


class WebhookDeliveryFilterSet(django_filters.FilterSet):
    class Meta:
        model = WebhookDelivery
        fields = ["webhook", "event", "state"]
