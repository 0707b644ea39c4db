from django.urls import path

from panel.core import views
from panel.core.audit import views as audit
from panel.core.notify import views as notify

app_name = "core"
urlpatterns = [
    path("operations/", views.OperationListView.as_view(), name="operations"),
    path("operations/<uuid:pk>/", views.OperationView.as_view(), name="operation"),
    path("audit/", audit.ObjectChangeListView.as_view(), name="changes"),
    path("audit/<int:pk>/", audit.ObjectChangeView.as_view(), name="change"),
    path("notices/", notify.NoticeListView.as_view(), name="notices"),
    path("notices/read/", notify.NoticeReadAllView.as_view(), name="notices-read"),
    path("notices/<int:pk>/read/", notify.NoticeReadView.as_view(), name="notice-read"),
    path("webhooks/", notify.WebhookListView.as_view(), name="webhooks"),
    path("webhooks/add/", notify.WebhookEditView.as_view(), name="webhook-add"),
    path("webhooks/<int:pk>/", notify.WebhookView.as_view(), name="webhook"),
    path("webhooks/<int:pk>/delete/", notify.WebhookDeleteView.as_view(), name="webhook-delete"),
]
