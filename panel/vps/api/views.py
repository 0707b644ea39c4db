"""VPSs over the API: list and detail through `restrict`, every change through panel.vps.services.

Changes answer 202 with the operation to follow (`/api/core/operations/<id>/`);
a create answers 201 with the VPS and its operation. A create with an
`Idempotency-Key` header is done once per user and key: a retry with the
same body gets the first answer again, a different body 422.
"""

from __future__ import annotations

import hashlib
import json

from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from panel.core.api.base import RestrictedViewSetMixin
from panel.core.models import Operation
from panel.core.permissions import is_admin
from panel.nodes.models import IPAddress
from panel.vps import filtersets, services
from panel.vps.api import serializers
from panel.vps.api.data import VpsDataActions
from panel.vps.api.quotas import VpsQuotaActions
from panel.vps.models import VPS, IdempotencyKey

IDEMPOTENCY_HEADER = "Idempotency-Key"
_KEY_PARAMETER = OpenApiParameter(IDEMPOTENCY_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                                  description="Retrying with the same key and body returns the first result")
_ACCEPTED = {202: serializers.AcceptedSerializer}


class Unprocessable(exceptions.APIException):
    status_code = 422
    default_detail = "This Idempotency-Key was used with a different request."
    default_code = "idempotency_key_reused"


def operation_url(operation: Operation) -> str:
    return f"/api/core/operations/{operation.pk}/"


def accepted(operation: Operation | None) -> Response:
    if operation is None:
        return Response(status=status.HTTP_204_NO_CONTENT)
    url = operation_url(operation)
    return Response({"operation": str(operation.pk), "operation_url": url}, status=status.HTTP_202_ACCEPTED,
                    headers={"Location": url})


def cidrs_by_ctid(vpss: list[VPS]) -> dict[int, tuple[list[str], list[str]]]:
    """Every listed VPS's addresses in one query."""
    found: dict[int, tuple[list[str], list[str]]] = {vps.ctid: ([], []) for vps in vpss}
    holders = {vps.budget_holder: vps.ctid for vps in vpss}
    rows = IPAddress.objects.filter(assigned_to__in=holders).values_list("assigned_to", "address", "prefix_length",
                                                                          "pool__family").order_by("pk")
    for holder, address, prefix, family in rows:
        found[holders[holder]][0 if family == 4 else 1].append(f"{address}/{prefix}")
    return found


def request_hash(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


@extend_schema_view(
    destroy=extend_schema(responses=_ACCEPTED, description="Destroy the VPS (202: follow the operation)."),
)
class VPSViewSet(VpsDataActions, VpsQuotaActions, RestrictedViewSetMixin, mixins.ListModelMixin,
                 mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """VPSs: customers see their own, resellers their customers', admins all."""

    queryset = VPS.objects.select_related("node", "plan")
    serializer_class = serializers.VPSSerializer
    filterset_class = filtersets.VPSFilterSet
    ordering_fields = ["ctid", "hostname", "state", "created"]
    lookup_field = "ctid"
    lookup_value_regex = r"\d+"
    change_actions = frozenset({"start", "stop", "restart", "pause", "resume", "hostname", "plan", "suspend",
                                "unsuspend", "password", "ssh_keys"}) | (
        VpsDataActions.data_change_actions | VpsQuotaActions.quota_change_actions)

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        serializer = self.get_serializer(page, many=True, context={**self.get_serializer_context(),
                                                                   "cidrs": cidrs_by_ctid(page)})
        return self.get_paginated_response(serializer.data)

    def _respond_created(self, vps: VPS, operation: Operation | None, code: int) -> Response:
        data = serializers.VPSSerializer(vps, context=self.get_serializer_context()).data
        data["operation"] = str(operation.pk) if operation else None
        data["operation_url"] = operation_url(operation) if operation else None
        return Response(data, status=code, headers={"Location": f"/api/vps/vps/{vps.ctid}/"})

    @extend_schema(request=serializers.VPSCreateSerializer, parameters=[_KEY_PARAMETER],
                   responses={201: serializers.CreatedSerializer,
                              422: OpenApiResponse(description="Idempotency-Key reused with another body")})
    def create(self, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        if len(key) > 255:
            raise exceptions.ValidationError({IDEMPOTENCY_HEADER: "At most 255 characters."})
        digest = request_hash(request.data)
        if key:
            earlier = self._earlier(key, digest)
            if earlier is not None:
                return earlier
        form = serializers.VPSCreateSerializer(data=request.data, context=self.get_serializer_context())
        form.is_valid(raise_exception=True)
        data = form.validated_data
        actor = request.user
        customer = data.get("customer") or actor
        if not is_admin(actor) and (data.get("node") is not None or data.get("limits") is not None):
            raise exceptions.PermissionDenied("Only admins choose the node or set limits without a plan.")
        try:
            with transaction.atomic():
                vps, operation = services.create_vps(
                    actor, customer=customer, node=data.get("node"), template=data["template"],
                    hostname=data["hostname"], plan=data.get("plan"), limits=data.get("limits"),
                    start=data["start"], ssh_keys=data.get("ssh_keys"))
                if key:
                    IdempotencyKey.objects.create(user=actor, key=key, request_hash=digest, vps=vps,
                                                  operation=operation)
        except IntegrityError:
            earlier = self._earlier(key, digest) if key else None
            if earlier is None:
                raise
            return earlier  # a concurrent retry with the same key won
        return self._respond_created(vps, operation, status.HTTP_201_CREATED)

    def _earlier(self, key: str, digest: str) -> Response | None:
        earlier = IdempotencyKey.objects.filter(user=self.request.user, key=key).select_related(
            "vps__node", "vps__plan", "operation").first()
        if earlier is None:
            return None
        if earlier.request_hash != digest:
            raise Unprocessable()
        return self._respond_created(earlier.vps, earlier.operation, status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        return accepted(services.destroy(request.user, self.get_object()))

    def _act(self, service, form_class=None, **options_from_fields: str) -> Response:
        """Find the VPS first (404 before any validation), then read the body, then call the service."""
        vps = self.get_object()
        data = {}
        if form_class is not None:
            form = form_class(data=self.request.data, context=self.get_serializer_context())
            form.is_valid(raise_exception=True)
            data = form.validated_data
        options = {option: data[name] for option, name in options_from_fields.items()}
        return accepted(service(self.request.user, vps, **options))

    @extend_schema(request=None, responses=_ACCEPTED)
    @action(detail=True, methods=["post"])
    def start(self, request, ctid=None):
        return self._act(services.start)

    @extend_schema(request=serializers.StopSerializer, responses=_ACCEPTED)
    @action(detail=True, methods=["post"])
    def stop(self, request, ctid=None):
        return self._act(services.stop, serializers.StopSerializer, fast="fast")

    @extend_schema(request=None, responses=_ACCEPTED)
    @action(detail=True, methods=["post"])
    def restart(self, request, ctid=None):
        return self._act(services.restart)

    @extend_schema(request=None, responses=_ACCEPTED)
    @action(detail=True, methods=["post"])
    def pause(self, request, ctid=None):
        return self._act(services.pause)

    @extend_schema(request=None, responses=_ACCEPTED)
    @action(detail=True, methods=["post"])
    def resume(self, request, ctid=None):
        return self._act(services.resume)

    @extend_schema(request=serializers.HostnameSerializer, responses=_ACCEPTED)
    @action(detail=True, methods=["post"])
    def hostname(self, request, ctid=None):
        return self._act(services.set_hostname, serializers.HostnameSerializer, hostname="hostname")

    @extend_schema(request=serializers.PlanChangeSerializer, responses=_ACCEPTED,
                   description="Change the plan live: the budget share is reserved anew, the node gets the limits.")
    @action(detail=True, methods=["post"])
    def plan(self, request, ctid=None):
        return self._act(services.change_plan, serializers.PlanChangeSerializer, plan="plan")

    @extend_schema(request=serializers.SuspendSerializer, responses=_ACCEPTED,
                   description="Admins and the customer's reseller: stop the VPS and lock it against its customer.")
    @action(detail=True, methods=["post"])
    def suspend(self, request, ctid=None):
        return self._act(services.suspend, serializers.SuspendSerializer, reason="reason")

    @extend_schema(request=serializers.UnsuspendSerializer, responses={**_ACCEPTED, 204: None})
    @action(detail=True, methods=["post"])
    def unsuspend(self, request, ctid=None):
        return self._act(services.unsuspend, serializers.UnsuspendSerializer, then_start="start")

    @extend_schema(request=serializers.PasswordSerializer, responses=_ACCEPTED,
                   description="Set root's password: the panel sends only a SHA-512 crypt hash to the node.")
    @action(detail=True, methods=["post"])
    def password(self, request, ctid=None):
        return self._act(services.set_root_password, serializers.PasswordSerializer, password="password")  # noqa: S106 (field name)

    @extend_schema(request=serializers.SshKeysSerializer, responses=_ACCEPTED,
                   description="Replace root's authorized SSH keys (OpenSSH public key lines).")
    @action(detail=True, methods=["post"], url_path="ssh-keys")
    def ssh_keys(self, request, ctid=None):
        return self._act(services.set_ssh_keys, serializers.SshKeysSerializer, keys="ssh_keys")
