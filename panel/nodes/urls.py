from django.urls import path

from panel.nodes import views

app_name = "nodes"
urlpatterns = [
    path("", views.node_list, name="list"),
    path("<str:name>/ping/", views.node_ping, name="ping"),
]
