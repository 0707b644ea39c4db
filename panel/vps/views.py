"""VPS pages: the list (with the admin's filters and CSV), one page per VPS
(SolusVM style: state, power, host name, operations), create, destroy.

Live state is htmx polling (docs/DESIGN.md, "Live state in the browser"):
the state part and the history of a VPS page refresh themselves, and an
operation's progress polls until it is terminal (then HTTP 286 stops it).
Every action goes through panel.vps.services.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.postgres.expressions import ArraySubquery
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.db.models import Case, CharField, Func, OuterRef, Value, When
from django.db.models.functions import Cast, Concat
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from panel.accounts.choices import Role
from panel.core import views as generic
from panel.core.choices import OperationStatus
from panel.core.models import Operation
from panel.core.permissions import CHANGE, VIEW
from panel.nodes import ippools
from panel.nodes.choices import NodeState
from panel.nodes.models import IPAddress
from panel.plans.models import Plan
from panel.vps import addresses, services
from panel.vps.choices import VpsState
from panel.vps.filtersets import VPSFilterSet
from panel.vps.forms import (
    ChangePlanForm,
    HostnameForm,
    PtrForm,
    RootPasswordForm,
    SSHKeysForm,
    SuspendForm,
    VPSCreateForm,
)
from panel.vps.models import VPS
from panel.vps.tables import VPSOperationTable, VPSTable
from worker import protocol

STAFF = (Role.ADMIN, Role.RESELLER)
STATE_POLL = 2  # seconds between refreshes of a VPS's state part


def with_addresses(queryset: models.QuerySet) -> models.QuerySet:
    """Each VPS with `address_list`: the addresses assigned to it (IPAddress.assigned_to is "vps:<ctid>")."""
    holder = Concat(Value("vps:"), Cast(OuterRef("ctid"), CharField()))
    address = Func("address", function="HOST", output_field=CharField())  # inet as text, without "/32"
    shown = Concat(address, Case(When(prefix_length=64, then=Value("/64")), default=Value("")))
    return queryset.annotate(address_list=ArraySubquery(
        IPAddress.objects.filter(assigned_to=holder).order_by("pool__family", "address").values(text=shown)))


def vps_queryset() -> models.QuerySet:
    return with_addresses(VPS.objects.select_related("node", "plan", "customer"))


def vps_operations(vps: VPS) -> models.QuerySet:
    return Operation.objects.filter(target_type="vps", target_id=str(vps.ctid)).select_related("user")


def vps_url(vps: VPS, operation: Operation | None = None) -> str:
    url = reverse("vps:vps", args=[vps.ctid])
    return f"{url}?op={operation.pk}" if operation is not None else url


ACTION_LABELS = {
    protocol.TASK_VPS_CREATE: "Create", protocol.TASK_VPS_START: "Start", protocol.TASK_VPS_STOP: "Stop",
    protocol.TASK_VPS_RESTART: "Restart", protocol.TASK_VPS_SET: "Change", protocol.TASK_VPS_PAUSE: "Pause",
    protocol.TASK_VPS_RESUME: "Resume", protocol.TASK_VPS_DESTROY: "Destroy",
    protocol.TASK_VPS_REINSTALL: "Reinstall", protocol.TASK_VPS_SNAPSHOT: "Snapshot",
    protocol.TASK_VPS_SNAPSHOT_DELETE: "Delete snapshot", protocol.TASK_VPS_ROLLBACK: "Roll back",
    protocol.TASK_VPS_BACKUP: "Back up", protocol.TASK_VPS_BACKUP_DELETE: "Delete backup",
    protocol.TASK_VPS_RESTORE: "Restore",
}


def action_label(operation: Operation) -> str:
    """A VPS operation in words ("Power off" is a fast stop)."""
    if operation.action == protocol.TASK_VPS_STOP and operation.payload.get("fast"):
        return "Power off"
    return ACTION_LABELS.get(operation.action, operation.action)


def operation_url(vps: VPS, operation: Operation) -> str:
    return reverse("vps:operation", args=[vps.ctid, operation.pk])


def error_help(operation: Operation) -> str:
    """What a person can do about a failed operation (the shared catalog in worker.protocol)."""
    return protocol.ErrorCode.MESSAGES.get(operation.error_code, "") if operation.error_code else ""


def power_actions(vps: VPS) -> list[tuple[str, str, str]]:
    """(URL name, button label, style) of the power buttons that make sense in the VPS's state."""
    state = vps.display_state
    if vps.suspended:
        return []
    if state == VpsState.RUNNING:
        return [("vps:stop", "Stop", ""), ("vps:restart", "Restart", ""), ("vps:pause", "Pause", ""),
                ("vps:poweroff", "Power off", "btn-danger")]
    if state == VpsState.STOPPED:
        return [("vps:start", "Start", "btn-primary")]
    if state == VpsState.PAUSED:
        return [("vps:resume", "Resume", "btn-primary"), ("vps:poweroff", "Power off", "btn-danger")]
    if state == VpsState.ERROR:
        return [("vps:start", "Start", "btn-primary"), ("vps:poweroff", "Power off", "btn-danger")]
    return []


class VPSListView(generic.ObjectListView):
    """Everyone's VPSs they may view: a customer its own, a reseller its customers', admins all."""

    queryset = VPS.objects.all()
    table = VPSTable
    filterset = VPSFilterSet
    title = "VPSs"
    add_url = "vps:add"
    export = True
    poll = 5
    filter_labels = {"hostname": "Host name", "node": "Node", "customer": "Customer", "plan": "Plan"}

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        vpss = vps_queryset().restrict(request.user, VIEW)
        return vpss if request.GET.get("state") == VpsState.DESTROYED else vpss.alive()

    def hidden_filters(self, request: HttpRequest) -> tuple[str, ...]:
        if request.user.is_admin:
            return ()
        return ("node",) if request.user.is_reseller else ("node", "customer")

    def csv_name(self) -> str:
        return "vpss"


class VPSView(generic.ObjectView):
    """Everything about one VPS on one page; htmx requests get the state part."""

    queryset = VPS.objects.select_related("node", "plan", "customer")
    template_name = "vps/vps.html"
    partial_template = "vps/state.html"

    def restrict(self, request: HttpRequest, action: str) -> models.QuerySet:
        return with_addresses(self.queryset.all()).restrict(request.user, action)

    def get_extra_context(self, request: HttpRequest, obj: VPS | None = None, **kwargs: Any) -> dict[str, Any]:
        operations = vps_operations(obj)
        current = None
        wanted = request.GET.get("op", "")
        if wanted:
            current = operations.filter(pk=wanted).first() if _is_uuid(wanted) else None
        if current is None:
            current = operations.exclude(status__in=OperationStatus.terminal()).first()
        can_change = self.can(request, CHANGE, obj)
        return {
            "title": obj.hostname, "current": current, "error_help": error_help(current) if current else "",
            "progress_url": operation_url(obj, current) if current else "",
            "progress_title": action_label(current) if current else "",
            "history": labelled_history(obj), "actions": power_actions(obj) if can_change else [],
            "hostname_form": HostnameForm(initial={"hostname": obj.hostname}, user=request.user),
            "password_form": RootPasswordForm(user=request.user), "plan_form": plan_form(request, obj),
            "keys_form": SSHKeysForm(initial={"ssh_keys": "\n".join(obj.ssh_keys)}, user=request.user),
            "addresses": addresses.of(obj), "can_suspend": can_change and not request.user.is_customer,
            "suspend_form": SuspendForm(user=request.user),
            "usable": can_change and obj.state != VpsState.DESTROYED and (
                not obj.suspended or not request.user.is_customer),
            "state_poll": STATE_POLL, "node_up": obj.node.state == NodeState.UP,
        }

    def partial_status(self, obj: VPS) -> int:
        return generic.HTMX_STOP_POLLING if obj.state == VpsState.DESTROYED else 200


def labelled_history(vps: VPS, limit: int = 10) -> list[Operation]:
    history = list(vps_operations(vps)[:limit])
    for operation in history:
        operation.label = action_label(operation)
    return history


class VPSHistoryView(generic.ObjectView):
    """The VPS page's latest operations; the part polls itself (stops once the VPS is destroyed and idle)."""

    queryset = VPS.objects.all()
    template_name = partial_template = "vps/history.html"

    def get_extra_context(self, request: HttpRequest, obj: VPS | None = None, **kwargs: Any) -> dict[str, Any]:
        return {"history": labelled_history(obj)}

    def partial_status(self, obj: VPS) -> int:
        busy = vps_operations(obj).exclude(status__in=OperationStatus.terminal()).exists()
        return generic.HTMX_STOP_POLLING if obj.state == VpsState.DESTROYED and not busy else 200


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


class VPSOperationView(generic.ObjectView):
    """One operation on a VPS, for whoever may view the VPS; its progress polls until it ends (then 286)."""

    queryset = Operation.objects.select_related("user")
    template_name = "vps/operation.html"
    partial_template = "core/operation_progress.html"

    def get_object(self, request: HttpRequest, action: str = VIEW, **kwargs: Any) -> Operation:
        vps = _viewable_vps(request, kwargs["ctid"])
        operation = vps_operations(vps).filter(pk=kwargs["pk"]).first()
        if operation is None or action != VIEW:
            raise Http404("No such operation on this VPS.")
        self.vps = vps
        return operation

    def can(self, request: HttpRequest, action: str, obj: models.Model) -> bool:
        return False

    def get_extra_context(self, request: HttpRequest, obj: Operation | None = None, **kwargs: Any) -> dict[str, Any]:
        return {"vps": self.vps, "error_help": error_help(obj), "title": action_label(obj),
                "progress_url": operation_url(self.vps, obj), "progress_title": action_label(obj)}

    def partial_status(self, obj: Operation) -> int:
        return generic.HTMX_STOP_POLLING if obj.is_terminal else 200


class VPSOperationListView(generic.ObjectListView):
    """This VPS's operation history."""

    queryset = Operation.objects.all()
    table = VPSOperationTable
    template_name = "vps/operations.html"

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return vps_operations(self.vps)

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        self.vps = _viewable_vps(request, kwargs["ctid"])
        self.title = f"Operations of {self.vps.hostname}"
        return super().get(request, **kwargs)

    def get_extra_context(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {"vps": self.vps}


def _viewable_vps(request: HttpRequest, ctid: int) -> VPS:
    vps = VPS.objects.restrict(request.user, VIEW).select_related("node").filter(ctid=ctid).first()
    if vps is None:
        raise Http404("No such VPS.")
    return vps


class VPSPowerView(generic.ObjectActionView):
    """Start, stop, restart, power off, pause, resume: one service call, then the VPS page follows the operation."""

    queryset = VPS.objects.select_related("node")
    service: Any = None
    options: dict[str, Any] = {}
    verb = ""

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        vps = self.get_object(request, CHANGE, **kwargs)
        try:
            operation = type(self).service(request.user, vps, **self.options)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(vps_url(vps))
        messages.info(request, f"{self.verb} {vps.hostname}…")
        return HttpResponseRedirect(vps_url(vps, operation))  # unsuspend without a start: no operation


class StartView(VPSPowerView):
    service, verb = services.start, "Starting"


class StopView(VPSPowerView):
    service, verb = services.stop, "Stopping"


class PowerOffView(VPSPowerView):
    service, verb, options = services.stop, "Powering off", {"fast": True}


class RestartView(VPSPowerView):
    service, verb = services.restart, "Restarting"


class PauseView(VPSPowerView):
    service, verb = services.pause, "Pausing"


class ResumeView(VPSPowerView):
    service, verb = services.resume, "Resuming"


class VPSFormView(generic.ObjectEditView):
    """A form about one VPS whose service call returns an operation; the VPS page then follows it."""

    queryset = VPS.objects.select_related("node", "customer")
    heading = ""

    def perform(self, request: HttpRequest, vps: VPS, data: dict[str, Any]) -> Operation | None:
        raise NotImplementedError

    def save(self, request: HttpRequest, form: forms.BaseForm, obj: VPS) -> VPS:
        self.operation = self.perform(request, obj, form.cleaned_data)
        return obj

    def success_url(self, request: HttpRequest, obj: VPS) -> str:
        return vps_url(obj, self.operation)

    def get_extra_context(self, request: HttpRequest, obj: VPS | None = None, **kwargs: Any) -> dict[str, Any]:
        return {"title": f"{self.heading} of {obj.hostname}"}


class HostnameView(VPSFormView):
    """The host name, changed on the node too."""

    form = HostnameForm
    heading = "Host name"
    success_message = "Changing the host name…"

    def get_initial(self, request: HttpRequest, obj: VPS | None) -> dict[str, Any]:
        return {"hostname": obj.hostname}

    def perform(self, request, vps, data):
        return services.set_hostname(request.user, vps, data["hostname"])


class ChangePlanView(VPSFormView):
    """Another plan: only plans the VPS's customer may use are offered (the service checks it again)."""

    form = ChangePlanForm
    heading = "Plan"
    success_message = "Changing the plan…"

    def get_form(self, request: HttpRequest, obj: VPS | None) -> forms.BaseForm:
        return plan_form(request, obj, request.POST if request.method == "POST" else None)

    def perform(self, request, vps, data):
        return services.change_plan(request.user, vps, data["plan"])


def plan_form(request: HttpRequest, vps: VPS, data: Any = None) -> ChangePlanForm:
    """Offered: active plans both the user may view and the VPS's customer may use."""
    form = ChangePlanForm(data, initial={"plan": vps.plan_id}, user=request.user)
    generic.restrict_choices(form, request.user)
    form.fields["plan"].queryset = form.fields["plan"].queryset.filter(
        pk__in=Plan.objects.restrict(vps.customer).filter(active=True).values("pk"))
    return form


class RootPasswordView(VPSFormView):
    form = RootPasswordForm
    heading = "Root password"
    success_message = "Setting the root password…"

    def perform(self, request, vps, data):
        return services.set_root_password(request.user, vps, data["password"])


class SSHKeysView(VPSFormView):
    form = SSHKeysForm
    heading = "SSH keys"
    success_message = "Setting root's SSH keys…"

    def get_initial(self, request: HttpRequest, obj: VPS | None) -> dict[str, Any]:
        return {"ssh_keys": "\n".join(obj.ssh_keys)}

    def perform(self, request, vps, data):
        return services.set_ssh_keys(request.user, vps, data["ssh_keys"])


class SuspendView(VPSFormView):
    """Admins and the customer's reseller: stop the VPS and lock it against its customer."""

    roles = STAFF
    form = SuspendForm
    heading = "Suspend"
    success_message = "Suspending…"

    def perform(self, request, vps, data):
        return services.suspend(request.user, vps, data["reason"])


class UnsuspendView(VPSPowerView):
    roles = STAFF
    service, verb = services.unsuspend, "Lifting the suspension of"


class PtrView(generic.PanelView):
    """Reverse DNS of one of the VPS's addresses, by whoever holds it (the address's own permission)."""

    queryset = VPS.objects.all()
    http_method_names = ["get", "post"]

    def _address(self, request: HttpRequest, ctid: int, pk: int) -> tuple[VPS, IPAddress]:
        vps = self.get_object(request, CHANGE, ctid=ctid)
        address = addresses.of(vps).filter(pk=pk).first()
        if address is None:
            raise Http404("No such address on this VPS.")
        if not IPAddress.objects.restrict(request.user, CHANGE).filter(pk=address.pk).exists():
            raise PermissionDenied("You may not change this address.")
        return vps, address

    def get(self, request: HttpRequest, ctid: int, pk: int) -> HttpResponse:
        vps, address = self._address(request, ctid, pk)
        form = PtrForm(initial={"ptr": address.ptr}, user=request.user)
        return self._render(request, vps, address, form)

    def post(self, request: HttpRequest, ctid: int, pk: int) -> HttpResponse:
        vps, address = self._address(request, ctid, pk)
        form = PtrForm(request.POST, user=request.user)
        if form.is_valid():
            try:
                ippools.set_ptr(address, form.cleaned_data["ptr"])
            except ValidationError as exc:
                generic.add_service_error(form, exc)
            else:
                messages.success(request, f"Reverse DNS of {address.address} saved.")
                return HttpResponseRedirect(vps_url(vps))
        return self._render(request, vps, address, form, status=400)

    def _render(self, request: HttpRequest, vps: VPS, address: IPAddress, form: PtrForm,
                status: int = 200) -> HttpResponse:
        return render(request, "core/object_edit.html",
                      {"form": form, "object": vps, "title": f"Reverse DNS of {address.address}"}, status=status)


class VPSCreateView(generic.ObjectEditView):
    """A new VPS from a plan the customer may use; admins also pick the node."""

    roles = (Role.ADMIN, Role.RESELLER, Role.CUSTOMER)
    queryset = VPS.objects.all()
    form = VPSCreateForm
    template_name = "vps/create.html"
    success_message = "Creating the VPS…"

    def _object(self, request: HttpRequest, kwargs: dict[str, Any]) -> None:
        return None

    def save(self, request: HttpRequest, form: VPSCreateForm, obj: None) -> VPS:
        data = form.cleaned_data
        vps, self.operation = services.create_vps(
            request.user, customer=data["customer"], node=data.get("node"), plan=data["plan"],
            template=data["template"], hostname=data["hostname"], start=data["start"])
        return vps

    def success_url(self, request: HttpRequest, obj: VPS) -> str:
        return vps_url(obj, self.operation)

    def get_extra_context(self, request: HttpRequest, obj: VPS | None = None, **kwargs: Any) -> dict[str, Any]:
        return {"title": "New VPS"}


class DestroyView(generic.PanelView):
    """Confirm, then destroy (an operation; the VPS page follows it to the end)."""

    queryset = VPS.objects.select_related("node")

    def get(self, request: HttpRequest, ctid: int) -> HttpResponse:
        vps = self.get_object(request, CHANGE, ctid=ctid)
        return render(request, "vps/destroy.html", {"object": vps, "title": f"Destroy {vps.hostname}"})

    def post(self, request: HttpRequest, ctid: int) -> HttpResponse:
        vps = self.get_object(request, CHANGE, ctid=ctid)
        if request.POST.get("confirm", "").strip() != vps.hostname:
            messages.error(request, "Type the VPS's host name to confirm.")
            return render(request, "vps/destroy.html", {"object": vps, "title": f"Destroy {vps.hostname}"},
                          status=400)
        try:
            operation = services.destroy(request.user, vps)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(vps_url(vps))
        messages.info(request, f"Destroying {vps.hostname}…")
        return HttpResponseRedirect(vps_url(vps, operation))
