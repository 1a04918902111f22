from django.apps import AppConfig


class CamerasConfig(AppConfig):
    name = "camgate.cameras"
    label = "cameras"
    default_auto_field = "django.db.models.BigAutoField"
