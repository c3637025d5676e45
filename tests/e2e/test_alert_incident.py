"""A whole incident from a real alert: the arena's /metrics -> Prometheus (the shipped rules) -> Alertmanager ->
the bridge (bearer token) -> the detector opens the incident -> diagnosis -> a scripted fix commits -> resolved, and
the alert resolves. Firing alerts count in mu through Alertmanager's API (``STRATUS_ALERTMANAGER_URL``).

The scraped target is the arena's own kube-state-style series (the app plane's ``/metrics`` bound to the arena's
cluster), so the alert follows from the cluster's state: a Deployment rolled to an image that cannot be pulled leaves
a pod that is not Ready, and ``StratusPodNotReady`` fires. The detector's probes are configured never to confirm on
their own (``STRATUS_CONFIRM_PROBES`` very high), so the incident can only have been opened by the alert.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from arena.hooks import DefaultBehaviour
from arena.server import ArenaServer
from arena.timing import Timing
from stratus.bus import Bus
from stratus.contracts import Alert, alerts_subject
from stratus.localinfra import LocalServer, free_port
from stratus.promstack import SHIPPED_RULES, ensure_installed, rules_with_for, start_alertmanager, start_prometheus
from stratus.supervisor import wait_healthy
from tests.conftest import BAD_IMAGE
from tests.e2e.harness import Timeline, arena_metrics, baseline, running_system
from tests.e2e.shop import apps_api, deploy_shop

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TOKEN = "e2e-incident-token"


@pytest.fixture(scope="module")
def promstack() -> None:
    ensure_installed()  # apt-get install on a fresh machine (scripts/install-promstack.sh)


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[tuple[ArenaServer, Path]]:
    """An arena of its own: only this test's namespace has workloads, so no other alert reaches Alertmanager."""
    server = ArenaServer(behaviour=DefaultBehaviour(unknown_images=[BAD_IMAGE]), timing=Timing.fast()).start()
    yield server, server.write_kubeconfig(tmp_path / "kubeconfig")
    server.stop()


async def wait_until(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


async def test_an_alert_opens_an_incident_that_is_mitigated_and_the_alert_resolves(
    promstack: None,
    arena: tuple[ArenaServer, Path],
    nats_server: LocalServer,
    redis_server: LocalServer,
    bus: Bus,
    uid: str,
    tmp_path: Path,
) -> None:
    server, kubeconfig = arena
    ns = f"alert-{uid}"
    deploy_shop(kubeconfig, ns)
    api, _, apps = apps_api(kubeconfig)

    async def shop_ready() -> bool:
        deps = apps.list_namespaced_deployment(ns).items
        return all((d.status.available_replicas or 0) == 1 for d in deps)

    await wait_until(shop_ready, "the shop to be available")
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"attempts": [[f"kubectl set image deployment/web web=shop/web:1.0 -n {ns}"]]}))

    alerts: list[Alert] = []

    async def on_alert(msg: Any) -> None:
        alerts.append(Alert.model_validate_json(msg.data))

    sub = await bus.nc.subscribe(alerts_subject(ns), cb=on_alert)
    bridge_port = free_port()
    am = start_alertmanager(f"http://127.0.0.1:{bridge_port}/webhook", token=TOKEN)
    rules = rules_with_for(SHIPPED_RULES, tmp_path / "rules.yml", "0s")
    timeline = await Timeline(bus, ns).start(new_only=True)
    try:
        with (
            arena_metrics(server) as target,
            running_system(
                nats_server.url,
                redis_server.url,
                kubeconfig,
                ns,
                f"t{uid}",
                Path("var/e2e") / f"{ns}.log",
                STRATUS_PORT=str(bridge_port),
                STRATUS_WEBHOOK_TOKEN=TOKEN,
                STRATUS_ALERTMANAGER_URL=am.url,
                STRATUS_CONFIRM_PROBES="1000000",
                STRATUS_POLICY="scripted",
                STRATUS_SCRIPTED_PLAN=str(plan),
            ),
        ):
            prom = start_prometheus([target], rule_files=[rules], alertmanager_url=am.url)
            try:
                async with httpx.AsyncClient(timeout=5) as http:

                    async def scraped() -> bool:
                        q = f'kube_deployment_status_replicas_available{{namespace="{ns}"}}'
                        r = await http.get(f"{prom.url}/api/v1/query", params={"query": q})
                        return len(r.json()["data"]["result"]) == 3

                    await wait_until(scraped, "Prometheus to scrape the arena's kube-state series")
                    health = await wait_healthy(nats_server.url, timeout=90)
                    assert all(any(r.ok for r in rs) for rs in health.values()), health

                    # The fault: a rollout to an image that cannot be pulled; the new pod never becomes Ready.
                    broken = {"containers": [{"name": "web", "image": BAD_IMAGE}]}
                    apps.patch_namespaced_deployment("web", ns, {"spec": {"template": {"spec": broken}}})
                    broke_at = time.time()
                    opened = (await timeline.wait_for("incident_opened", timeout=90))[0]
                    assert opened["source"] == "alert", opened
                    s0_alerts = opened["s0"]["alerts"]  # counted in mu through Alertmanager's API
                    assert any(a.startswith("StratusPodNotReady{") for a in s0_alerts), opened["s0"]
                    assert opened["baseline"] >= len(s0_alerts) + 1  # the alert plus the pod that is not Ready
                    fired = [a for a in alerts if a.status == "firing" and a.name == "StratusPodNotReady"]
                    assert fired and fired[0].scope == ns

                    closed = (await timeline.wait_for("incident_closed", timeout=120))[0]
                    assert closed["outcome"] == "resolved", closed
                    assert [d["decision"] for d in timeline.of("transaction_decided")][-1] == "commit"
                    visible = [float(m) for m in closed["visible_mu"]]
                    b = baseline(timeline, closed)
                    assert max(visible) <= b, f"TNR: {visible} over {b}"
                    web = apps.read_namespaced_deployment("web", ns)
                    assert web.spec.template.spec.containers[0].image == "shop/web:1.0"

                    # The alert resolves: Prometheus stops it, Alertmanager posts the resolution to the bridge.
                    pod = fired[0].labels["pod"]

                    async def resolution() -> bool:
                        return any(a.status == "resolved" and a.labels.get("pod") == pod for a in alerts)

                    await wait_until(resolution, "the resolved alert on NATS", timeout=60)

                    async def none_active() -> bool:
                        r = await http.get(f"{am.url}/api/v2/alerts", params={"active": "true"})
                        return not [a for a in r.json() if a["labels"].get("namespace") == ns]

                    await wait_until(none_active, "Alertmanager to have no active alert in the namespace")

                def since(event: dict[str, Any]) -> float:
                    return datetime.fromisoformat(event["ts"]).timestamp() - broke_at

                resolved = next(a for a in alerts if a.status == "resolved" and a.labels.get("pod") == pod)
                print(
                    f"\nfault -> firing alert on NATS {fired[0].ts.timestamp() - broke_at:.1f}s, "
                    f"-> incident opened {since(opened):.1f}s, -> closed {since(closed):.1f}s, "
                    f"-> resolved alert on NATS {resolved.ts.timestamp() - broke_at:.1f}s"
                )
            finally:
                prom.stop()
    finally:
        am.stop()
        await sub.unsubscribe()
        await timeline.stop()
        api.close()
        (Path("var/e2e") / f"{ns}.alerts.json").write_text(
            json.dumps([a.model_dump(mode="json") for a in alerts], indent=1)
        )
