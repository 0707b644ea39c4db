from django.urls import path

from panel.usage import views

app_name = "usage"
urlpatterns = [
    path("usage/", views.UsageReportView.as_view(), name="report"),
    path("vps/<int:ctid>/graphs/", views.GraphView.as_view(), name="graphs"),
]
