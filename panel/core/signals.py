"""Signals of core that higher apps listen to (core never imports them)."""

from django.dispatch import Signal

# Sent inside the transaction that applied a node's report to an operation,
# with the operation row still locked: `operation` (core.Operation).
operation_reported = Signal()
