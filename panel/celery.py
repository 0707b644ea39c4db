"""The panel's Celery app (queue `panel`): configured from Django settings.

It signs what it sends (requests to nodes) with the panel's key and
accepts only messages signed by a trusted certificate, a node's only when
they name that node (panel/core/signing.py).

Database connections live as long as Django's CONN_MAX_AGE, as in the web
processes: Celery's Django fixup would close them before and after every
task (a new PostgreSQL connection per task, which cost the ingest of a usage
batch more than its own statements).
"""

import os
from typing import Any

from celery import Celery, Task, signals
from django.db import close_old_connections

from panel.core import signing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings.dev")

app = Celery("ctpanel-panel")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's fixup closes the connections once per this many tasks instead of after each one: never, in effect.
app.conf["CELERY_DB_REUSE_MAX"] = 2**62
app.setup_security()
signing.register(app)  # node messages bound to their signer's node
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def close_obsolete_connections(task: Task, **kwargs: Any) -> None:
    """Django's request start and end: drop a connection older than CONN_MAX_AGE, or broken."""
    if not getattr(task.request, "is_eager", False):  # an eager task runs inside its caller's transaction
        close_old_connections()
