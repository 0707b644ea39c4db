from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "panel.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from panel.accounts import signals  # noqa: F401 - connects the auth event receivers
        from panel.accounts.models import ApiToken, User
        from panel.core.audit import services as audit

        audit.register(User, exclude=("last_login",))
        audit.register(ApiToken, exclude=("last_used", "last_used_ip"))
