import time

from django.core.management.base import BaseCommand, CommandError

from panel.core.models import Operation
from panel.nodes import services
from panel.nodes.models import Node


class Command(BaseCommand):
    help = "Send node.ping to a node and wait for its report."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, name, timeout, **options):
        node = Node.objects.filter(name=name).first()
        if node is None:
            raise CommandError(f"no node named {name!r}; register it first (manage.py register_node)")
        op = services.ping(node)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            op = Operation.objects.get(pk=op.pk)
            if op.is_terminal:
                break
            time.sleep(0.2)
        if not op.is_terminal:
            raise CommandError(f"no report from {name} within {timeout:g} s (operation {op.pk} is "
                               f"{op.status}); is its node worker running?")
        if op.status != "succeeded":
            raise CommandError(f"{name}: {op.error_code}: {op.error_message}")
        self.stdout.write(f"{name}: pong in {op.duration_ms} ms (kernel {op.result.get('kernel')})")
