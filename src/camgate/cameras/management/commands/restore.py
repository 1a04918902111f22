import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from camgate import config
from camgate.agent.control import AgentUnavailable, send_command
from camgate.backup import BackupError, restore_backup


class Command(BaseCommand):
    help = "Restore the data directory from a `camgate backup` archive (stop the web server and the agent first)."
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("input", help="archive to read, or - for standard input")
        parser.add_argument("--force", action="store_true", help="replace an existing database")

    def handle(self, *args, input, force, **options):
        try:
            send_command("ping", timeout=2.0)
        except AgentUnavailable:
            pass
        else:
            raise CommandError("the agent is running on this data directory; stop it (and the web server) first")
        data_dir = config.data_dir()
        try:
            if input == "-":
                restored = restore_backup(data_dir, sys.stdin.buffer, force=force)
            else:
                with open(Path(input), "rb") as source:
                    restored = restore_backup(data_dir, source, force=force)
        except (BackupError, OSError) as error:
            raise CommandError(str(error)) from None
        self.stderr.write(f"restored {', '.join(restored)} into {data_dir}")
