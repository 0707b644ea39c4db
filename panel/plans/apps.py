from django.apps import AppConfig


class PlansConfig(AppConfig):
    name = "panel.plans"
    label = "plans"
    verbose_name = "Plans and budgets"

    def ready(self) -> None:
        from panel.core.audit import services as audit
        from panel.plans.models import Budget, Plan

        audit.register(Plan)
        audit.register(Budget)
