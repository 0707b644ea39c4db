import django_filters

from panel.plans.models import Allocation, Budget, Plan


class PlanFilterSet(django_filters.FilterSet):
    is_global = django_filters.BooleanFilter(field_name="owner", lookup_expr="isnull")

    class Meta:
        model = Plan
        fields = ["name", "owner", "active", "over_quota_action"]


class BudgetFilterSet(django_filters.FilterSet):
    class Meta:
        model = Budget
        fields = ["grantee", "granted_by"]


class AllocationFilterSet(django_filters.FilterSet):
    class Meta:
        model = Allocation
        fields = ["customer", "reseller", "holder"]
