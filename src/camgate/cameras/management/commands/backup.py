import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from camgate import config
from camgate.backup import BackupError, write_backup, write_backup_file


class Command(BaseCommand):
    help = "Back up the data directory (online: the gateway may keep running) to a .tar.gz, or to stdout with '-'."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("output", help="file to write (mode 0600), or - for standard output")

    def handle(self, *args, output, **options):
        data_dir = config.data_dir()
        try:
            if output == "-":
                stored = write_backup(data_dir, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                stored = write_backup_file(data_dir, Path(output))
        except (BackupError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stderr.write(f"backed up {', '.join(stored)} from {data_dir}")
