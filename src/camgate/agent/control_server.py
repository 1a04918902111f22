"""The agent's end of the control socket (see control.py for the web server's end)."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[dict]]  # keyword arguments from the request's "args"
MAX_REQUEST_BYTES = 4096


async def serve_control(path: Path, handlers: dict[str, Handler]) -> asyncio.AbstractServer:
    """Listen on ``path``; each request line names a handler, whose dict is the answer."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=5)
            answer = await _dispatch(line[:MAX_REQUEST_BYTES], handlers)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    # A socket left by a crashed agent would make bind() fail. No live agent owns it:
    # this agent holds the data directory's agent lock (agent/single.py).
    path.unlink(missing_ok=True)
    old_umask = os.umask(0o177)  # owner-only: other local users must not drive the agent
    try:
        server = await asyncio.start_unix_server(on_connection, path=str(path))
    finally:
        os.umask(old_umask)
    return server


async def _dispatch(line: bytes, handlers: dict[str, Handler]) -> dict:
    try:
        request = json.loads(line)
        command = request["command"]
    except (ValueError, TypeError, KeyError, RecursionError):
        return {"ok": False, "error": "expected a JSON object with a command"}
    handler = handlers.get(command) if isinstance(command, str) else None
    if handler is None:
        return {"ok": False, "error": f"unknown command {command!r}"}
    arguments = request.get("args", {})
    try:
        inspect.signature(handler).bind(**arguments)
    except TypeError:
        return {"ok": False, "error": f"wrong arguments for {command}"}
    try:
        return await handler(**arguments)
    except Exception as error:  # the answer must reach the web server whatever happened
        log.exception("control command %s failed", command)
        return {"ok": False, "error": f"{command} failed: {error}"}
