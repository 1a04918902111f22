import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    """The camera's stream path (rtsp_path), and the agent's health reports in their own
    table: agent-written, like TunnelStatus, apart from the person-written Camera row."""

    dependencies = [
        ('cameras', '0003_camera_provisioned_camid'),
    ]

    operations = [
        migrations.CreateModel(
            name='CameraHealth',
            fields=[
                ('camera', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='health_report', serialize=False, to='cameras.camera')),
                ('state', models.CharField(choices=[('unknown', 'unknown'), ('ok', 'ok'), ('unreachable', 'unreachable'), ('auth_failed', 'auth_failed'), ('no_stream', 'no_stream'), ('error', 'error')], default='unknown', max_length=16)),
                ('reason', models.TextField(blank=True, default='')),
                ('checked_at', models.DateTimeField(blank=True, null=True)),
                ('latency_ms', models.PositiveIntegerField(blank=True, null=True)),
                ('video', models.JSONField(blank=True, null=True)),
                ('audio', models.JSONField(blank=True, null=True)),
                ('fingerprint', models.CharField(blank=True, default='', max_length=64)),
                ('auth_failed_at', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.AddField(
            model_name='camera',
            name='rtsp_path',
            field=models.CharField(blank=True, default='', max_length=512),
        ),
    ]
