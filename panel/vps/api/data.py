"""The VPS API's data actions: reinstall, snapshots and backups (panel/vps/data.py).

Changes answer 202 with the operation (`accepted`). With an `Idempotency-Key`
header a change is done once per user and key: a retry with the same path and
body gets the first operation again, another path or body 422. A password is
never part of the stored request hash (only whether one was given).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from panel.core.models import Operation
from panel.vps import data
from panel.vps.api.serializers import AcceptedSerializer
from panel.vps.models import VPS, Backup, IdempotencyKey, Snapshot

SNAPSHOT_PATH = r"(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,63})"
BACKUP_PATH = r"(?P<backup_id>\d{8}T\d{6}\.\d{6}Z)"
_NAME = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The snapshot's name")
ACCEPTED = {202: AcceptedSerializer, 422: OpenApiResponse(description="Idempotency-Key reused with another request")}
# A VPS's own list (snapshots, backups, quotas) is one plain JSON list: neither paged nor filtered like the VPS list.
NOT_PAGED: dict[str, Any] = {"pagination_class": None, "filter_backends": []}
_BACKUP = OpenApiParameter("backup_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The backup's id")


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = Snapshot
        fields = ["name", "created"]
        read_only_fields = fields


class BackupSerializer(serializers.ModelSerializer):
    class Meta:
        model = Backup
        fields = ["backup_id", "created", "size"]
        read_only_fields = fields


class ReinstallSerializer(serializers.Serializer):
    template = serializers.CharField(max_length=64)
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False, required=False,
                                     allow_blank=True, default="", style={"input_type": "password"},
                                     help_text="Root's new password (the node gets a SHA-512 crypt hash only)")
    ssh_keys = serializers.ListField(child=serializers.CharField(max_length=16384), required=False, max_length=32,
                                     help_text="Root's SSH keys; the VPS's current keys when absent")


class SnapshotCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64, required=False, allow_blank=True, default="",
                                 help_text='e.g. "before-upgrade"; "snap-<UTC time>" when empty')


def _hashable(body: Any) -> Any:
    if isinstance(body, dict) and "password" in body:
        return {**body, "password": bool(body["password"])}
    return body


class VpsDataActions:
    """Mixed into VPSViewSet (get_object, the request)."""

    data_change_actions = frozenset({"reinstall", "snapshot_rollback", "snapshot_delete", "backup_restore",
                                     "backup_delete"})

    def _once(self, vps: VPS, call: Any) -> Response:
        """Run `call()` (a service returning an Operation) once per Idempotency-Key."""
        from panel.vps.api.views import IDEMPOTENCY_HEADER, Unprocessable, accepted, request_hash

        key = self.request.headers.get(IDEMPOTENCY_HEADER, "")
        if not key:
            return accepted(call())
        if len(key) > 255:
            raise exceptions.ValidationError({IDEMPOTENCY_HEADER: "At most 255 characters."})
        digest = request_hash({"path": self.request.path, "body": _hashable(self.request.data)})

        def earlier() -> Operation | None:
            found = IdempotencyKey.objects.filter(user=self.request.user, key=key).select_related("operation").first()
            if found is None:
                return None
            if found.request_hash != digest or found.vps_id != vps.pk or found.operation is None:
                raise Unprocessable()
            return found.operation

        first = earlier()
        if first is not None:
            return accepted(first)
        try:
            with transaction.atomic():
                operation = call()
                IdempotencyKey.objects.create(user=self.request.user, key=key, request_hash=digest, vps=vps,
                                              operation=operation)
        except IntegrityError:
            first = earlier()
            if first is None:
                raise
            return accepted(first)
        return accepted(operation)

    def _form(self, form_class: type[serializers.Serializer]) -> dict[str, Any]:
        form = form_class(data=self.request.data)
        form.is_valid(raise_exception=True)
        return form.validated_data

    @extend_schema(request=ReinstallSerializer, responses=ACCEPTED,
                   description="A new root filesystem from `template`; CTID, addresses and limits stay. Give a "
                               "password or SSH keys. The VPS is running afterwards. Idempotency-Key honoured.")
    @action(detail=True, methods=["post"])
    def reinstall(self, request, ctid=None):
        vps = self.get_object()
        form = self._form(ReinstallSerializer)
        return self._once(vps, lambda: data.reinstall(request.user, vps, template=form["template"],
                                                      password=form["password"], ssh_keys=form.get("ssh_keys")))

    @extend_schema(methods=["GET"], request=None, responses=SnapshotSerializer(many=True),
                   description="The VPS's snapshots, as its node last reported them.")
    @extend_schema(methods=["POST"], request=SnapshotCreateSerializer, responses=ACCEPTED,
                   description="Take a snapshot (at most data.MAX_SNAPSHOTS per VPS). Idempotency-Key honoured.")
    @action(detail=True, methods=["get", "post"], **NOT_PAGED)
    def snapshots(self, request, ctid=None):
        vps = self.get_object()
        if request.method == "GET":
            return Response(SnapshotSerializer(vps.snapshots.all(), many=True).data)
        form = self._form(SnapshotCreateSerializer)
        return self._once(vps, lambda: data.create_snapshot(request.user, vps, form["name"]))

    @extend_schema(request=None, parameters=[_NAME], responses=ACCEPTED,
                   description="Stop the VPS, make its disk what it was at the snapshot, start it.")
    @action(detail=True, methods=["post"], url_path=f"snapshots/{SNAPSHOT_PATH}/rollback")
    def snapshot_rollback(self, request, ctid=None, name=None):
        vps = self.get_object()
        return self._once(vps, lambda: data.rollback_snapshot(request.user, vps, name))

    @extend_schema(request=None, parameters=[_NAME], responses=ACCEPTED, description="Delete the snapshot.")
    @action(detail=True, methods=["delete"], url_path=f"snapshots/{SNAPSHOT_PATH}")
    def snapshot_delete(self, request, ctid=None, name=None):
        vps = self.get_object()
        return self._once(vps, lambda: data.delete_snapshot(request.user, vps, name))

    @extend_schema(methods=["GET"], request=None, responses=BackupSerializer(many=True),
                   description="The VPS's backups, as its node last reported them.")
    @extend_schema(methods=["POST"], request=None, responses=ACCEPTED,
                   description="Take a backup if the plan's backup slots have room. Idempotency-Key honoured.")
    @action(detail=True, methods=["get", "post"], **NOT_PAGED)
    def backups(self, request, ctid=None):
        vps = self.get_object()
        if request.method == "GET":
            return Response(BackupSerializer(vps.backups.all(), many=True).data)
        return self._once(vps, lambda: data.create_backup(request.user, vps))

    @extend_schema(request=None, parameters=[_BACKUP], responses=ACCEPTED,
                   description="Stop the VPS, replace its disk with the backup's, start it.")
    @action(detail=True, methods=["post"], url_path=f"backups/{BACKUP_PATH}/restore")
    def backup_restore(self, request, ctid=None, backup_id=None):
        vps = self.get_object()
        return self._once(vps, lambda: data.restore_backup(request.user, vps, backup_id))

    @extend_schema(request=None, parameters=[_BACKUP], responses=ACCEPTED, description="Delete the backup.")
    @action(detail=True, methods=["delete"], url_path=f"backups/{BACKUP_PATH}")
    def backup_delete(self, request, ctid=None, backup_id=None):
        vps = self.get_object()
        return self._once(vps, lambda: data.delete_backup(request.user, vps, backup_id))
