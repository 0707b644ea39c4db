from rest_framework.exceptions import PermissionDenied

from panel.core.api.base import RestrictedModelViewSet, RestrictedReadOnlyViewSet
from panel.core.permissions import is_admin
from panel.nodes import filtersets, ippools
from panel.nodes.api import serializers
from panel.nodes.models import IPAddress, IPPool, Node, NodeGroup


class NodeViewSet(RestrictedReadOnlyViewSet):
    queryset = Node.objects.all()
    serializer_class = serializers.NodeSerializer
    filterset_class = filtersets.NodeFilterSet


def _admins_only(user) -> None:
    """Creates have no object to restrict yet: node groups and IP pools are the admins' to make."""
    if not is_admin(user):
        raise PermissionDenied("Only admins create node groups and IP pools.")


class NodeGroupViewSet(RestrictedModelViewSet):
    queryset = NodeGroup.objects.all()
    serializer_class = serializers.NodeGroupSerializer
    filterset_class = filtersets.NodeGroupFilterSet

    def perform_create(self, serializer):
        _admins_only(self.request.user)
        super().perform_create(serializer)


class IPPoolViewSet(RestrictedModelViewSet):
    queryset = IPPool.objects.all()
    serializer_class = serializers.IPPoolSerializer
    filterset_class = filtersets.IPPoolFilterSet

    def perform_create(self, serializer):
        _admins_only(self.request.user)
        serializer.instance = ippools.create_pool(**serializer.validated_data)

    def perform_update(self, serializer):
        pool = serializer.instance
        for name, value in serializer.validated_data.items():
            setattr(pool, name, value)
        pool.full_clean()
        pool.save()


class IPAddressViewSet(RestrictedModelViewSet):
    queryset = IPAddress.objects.select_related("pool")
    serializer_class = serializers.IPAddressSerializer
    filterset_class = filtersets.IPAddressFilterSet

    def get_serializer_class(self):
        if self.action in ("update", "partial_update") and not is_admin(self.request.user):
            return serializers.IPAddressPtrSerializer
        return super().get_serializer_class()

    def perform_create(self, serializer):
        if not is_admin(self.request.user):
            raise PermissionDenied("Addresses are allocated by admins (and by VPS creation).")
        data = serializer.validated_data
        serializer.instance = ippools.allocate(data["pool"], owner=data.get("owner"),
                                               assigned_to=data.get("assigned_to", ""))
        if data.get("ptr"):
            ippools.set_ptr(serializer.instance, data["ptr"])

    def perform_update(self, serializer):
        address = serializer.instance
        data = dict(serializer.validated_data)
        ptr = data.pop("ptr", None)
        for name, value in data.items():
            setattr(address, name, value)
        if ptr is not None:
            ippools.set_ptr(address, ptr)
        else:
            address.save()

    def perform_destroy(self, instance):
        if not is_admin(self.request.user):
            raise PermissionDenied("Addresses are released by admins (and by VPS destruction).")
        ippools.release(instance)
