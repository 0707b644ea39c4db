"""A real deployment: behind a TLS-terminating proxy, hosts named explicitly."""

from panel.settings.base import *  # noqa: F403
from panel.settings.base import env, env_list

DEBUG = False
ALLOWED_HOSTS = env_list("CTPANEL_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("CTPANEL_ALLOWED_HOSTS must name the panel's host name(s) in production")
CSRF_TRUSTED_ORIGINS = [f"https://{host}" for host in ALLOWED_HOSTS]

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = int(env("CTPANEL_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Preloading commits the domain to browsers' lists for months: the admin's
# decision (CTPANEL_HSTS_PRELOAD=1). Left off, Django's reminder is silenced.
SECURE_HSTS_PRELOAD = env("CTPANEL_HSTS_PRELOAD", "0") == "1"
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = env("CTPANEL_EMAIL_HOST", "localhost")
EMAIL_PORT = int(env("CTPANEL_EMAIL_PORT", "25"))
EMAIL_HOST_USER = env("CTPANEL_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env("CTPANEL_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env("CTPANEL_EMAIL_TLS", "1") == "1"
DEFAULT_FROM_EMAIL = env("CTPANEL_EMAIL_FROM", "ctpanel@localhost")
