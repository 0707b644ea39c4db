from rest_framework.routers import DefaultRouter

from panel.plans.api import views

router = DefaultRouter()
router.register("plans", views.PlanViewSet)
router.register("budgets", views.BudgetViewSet)
router.register("allocations", views.AllocationViewSet)

app_name = "plans-api"
urlpatterns = router.urls
