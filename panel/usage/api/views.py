"""Usage over the API: beancounters, failcnt events, traffic periods, a VPS's series, reports."""

from __future__ import annotations

import datetime

from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import APIView

from panel.core.api.base import RestrictedReadOnlyViewSet
from panel.core.permissions import VIEW, is_admin
from panel.usage import filtersets, reports
from panel.usage.api import serializers
from panel.usage.models import Beancounter, FailEvent, TrafficPeriod
from panel.vps.models import VPS

MAX_WINDOW = {"raw": datetime.timedelta(hours=48), "5min": datetime.timedelta(days=14),
              "hour": datetime.timedelta(days=400)}


class BeancounterViewSet(RestrictedReadOnlyViewSet):
    """Each VPS's beancounter table as last reported (held, maxheld, barrier, limit, failcnt)."""

    queryset = Beancounter.objects.select_related("vps")
    serializer_class = serializers.BeancounterSerializer
    filterset_class = filtersets.BeancounterFilterSet


class FailEventViewSet(RestrictedReadOnlyViewSet):
    """Each time a beancounter's failcnt grew: when, which row, by how much."""

    queryset = FailEvent.objects.select_related("vps")
    serializer_class = serializers.FailEventSerializer
    filterset_class = filtersets.FailEventFilterSet
    ordering_fields = ["time"]


class TrafficPeriodViewSet(RestrictedReadOnlyViewSet):
    """Monthly traffic per VPS (received + sent), with its quota and what happened over it."""

    queryset = TrafficPeriod.objects.select_related("vps")
    serializer_class = serializers.TrafficPeriodSerializer
    filterset_class = filtersets.TrafficPeriodFilterSet
    ordering_fields = ["start", "rx_bytes", "tx_bytes"]


def _window(query: dict, default: datetime.timedelta) -> tuple[datetime.datetime, datetime.datetime]:
    until = query.get("until") or timezone.now()
    since = query.get("since") or until - default
    if since >= until:
        raise exceptions.ValidationError({"since": "Must be before until."})
    return since, until


class SeriesView(APIView):
    """One VPS's graph data: raw samples (48 h), 5-minute (14 days) or hourly (13 months) rollups."""

    @extend_schema(parameters=[serializers.SeriesQuerySerializer], responses=serializers.SeriesSerializer)
    def get(self, request, ctid: int):
        vps = get_object_or_404(VPS.objects.restrict(request.user, VIEW), ctid=ctid)
        query = serializers.SeriesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        resolution = query.validated_data["resolution"]
        since, until = _window(query.validated_data, datetime.timedelta(hours=24))
        if until - since > MAX_WINDOW[resolution]:
            raise exceptions.ValidationError({"since": f"At most {MAX_WINDOW[resolution]} at {resolution}."})
        return Response(serializers.SeriesSerializer({
            "ctid": vps.ctid, "resolution": resolution, "since": since, "until": until,
            "points": reports.series(vps, resolution, since, until),
            "limit_hits": reports.fail_summary(vps, since, until),
        }).data)


class ReportView(APIView):
    """Usage per customer (admins: also per reseller) of the VPSs the caller may see."""

    @extend_schema(parameters=[serializers.ReportQuerySerializer],
                   responses=serializers.ReportRowSerializer(many=True))
    def get(self, request):
        query = serializers.ReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        group = query.validated_data["group"]
        if group == "reseller" and not is_admin(request.user):
            raise exceptions.PermissionDenied("Only admins see usage per reseller.")
        since, until = _window(query.validated_data, datetime.timedelta(days=30))
        rows = reports.usage_report(request.user, since, until, group)
        return Response(serializers.ReportRowSerializer(rows, many=True).data)
