from rest_framework import serializers

from panel.usage.models import Beancounter, FailEvent, TrafficPeriod


class CtidMixin(serializers.Serializer):
    ctid = serializers.IntegerField(source="vps.ctid", read_only=True)


class BeancounterSerializer(CtidMixin, serializers.ModelSerializer):
    class Meta:
        model = Beancounter
        fields = ["id", "ctid", "resource", "held", "maxheld", "barrier", "limit", "failcnt", "updated"]


class FailEventSerializer(CtidMixin, serializers.ModelSerializer):
    class Meta:
        model = FailEvent
        fields = ["id", "ctid", "time", "resource", "count", "held", "limit"]


class TrafficPeriodSerializer(CtidMixin, serializers.ModelSerializer):
    total = serializers.IntegerField(read_only=True)

    class Meta:
        model = TrafficPeriod
        fields = ["id", "ctid", "start", "end", "rx_bytes", "tx_bytes", "total", "quota", "notified_80",
                  "notified_100", "over_action", "over_action_at"]


class SeriesQuerySerializer(serializers.Serializer):
    resolution = serializers.ChoiceField(choices=["raw", "5min", "hour"], default="5min")
    since = serializers.DateTimeField(required=False, help_text="Default: 24 hours ago")
    until = serializers.DateTimeField(required=False, help_text="Default: now")


class PointSerializer(serializers.Serializer):
    """A raw sample (time, ...) or a rollup (start, samples, ..._avg, ..._max); rates in bits/s, CPU in %."""

    time = serializers.DateTimeField(required=False)
    start = serializers.DateTimeField(required=False)
    samples = serializers.IntegerField(required=False)
    cpu_percent = serializers.FloatField(required=False, allow_null=True)
    cpu_percent_avg = serializers.FloatField(required=False, allow_null=True)
    cpu_percent_max = serializers.FloatField(required=False, allow_null=True)
    ram_bytes = serializers.IntegerField(required=False, allow_null=True)
    ram_avg = serializers.IntegerField(required=False, allow_null=True)
    ram_max = serializers.IntegerField(required=False, allow_null=True)
    swap_bytes = serializers.IntegerField(required=False, allow_null=True)
    swap_max = serializers.IntegerField(required=False, allow_null=True)
    disk_bytes = serializers.IntegerField(required=False, allow_null=True)
    disk_max = serializers.IntegerField(required=False, allow_null=True)
    disk_inodes = serializers.IntegerField(required=False, allow_null=True)
    inodes_max = serializers.IntegerField(required=False, allow_null=True)
    processes = serializers.IntegerField(required=False, allow_null=True)
    processes_max = serializers.IntegerField(required=False, allow_null=True)
    rx_bps = serializers.FloatField(required=False, allow_null=True)
    tx_bps = serializers.FloatField(required=False, allow_null=True)
    rx_bps_avg = serializers.FloatField(required=False, allow_null=True)
    rx_bps_max = serializers.FloatField(required=False, allow_null=True)
    tx_bps_avg = serializers.FloatField(required=False, allow_null=True)
    tx_bps_max = serializers.FloatField(required=False, allow_null=True)
    rx_bytes = serializers.IntegerField(required=False)
    tx_bytes = serializers.IntegerField(required=False)


class FailSummarySerializer(serializers.Serializer):
    resource = serializers.CharField()
    count = serializers.IntegerField()
    last_time = serializers.DateTimeField()


class SeriesSerializer(serializers.Serializer):
    ctid = serializers.IntegerField()
    resolution = serializers.CharField()
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    points = PointSerializer(many=True)
    limit_hits = FailSummarySerializer(many=True, help_text="failcnt growth per beancounter row in the window")


class ReportQuerySerializer(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="Default: 30 days ago")
    until = serializers.DateTimeField(required=False, help_text="Default: now")
    group = serializers.ChoiceField(choices=["customer", "reseller"], default="customer",
                                    help_text="reseller: admins only, customers summed per reseller")


class ReportRowSerializer(serializers.Serializer):
    user = serializers.IntegerField(allow_null=True)
    username = serializers.CharField()
    vpss = serializers.IntegerField()
    rx_bytes = serializers.IntegerField()
    tx_bytes = serializers.IntegerField()
    cpu_percent_avg = serializers.FloatField(allow_null=True)
    ram_avg = serializers.IntegerField()
    ram_max = serializers.IntegerField()
    fail_events = serializers.IntegerField()
