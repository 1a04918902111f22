"""The relay's limit on failed provisioning attempts per address."""

from __future__ import annotations

import aiohttp

from camgate.uplink.ratelimit import FailureLimiter


def test_limit_counts_failures_in_a_sliding_window():
    limiter = FailureLimiter(limit=3, window=10.0)
    for t in (0.0, 1.0, 2.0):
        assert limiter.retry_after("a", t) is None
        limiter.record_failure("a", t)
    assert limiter.retry_after("a", 3.0) == 7.0  # the first failure leaves the window at 10
    assert limiter.retry_after("b", 3.0) is None  # per address
    assert limiter.retry_after("a", 10.0) is None


def test_memory_is_bounded_by_the_number_of_addresses_kept():
    limiter = FailureLimiter(limit=2, window=60.0, max_keys=100)
    for n in range(1000):
        limiter.record_failure(f"10.0.{n // 256}.{n % 256}", 0.0)
        limiter.record_failure("attacker", 0.0)
    assert len(limiter._failures) == 100
    assert limiter.retry_after("attacker", 1.0) is not None  # still remembered: recently used


async def test_relay_answers_429_after_too_many_wrong_passwords(relay):
    relay.register_device(1, serial="CAM1", password="AA:BB:CC:DD:EE:FF")
    url = f"{relay.url}/v1/token?serial_id=CAM1"
    async with aiohttp.ClientSession() as http:
        for guess in range(60):
            async with http.get(url, headers={"Authorization": f"00:00:00:00:00:{guess:02X}"}) as resp:
                assert resp.status == 401
        async with http.get(url, headers={"Authorization": "AA:BB:CC:DD:EE:FF"}) as resp:
            assert resp.status == 429  # even the right password waits: guessing must stay slow
            assert 1 <= int(resp.headers["Retry-After"]) <= 60
