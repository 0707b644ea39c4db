"""The VPS API's second-level quotas: per user and per group disk limits inside the VPS (panel/vps/quotas.py).

`GET …/<ctid>/quotas/` lists the entries, `POST …/<ctid>/quotas/` sets one id's
limits (replacing that id's earlier ones), `DELETE …/<ctid>/quotas/<kind>/<id>/`
removes them. Each change is a `set` operation carrying the VPS's whole
list: 202 with the operation, Idempotency-Key honoured as by the data actions.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from panel.vps import quotas as quota_service
from panel.vps import services
from panel.vps.api.data import ACCEPTED, NOT_PAGED
from worker import protocol

QUOTA_PATH = r"(?P<kind>user|group)/(?P<ident>\d{1,5})"
BYTES_MAX = 2**63 - 1  # what the node's quota tools take (in KiB after rounding down)
_PATH = [OpenApiParameter("kind", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(quota_service.KINDS)),
         OpenApiParameter("ident", OpenApiTypes.INT, OpenApiParameter.PATH,
                          description=f"The user or group id inside the VPS, 0..{protocol.UGID_MAX}")]


class QuotaSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=list(quota_service.KINDS))
    id = serializers.IntegerField(min_value=0, max_value=protocol.UGID_MAX,
                                  help_text="The numeric user or group id as the VPS sees it (`id -u NAME` there)")
    space_hard = serializers.IntegerField(min_value=0, max_value=BYTES_MAX, default=0,
                                          help_text="Bytes; writes past it fail; 0 = none")
    space_soft = serializers.IntegerField(min_value=0, max_value=BYTES_MAX, default=0,
                                          help_text="Bytes, at most the hard limit; 0 = none")
    inodes_hard = serializers.IntegerField(min_value=0, max_value=BYTES_MAX, default=0,
                                           help_text="Files and directories; 0 = none")
    inodes_soft = serializers.IntegerField(min_value=0, max_value=BYTES_MAX, default=0,
                                           help_text="At most the hard limit; 0 = none")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = {f"{name}_soft": "Must not be above the hard limit."
                  for name in ("space", "inodes")
                  if attrs[f"{name}_hard"] and attrs[f"{name}_soft"] > attrs[f"{name}_hard"]}
        if errors:
            raise serializers.ValidationError(errors)
        if not any(attrs[name] for name in protocol.UGID_FIELDS):
            raise serializers.ValidationError("Give at least one limit (to remove this id's limits, DELETE it).")
        return attrs


class QuotaEntrySerializer(QuotaSerializer):
    in_effect = serializers.BooleanField(help_text="False when the plan now allows fewer ids than are listed: "
                                                   "the node does not get this entry (the lowest ids of each "
                                                   "kind keep theirs)")


class VpsQuotaActions:
    """Mixed into VPSViewSet (get_object, `_once`, `_form`)."""

    quota_change_actions = frozenset({"quota_delete"})

    @extend_schema(methods=["GET"], request=None, responses=QuotaEntrySerializer(many=True),
                   description="The VPS's second-level quota entries (desired state; the node applies them "
                               "while the VPS runs); `in_effect` is false for those the plan no longer covers.")
    @extend_schema(methods=["POST"], request=QuotaSerializer, responses=ACCEPTED,
                   description="Set one user's or group's limits, replacing that id's earlier ones. Only when "
                               "the plan's `quotaugidlimit` > 0, and at most that many users (and as many "
                               "groups). A `set` operation. Idempotency-Key honoured.")
    @action(detail=True, methods=["get", "post"], **NOT_PAGED)
    def quotas(self, request, ctid=None):
        vps = self.get_object()
        if request.method == "GET":
            sent = {(q["kind"], q["id"]) for q in services.ugid_quotas(vps)}
            rows = [{**q, "in_effect": (q["kind"], q["id"]) in sent} for q in vps.ugid_quotas]
            return Response(QuotaEntrySerializer(rows, many=True).data)
        form = self._form(QuotaSerializer)
        return self._once(vps, lambda: quota_service.set_quota(
            request.user, vps, kind=form["kind"], ident=form["id"], space_hard=form["space_hard"],
            space_soft=form["space_soft"], inodes_hard=form["inodes_hard"], inodes_soft=form["inodes_soft"]))

    @extend_schema(request=None, parameters=_PATH, responses=ACCEPTED,
                   description="Remove one user's or group's limits (its files stay counted). A `set` operation.")
    @action(detail=True, methods=["delete"], url_path=f"quotas/{QUOTA_PATH}")
    def quota_delete(self, request, ctid=None, kind=None, ident=None):
        vps = self.get_object()
        return self._once(vps, lambda: quota_service.remove_quota(request.user, vps, kind=kind, ident=int(ident)))
