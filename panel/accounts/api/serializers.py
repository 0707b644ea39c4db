from rest_framework import serializers

from panel.accounts.choices import Role
from panel.accounts.models import ApiToken, AuthEvent, User


class UserSerializer(serializers.ModelSerializer):
    password = serializers.CharField(write_only=True, required=False, style={"input_type": "password"})
    owner = serializers.PrimaryKeyRelatedField(queryset=User.objects.filter(role=Role.RESELLER), required=False,
                                               allow_null=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "first_name", "last_name", "role", "owner", "is_active", "password",
                  "date_joined", "last_login"]
        read_only_fields = ["date_joined", "last_login"]


class ApiTokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ["id", "user", "name", "prefix", "scope", "created", "expires", "revoked_at", "last_used",
                  "last_used_ip", "is_active"]
        read_only_fields = ["user", "prefix", "created", "revoked_at", "last_used", "last_used_ip"]


class NewApiTokenSerializer(ApiTokenSerializer):
    key = serializers.CharField(read_only=True, help_text="Shown only in this response")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "key"]


class AuthEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuthEvent
        fields = ["id", "time", "user", "username", "kind", "ip", "user_agent", "token"]
