from django.db import migrations


class Migration(migrations.Migration):
    """`is_active` was stored as a person's switch; the reference's cloud sends
    `is_active: false` on every add and reads it back as "the tunnel runs". The switch
    keeps its values under its own name, `enabled`; `is_active` is now reported."""

    dependencies = [("cameras", "0001_initial")]

    operations = [migrations.RenameField("camera", "is_active", "enabled")]
