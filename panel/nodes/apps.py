from django.apps import AppConfig


class NodesConfig(AppConfig):
    name = "panel.nodes"
    label = "nodes"
    verbose_name = "Nodes"
