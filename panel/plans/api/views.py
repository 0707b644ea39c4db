from rest_framework.exceptions import NotFound

from panel.accounts.models import User
from panel.core.api.base import RestrictedModelViewSet, RestrictedReadOnlyViewSet
from panel.core.permissions import VIEW
from panel.plans import budgets, filtersets, services
from panel.plans.api import serializers
from panel.plans.choices import BUDGET_RESOURCES
from panel.plans.models import Allocation, Budget, Plan


class PlanViewSet(RestrictedModelViewSet):
    queryset = Plan.objects.all()
    serializer_class = serializers.PlanSerializer
    filterset_class = filtersets.PlanFilterSet
    ordering_fields = ["name", "ram", "created"]

    def perform_create(self, serializer):
        serializer.instance = services.create_plan(self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_plan(self.request.user, serializer.instance,
                                                   **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_plan(self.request.user, instance)


class BudgetViewSet(RestrictedModelViewSet):
    """Budgets with what is allocated against them and used. Create or update = grant."""

    queryset = Budget.objects.select_related("grantee")
    serializer_class = serializers.BudgetSerializer
    filterset_class = filtersets.BudgetFilterSet

    def _grant(self, serializer, grantee):
        if not User.objects.restrict(self.request.user, VIEW).filter(pk=grantee.pk).exists():
            raise NotFound("No such user.")
        limits = {r: serializer.validated_data[r] for r in BUDGET_RESOURCES if r in serializer.validated_data}
        serializer.instance = budgets.grant(self.request.user, grantee, **limits)

    def perform_create(self, serializer):
        self._grant(serializer, serializer.validated_data["grantee"])

    def perform_update(self, serializer):
        self._grant(serializer, serializer.instance.grantee)

    def perform_destroy(self, instance):
        budgets.revoke(self.request.user, instance)


class AllocationViewSet(RestrictedReadOnlyViewSet):
    queryset = Allocation.objects.all()
    serializer_class = serializers.AllocationSerializer
    filterset_class = filtersets.AllocationFilterSet
