import django_filters

from panel.accounts.models import ApiToken, AuthEvent, User
from panel.core.filtersets import UtcDateTimeFilter


class UserFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="username", lookup_expr="icontains")

    class Meta:
        model = User
        fields = ["role", "owner", "is_active"]


class ApiTokenFilterSet(django_filters.FilterSet):
    class Meta:
        model = ApiToken
        fields = ["user", "scope"]


class AuthEventFilterSet(django_filters.FilterSet):
    time_after = UtcDateTimeFilter(field_name="time", lookup_expr="gte")

    class Meta:
        model = AuthEvent
        fields = ["user", "kind"]
