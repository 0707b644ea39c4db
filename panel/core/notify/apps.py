from django.apps import AppConfig


class NotifyConfig(AppConfig):
    """Notices, e-mail and webhooks (part of the core layer, with its own migrations)."""

    name = "panel.core.notify"
    label = "notify"
    verbose_name = "Notifications"
