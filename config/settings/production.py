"""Production: refuses to start without its secrets, and sends the security headers.

``config.settings`` selects this module for ``DJANGO_DEBUG=false`` (or ``DJANGO_ENV=production``).
Required: DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, a PostgreSQL DATABASE_URL, a real Stripe
secret key (STRIPE_API_KEY), STRIPE_WEBHOOK_SECRET, and METRICS_TOKEN unless METRICS_ENABLED=false.
The security settings default to HTTPS behind a proxy that sets X-Forwarded-Proto.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import (
    ALLOWED_HOSTS,
    DATABASES,
    DEMO_DJSTRIPE_SYNCDB,
    DEV_SECRET_KEY,
    LOCALSTRIPE_API_KEY,
    METRICS_ENABLED,
    METRICS_TOKEN,
    SECRET_KEY,
    STRIPE_API_KEY,
    STRIPE_WEBHOOK_SECRET,
    env,
)

DEBUG = False

# Stripe secret keys: standard (sk_live_/sk_test_) or restricted (rk_live_/rk_test_).
STRIPE_SECRET_KEY_PREFIXES = ("sk_live_", "sk_test_", "rk_")

if DEMO_DJSTRIPE_SYNCDB:
    raise ImproperlyConfigured("DEMO_DJSTRIPE_SYNCDB is for the demo only, never with DJANGO_DEBUG=false.")
if not SECRET_KEY or SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=false.")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when DJANGO_DEBUG=false.")
if "sqlite" in DATABASES["default"]["ENGINE"]:
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL when DJANGO_DEBUG=false.")
if (
    not STRIPE_API_KEY.startswith(STRIPE_SECRET_KEY_PREFIXES)
    or STRIPE_API_KEY == LOCALSTRIPE_API_KEY
    or "localstripe" in STRIPE_API_KEY
):
    raise ImproperlyConfigured(
        "STRIPE_API_KEY must be set to a Stripe secret key (sk_live_, sk_test_ or rk_...) when DJANGO_DEBUG=false."
    )
if not STRIPE_WEBHOOK_SECRET.startswith("whsec_"):
    raise ImproperlyConfigured("STRIPE_WEBHOOK_SECRET (whsec_...) must be set when DJANGO_DEBUG=false.")
if METRICS_ENABLED and not METRICS_TOKEN:
    raise ImproperlyConfigured("METRICS_TOKEN must be set when DJANGO_DEBUG=false (or set METRICS_ENABLED=false).")

# --- Security (Django's SecurityMiddleware, CSRF and session cookies)
# "HEADER,value" the TLS-terminating proxy sets; empty = no proxy (Django sees HTTPS itself).
_proxy_ssl_header = env.list("DJANGO_SECURE_PROXY_SSL_HEADER", default=["HTTP_X_FORWARDED_PROTO", "https"])
if _proxy_ssl_header and len(_proxy_ssl_header) != 2:
    raise ImproperlyConfigured(
        'DJANGO_SECURE_PROXY_SSL_HEADER must be "HEADER,value", e.g. "HTTP_X_FORWARDED_PROTO,https".'
    )
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1]) if _proxy_ssl_header else None
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# Probes and scrapers inside the cluster speak plain HTTP to the pod: no redirect for them.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics/?$"]
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=True)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000)  # one year
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = env.bool("DJANGO_SECURE_CONTENT_TYPE_NOSNIFF", default=True)
X_FRAME_OPTIONS = env.str("DJANGO_X_FRAME_OPTIONS", default="DENY")
