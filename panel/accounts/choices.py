from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin", "Administrator"
    RESELLER = "reseller", "Reseller"
    CUSTOMER = "customer", "Customer"


class TokenScope(models.TextChoices):
    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class AuthEventKind(models.TextChoices):
    LOGIN = "login", "Logged in"
    LOGIN_FAILED = "login_failed", "Login failed"
    LOGIN_REFUSED_IP = "login_refused_ip", "Login refused: address not allowed"
    LOGOUT = "logout", "Logged out"
    OTP_ENROLLED = "otp_enrolled", "Two-factor authentication enabled"
    OTP_REMOVED = "otp_removed", "Two-factor authentication disabled"
    OTP_VERIFIED = "otp_verified", "Two-factor code accepted"
    OTP_FAILED = "otp_failed", "Two-factor code refused"
    TOKEN_CREATED = "token_created", "API token created"
    TOKEN_USED = "token_used", "API token used"
    TOKEN_REVOKED = "token_revoked", "API token revoked"
    TOKEN_REFUSED = "token_refused", "API token refused"
    PASSWORD_RESET = "password_reset", "Password reset by e-mail"
