from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "camgate.web"
    label = "web"
    verbose_name = "camgate web UI"
    default_auto_field = "django.db.models.BigAutoField"
