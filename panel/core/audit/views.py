from django.http import HttpRequest

from panel.core import views as generic
from panel.core.audit.models import ObjectChange
from panel.core.audit.tables import ObjectChangeTable
from panel.core.filtersets import ObjectChangeFilterSet
from panel.core.permissions import is_admin

STAFF = ("admin", "reseller")


class ObjectChangeListView(generic.ObjectListView):
    """The audit log: who changed what, when, from where; filters and CSV export of the filtered rows."""

    roles = STAFF
    queryset = ObjectChange.objects.select_related("content_type")
    table = ObjectChangeTable
    filterset = ObjectChangeFilterSet
    export = True
    filter_labels = {"object_type": "Object type (app.model)", "object_id": "Object id",
                     "time_after": "From", "time_before": "Until", "request_id": "Request id"}

    def get(self, request: HttpRequest, **kwargs):
        self.title = "Audit log" if is_admin(request.user) else "Activity"
        return super().get(request, **kwargs)

    def csv_name(self) -> str:
        return "audit-log"


class ObjectChangeView(generic.ObjectView):
    roles = STAFF
    queryset = ObjectChange.objects.select_related("content_type", "user")
    template_name = "audit/change.html"

    def get_extra_context(self, request, obj=None, **kwargs):
        before, after = obj.before or {}, obj.after or {}
        fields = sorted({*before, *after})
        return {"fields": [{"name": f, "before": before.get(f), "after": after.get(f), "changed": f in obj.changed}
                           for f in fields],
                "object_type": f"{obj.content_type.app_label}.{obj.content_type.model}"}
