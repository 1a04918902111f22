from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Bring the data directory up to date: migrate, create the admin, the gateway UUID."

    def handle(self, *args, **options):
        from camgate import config, datadir

        try:
            datadir.prepare(config.data_dir())
        except datadir.DataDirError as error:
            raise CommandError(str(error)) from None
