from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    name = "panel.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        if getattr(settings, "CTPANEL_TEST_FORGET_CONTENT_TYPES", False):
            from celery.signals import task_prerun

            from panel.core.testing import forget_content_types

            task_prerun.connect(forget_content_types, dispatch_uid="forget-content-types")
