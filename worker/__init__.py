"""Node side of ctpanel: Celery tasks, the supervisor and the vzctl-style CLIs.

Kept empty on purpose: the panel imports `worker.protocol`, and importing
the package must not pull Celery or kernel/ into the panel's processes.
"""
