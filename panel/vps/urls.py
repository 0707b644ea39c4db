from django.urls import path

from panel.vps import data_views, views
from panel.vps.console import views as console

app_name = "vps"
urlpatterns = [
    path("vps/", views.VPSListView.as_view(), name="list"),
    path("vps/add/", views.VPSCreateView.as_view(), name="add"),
    path("vps/<int:ctid>/", views.VPSView.as_view(), name="vps"),
    path("vps/<int:ctid>/start/", views.StartView.as_view(), name="start"),
    path("vps/<int:ctid>/stop/", views.StopView.as_view(), name="stop"),
    path("vps/<int:ctid>/restart/", views.RestartView.as_view(), name="restart"),
    path("vps/<int:ctid>/poweroff/", views.PowerOffView.as_view(), name="poweroff"),
    path("vps/<int:ctid>/pause/", views.PauseView.as_view(), name="pause"),
    path("vps/<int:ctid>/resume/", views.ResumeView.as_view(), name="resume"),
    path("vps/<int:ctid>/hostname/", views.HostnameView.as_view(), name="hostname"),
    path("vps/<int:ctid>/plan/", views.ChangePlanView.as_view(), name="plan"),
    path("vps/<int:ctid>/password/", views.RootPasswordView.as_view(), name="password"),
    path("vps/<int:ctid>/ssh-keys/", views.SSHKeysView.as_view(), name="ssh-keys"),
    path("vps/<int:ctid>/addresses/<int:pk>/ptr/", views.PtrView.as_view(), name="ptr"),
    path("vps/<int:ctid>/suspend/", views.SuspendView.as_view(), name="suspend"),
    path("vps/<int:ctid>/unsuspend/", views.UnsuspendView.as_view(), name="unsuspend"),
    path("vps/<int:ctid>/destroy/", views.DestroyView.as_view(), name="destroy"),
    path("vps/<int:ctid>/history/", views.VPSHistoryView.as_view(), name="history"),
    path("vps/<int:ctid>/operations/", views.VPSOperationListView.as_view(), name="operations"),
    path("vps/<int:ctid>/operations/<uuid:pk>/", views.VPSOperationView.as_view(), name="operation"),
    path("vps/<int:ctid>/console/", console.ConsoleView.as_view(), name="console"),
    path("vps/<int:ctid>/console/ticket/", console.TicketView.as_view(), name="console-ticket"),
    path("vps/<int:ctid>/console/ws/", console.websocket_only, name="console-ws"),
    path("vps/<int:ctid>/reinstall/", data_views.ReinstallView.as_view(), name="reinstall"),
    path("vps/<int:ctid>/data/", data_views.DataCardView.as_view(), name="data"),
    path("vps/<int:ctid>/snapshots/", data_views.SnapshotCreateView.as_view(), name="snapshot-add"),
    path("vps/<int:ctid>/snapshots/<str:name>/rollback/", data_views.SnapshotRollbackView.as_view(),
         name="snapshot-rollback"),
    path("vps/<int:ctid>/snapshots/<str:name>/delete/", data_views.SnapshotDeleteView.as_view(),
         name="snapshot-delete"),
    path("vps/<int:ctid>/backups/", data_views.BackupCreateView.as_view(), name="backup-add"),
    path("vps/<int:ctid>/backups/<str:backup_id>/restore/", data_views.BackupRestoreView.as_view(),
         name="backup-restore"),
    path("vps/<int:ctid>/backups/<str:backup_id>/delete/", data_views.BackupDeleteView.as_view(),
         name="backup-delete"),
]
