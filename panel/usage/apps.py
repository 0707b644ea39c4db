from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "panel.usage"
    label = "usage"
    verbose_name = "Usage"

    def ready(self) -> None:
        from panel.plans import budgets
        from panel.usage import held

        budgets.provide_used(held.used)
