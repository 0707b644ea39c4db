"""VPS data pages: reinstall (template, new root credentials, the host name typed to confirm) and the
snapshots and backups card of the VPS page. Every action goes through panel.vps.data; the VPS page
then follows the operation (`?op=`), and the card refreshes itself while a data operation runs."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from panel.core import views as generic
from panel.core.choices import OperationStatus
from panel.core.permissions import CHANGE
from panel.vps import data
from panel.vps.choices import VpsState
from panel.vps.forms import ReinstallForm, SnapshotForm
from panel.vps.models import VPS
from panel.vps.views import VPSFormView, vps_operations, vps_url
from worker import protocol

POLL = 3  # seconds between refreshes of the card while a data operation runs


class ReinstallView(VPSFormView):
    form = ReinstallForm
    heading = "Reinstall"
    template_name = "vps/reinstall.html"
    success_message = "Reinstalling…"

    def get_form(self, request: HttpRequest, obj: VPS | None) -> forms.BaseForm:
        initial = {"ssh_keys": "\n".join(obj.ssh_keys)}
        return ReinstallForm(request.POST if request.method == "POST" else None, initial=initial,
                             user=request.user, vps=obj)

    def perform(self, request, vps, values):
        return data.reinstall(request.user, vps, template=values["template"], password=values["password"],
                              ssh_keys=values["ssh_keys"])


class DataCardView(generic.ObjectView):
    """The snapshots and backups of a VPS, with their actions; polls while a data operation runs."""

    queryset = VPS.objects.select_related("node", "plan")
    template_name = partial_template = "vps/data.html"

    def get_extra_context(self, request: HttpRequest, obj: VPS | None = None, **kwargs: Any) -> dict[str, Any]:
        backups = list(obj.backups.all())
        return {
            "snapshots": obj.snapshots.all(), "backups": backups, "slots": data.backup_slots(obj),
            "max_snapshots": data.MAX_SNAPSHOTS, "busy": self._busy(obj), "poll": POLL,
            "usable": self.can(request, CHANGE, obj) and obj.state != VpsState.DESTROYED and (
                not obj.suspended or not request.user.is_customer),
            "snapshot_form": SnapshotForm(user=request.user),
        }

    @staticmethod
    def _busy(vps: VPS) -> bool:
        return vps_operations(vps).filter(action__in=protocol.VPS_DATA_TASKS).exclude(
            status__in=OperationStatus.terminal()).exists()

    def partial_status(self, obj: VPS) -> int:
        return 200 if self._busy(obj) else generic.HTMX_STOP_POLLING


class DataActionView(generic.PanelView):
    """One POST: `service(user, vps, **URL arguments)` (a snapshot's `name` or a backup's `backup_id`)."""

    queryset = VPS.objects.select_related("node", "plan")
    http_method_names = ["post"]
    service: Any = None
    verb = ""

    def call(self, request: HttpRequest, vps: VPS, **kwargs: Any) -> Any:
        return type(self).service(request.user, vps, *kwargs.values())

    def post(self, request: HttpRequest, ctid: int, **kwargs: Any) -> HttpResponse:
        vps = self.get_object(request, CHANGE, ctid=ctid)
        try:
            operation = self.call(request, vps, **kwargs)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(vps_url(vps))
        messages.info(request, f"{self.verb}…")
        return HttpResponseRedirect(vps_url(vps, operation))


class SnapshotCreateView(DataActionView):
    verb = "Taking a snapshot"

    def call(self, request, vps, **kwargs):
        form = SnapshotForm(request.POST, user=request.user)
        name = form.cleaned_data["name"] if form.is_valid() else "-"
        return data.create_snapshot(request.user, vps, name.strip())


class SnapshotRollbackView(DataActionView):
    service, verb = data.rollback_snapshot, "Rolling back"


class SnapshotDeleteView(DataActionView):
    service, verb = data.delete_snapshot, "Deleting the snapshot"


class BackupCreateView(DataActionView):
    service, verb = data.create_backup, "Backing up"


class BackupRestoreView(DataActionView):
    service, verb = data.restore_backup, "Restoring the backup"


class BackupDeleteView(DataActionView):
    service, verb = data.delete_backup, "Deleting the backup"
