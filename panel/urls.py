from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from panel import dashboard

urlpatterns = [
    path("", dashboard.home, name="home"),
    path("dashboard/vpss/", dashboard.vps_card, name="vps-card"),
    path("vps/<int:ctid>/usage/", dashboard.vps_usage, name="vps-usage"),
    path("", include("panel.accounts.urls")),
    path("", include("panel.nodes.urls")),
    path("", include("panel.plans.urls")),
    path("", include("panel.vps.urls")),
    path("", include("panel.usage.urls")),
    path("", include("panel.core.urls")),
    path("admin/", admin.site.urls),
    path("api/core/", include("panel.core.api.urls")),
    path("api/accounts/", include("panel.accounts.api.urls")),
    path("api/nodes/", include("panel.nodes.api.urls")),
    path("api/plans/", include("panel.plans.api.urls")),
    path("api/vps/", include("panel.vps.api.urls")),
    path("api/usage/", include("panel.usage.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
