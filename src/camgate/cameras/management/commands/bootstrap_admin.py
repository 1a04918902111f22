from django.core.management.base import BaseCommand

from camgate.cameras.admin_bootstrap import bootstrap_admin, warn_if_default_password


class Command(BaseCommand):
    help = "Create the admin user from GATEWAY_ADMIN_USERNAME/GATEWAY_ADMIN_PASSWORD if missing."

    def handle(self, *args, **options):
        created = bootstrap_admin()
        self.stdout.write("admin user created" if created else "admin user exists")
        warn_if_default_password()
