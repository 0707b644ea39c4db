from django.core.management.base import BaseCommand, CommandError

from panel.nodes import services
from worker import protocol


class Command(BaseCommand):
    help = "Register a node (idempotent): the panel then reaches it through queue node.NAME."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--description", default="")

    def handle(self, name, description, **options):
        try:
            node, created = services.register_node(name, description)
        except protocol.ProtocolError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"node {node.name}: {'registered' if created else 'already registered'}"
                          f" (queue {node.queue})")
