"""The panel's Celery app (queue `panel`): configured from Django settings.

It signs what it sends (requests to nodes) with the panel's key and
accepts only messages signed by a trusted node certificate (reports).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings.dev")

app = Celery("ctpanel-panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.setup_security()
app.autodiscover_tasks()
