"""The second-level quota card of the VPS page (per user/group disk limits inside the VPS) and its two
POSTs; every change goes through panel.vps.quotas and the VPS page then follows the `set` operation."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect

from panel.core import views as generic
from panel.core.permissions import CHANGE
from panel.vps import quotas
from panel.vps.choices import VpsState
from panel.vps.models import VPS
from panel.vps.views import VPSFormView, vps_url


class QuotaCardView(generic.ObjectView):
    """The card (loaded into the VPS page); 404 when the plan has no second-level quota."""

    queryset = VPS.objects.select_related("node", "plan")
    template_name = partial_template = "vps/quotas.html"

    def get_extra_context(self, request: HttpRequest, obj: VPS | None = None, **kwargs: Any) -> dict[str, Any]:
        if quotas.allowed(obj) <= 0:
            raise Http404("This VPS's plan has no per-user disk quotas.")
        rows = [{**q, "kind_label": quotas.KINDS[q["kind"]]} for q in obj.ugid_quotas]
        return {"quotas": rows, "allowed": quotas.allowed(obj), "form": quotas.QuotaForm(user=request.user),
                "usable": self.can(request, CHANGE, obj) and obj.state != VpsState.DESTROYED and (
                    not obj.suspended or not request.user.is_customer)}


class QuotaSetView(VPSFormView):
    form = quotas.QuotaForm
    heading = "Disk quota inside the VPS"
    success_message = "Setting the disk quota…"

    def perform(self, request, vps, data):
        return quotas.set_quota(request.user, vps, kind=data["kind"], ident=data["ident"],
                                space_hard=data["space_hard"], space_soft=data["space_soft"] or 0,
                                inodes_hard=data["inodes_hard"] or 0)


class QuotaRemoveView(generic.PanelView):
    queryset = VPS.objects.select_related("node")
    http_method_names = ["post"]

    def post(self, request: HttpRequest, ctid: int) -> HttpResponse:
        vps = self.get_object(request, CHANGE, ctid=ctid)
        form = quotas.RemoveForm(request.POST)
        try:
            if not form.is_valid():
                raise ValidationError("Which user or group?")
            operation = quotas.remove_quota(request.user, vps, kind=form.cleaned_data["kind"],
                                            ident=form.cleaned_data["ident"])
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(vps_url(vps))
        messages.info(request, "Removing the disk quota…")
        return HttpResponseRedirect(vps_url(vps, operation))
