"""The test suite: its own database, Redis instance, queues and state root."""

from panel.settings.base import *  # noqa: F403

DEBUG = False
WHITENOISE_USE_FINDERS = True
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# The test stack's panel workers keep their connections as in production (tests/services.py): a
# connection per task costs a backend fork and a password exchange on both sides per report.
DATABASES["default"]["CONN_MAX_AGE"] = int(env("CTPANEL_TEST_CONN_MAX_AGE", "0"))  # noqa: F405
STATIC_ROOT = None  # served from the finders; collectstatic is for production

# Several test runs can share the test profile's PostgreSQL and Redis (two
# developers, or a developer and an agent): `./ctl test` gives each run its
# own database, node name and panel queue, keyed by CTPANEL_TEST_RUN.
if env("CTPANEL_TEST_RUN", ""):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_ctpanel_{env('CTPANEL_TEST_RUN')}"}  # noqa: F405

# Worker and web processes started by the tests outlive the flushes of
# transactional tests (panel/core/testing.py).
CTPANEL_TEST_FORGET_CONTENT_TYPES = True
MIDDLEWARE = ["panel.core.testing.ForgetContentTypesMiddleware", *MIDDLEWARE]  # noqa: F405
