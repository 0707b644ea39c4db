from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("panel.accounts.urls")),
    path("nodes/", include("panel.nodes.urls")),
    path("admin/", admin.site.urls),
]
