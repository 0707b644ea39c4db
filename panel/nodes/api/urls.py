from rest_framework.routers import DefaultRouter

from panel.nodes.api import views

router = DefaultRouter()
router.register("nodes", views.NodeViewSet)
router.register("groups", views.NodeGroupViewSet)
router.register("pools", views.IPPoolViewSet)
router.register("addresses", views.IPAddressViewSet)

app_name = "nodes-api"
urlpatterns = router.urls
