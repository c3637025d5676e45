"""The detector's two inputs: alerts from the bridge, and the periodic probes of every watched scope."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from datetime import UTC, datetime

from services.detector.detection import Confirmation, evidence, watched
from services.detector.settling import converging, gone, without_converging
from stratus.bus import Bus
from stratus.contracts import Alert, AlertAttached, IncidentOpened, Severity, new_id
from stratus.embedding.hooks import with_embedding
from stratus.embedding.runtime import StateEmbedding
from stratus.lastgood import LastGoodRecorder
from stratus.observer import ClusterObserver
from stratus.registry import Registry
from stratus.settings import DetectorSettings

log = logging.getLogger(__name__)


class Detector:
    def __init__(
        self,
        bus: Bus,
        registry: Registry,
        observer: ClusterObserver,
        settings: DetectorSettings,
        embedding: StateEmbedding | None = None,
        lastgood: LastGoodRecorder | None = None,
    ) -> None:
        self.bus = bus
        self.registry = registry
        self.observer = observer
        self.settings = settings
        self.embedding = embedding
        self.lastgood = lastgood
        self.confirm = Confirmation(settings.open_threshold, settings.confirm_probes, settings.confirm_window)

    async def scopes(self) -> list[str]:
        if self.settings.scopes:
            return list(self.settings.scopes)
        namespaces = await self.observer.gateway.list_objects("Namespace", None)
        return watched([n["metadata"]["name"] for n in namespaces], [])

    async def probe(self, scope: str) -> None:
        if await self.registry.scope_incident(scope) or await self.registry.cooling_down(scope):
            self.confirm.reset(scope)
            if self.lastgood is not None:
                self.lastgood.reset(scope)
            return
        severity = await self.observer.measure(scope)
        if self.embedding is not None:
            severity = await with_embedding(
                self.embedding,
                scope,
                severity,
                weight=self.settings.embedding_weight,
                w_violations=self.settings.mu_w_violations,
            )
        if self.confirm.observe(scope, await self.deciding(scope, severity)):
            await self.open(scope, severity, "probe")
        else:
            await self.observer.meter.learn(scope, severity)
            if self.lastgood is not None:
                await self.lastgood.observe(scope, severity)

    async def deciding(self, scope: str, severity: Severity) -> Severity:
        """The severity an incident is decided on: without the pods of serving Deployments that are only starting
        (``services.detector.settling``). Read only when mu is over the threshold; the incident's s0 and b stay the
        measured severity."""
        grace = self.settings.startup_grace_s
        if grace <= 0 or severity.crashed or severity.mu < self.settings.open_threshold or not severity.unhealthy:
            return severity
        if scope == "cluster":
            return severity
        gateway = self.observer.gateway
        try:
            pods, replicasets, deployments = await asyncio.gather(
                gateway.list_objects("Pod", scope),
                gateway.list_objects("ReplicaSet", scope),
                gateway.list_objects("Deployment", scope),
            )
        except Exception:  # cannot tell convergence from failure: decide on what was measured
            log.warning("could not read %s's workloads to tell a rollout from a failure", scope, exc_info=True)
            return severity
        excused = converging(pods, replicasets, deployments, datetime.now(UTC), grace) | gone(severity, pods)
        decided = without_converging(severity, excused, self.settings.mu_w_unhealthy)
        if decided is not severity:
            counted = set(decided.unhealthy)
            dropped = [u for u in severity.unhealthy if u not in counted]
            log.info("%s: not counted towards an incident (converging): %s", scope, "; ".join(dropped))
        return decided

    async def open(self, scope: str, severity: Severity, source: str) -> str | None:
        incident_id = new_id("inc")
        holder = await self.registry.claim_scope(scope, incident_id)
        if holder != incident_id:
            return None
        self.confirm.reset(scope)
        event = IncidentOpened(
            incident_id=incident_id,
            scope=scope,
            s0=severity,
            baseline=severity.mu,
            evidence=evidence(severity),
            source=source,  # type: ignore[arg-type]
        )
        await self.bus.publish(self.bus.topology.events(incident_id, event.kind), event)
        log.info("opened %s on %s: mu=%s (%s)", incident_id, scope, severity.mu, "; ".join(event.evidence[:3]))
        return incident_id

    async def on_alert(self, alert: Alert) -> None:
        """An alert from the bridge: attached to the scope's open incident, or opens one when mu is high enough."""
        incident = await self.registry.scope_incident(alert.scope)
        if incident is not None:
            attached = AlertAttached(id=f"{incident}:alert:{alert.id}", incident_id=incident, alert=alert)
            await self.bus.publish(self.bus.topology.events(incident, attached.kind), attached)
            return
        if alert.status != "firing" or await self.registry.cooling_down(alert.scope):
            return
        severity = await self.observer.measure(alert.scope)
        if severity.mu >= self.settings.open_threshold or math.isinf(severity.mu):
            await self.open(alert.scope, severity, "alert")
        else:
            log.info(
                "alert %s on %s: mu %s under the threshold; the probes keep watching",
                alert.name,
                alert.scope,
                severity.mu,
            )

    async def run_probes(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                for scope in await self.scopes():
                    await self.probe(scope)
            except Exception:
                log.exception("probe round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.probe_interval_s)
