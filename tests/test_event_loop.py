"""Which event loop the tunnel processes run on (camgate/event_loop.py): uvloop when it is
installed (it is locked, so it is here), asyncio's own when CAMGATE_EVENT_LOOP says so."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from camgate import event_loop


async def _running_loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_runs_the_loop_by_default(monkeypatch):
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert event_loop.loop_kind() == "uvloop"
    assert event_loop.run(_running_loop_module()).startswith("uvloop")


@pytest.mark.parametrize("value", ["asyncio", " AsyncIO "])
def test_asyncio_when_asked(monkeypatch, value):
    monkeypatch.setenv(event_loop.ENV, value)
    assert event_loop.run(_running_loop_module()).startswith("asyncio")


def test_asyncio_when_uvloop_is_not_installed_unless_insisted_on(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "uvloop" else real_find_spec(name))
    assert event_loop.loop_kind({}) == "asyncio"
    assert event_loop.loop_kind({event_loop.ENV: "auto"}) == "asyncio"
    with pytest.raises(ValueError, match="CAMGATE_EVENT_LOOP=uvloop, but uvloop is not installed"):
        event_loop.loop_kind({event_loop.ENV: "uvloop"})


def test_a_wrong_value_ends_the_process_with_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv(event_loop.ENV, "trio")
    main = _running_loop_module()
    with pytest.raises(SystemExit, match="CAMGATE_EVENT_LOOP must be one of auto, uvloop, asyncio, not 'trio'"):
        event_loop.run(main)
    assert main.cr_frame is None  # closed, so no "never awaited" warning
