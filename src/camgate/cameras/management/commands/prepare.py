from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Bring the data directory up to date: migrate, create the admin, the gateway UUID."
    # Django's system checks would import every URLconf and view (zeep, aiohttp, DRF):
    # a second of CPU at every start of every part, for checks the parts' own start and
    # `camgate check` make anyway. prepare needs only the models.
    requires_system_checks: list[str] = []

    def handle(self, *args, **options):
        from camgate import config, datadir

        try:
            datadir.prepare(config.data_dir())
        except datadir.DataDirError as error:
            raise CommandError(str(error)) from None
