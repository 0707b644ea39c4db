import django_filters

from panel.vps.models import VPS


class VPSFilterSet(django_filters.FilterSet):
    """The VPS list's filters (the API uses the same ones)."""

    hostname = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = VPS
        fields = ["hostname", "state", "node", "customer", "plan"]
