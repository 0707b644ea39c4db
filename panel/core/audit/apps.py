from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The change log and the journal (part of the core layer, with its own migrations)."""

    name = "panel.core.audit"
    label = "audit"
    verbose_name = "Audit"
