"""pytest (pytest.ini): development's defaults (localstripe keys, local hosts), faster hashing.

pytest-django turns DEBUG off for the tests themselves; the processes the tests start (Celery
workers, servers) inherit this module through ``DJANGO_SETTINGS_MODULE`` and keep
development's behaviour. The database and Redis come from the environment.
"""

from .development import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
