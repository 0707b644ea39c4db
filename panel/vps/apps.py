from django.apps import AppConfig


class VpsConfig(AppConfig):
    name = "panel.vps"
    label = "vps"
    verbose_name = "VPSs"

    def ready(self) -> None:
        from panel.core.audit import services as audit
        from panel.core.signals import operation_reported
        from panel.vps import data, receivers, reconcile
        from panel.vps.models import VPS

        audit.register(VPS, exclude=("state_changed", "init_pid"))
        operation_reported.connect(receivers.on_operation_reported, dispatch_uid="vps-operation-reported")
        operation_reported.connect(reconcile.on_operation_reported, dispatch_uid="vps-inventory-reported")
        operation_reported.connect(data.on_operation_reported, dispatch_uid="vps-data-reported")
