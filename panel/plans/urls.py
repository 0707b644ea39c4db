from django.urls import path

from panel.plans import views

app_name = "plans"
urlpatterns = [
    path("plans/", views.PlanListView.as_view(), name="list"),
    path("plans/add/", views.PlanEditView.as_view(), name="add"),
    path("plans/<int:pk>/", views.PlanView.as_view(), name="plan"),
    path("plans/<int:pk>/edit/", views.PlanEditView.as_view(), name="edit"),
    path("plans/<int:pk>/delete/", views.PlanDeleteView.as_view(), name="delete"),
    path("budget/", views.MyBudgetView.as_view(), name="budget"),
    path("budgets/", views.BudgetListView.as_view(), name="budgets"),
    path("users/<int:pk>/budget/", views.UserBudgetView.as_view(), name="user-budget"),
]
