from rest_framework.routers import DefaultRouter

from panel.accounts.api import views

router = DefaultRouter()
router.register("users", views.UserViewSet)
router.register("tokens", views.ApiTokenViewSet)
router.register("events", views.AuthEventViewSet)

app_name = "accounts-api"
urlpatterns = router.urls
