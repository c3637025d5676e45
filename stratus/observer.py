"""What the coordinator and the detector read of a scope: mu (``severity``) and the state digest (``digest``)."""

from __future__ import annotations

from typing import Any

from stratus.contracts import Severity
from stratus.gateway import ReadGateway
from stratus.settings import SeveritySettings
from stratus.severity import SeverityMeter


class ClusterObserver:
    def __init__(self, gateway: ReadGateway, meter: SeverityMeter) -> None:
        self.gateway = gateway
        self.meter = meter

    @classmethod
    def from_settings(cls, settings: SeveritySettings, gateway: ReadGateway) -> ClusterObserver:
        return cls(gateway, SeverityMeter.from_settings(settings, gateway))

    async def measure(self, scope: str) -> Severity:
        return await self.meter.measure(scope)

    async def snapshot(self, scope: str) -> tuple[str, dict[str, Any]]:
        state = await self.gateway.state_digest(scope)
        return state.digest, state.objects

    async def aclose(self) -> None:
        await self.meter.aclose()
        self.gateway.close()
