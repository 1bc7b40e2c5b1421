"""Settings common to every environment: everything from the environment.

The environment modules import this one and add their own defaults and checks:
``development`` (DEBUG, localstripe-friendly defaults), ``production`` (refusals and
security headers), ``test`` (pytest). ``config.settings`` picks one (see ``__init__``).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from config.logging import build_logging

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Placeholders of the development and test modules; production refuses both.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"  # noqa: S105 - development default only
LOCALSTRIPE_API_KEY = "sk_test_localstripe000000000000000000"  # localstripe accepts any key
LOCALSTRIPE_PUBLISHABLE_KEY = "pk_test_localstripe_dev"

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The same engines, counting queries, errors and connections for /metrics (django-prometheus).
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)
if "sqlite" in DATABASES["default"]["ENGINE"]:
    # The embedded demo database: wait for a writer instead of failing with "database is locked".
    # IMMEDIATE takes the write lock when a transaction begins: a deferred one that reads and
    # then writes while the Celery worker writes fails at once, whatever the timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")

# The demo's SQLite database only (devtools/demo.py sets it): dj-stripe's tables are created
# from its models (syncdb) instead of by its migrations, whose 514 RemoveField operations cost
# about 40 s of CPU on a 2-core machine. Never for PostgreSQL or production: those migrate.
DEMO_DJSTRIPE_SYNCDB = env.bool("DEMO_DJSTRIPE_SYNCDB", default=False)
if DEMO_DJSTRIPE_SYNCDB:
    if "sqlite" not in DATABASES["default"]["ENGINE"]:
        raise ImproperlyConfigured("DEMO_DJSTRIPE_SYNCDB is for the demo's SQLite database only.")
    MIGRATION_MODULES = {"djstripe": None}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "djstripe",
    "common",
    "customers",
    "catalog",
    "carts",
    "payments",
    "orders",
    "webhooks",
    # The staff back office: the top layer, after the domain apps it imports (docs/architecture.md).
    "backoffice",
    "storefront",
    "django_prometheus",
]

MIDDLEWARE = [
    # First: every log line of the request carries its request_id (common/request_context.py).
    "common.request_context.RequestIdMiddleware",
    # Second: POST /webhooks/stripe is answered here, without the rest (webhooks/middleware.py).
    "webhooks.middleware.WebhookAckMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's and the storefront's static files in production mode too (no CDN needed).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "common.middleware.BodySizeLimitMiddleware",
    "common.middleware.RejectNulMiddleware",
    "common.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, so replays pass through every other middleware's response handling.
    "common.idempotency.IdempotencyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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

AUTH_USER_MODEL = "customers.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / env.str(
    "DJANGO_MEDIA_ROOT", default="var/media"
)  # relative to the project; served only with DEBUG
# Without a collectstatic step, serve straight from the apps' static folders.
WHITENOISE_USE_FINDERS = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies larger than this are rejected (413) before parsing.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DJANGO_MAX_BODY_BYTES", default=256 * 1024)

# --- Cache (shared by throttling and idempotency locks). Redis when REDIS_URL is set.
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # django-redis's and Django's backends, counting gets, hits and failures for /metrics.
    CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django_prometheus.cache.backends.locmem.LocMemCache"}}

# --- REST framework
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["customers.authentication.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.StoreJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "common.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "common.schema.StoreAutoSchema",
    "DEFAULT_PAGINATION_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DEFAULT_THROTTLE_RATES": {
        "payment_session_cart": env.str("THROTTLE_PAYMENT_SESSION_CART", default="20/min"),
        "payment_session_ip": env.str("THROTTLE_PAYMENT_SESSION_IP", default="600/min"),
        "auth": env.str("THROTTLE_AUTH", default="300/min"),
        "auth_email": env.str("THROTTLE_AUTH_EMAIL", default="10/min"),
        "cart_create": env.str("THROTTLE_CART_CREATE", default="30/min"),
    },
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=0),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Checkout & payments store API",
    "DESCRIPTION": "The JSON API storefronts call. Amounts are integers in minor units.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # /store/docs (Swagger UI) and /store/redoc load only drf-spectacular-sidecar's static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {
        "deepLinking": True,
        "persistAuthorization": True,  # the bearer token survives a reload
        "displayRequestDuration": True,
        "validatorUrl": None,  # Swagger UI's default sends the schema to validator.swagger.io
    },
    "ENUM_NAME_OVERRIDES": {"HealthCheckEnum": ["ok", "unavailable", "not_configured"]},
    "TAGS": [  # the explorer's sections, in a shopper's order
        {"name": "catalog", "description": "Regions and products, priced per region."},
        {"name": "carts", "description": "Carts, line items, addresses and shipping."},
        {"name": "payments", "description": "The cart's Stripe PaymentIntent."},
        {"name": "orders", "description": "Placing the order and reading it back."},
        {"name": "customers", "description": "Accounts, bearer tokens, saved cards and order history."},
        {"name": "webhooks", "description": "Stripe's signed events (for Stripe, not storefronts)."},
        {"name": "health", "description": "Liveness and readiness probes."},
    ],
}

# --- Checkout behaviour
CHECKOUT_ENABLED = env.bool("CHECKOUT_ENABLED", default=True)
CART_TTL = timedelta(seconds=env.int("CART_TTL", default=7 * 24 * 3600))
RESERVATION_TTL = timedelta(seconds=env.int("RESERVATION_TTL", default=15 * 60))
CART_COMPLETING_TIMEOUT = timedelta(seconds=env.int("CART_COMPLETING_TIMEOUT", default=120))
IDEMPOTENCY_KEY_TTL = timedelta(seconds=env.int("IDEMPOTENCY_KEY_TTL", default=48 * 3600))

# --- Stripe (only payments/gateway.py imports `stripe`)
# No defaults here: development and test default to localstripe's, production refuses to start without.
STRIPE_API_KEY = env.str("STRIPE_API_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
# Extra secrets accepted during a rotation, comma separated.
STRIPE_WEBHOOK_SECRETS_EXTRA = env.list("STRIPE_WEBHOOK_SECRETS_EXTRA", default=[])
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", default=300)
# --- Webhook inbox (webhooks/): retries with exponential backoff, then dead letter.
# 5, 10, 20, then 40 s: 25 retries span about 15 minutes (915 s before jitter) before the dead letter.
WEBHOOK_MAX_RETRIES = env.int("WEBHOOK_MAX_RETRIES", default=25)
WEBHOOK_RETRY_BACKOFF = env.int("WEBHOOK_RETRY_BACKOFF", default=5)  # seconds, doubled per retry
# A retry waits in the worker unacked: its countdown stays below CELERY_VISIBILITY_TIMEOUT (checked below).
WEBHOOK_RETRY_BACKOFF_MAX = env.int("WEBHOOK_RETRY_BACKOFF_MAX", default=40)
WEBHOOK_RETRY_JITTER = env.bool("WEBHOOK_RETRY_JITTER", default=True)
WEBHOOK_TASK_QUEUE = env.str("WEBHOOK_TASK_QUEUE", default="celery")
# WEBHOOK_PROCESSING_LEASE and WEBHOOK_SWEEP_AFTER: with the Celery time limits below.
WEBHOOK_RETENTION = timedelta(days=env.int("WEBHOOK_RETENTION_DAYS", default=90))  # processed events only
# Reconciliation sweep (webhooks/reconciliation.py): sessions created in [now - window, now - grace].
RECONCILE_WINDOW = timedelta(seconds=env.int("RECONCILE_WINDOW", default=8 * 24 * 3600))
RECONCILE_GRACE = timedelta(seconds=env.int("RECONCILE_GRACE", default=120))
# GET /metrics requires "Authorization: Bearer <token>" when set (production requires it unless
# METRICS_ENABLED=false, which makes /metrics answer 404).
METRICS_ENABLED = env.bool("METRICS_ENABLED", default=True)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="") or None
STRIPE_JS_URL = env.str("STRIPE_JS_URL", default="https://js.stripe.com/v3/")
STRIPE_API_VERSION = "2026-05-27.dahlia"
STRIPE_CAPTURE_METHOD = env.str("STRIPE_CAPTURE_METHOD", default="manual")
# Real Stripe (STRIPE_API_BASE unset) gets automatic_payment_methods and setup_future_usage by
# default; a stand-in server (localstripe, which rejects both) gets the card-only equivalents.
# An explicit environment value always wins.
_STRIPE_IS_REAL = STRIPE_API_BASE is None
STRIPE_AUTOMATIC_PAYMENT_METHODS = env.bool("STRIPE_AUTOMATIC_PAYMENT_METHODS", default=_STRIPE_IS_REAL)
# Saved cards: send setup_future_usage so Stripe attaches the card to the Customer when the payment
# succeeds. localstripe rejects the parameter: with False the server attaches it after authorization.
STRIPE_SEND_SETUP_FUTURE_USAGE = env.bool("STRIPE_SEND_SETUP_FUTURE_USAGE", default=_STRIPE_IS_REAL)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=2)
# Seconds per Stripe request, for web requests and tasks alike. 10 x 3 attempts = 30 s bounds a task's
# Stripe call, hence its time limits, the broker's visibility timeout and a dead worker's redelivery.
STRIPE_TIMEOUT = env.int("STRIPE_TIMEOUT", default=10)
# A staff payment operation whose Stripe outcome is unknown stays pending; the next action on the
# order resumes it once it is older than one request with all its retries (docs/orders.md).
PAYMENT_OPERATION_RESUME_AFTER = timedelta(seconds=STRIPE_TIMEOUT * (STRIPE_MAX_NETWORK_RETRIES + 1) + 5)
# The longest a web request can run. gunicorn's gthread workers (config/gunicorn.conf.py) never cut
# a slow request, so a request is bounded by its Stripe calls: at most two (a payment session saving
# a card), each STRIPE_TIMEOUT x (STRIPE_MAX_NETWORK_RETRIES + 1) = 30 s by default, so 60 s. gunicorn's
# own --timeout (a worker whose main loop stops answering is restarted) reads the same value.
STRIPE_CALLS_PER_REQUEST_MAX = 2
WEB_REQUEST_TIMEOUT = env.int(
    "WEB_REQUEST_TIMEOUT", default=STRIPE_CALLS_PER_REQUEST_MAX * STRIPE_TIMEOUT * (STRIPE_MAX_NETWORK_RETRIES + 1)
)
# An in-flight Idempotency-Key whose request can no longer be running (its process died) is taken over
# by a retry: the longest request plus a margin for clock skew between web hosts.
IDEMPOTENCY_LOCK_MARGIN = 5
IDEMPOTENCY_LOCK_TIMEOUT = timedelta(
    seconds=env.int("IDEMPOTENCY_LOCK_TIMEOUT", default=WEB_REQUEST_TIMEOUT + IDEMPOTENCY_LOCK_MARGIN)
)

# dj-stripe
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)


# (recomputed by the modules that default STRIPE_API_KEY: djstripe_keys)
def djstripe_keys(api_key: str, live_mode: bool) -> tuple[str, str]:
    """dj-stripe's (test, live) secret keys for our one STRIPE_API_KEY."""
    return api_key, api_key if live_mode else ""


STRIPE_TEST_SECRET_KEY, STRIPE_LIVE_SECRET_KEY = djstripe_keys(STRIPE_API_KEY, STRIPE_LIVE_MODE)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
DJSTRIPE_USE_NATIVE_JSONFIELD = True

# --- Celery
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
# the queue of every task without its own (webhooks have WEBHOOK_TASK_QUEUE)
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
CELERY_TASK_EAGER_PROPAGATES = True
# Acknowledged after the task ran, so a message whose worker dies is delivered again; a child process
# killed under it (OOM, SIGKILL) requeues it at once. Tasks are idempotent under redelivery.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a worker holds (unacked) only the message it runs
# The prefork pool (the one that enforces the time limits), two children per CPU: a webhook event
# spends about half its time waiting on Stripe and PostgreSQL. Measured on 2 CPUs (docs/benchmarks.md,
# "Webhook worker"): 2 children 7 events/s, 4 children 15/s, 8 children 11/s.
CELERY_WORKER_POOL = "prefork"
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=2 * (os.cpu_count() or 1))
# Time limits in seconds (soft raises SoftTimeLimitExceeded in the task, hard kills the child; the
# prefork pool enforces both, the solo pool neither). One Stripe call with all its retries is
# STRIPE_TIMEOUT x (STRIPE_MAX_NETWORK_RETRIES + 1) = 30 s by default.
STRIPE_CALL_SECONDS = STRIPE_TIMEOUT * (STRIPE_MAX_NETWORK_RETRIES + 1)
_STRIPE_TASK = {"soft_time_limit": STRIPE_CALL_SECONDS, "time_limit": STRIPE_CALL_SECONDS + 10}  # 30 / 40 s
_EMAIL_TASK = {"soft_time_limit": 20, "time_limit": 30}


def _periodic_task(minutes: int) -> dict[str, object]:
    """Beat's sweeps: acknowledged on receipt (never redelivered: the next tick runs them again, and
    they may run longer than the visibility timeout), limited in minutes."""
    return {"soft_time_limit": minutes * 60, "time_limit": minutes * 60 + 30, "acks_late": False}


# Every task without an annotation of its own: the Stripe-call budget.
CELERY_TASK_SOFT_TIME_LIMIT = _STRIPE_TASK["soft_time_limit"]
CELERY_TASK_TIME_LIMIT = _STRIPE_TASK["time_limit"]
CELERY_TASK_ANNOTATIONS = {
    "webhooks.process_event": _STRIPE_TASK,
    "payments.tasks.payment_method_save": _STRIPE_TASK,
    "orders.tasks.send_order_confirmation": _EMAIL_TASK,
    "orders.tasks.send_order_notification": _EMAIL_TASK,
    "payments.tasks.release_expired_reservations": _periodic_task(1),  # every minute
    "webhooks.sweep_inbox": _periodic_task(1),  # every WEBHOOK_SWEEP_EVERY
    "carts.tasks.expire_carts": _periodic_task(5),
    "common.tasks.purge_idempotency_keys": _periodic_task(10),
    "webhooks.purge_inbox": _periodic_task(10),
    "orders.warn_expiring_authorizations": _periodic_task(10),
    # these call Stripe once per row they resume
    "orders.resend_confirmations": _periodic_task(4),
    "orders.resend_notifications": _periodic_task(4),
    "orders.resume_payment_operations": _periodic_task(4),
    "webhooks.reconcile_payments": _periodic_task(14),  # every 15 minutes
}
# Redis redelivers a message left unacked this long (its worker died): just above the longest hard
# limit of an acks-late task (40 s), so a task still running is never delivered twice, and a dead
# worker's task runs again within a minute. Countdowns (webhook retries) stay below it too.
_longest_acks_late = max(
    [CELERY_TASK_TIME_LIMIT] + [a["time_limit"] for a in CELERY_TASK_ANNOTATIONS.values() if a.get("acks_late", True)]
)
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=_longest_acks_late + 5)
# kombu's Redis transport puts an unacked message older than the visibility timeout back in its queue
# when a consumer scans for them ("restore_visible"): once when a worker starts, then every
# unacked_restore_interval x unacked_restore_throttle seconds (10 x 10 = 100 s by kombu's defaults,
# which alone would exceed the minute). Every 5 s here: one ZRANGE on Redis per worker. The scan's
# mutex expires after 5 s too, so a worker killed while holding it delays no one for long.
CELERY_UNACKED_RESTORE_SECONDS = 5
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": CELERY_UNACKED_RESTORE_SECONDS,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": CELERY_UNACKED_RESTORE_SECONDS,
}
# A worker killed mid-event (docs/checkout-stripe-runbook.md, "Worker death and redelivery"): the
# webhook task's hard limit is 40 s, so a "processing" row older than the 43 s lease has no live
# holder. The broker redelivers the unacked message after the 45 s visibility timeout (> the lease:
# the redelivered task re-claims the row) plus at most one 5 s restore scan: processed 50 s after the
# death at the latest. A message redelivered earlier (a child process killed: requeued at once) finds
# the lease still held and schedules its own check for when it expires (43 s). The sweep (every 15 s)
# re-enqueues a row whose message was lost: at worst lease + one sweep interval = 58 s.
WEBHOOK_PROCESSING_LEASE = timedelta(
    seconds=env.int("WEBHOOK_PROCESSING_LEASE", default=_STRIPE_TASK["time_limit"] + 3)
)
WEBHOOK_SWEEP_EVERY = timedelta(seconds=15)
# "received" and untouched this long: never queued (broker down at receipt). Above the longest retry
# countdown plus one attempt (40 + 40 s), so the sweep never doubles an event waiting for its retry.
WEBHOOK_SWEEP_AFTER = timedelta(
    seconds=env.int("WEBHOOK_SWEEP_AFTER", default=WEBHOOK_RETRY_BACKOFF_MAX + _STRIPE_TASK["time_limit"] + 45)
)
if WEBHOOK_PROCESSING_LEASE.total_seconds() <= _STRIPE_TASK["time_limit"]:
    raise ImproperlyConfigured(
        f"WEBHOOK_PROCESSING_LEASE must exceed the webhook task's hard time limit ({_STRIPE_TASK['time_limit']} s), "
        "or a second worker takes over an event still being processed."
    )
if CELERY_VISIBILITY_TIMEOUT <= _longest_acks_late:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT} s) must exceed the longest acks-late task's hard time "
        f"limit ({_longest_acks_late} s), or a running task is delivered twice."
    )
if WEBHOOK_PROCESSING_LEASE.total_seconds() >= CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        f"WEBHOOK_PROCESSING_LEASE ({int(WEBHOOK_PROCESSING_LEASE.total_seconds())} s) must stay below "
        f"CELERY_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT} s): a message redelivered after a worker's "
        "death must find the lease expired."
    )
if WEBHOOK_RETRY_BACKOFF_MAX >= CELERY_VISIBILITY_TIMEOUT:
    raise ImproperlyConfigured(
        f"WEBHOOK_RETRY_BACKOFF_MAX ({WEBHOOK_RETRY_BACKOFF_MAX} s) must stay below CELERY_VISIBILITY_TIMEOUT "
        f"({CELERY_VISIBILITY_TIMEOUT} s): a retry waits unacked in the worker."
    )
# what tasks print (the console e-mail backend in the demo) is not a warning
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "expire-carts": {"task": "carts.tasks.expire_carts", "schedule": crontab(minute="*/10")},
    "release-expired-reservations": {
        "task": "payments.tasks.release_expired_reservations",
        "schedule": crontab(minute="*"),
    },
    "purge-idempotency-keys": {"task": "common.tasks.purge_idempotency_keys", "schedule": crontab(minute=17)},
    "reconcile-payments": {"task": "webhooks.reconcile_payments", "schedule": crontab(minute="*/15")},
    "sweep-webhook-inbox": {"task": "webhooks.sweep_inbox", "schedule": WEBHOOK_SWEEP_EVERY},  # see the lease
    "purge-webhook-inbox": {"task": "webhooks.purge_inbox", "schedule": crontab(hour=3, minute=41)},
    "warn-expiring-authorizations": {
        "task": "orders.warn_expiring_authorizations",
        "schedule": crontab(minute=5),  # hourly
    },
    # confirmations never sent (broker down at commit, worker killed mid-send)
    "resend-order-confirmations": {"task": "orders.resend_confirmations", "schedule": crontab(minute="*/5")},
    # shipped / delivered / canceled / refunded emails never sent (broker down at commit, worker killed)
    "resend-order-notifications": {"task": "orders.resend_notifications", "schedule": crontab(minute="*/5")},
    # staff captures / cancels / refunds whose outcome is still pending (Stripe unreachable)
    "resume-payment-operations": {"task": "orders.resume_payment_operations", "schedule": crontab(minute="*/5")},
}

# --- Email
EMAIL_BACKEND = env.str("DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env.str("DJANGO_EMAIL_FILE_PATH", default=str(BASE_DIR / "var" / "emails"))  # filebased backend
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="shop@example.com")

# --- Logging (config/logging.py): JSON lines or console, with the request's and task's ids bound;
# never card data, client secrets or keys.
LOGGING = build_logging(
    fmt=env.str("LOG_FORMAT", default="console" if DEBUG else "json"), level=env.str("LOG_LEVEL", default="INFO")
)
