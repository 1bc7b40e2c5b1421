"""Settings package, cookiecutter-django's layout: ``base`` plus one module per environment.

Name a module explicitly (``config.settings.production``, ``.development``, ``.test``) or
keep ``DJANGO_SETTINGS_MODULE=config.settings``: this module then picks one from
``DJANGO_ENV`` (development | production | test), else from ``DJANGO_DEBUG`` (false =
production, the default true = development), so every existing caller keeps working.
"""

from pathlib import Path

import environ

env = environ.Env()
environ.Env.read_env(Path(__file__).resolve().parent.parent.parent / ".env", overwrite=False)
_ENVIRONMENTS = ("development", "production", "test")
DJANGO_ENV = env.str("DJANGO_ENV", default="") or (
    "development" if env.bool("DJANGO_DEBUG", default=True) else "production"
)
if DJANGO_ENV not in _ENVIRONMENTS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"DJANGO_ENV must be one of {', '.join(_ENVIRONMENTS)}, not {DJANGO_ENV!r}.")

if DJANGO_ENV == "production":
    from .production import *  # noqa: F403
elif DJANGO_ENV == "test":
    from .test import *  # noqa: F403
else:
    from .development import *  # noqa: F403
