"""Django settings: everything site-specific comes from the environment (see config.py)."""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

from camgate import config
from camgate.datadir import write_private_file
from camgate.metrics.access import LOOPBACK, parse_allow_list

BASE_DIR = Path(__file__).resolve().parent
DATA_DIR = config.data_dir()


def _secret_key() -> str:
    configured = config.env_str("CAMGATE_SECRET_KEY")
    if configured:
        return configured
    # Generated once per install and kept with the data, so sessions survive restarts
    # and no shared default key ever ships.
    path = DATA_DIR / "secret-key"
    write_private_file(path, secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = config.env_bool("CAMGATE_DEBUG", False)
ALLOWED_HOSTS = config.env_list("CAMGATE_ALLOWED_HOSTS", "*")
CSRF_TRUSTED_ORIGINS = config.env_list("CAMGATE_CSRF_TRUSTED_ORIGINS")
TRUSTED_PROXIES = config.env_list("CAMGATE_TRUSTED_PROXIES", "127.0.0.1,::1")
GATEWAY_NAME = config.env_str("CAMGATE_GATEWAY_NAME") or socket.gethostname()
MAX_BODY_BYTES = config.max_body_bytes()
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_BODY_BYTES
# Who may read /metrics without a token (see camgate/metrics/views.py).
METRICS_ALLOW = parse_allow_list("CAMGATE_METRICS_ALLOW", config.env_list("CAMGATE_METRICS_ALLOW", ",".join(LOOPBACK)))

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "camgate.cameras",
    "camgate.web",
]

MIDDLEWARE = [
    "camgate.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "camgate.middleware.BodySizeLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The reference's clients call both /api/cameras and /api/cameras/; routes accept both
# rather than redirecting, because a redirect drops a POST body.
APPEND_SLASH = False

ROOT_URLCONF = "camgate.urls"
WSGI_APPLICATION = "camgate.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "camgate.sqlite3",
        "OPTIONS": {
            # WAL lets the agent write status while the web server reads; the busy
            # timeout rides out the short write locks instead of failing a request.
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(config.env_str("CAMGATE_STATIC_ROOT") or (DATA_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Without nginx (the embedded default), whitenoise serves files straight from the apps.
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # DRF's defaults, as the reference has them: JSON, form-encoded and multipart bodies.
    "DEFAULT_PARSER_CLASSES": [
        "camgate.cameras.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "camgate.cameras.api.errors.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "camgate gateway API",
    "DESCRIPTION": "Token-authenticated REST API of the camgate camera gateway.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "camgate.cameras.api.openapi.require_response_properties",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    # The ONVIF client logs whole SOAP envelopes (with the WS-Security login) at DEBUG.
    "loggers": {"django.server": {"level": "WARNING"}, "zeep": {"level": "WARNING"}, "onvif": {"level": "WARNING"}},
}
