"""A pytest plugin loaded with `-p` (see pyproject.toml) so that it runs before
pytest-django imports the settings: every test run gets a fresh data directory and
never touches a developer's real gateway data. The directory goes when the process that
made it ends (each xdist worker makes its own), not left behind in /tmp run after run."""

import atexit
import os
import shutil
import tempfile

_data_dir = os.environ["CAMGATE_DATA_DIR"] = tempfile.mkdtemp(prefix="camgate-test-data-")
atexit.register(shutil.rmtree, _data_dir, ignore_errors=True)
