"""A pytest plugin loaded with `-p` (see pyproject.toml) so that it runs before
pytest-django imports the settings: every test run gets a fresh data directory and
never touches a developer's real gateway data."""

import os
import tempfile

os.environ["CAMGATE_DATA_DIR"] = tempfile.mkdtemp(prefix="camgate-test-data-")
