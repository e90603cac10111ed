"""Minimal Django settings for django-helpdesk in `bench/peer.py`: SQLite, no teams, mail out to
the benchmark's aiosmtpd. Runs only in bench/.peer-venv (never imported by mailbot); paths and
ports come from the environment peer.py sets."""

import os
from pathlib import Path

PEER_DIR = Path(os.environ["PEER_DIR"])

SECRET_KEY = "bench-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost"]
USE_TZ = True
TIME_ZONE = "Asia/Tokyo"
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.humanize",
    "django.contrib.messages",
    "django.contrib.sessions",
    "django.contrib.sites",
    "django.contrib.staticfiles",
    "rest_framework",
    "helpdesk",
]
SITE_ID = 1
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(PEER_DIR / "helpdesk.db")}
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "peer_urls"
STATIC_URL = "/static/"
MEDIA_ROOT = str(PEER_DIR / "media")
MEDIA_URL = "/media/"

HELPDESK_TEAMS_MODE_ENABLED = False
HELPDESK_VALID_EXTENSIONS = [".txt", ".pdf", ".xlsx", ".eml"]
"""The default list refuses .xlsx; a desk receiving these forms would keep them."""

EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = "127.0.0.1"
EMAIL_PORT = int(os.environ["PEER_SMTP_PORT"])
DEFAULT_FROM_EMAIL = "code@occto.or.jp"
SERVER_EMAIL = DEFAULT_FROM_EMAIL
