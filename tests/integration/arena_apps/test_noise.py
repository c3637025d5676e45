"""The bench's noise on the arena, judged by the detector's own decision code (its severity meter, its convergence
rule, its confirmation) on an arena whose pods take about a second to become Ready, as real pods take seconds.

- Noise alone opens no incident, although the meter sees its pods starting (and the same samples without the
  convergence rule would open some: the test can fail).
- Noise plus a fault opens one; the noise is reproducible from its seed and puts back what it changed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arena.apps import APPS
from arena.bench.noise import KINDS, NoiseGenerator, NoiseSpec
from arena.bench.probes import ProbeGateway
from arena.scenarios.engine import Engine, PlaneClient, Registry
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from arena.timing import Timing
from services.detector.detection import Confirmation
from services.detector.handlers import Detector
from stratus.contracts import Severity
from stratus.gateway import ReadGateway
from stratus.kubeapi import KubeApi
from stratus.observer import ClusterObserver
from stratus.settings import DetectorSettings

from .conftest import healthy

pytestmark = [pytest.mark.integration, pytest.mark.slow]

APP = APPS["hotel-reservation"]
SLOW_START = dataclasses.replace(Timing.fast(), container_create=0.5, ready_delay=0.6, probe_period=0.5)
"""Pods Ready about 1.2 s after creation: longer than the detector's confirmation of two probes 0.5 s apart."""


@pytest.fixture(scope="module")
def slow_arena() -> Iterator[tuple[AppsArena, Path, Engine, ProbeGateway]]:
    arena = AppsArena(timing=SLOW_START).start()
    kubeconfig = Path(arena.write_kubeconfig(Path(tempfile.mkdtemp(prefix="noise-")) / "config"))
    kube = Kube.from_kubeconfig(str(kubeconfig))
    plane = PlaneClient(arena.plane_url)
    probes = ProbeGateway(arena.plane_url).start()
    engine = Engine(kube, plane, time_scale=0.1)
    healthy(engine, APP.name, timeout=60)
    yield arena, kubeconfig, engine, probes
    probes.stop()
    plane.close()
    kube.close()
    arena.stop()


def _detector(kubeconfig: Path, probes: ProbeGateway, grace_s: float) -> Detector:
    settings = DetectorSettings(
        scopes=[APP.namespace],
        slo_probes={APP.namespace: probes.urls(APP)},
        probe_interval_s=0.5,
        confirm_probes=2,
        startup_grace_s=grace_s,
        kubeconfig=str(kubeconfig),
    )
    observer = ClusterObserver.from_settings(settings, ReadGateway(KubeApi.from_kubeconfig(str(kubeconfig))))
    return Detector(bus=None, registry=None, observer=observer, settings=settings)  # type: ignore[arg-type]


async def _watch(detector: Detector, until: NoiseGenerator, limit_s: float, raw: Confirmation) -> tuple[int, int, int]:
    """Probe like the detector until the noise is done: (incidents the detector would open, that the raw severity
    would open, samples where the meter saw something)."""
    scope, opened, raw_opened, seen, after = APP.namespace, 0, 0, 0, 0
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and after < 4:  # a few probes more once the noise is done
        severity: Severity = await detector.observer.measure(scope)
        seen += severity.mu > 0
        if raw.observe(scope, severity):
            raw_opened += 1
            raw.reset(scope)
        if detector.confirm.observe(scope, await detector.deciding(scope, severity)):
            opened += 1
            detector.confirm.reset(scope)
        after += until.wait(0)
        await asyncio.sleep(0.5)
    return opened, raw_opened, seen


def test_noise_alone_opens_no_incident(slow_arena: tuple[AppsArena, Path, Engine, ProbeGateway]) -> None:
    _, kubeconfig, engine, probes = slow_arena
    spec = NoiseSpec(seed=11, count=6, start_s=0.5, min_gap_s=1.0, jitter_s=0.5, kinds=KINDS)
    assert spec.schedule() == NoiseSpec(seed=11, count=6, start_s=0.5, min_gap_s=1.0, jitter_s=0.5).schedule()
    detector = _detector(kubeconfig, probes, grace_s=10.0)
    kube = Kube.from_kubeconfig(str(kubeconfig))
    noise = NoiseGenerator(kube, APP.namespace, spec).start()
    try:
        opened, raw_opened, seen = asyncio.run(
            _watch(detector, noise, 120.0, Confirmation(detector.settings.open_threshold, 2))
        )
        events = noise.stop()
        restored = noise.restore()
    finally:
        kube.close()
    done = [e for e in events if e.ok]
    assert len({e.offset_s for e in events}) == len(events)
    assert done and all(e.settled_s is not None for e in done), [e.model_dump() for e in events]
    assert {e.kind for e in done} >= {"scale"}, [e.kind for e in events]
    assert seen > 0, "the meter never saw the noise's pods starting: the test would prove nothing"
    assert raw_opened > 0, "without the convergence rule the same samples should have opened an incident"
    assert opened == 0, f"the detector opened {opened} incident(s) on benign changes: {[e.detail for e in done]}"
    for line in restored:  # what the noise put back is back
        assert "->" in line or "removed" in line or "deleted" in line
    for dep in engine.kube.list("Deployment", APP.namespace):
        original = next(d for d in APP.manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == _n(dep))
        assert dep["spec"]["replicas"] == original["spec"]["replicas"]
        images = [c["image"] for c in dep["spec"]["template"]["spec"]["containers"]]
        assert images == [c["image"] for c in original["spec"]["template"]["spec"]["containers"]]


def _n(obj: dict[str, object]) -> str:
    return str(obj["metadata"]["name"])  # type: ignore[index]


def test_noise_with_a_fault_opens_an_incident(
    slow_arena: tuple[AppsArena, Path, Engine, ProbeGateway], registry: Registry
) -> None:
    _, kubeconfig, engine, probes = slow_arena
    scenario, _ = registry.get("misconfig_app_hotel_res-detection-1")
    healthy(engine, APP.name, timeout=60)
    detector = _detector(kubeconfig, probes, grace_s=10.0)
    kube = Kube.from_kubeconfig(str(kubeconfig))
    noise = NoiseGenerator(kube, APP.namespace, NoiseSpec(seed=5, count=4, start_s=0.2, min_gap_s=1.0)).start()
    try:
        noise.wait_changes(1)
        engine.inject(scenario)

        async def until_open() -> str:
            scope = APP.namespace
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                severity = await detector.observer.measure(scope)
                if detector.confirm.observe(scope, await detector.deciding(scope, severity)):
                    return "; ".join(severity.unhealthy + severity.violations)
                await asyncio.sleep(0.5)
            return ""

        evidence = asyncio.run(until_open())
        noise.stop()
        noise.restore()
    finally:
        kube.close()
        engine.recover(scenario)
    assert evidence, "the fault under noise opened no incident"
    assert "geo" in evidence, evidence
