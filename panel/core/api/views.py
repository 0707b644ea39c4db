from django.shortcuts import get_object_or_404
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from panel.core import filtersets
from panel.core.api import serializers
from panel.core.api.base import RestrictedModelViewSet, RestrictedReadOnlyViewSet, RestrictedViewSetMixin
from panel.core.audit import services as audit
from panel.core.audit.choices import JournalKind
from panel.core.audit.models import JournalEntry, ObjectChange
from panel.core.models import Operation
from panel.core.notify import services as notify
from panel.core.notify.models import Notice, Webhook, WebhookDelivery
from panel.core.permissions import VIEW, tenant_q


class OperationViewSet(viewsets.ReadOnlyModelViewSet):
    """Operations: admins see all; others those they (or, for a reseller, its customers) started."""

    queryset = Operation.objects.all()
    serializer_class = serializers.OperationSerializer
    filterset_class = filtersets.OperationFilterSet
    ordering_fields = ["created", "status"]

    def get_queryset(self):
        return self.queryset.filter(tenant_q(self.request.user, "user"))


class ObjectChangeViewSet(RestrictedReadOnlyViewSet):
    queryset = ObjectChange.objects.select_related("content_type")
    serializer_class = serializers.ObjectChangeSerializer
    filterset_class = filtersets.ObjectChangeFilterSet
    ordering_fields = ["time"]


class JournalEntryViewSet(RestrictedViewSetMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                          viewsets.ReadOnlyModelViewSet):
    queryset = JournalEntry.objects.select_related("content_type")
    serializer_class = serializers.JournalEntrySerializer
    filterset_class = filtersets.JournalEntryFilterSet

    def perform_create(self, serializer):
        content_type = serializer.validated_data["content_type"]
        model = content_type.model_class()
        target = get_object_or_404(model._default_manager.all().restrict(self.request.user, VIEW),
                                   pk=serializer.validated_data["object_id"])
        serializer.instance = audit.add_note(self.request.user, target, serializer.validated_data["comments"],
                                             serializer.validated_data.get("kind", JournalKind.INFO))


class NoticeViewSet(RestrictedViewSetMixin, mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Notice.objects.all()
    serializer_class = serializers.NoticeSerializer
    filterset_class = filtersets.NoticeFilterSet
    change_actions = frozenset({"mark_read"})

    @action(detail=True, methods=["post"], url_path="read")
    def mark_read(self, request, pk=None):
        notice = notify.mark_read(self.get_object())
        return Response(self.get_serializer(notice).data)


class WebhookViewSet(RestrictedModelViewSet):
    queryset = Webhook.objects.all()
    serializer_class = serializers.WebhookSerializer
    filterset_class = filtersets.WebhookFilterSet

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = notify.create_webhook(self.request.user, name=data["name"], url=data["url"],
                                                      events=data.get("events"), active=data.get("active", True))


class WebhookDeliveryViewSet(RestrictedReadOnlyViewSet):
    queryset = WebhookDelivery.objects.all()
    serializer_class = serializers.WebhookDeliverySerializer
    filterset_class = filtersets.WebhookDeliveryFilterSet
