"""Thin subscribers of the undoer: decode is done by the bus; the work itself lives in plain modules."""

from __future__ import annotations

from nats.aio.msg import Msg

from stratus.contracts import Work
from stratus.errors import NotImplementedYet, PermanentError


async def on_work(request: Work, msg: Msg) -> None:
    if request.kind != "undo":
        raise PermanentError(f"undoer: cannot handle work of kind {request.kind!r} (sent to the wrong service?)")
    raise NotImplementedYet("undoer", "undo")
