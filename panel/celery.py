"""The panel's Celery app (queue `panel`): configured from Django settings.

It signs what it sends (requests to nodes) with the panel's key and
accepts only messages signed by a trusted certificate, a node's only when
they name that node (panel/core/signing.py).
"""

import os

from celery import Celery

from panel.core import signing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings.dev")

app = Celery("ctpanel-panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.setup_security()
signing.register(app)  # node messages bound to their signer's node
app.autodiscover_tasks()
