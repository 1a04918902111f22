"""The Django settings the agent runs with (`camgate agent --no-prepare`, which is how
`camgate run`, the container and the systemd unit start it): the project's own, with
only the app whose tables the agent reads and writes.

The agent uses Django for its ORM alone. Loading the admin, auth, sessions, DRF and the
API schema besides, as the web server must, cost it about 7 MiB that it never used.
Migrations need every app, so a plain `camgate agent`, which prepares the data
directory itself, keeps the full settings.
"""

from camgate.settings import *  # noqa: F401,F403 - the project's settings, then what differs

INSTALLED_APPS = ["camgate.cameras"]
