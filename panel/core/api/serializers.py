from django.contrib.contenttypes.models import ContentType
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from panel.core.audit.models import JournalEntry, ObjectChange
from panel.core.audit.registry import model_for_label
from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.core.notify.models import Notice, Webhook, WebhookDelivery


@extend_schema_field(OpenApiTypes.STR)
class ContentTypeField(serializers.Field):
    """An audited model as "app_label.model"."""

    def to_representation(self, value: ContentType) -> str:
        return f"{value.app_label}.{value.model}"

    def to_internal_value(self, data):
        model = model_for_label(str(data))
        if model is None:
            raise serializers.ValidationError("Unknown object type.")
        return ContentType.objects.get_for_model(model)


class OperationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Operation
        fields = ["id", "action", "node_name", "target_type", "target_id", "user", "request_id", "payload",
                  "status", "stage", "percent", "log", "result", "error_code", "error_message", "duration_ms",
                  "created", "dispatched_at",
                  "started_at", "finished_at"]


class ObjectChangeSerializer(serializers.ModelSerializer):
    object_type = ContentTypeField(source="content_type")

    class Meta:
        model = ObjectChange
        fields = ["id", "time", "user", "user_name", "source", "request_id", "action", "object_type", "object_id",
                  "object_repr", "before", "after", "changed"]


class JournalEntrySerializer(serializers.ModelSerializer):
    object_type = ContentTypeField(source="content_type")

    class Meta:
        model = JournalEntry
        fields = ["id", "created", "author", "object_type", "object_id", "kind", "comments"]
        read_only_fields = ["author"]


class NoticeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Notice
        fields = ["id", "recipient", "created", "event", "level", "title", "body", "read_at"]
        read_only_fields = fields


class WebhookSerializer(serializers.ModelSerializer):
    class Meta:
        model = Webhook
        fields = ["id", "owner", "name", "url", "secret", "events", "active", "created"]
        read_only_fields = ["owner", "secret"]

    def validate_url(self, value: str) -> str:
        return notify.validate_url(value)

    def validate_events(self, value):
        return notify.validate_events(value)


class WebhookDeliverySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields = ["id", "webhook", "event", "payload", "state", "attempts", "response_code", "error", "created",
                  "next_attempt_at", "delivered_at"]
