from rest_framework.routers import DefaultRouter

from panel.vps.api import views

router = DefaultRouter()
router.register("vps", views.VPSViewSet)

app_name = "vps-api"
urlpatterns = router.urls
