import django_filters

from panel.nodes.models import IPAddress, IPPool, Node, NodeGroup


class NodeFilterSet(django_filters.FilterSet):
    class Meta:
        model = Node
        fields = ["name", "state"]


class NodeGroupFilterSet(django_filters.FilterSet):
    class Meta:
        model = NodeGroup
        fields = ["name", "nodes"]


class IPPoolFilterSet(django_filters.FilterSet):
    class Meta:
        model = IPPool
        fields = ["family", "node", "group", "active"]


class IPAddressFilterSet(django_filters.FilterSet):
    class Meta:
        model = IPAddress
        fields = ["pool", "owner", "assigned_to", "address"]
