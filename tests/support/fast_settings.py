"""camgate's settings with a fast password hasher, for the processes that tests start.

The real hasher costs about 0.35 s a password, and the end-to-end tests log in and
fuzz the token endpoint hundreds of times: they test the gateway, not PBKDF2. Set by
tests.support.processes.camgate_env for every `camgate` child of the test suite."""

from camgate.settings import *  # noqa: F401,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
