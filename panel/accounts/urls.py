from django.contrib.auth import views as auth_views
from django.urls import path

from panel.accounts import views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html",
                                                redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/", views.account, name="account"),
    path("account/password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("account/2fa/", views.otp_setup, name="otp-setup"),
    path("account/2fa/verify/", views.otp_verify, name="otp-verify"),
    path("account/2fa/remove/", views.otp_remove, name="otp-remove"),
    path("account/tokens/", views.token_list, name="token-list"),
    path("account/tokens/<int:pk>/revoke/", views.token_revoke, name="token-revoke"),
    path("password-reset/", auth_views.PasswordResetView.as_view(
        template_name="accounts/password_reset_form.html",
        email_template_name="accounts/password_reset_email.txt",
        subject_template_name="accounts/password_reset_subject.txt"), name="password_reset"),
    path("password-reset/sent/", auth_views.PasswordResetDoneView.as_view(
        template_name="accounts/password_reset_done.html"), name="password_reset_done"),
    path("reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path("reset/done/", auth_views.PasswordResetCompleteView.as_view(
        template_name="accounts/password_reset_complete.html"), name="password_reset_complete"),
    path("users/", views.UserListView.as_view(), name="users"),
    path("users/add/", views.UserEditView.as_view(), name="user-add"),
    path("users/<int:pk>/", views.UserView.as_view(), name="user"),
    path("users/<int:pk>/edit/", views.UserEditView.as_view(), name="user-edit"),
    path("users/<int:pk>/suspend/", views.UserSuspendView.as_view(), name="user-suspend"),
    path("users/<int:pk>/unsuspend/", views.UserUnsuspendView.as_view(), name="user-unsuspend"),
]
