from rest_framework import serializers

from panel.accounts.models import User
from panel.plans import budgets, services
from panel.plans.choices import BUDGET_RESOURCES
from panel.plans.models import Allocation, Budget, Plan


class PlanSerializer(serializers.ModelSerializer):
    limits = serializers.SerializerMethodField(help_text="The protocol limits a VPS on this plan gets")

    class Meta:
        model = Plan
        fields = ["id", "name", "description", "owner", "active", "ram", "swap", "diskspace", "diskinodes",
                  "quotaugidlimit", "cpus", "cpulimit", "cpuunits", "numproc", "numfile", "iolimit", "iopslimit",
                  "port_speed", "traffic", "traffic_reset_day", "over_quota_action", "throttle_rate", "ipv4_count",
                  "ipv6_mode", "ipv6_count", "backup_slots", "created", "limits"]
        read_only_fields = ["created"]
        validators = []  # uniqueness is checked by the model's full_clean in the service

    def get_limits(self, plan: Plan) -> dict[str, int]:
        return services.plan_limits(plan)


class BudgetSerializer(serializers.ModelSerializer):
    grantee = serializers.PrimaryKeyRelatedField(queryset=User.objects.all())
    allocated = serializers.SerializerMethodField(help_text="Allocated against this budget now")
    used = serializers.SerializerMethodField(
        help_text="What the grantee's VPSs hold now per resource (cpus: busy CPUs, fractional; "
                  "see docs/panel-domain.md)")

    class Meta:
        model = Budget
        fields = ["id", "grantee", "granted_by", *BUDGET_RESOURCES, "updated", "allocated", "used"]
        read_only_fields = ["granted_by", "updated"]

    def get_allocated(self, budget: Budget) -> dict[str, int]:
        return budgets.allocated(budget.grantee)

    def get_used(self, budget: Budget) -> dict[str, float]:
        return budgets.used(budget.grantee)


class AllocationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Allocation
        fields = ["id", "holder", "customer", "reseller", *BUDGET_RESOURCES, "created", "updated"]
