"""camgate's real settings plus one test-only view (tests/deploy/echo_urls.py) that
reports what Django believes about a request: the client address after the trusted-proxy
middleware, the scheme, the Host and forwarded headers."""

from camgate.settings import *  # noqa: F401,F403

ROOT_URLCONF = "tests.deploy.echo_urls"
