from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Bring the data directory up to date: migrate, create the admin, the gateway UUID."

    def handle(self, *args, **options):
        from camgate.cli import prepare

        prepare()
