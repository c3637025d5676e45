"""Thin subscribers of the coordinator."""

from __future__ import annotations

from nats.aio.msg import Msg

from stratus.contracts import COORDINATOR_EVENT_KINDS, Event
from stratus.errors import NotImplementedYet


async def on_event(event: Event, msg: Msg) -> None:
    if event.kind in COORDINATOR_EVENT_KINDS:
        return  # its own timeline
    raise NotImplementedYet("coordinator", f"the incident state machine (event {event.kind})")
