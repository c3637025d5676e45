"""Thin subscribers of the detector."""

from __future__ import annotations

from nats.aio.msg import Msg

from stratus.contracts import Alert
from stratus.errors import NotImplementedYet


async def on_alert(alert: Alert, msg: Msg) -> None:
    raise NotImplementedYet("detector", f"incident detection (alert {alert.name} in {alert.scope})")
