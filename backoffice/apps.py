from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The staff back office: the admin's order pages, money actions and the analytics dashboard.

    The top layer: it imports the domain apps (orders, payments, carts, webhooks, ...); none of them
    imports it (tests/test_architecture.py). It has no models of its own.
    """

    name = "backoffice"
    verbose_name = "Back office"
