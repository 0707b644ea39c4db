from django.urls import path

from panel.nodes import views

app_name = "nodes"
urlpatterns = [
    path("nodes/", views.NodeListView.as_view(), name="list"),
    path("templates/", views.TemplateListView.as_view(), name="templates"),
    path("nodes/<str:name>/", views.NodeView.as_view(), name="node"),
    path("nodes/<str:name>/ping/", views.NodePingView.as_view(), name="ping"),
    path("ip-pools/", views.PoolListView.as_view(), name="pools"),
    path("ip-pools/add/", views.PoolEditView.as_view(), name="pool-add"),
    path("ip-pools/<int:pk>/", views.PoolView.as_view(), name="pool"),
    path("ip-pools/<int:pk>/edit/", views.PoolEditView.as_view(), name="pool-edit"),
]
