"""Development: DEBUG on, a dev secret key, local hosts and localstripe's keys by default.

Never for a server on the internet: ``DJANGO_DEBUG=false`` here is refused (use
``config.settings.production``, which ``config.settings`` picks for ``DJANGO_DEBUG=false``).
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEV_SECRET_KEY, LOCALSTRIPE_API_KEY, LOCALSTRIPE_PUBLISHABLE_KEY, STRIPE_LIVE_MODE, djstripe_keys, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
if not DEBUG:
    raise ImproperlyConfigured("DJANGO_DEBUG=false needs the production settings (config.settings.production).")

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

STRIPE_API_KEY = env.str("STRIPE_API_KEY", default=LOCALSTRIPE_API_KEY)
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default=LOCALSTRIPE_PUBLISHABLE_KEY)
STRIPE_TEST_SECRET_KEY, STRIPE_LIVE_SECRET_KEY = djstripe_keys(STRIPE_API_KEY, STRIPE_LIVE_MODE)
