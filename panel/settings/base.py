"""Settings shared by every environment. Values come from CTPANEL_* variables.

`./ctl` writes them to an env file at first run and exports them into the
processes it starts; production uses the same file through systemd's
`EnvironmentFile=` or compose's `env_file`. A missing required variable
stops start-up with a message that names it.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

ENV_HINT = (
    "Start the panel through `./ctl up` (which writes and exports "
    "/var/lib/ctpanel/etc/panel.env), or export the variables yourself: "
    "set -a; . /var/lib/ctpanel/etc/panel.env; set +a"
)


def env(name: str, default: str | None = None) -> str:
    """A required setting unless `default` is given."""
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        if default is None:
            raise ImproperlyConfigured(f"{name} is not set. {ENV_HINT}")
        return default
    return value.strip()


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


SECRET_KEY = env("CTPANEL_SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env_list("CTPANEL_ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "panel.core",
    "panel.core.audit",
    "panel.core.notify",
    "panel.accounts",
    "panel.nodes",
    "panel.plans",
    "panel.vps",
    "panel.vps.console",
    "panel.usage",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "panel.core.middleware.RequestIdMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "panel.core.audit.middleware.AuditContextMiddleware",
    "panel.accounts.middleware.AdminAllowListMiddleware",
    "panel.accounts.middleware.TwoFactorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "panel.urls"
ASGI_APPLICATION = "panel.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": env("CTPANEL_DB_NAME", "ctpanel"),
        "USER": env("CTPANEL_DB_USER", "ctpanel"),
        "PASSWORD": env("CTPANEL_DB_PASSWORD"),
        "HOST": env("CTPANEL_DB_HOST", "127.0.0.1"),
        "PORT": env("CTPANEL_DB_PORT", "5432"),
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "panel.accounts.backends.PanelBackend",
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env("CTPANEL_STATIC_ROOT", str(BASE_DIR / "build" / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Celery (panel side): signed JSON messages, explicit queues, no results.
CELERY_BROKER_URL = env("CTPANEL_BROKER_URL")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_SERIALIZER = "auth"
CELERY_ACCEPT_CONTENT = ["auth"]
CELERY_EVENT_SERIALIZER = "json"
CELERY_SECURITY_KEY = env("CTPANEL_SIGNING_KEY")
CELERY_SECURITY_CERTIFICATE = env("CTPANEL_SIGNING_CERT")
CELERY_SECURITY_CERT_STORE = env("CTPANEL_TRUSTED_CERTS")
CELERY_SECURITY_DIGEST = "sha256"
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = env("CTPANEL_PANEL_QUEUE", "panel")
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_TIMEZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

CTPANEL_OPERATION_STALE_SECONDS = int(env("CTPANEL_OPERATION_STALE_SECONDS", "3600"))

CELERY_BEAT_SCHEDULE = {
    "sweep-operations": {"task": "panel.sweep_operations", "schedule": 300.0, "options": {"expires": 300}},
    "sweep-nodes": {
        "task": "panel.sweep_nodes",
        "schedule": float(env("CTPANEL_SWEEP_SECONDS", "10")),
        "options": {"expires": 10},
    },
    "usage-rollup": {"task": "panel.usage_rollup", "schedule": 300.0, "options": {"expires": 300}},
    "usage-housekeeping": {"task": "panel.usage_housekeeping", "schedule": 3600.0, "options": {"expires": 3600}},
    "vps-idempotency-keys": {"task": "panel.vps_expire_idempotency_keys", "schedule": 3600.0,
                             "options": {"expires": 3600}},
}

# Accounts (docs/DESIGN.md, "Accounts, API and audit").
# 2FA is required for admins and resellers when set; everybody may enrol.
CTPANEL_REQUIRE_2FA = env("CTPANEL_REQUIRE_2FA", "0") == "1"
# Admins may sign in (session or token) only from these addresses/networks; empty = anywhere.
CTPANEL_ADMIN_ALLOWED_IPS = env_list("CTPANEL_ADMIN_ALLOWED_IPS", "")
OTP_TOTP_ISSUER = env("CTPANEL_OTP_ISSUER", "ctpanel")
AXES_FAILURE_LIMIT = int(env("CTPANEL_LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = float(env("CTPANEL_LOGIN_COOLOFF_HOURS", "0.25"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
PASSWORD_RESET_TIMEOUT = 3600 * 4
# Webhook targets on loopback or private networks are refused unless allowed (SSRF).
CTPANEL_WEBHOOK_ALLOW_PRIVATE = env("CTPANEL_WEBHOOK_ALLOW_PRIVATE", "0") == "1"


def _addresses(name: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(item)) for item in env_list(name)]
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc} (a comma-separated list of IP addresses)") from None


# The resolvers every VPS gets in its resolv.conf (empty: the node leaves the template's file alone).
CTPANEL_VPS_NAMESERVERS = _addresses("CTPANEL_VPS_NAMESERVERS")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "panel.accounts.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "panel.accounts.api.authentication.TokenScopePermission",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "panel.core.api.policy.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "panel.core.api.policy.AnonThrottle",
        "panel.core.api.policy.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("CTPANEL_API_RATE_ANON", "60/min"),
        "user": env("CTPANEL_API_RATE_USER", "1200/min"),
    },
    "EXCEPTION_HANDLER": "panel.core.api.base.exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ctpanel API",
    "DESCRIPTION": "Hosting control panel with OpenVZ-style containers. Authenticate with "
    "`Authorization: Bearer <token>` (API tokens) or a browser session.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "NodeStateEnum": "panel.nodes.choices.NodeState",
        "VpsStateEnum": "panel.vps.choices.VpsState",
        "DesiredStateEnum": "panel.vps.choices.DesiredState",
        "UgidQuotaKindEnum": "panel.vps.quotas.KINDS",
    },
}
