from django.db import migrations, models


def record_provisioned_camids(apps, schema_editor):
    """Cameras provisioned before this column existed carry their camid only inside
    local_token: read it out once, so lookups by that camid work at once."""
    from camgate.uplink.tokens import try_decode_camid

    Camera = apps.get_model("cameras", "Camera")
    for camera in Camera.objects.filter(access_token="").exclude(local_token=""):
        camera.provisioned_camid = try_decode_camid(camera.local_token)
        camera.save(update_fields=["provisioned_camid"])


class Migration(migrations.Migration):
    dependencies = [("cameras", "0002_camera_enabled")]

    operations = [
        migrations.AddField(
            model_name="camera",
            name="provisioned_camid",
            field=models.BigIntegerField(blank=True, db_index=True, editable=False, null=True),
        ),
        migrations.RunPython(record_provisioned_camids, migrations.RunPython.noop),
    ]
