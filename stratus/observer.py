"""What the coordinator and the detector read of a scope: mu (``severity``) and the state digest (``digest``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stratus.actions import CLUSTER_SCOPE
from stratus.contracts import Severity
from stratus.digest import StateDigest
from stratus.gateway import ReadGateway
from stratus.latency import LatencyOracle
from stratus.settings import SeveritySettings
from stratus.severity import SeverityMeter


class ClusterObserver:
    def __init__(self, gateway: ReadGateway, meter: SeverityMeter) -> None:
        self.gateway = gateway
        self.meter = meter

    @classmethod
    def from_settings(
        cls, settings: SeveritySettings, gateway: ReadGateway, latency: LatencyOracle | None = None
    ) -> ClusterObserver:
        return cls(gateway, SeverityMeter.from_settings(settings, gateway, latency))

    async def measure(self, scope: str) -> Severity:
        return await self.meter.measure(scope)

    async def snapshot(self, scope: str, lease_scope: str | None = None) -> tuple[str, dict[str, Any]]:
        state = await scope_state(self.gateway, scope, lease_scope or scope)
        return state.digest, state.objects

    async def aclose(self) -> None:
        await self.meter.aclose()
        if self.meter.latency is not None:
            await self.meter.latency.aclose()
        self.gateway.close()


async def scope_state(gateway: ReadGateway, scope: str, lease_scope: str) -> StateDigest:
    """The state a transaction may change: its scope, plus the cluster-scoped objects when it holds the cluster
    lease (a cluster writer may touch both). The coordinator checkpoints it; the undoer verifies against it."""
    state = await gateway.state_digest(scope)
    if lease_scope != CLUSTER_SCOPE or scope == CLUSTER_SCOPE:
        return state
    cluster = await gateway.state_digest(CLUSTER_SCOPE)
    objects = {**state.objects, **cluster.objects}
    canonical = json.dumps(objects, sort_keys=True, separators=(",", ":"), default=str)
    return StateDigest(
        scope=f"{scope}+{CLUSTER_SCOPE}", digest=hashlib.sha256(canonical.encode()).hexdigest(), objects=objects
    )
