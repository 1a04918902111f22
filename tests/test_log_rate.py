"""Repeated warnings and errors are logged at a bounded rate, with a count of what was
held back; the open-files limit is raised to the hard one."""

from __future__ import annotations

import asyncio
import logging
import resource
import subprocess
import sys

from camgate.log_rate import RepeatCounter, RepeatLimiter, loop_exception_handler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def limited_logger(name: str, counter: RepeatCounter) -> tuple[logging.Logger, Collect]:
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = Collect()
    handler.addFilter(RepeatLimiter(counter))
    logger.handlers = [handler]
    return logger, handler


def test_the_same_error_is_logged_a_burst_at_a_time_then_counted():
    clock = Clock()
    logger, handler = limited_logger("test.repeat", RepeatCounter(burst=3, window=60, clock=clock))
    for peer in range(1000):
        logger.error("accept failed for %s", peer)  # the arguments vary; the kind does not
    assert handler.lines == ["accept failed for 0", "accept failed for 1", "accept failed for 2"]
    clock.now = 60
    logger.error("accept failed for %s", "late")
    assert handler.lines[-1] == "accept failed for late [997 more like this in the last 60 s were not logged]"
    logger.error("another problem")  # another kind has its own budget
    assert handler.lines[-1] == "another problem"


def test_info_records_are_never_held_back():
    logger, handler = limited_logger("test.info", RepeatCounter(burst=1, window=60, clock=Clock()))
    for camid in range(50):
        logger.info("tunnel %d up", camid)
    assert len(handler.lines) == 50


def test_the_number_of_kinds_remembered_is_bounded():
    counter = RepeatCounter(burst=1, window=60, max_kinds=10, clock=Clock())
    for kind in range(1000):
        assert counter.allow(kind) == 0
    assert len(counter._kinds) == 10


def test_event_loop_errors_are_bounded_though_their_text_changes(caplog):
    clock = Clock()
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(loop_exception_handler(RepeatCounter(burst=2, window=60, clock=clock)))
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for attempt in range(500):
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(24, "Too many open files"),
                    "handle": f"<TimerHandle when={attempt}.5>",  # differs every time, as in asyncio
                })
            clock.now = 61
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": OSError(24, "Too many open files")})
    finally:
        loop.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(messages) == 3
    assert "[498 more like this in the last 60 s were not logged]" in messages[-1]


def test_the_soft_open_files_limit_is_raised_to_the_hard_one():
    code = "from camgate.process_limits import raise_open_files_limit; print(raise_open_files_limit())"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (100, 300)),
    )
    assert result.stdout.strip() == "300", result.stderr
