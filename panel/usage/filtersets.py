import django_filters

from panel.core.filtersets import UtcDateTimeFilter
from panel.usage.models import Beancounter, FailEvent, TrafficPeriod


class BeancounterFilterSet(django_filters.FilterSet):
    ctid = django_filters.NumberFilter(field_name="vps__ctid")

    class Meta:
        model = Beancounter
        fields = ["ctid", "resource"]


class FailEventFilterSet(django_filters.FilterSet):
    ctid = django_filters.NumberFilter(field_name="vps__ctid")
    since = UtcDateTimeFilter(field_name="time", lookup_expr="gte")
    until = UtcDateTimeFilter(field_name="time", lookup_expr="lt")

    class Meta:
        model = FailEvent
        fields = ["ctid", "resource", "since", "until"]


class TrafficPeriodFilterSet(django_filters.FilterSet):
    ctid = django_filters.NumberFilter(field_name="vps__ctid")
    on = django_filters.DateFilter(method="running_on", label="Periods running on this date")

    class Meta:
        model = TrafficPeriod
        fields = ["ctid", "start", "over_action"]

    def running_on(self, queryset, name, value):
        return queryset.filter(start__lte=value, end__gt=value)
