from rest_framework import serializers

from panel.accounts.choices import Role
from panel.accounts.models import User
from panel.nodes.models import IPAddress, IPPool, Node, NodeGroup


class NodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = Node
        fields = ["id", "name", "description", "state", "last_seen", "facts", "capacity", "heartbeat_interval",
                  "created"]


class NodeGroupSerializer(serializers.ModelSerializer):
    class Meta:
        model = NodeGroup
        fields = ["id", "name", "description", "nodes"]


class IPPoolSerializer(serializers.ModelSerializer):
    class Meta:
        model = IPPool
        fields = ["id", "name", "family", "network", "gateway", "unit_prefix", "node", "group", "active",
                  "description"]


class IPAddressSerializer(serializers.ModelSerializer):
    """Admins allocate (POST with a pool) and release (DELETE); holders edit `ptr` only."""

    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(role=Role.CUSTOMER), required=False,
                                               allow_null=True)

    class Meta:
        model = IPAddress
        fields = ["id", "pool", "address", "prefix_length", "owner", "assigned_to", "ptr", "allocated"]
        read_only_fields = ["address", "prefix_length", "allocated"]


class IPAddressPtrSerializer(IPAddressSerializer):
    """What a holder may change: the reverse-DNS name."""

    owner = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(IPAddressSerializer.Meta):
        read_only_fields = [f for f in IPAddressSerializer.Meta.fields if f != "ptr"]
