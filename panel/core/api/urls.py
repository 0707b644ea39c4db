from rest_framework.routers import DefaultRouter

from panel.core.api import views

router = DefaultRouter()
router.register("operations", views.OperationViewSet)
router.register("changes", views.ObjectChangeViewSet)
router.register("journal", views.JournalEntryViewSet)
router.register("notices", views.NoticeViewSet)
router.register("webhooks", views.WebhookViewSet)
router.register("webhook-deliveries", views.WebhookDeliveryViewSet)

app_name = "core-api"
urlpatterns = router.urls
