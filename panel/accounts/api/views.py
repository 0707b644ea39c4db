from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.response import Response

from panel.accounts import filtersets, services
from panel.accounts.api import serializers
from panel.accounts.models import ApiToken, AuthEvent, User
from panel.core.api.base import RestrictedModelViewSet, RestrictedReadOnlyViewSet, RestrictedViewSetMixin


class UserViewSet(RestrictedModelViewSet):
    """Users: admins manage everyone; a reseller itself and its customers; a customer itself."""

    queryset = User.objects.all()
    serializer_class = serializers.UserSerializer
    filterset_class = filtersets.UserFilterSet
    ordering_fields = ["username", "date_joined"]

    def perform_create(self, serializer):
        serializer.instance = services.create_user(self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = services.update_user(self.request.user, serializer.instance,
                                                   **serializer.validated_data)

    def perform_destroy(self, instance):
        services.delete_user(self.request.user, instance)


class ApiTokenViewSet(RestrictedViewSetMixin, mixins.CreateModelMixin, mixins.DestroyModelMixin,
                      viewsets.ReadOnlyModelViewSet):
    """API tokens: create returns the key once; delete revokes (the row stays for the record)."""

    queryset = ApiToken.objects.all()
    serializer_class = serializers.ApiTokenSerializer
    filterset_class = filtersets.ApiTokenFilterSet

    @extend_schema(responses={201: serializers.NewApiTokenSerializer})
    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, key = services.create_token(request.user, name=data["name"], scope=data.get("scope", "read"),
                                           expires=data.get("expires"), request=request)
        token.key = key
        return Response(serializers.NewApiTokenSerializer(token).data, status=status.HTTP_201_CREATED)

    def perform_destroy(self, instance):
        services.revoke_token(instance, request=self.request)


class AuthEventViewSet(RestrictedReadOnlyViewSet):
    queryset = AuthEvent.objects.all()
    serializer_class = serializers.AuthEventSerializer
    filterset_class = filtersets.AuthEventFilterSet
    ordering_fields = ["time"]
