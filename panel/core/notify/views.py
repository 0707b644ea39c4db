from django.contrib import messages
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from panel.core import views as generic
from panel.core.filtersets import NoticeFilterSet, WebhookFilterSet
from panel.core.notify import services
from panel.core.notify.forms import WebhookForm
from panel.core.notify.models import Notice, Webhook, WebhookDelivery
from panel.core.notify.tables import DeliveryTable, NoticeTable, WebhookTable
from panel.core.permissions import CHANGE, VIEW, is_admin

STAFF = ("admin", "reseller")


class NoticeListView(generic.ObjectListView):
    """My notices (admins may view everybody's through the API; this page is one's own)."""

    queryset = Notice.objects.all()
    table = NoticeTable
    filterset = NoticeFilterSet
    template_name = "notify/notice_list.html"
    title = "Notices"

    def get_queryset(self, request: HttpRequest):
        return self.restrict(request, CHANGE)


class NoticeReadView(generic.ObjectActionView):
    queryset = Notice.objects.all()
    success_url = "/notices/"

    def perform(self, request, obj):
        services.mark_read(obj)
        return f"Marked as read: {obj.title}"


class NoticeReadAllView(generic.PanelView):
    http_method_names = ["post"]
    queryset = Notice.objects.all()

    def post(self, request: HttpRequest):
        unread = self.restrict(request, CHANGE).filter(read_at__isnull=True)
        for notice in unread:
            services.mark_read(notice)
        messages.success(request, "All notices marked as read.")
        return HttpResponseRedirect(reverse("core:notices"))


class WebhookListView(generic.ObjectListView):
    roles = STAFF
    queryset = Webhook.objects.select_related("owner")
    table = WebhookTable
    filterset = WebhookFilterSet
    add_url = "core:webhook-add"

    def hidden_filters(self, request):
        return () if is_admin(request.user) else ("owner",)


class WebhookView(generic.ObjectView):
    roles = STAFF
    queryset = Webhook.objects.select_related("owner")
    template_name = "notify/webhook.html"

    def get_extra_context(self, request, obj=None, **kwargs):
        deliveries = WebhookDelivery.objects.restrict(request.user, VIEW).filter(webhook=obj)
        return {"table": DeliveryTable(deliveries, request), "now": timezone.now()}


class WebhookEditView(generic.ObjectEditView):
    roles = STAFF
    queryset = Webhook.objects.all()
    form = WebhookForm
    success_message = "Webhook added. Its secret is shown below."

    def save(self, request, form, obj):
        return services.create_webhook(request.user, **form.cleaned_data)

    def success_url(self, request, obj):
        return reverse("core:webhook", args=[obj.pk])


class WebhookDeleteView(generic.ObjectDeleteView):
    roles = STAFF
    queryset = Webhook.objects.all()
    success_url = "/webhooks/"
