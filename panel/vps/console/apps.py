from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "panel.vps.console"
    label = "console"
    verbose_name = "Console"

    def ready(self) -> None:
        from panel.core.audit.services import register
        from panel.vps.console.models import ConsoleSession

        register(ConsoleSession)
