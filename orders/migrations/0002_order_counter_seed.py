from django.db import migrations


def seed(apps, schema_editor):
    OrderCounter = apps.get_model("orders", "OrderCounter")
    OrderCounter.objects.get_or_create(name="order", defaults={"value": 0})


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
