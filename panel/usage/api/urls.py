from django.urls import path
from rest_framework.routers import DefaultRouter

from panel.usage.api import views

router = DefaultRouter()
router.register("beancounters", views.BeancounterViewSet)
router.register("fail-events", views.FailEventViewSet)
router.register("traffic", views.TrafficPeriodViewSet)

app_name = "usage-api"
urlpatterns = [
    path("series/<int:ctid>/", views.SeriesView.as_view(), name="series"),
    path("report/", views.ReportView.as_view(), name="report"),
    *router.urls,
]
