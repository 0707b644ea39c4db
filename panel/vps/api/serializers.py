from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from panel.accounts.models import User
from panel.core.permissions import VIEW
from panel.nodes.models import Node
from panel.plans.models import Plan
from panel.vps import addresses
from panel.vps.models import VPS


class VPSSerializer(serializers.ModelSerializer):
    node = serializers.SlugRelatedField(slug_field="name", read_only=True)
    display_state = serializers.CharField(read_only=True, help_text='"unknown" while the node is down')
    ipv4 = serializers.SerializerMethodField(help_text='CIDR strings, e.g. "198.51.100.7/32"')
    ipv6 = serializers.SerializerMethodField(help_text='CIDR strings: "/64" prefixes or "/128" addresses')

    class Meta:
        model = VPS
        fields = ["id", "ctid", "hostname", "template", "node", "customer", "plan", "limits", "onboot",
                  "desired_state", "state", "display_state", "suspended", "suspend_reason", "ssh_keys", "ipv4",
                  "ipv6", "state_changed", "created", "updated"]
        read_only_fields = fields

    def _cidrs(self, vps: VPS) -> tuple[list[str], list[str]]:
        known = self.context.get("cidrs")
        return known.get(vps.ctid, ([], [])) if known is not None else addresses.cidrs(vps)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_ipv4(self, vps: VPS) -> list[str]:
        return self._cidrs(vps)[0]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_ipv6(self, vps: VPS) -> list[str]:
        return self._cidrs(vps)[1]


class VPSCreateSerializer(serializers.Serializer):
    customer = serializers.PrimaryKeyRelatedField(queryset=User.objects.all(), required=False,
                                                  help_text="The customer it belongs to; a customer's own by default")
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all(), required=False, allow_null=True)
    template = serializers.CharField(max_length=64)
    hostname = serializers.CharField(max_length=253)
    node = serializers.SlugRelatedField(slug_field="name", queryset=Node.objects.all(), required=False,
                                        allow_null=True, help_text="Admins only; chosen by placement when empty")
    limits = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False,
                                   help_text="Admins only, without a plan: protocol limit names")
    start = serializers.BooleanField(default=True)
    ssh_keys = serializers.ListField(child=serializers.CharField(max_length=16384), required=False, max_length=32)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")  # none while the schema is generated
        if request is not None:
            self.fields["customer"].queryset = User.objects.restrict(request.user, VIEW)  # others' do not exist
            self.fields["plan"].queryset = Plan.objects.restrict(request.user, VIEW)


class CreatedSerializer(VPSSerializer):
    operation = serializers.UUIDField(read_only=True)
    operation_url = serializers.CharField(read_only=True)

    class Meta(VPSSerializer.Meta):
        fields = [*VPSSerializer.Meta.fields, "operation", "operation_url"]
        read_only_fields = fields


class AcceptedSerializer(serializers.Serializer):
    operation = serializers.UUIDField()
    operation_url = serializers.CharField()


class StopSerializer(serializers.Serializer):
    fast = serializers.BooleanField(default=False, help_text="Power off instead of a clean shutdown")


class HostnameSerializer(serializers.Serializer):
    hostname = serializers.CharField(max_length=253)


class PlanChangeSerializer(serializers.Serializer):
    plan = serializers.PrimaryKeyRelatedField(queryset=Plan.objects.all())

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        request = self.context.get("request")
        if request is not None:
            self.fields["plan"].queryset = Plan.objects.restrict(request.user, VIEW)


class SuspendSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class UnsuspendSerializer(serializers.Serializer):
    start = serializers.BooleanField(default=True)


class PasswordSerializer(serializers.Serializer):
    password = serializers.CharField(write_only=True, max_length=128, trim_whitespace=False,
                                     style={"input_type": "password"})


class SshKeysSerializer(serializers.Serializer):
    ssh_keys = serializers.ListField(child=serializers.CharField(max_length=16384), max_length=32)
