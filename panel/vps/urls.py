from django.urls import path

from panel.vps import views
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
]
