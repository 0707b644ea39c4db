from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "panel.nodes"
    label = "nodes"
    verbose_name = "Nodes"

    def ready(self) -> None:
        from panel.core.audit import services as audit
        from panel.nodes.models import IPAddress, IPPool, Node, NodeGroup

        # Heartbeats and the sweep write with update(): not logged, as intended.
        audit.register(Node, exclude=("last_seen", "facts", "capacity"))
        audit.register(NodeGroup)
        audit.register(IPPool)
        audit.register(IPAddress)
