"""The global OpenVZ-like plans vswap-256m … vswap-4g, from deploy/samples/vswap.json."""

from django.db import migrations


def seed(apps, schema_editor):
    from panel.plans.services import seed_samples

    seed_samples(apps.get_model("plans", "Plan"))


class Migration(migrations.Migration):
    dependencies = [("plans", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
