from django.apps import AppConfig


class CeilingConfig(AppConfig):
    name = "devtools.ceiling"
    label = "ceiling"
    default_auto_field = "django.db.models.BigAutoField"
