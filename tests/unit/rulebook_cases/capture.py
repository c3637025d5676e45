"""Capture rulebook cases from the arena, and run the rulebook live against it.

Not a test: a tool. For each AIOpsLab mitigation fault (and the healthy apps) it deploys the app in an in-process
arena, injects the fault, waits for its symptoms, and writes what the rulebook's read tools return (objects, events,
logs, traces: through the real ``GatewayTools``) into a case folder named after the *mechanism*, so the unit tests
replay real-looking data. The scenario ids appear only here, to drive the injection; the cases and the rulebook never
see them. ``expected.yaml`` is written only when missing (the ground truth is reviewed by hand).

With ``--live`` it then runs the rulebook's diagnosis and mitigation through the real gateway (lease on the
namespace; if a fix needs the cluster scope, a second attempt with a cluster lease, as the coordinator would) and
prints whether the strict oracle passes.

    .venv/bin/python -m tests.unit.rulebook_cases.capture [--live] [case ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from arena.apps import APPS
from arena.scenarios.engine import Engine, PlaneClient, Registry, wait_for
from arena.scenarios.kube import Kube
from arena.telemetry.plane import AppsArena
from arena.timing import Timing
from arena.workload.generator import WorkloadSpec
from stratus.agent_tools import GatewayTools, TransactionTools
from stratus.contracts import DiagnoseRequest, JournalRecord, Lease, MitigateRequest
from stratus.gateway import KubeApi, ReadGateway, WriteGateway
from stratus.reasoners.rulebook import RulebookDiagnosisReasoner, RulebookMitigationReasoner
from stratus.reasoners.rulebook.snapshot import Snapshot, collect

HERE = Path(__file__).parent

CASES: dict[str, str] = {
    "service-target-port-mismatch": "k8s_target_port-misconfig-mitigation-1",
    "service-target-port-mismatch-leaf": "k8s_target_port-misconfig-mitigation-2",
    "service-target-port-mismatch-storage": "k8s_target_port-misconfig-mitigation-3",
    "database-requires-tls-after-rollout": "auth_miss_mongodb-mitigation-1",
    "database-role-revoked": "revoke_auth_mongodb-mitigation-1",
    "database-role-revoked-other-db": "revoke_auth_mongodb-mitigation-2",
    "database-user-dropped": "user_unregistered_mongodb-mitigation-1",
    "database-user-dropped-other-db": "user_unregistered_mongodb-mitigation-2",
    "changed-image-points-at-wrong-port": "misconfig_app_hotel_res-mitigation-1",
    "deployment-scaled-to-zero": "scale_pod_zero_social_net-mitigation-1",
    "node-selector-matches-no-node": "assign_to_non_existent_node_social_net-mitigation-1",
    "released-volumes-with-stale-claims": "redeploy_without_PV-mitigation-1",
    "workload-runs-a-sibling-program": "wrong_bin_usage-mitigation-1",
    "healthy-hotel": "noop_detection_hotel_reservation-1",
    "healthy-social": "noop_detection_social_network-1",
}

DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def prune(obj: dict[str, Any]) -> dict[str, Any]:
    obj = json.loads(json.dumps(obj))
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    for key in DROP_ANNOTATIONS:
        (meta.get("annotations") or {}).pop(key, None)
    return obj


def pick_traces(traces: list[dict[str, Any]], limit: int = 8) -> list[dict[str, Any]]:
    def failing(t: dict[str, Any]) -> bool:
        return any(
            any(tag.get("key") in ("error", "otel.status_code") for tag in s.get("tags") or []) for s in t["spans"]
        )

    seen: set[str] = set()
    unique = [t for t in traces if not (t["traceID"] in seen or seen.add(t["traceID"]))]  # type: ignore[func-returns-value]
    bad = [t for t in unique if failing(t)]
    good = [t for t in unique if not failing(t)]
    return bad[: limit - 2] + good[:2]


def write_case(folder: Path, snap: Snapshot) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    objects = [
        {"kind": kind, **prune(o)} if "kind" not in o else prune(o)
        for kind, items in snap.objects.items()
        for o in items
    ]
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False, width=200))
    events = [
        {k: e.get(k) for k in ("involvedObject", "reason", "message", "type", "count") if k in e} for e in snap.events
    ]
    (folder / "events.yaml").write_text(yaml.safe_dump(events, sort_keys=False, width=200))
    logs = {k: "\n".join(v.splitlines()[-40:]) for k, v in sorted(snap.logs.items()) if v.strip()}
    (folder / "logs.yaml").write_text(yaml.safe_dump(logs, sort_keys=False, width=200, default_style="|"))
    (folder / "traces.json").write_text(json.dumps(pick_traces(snap.traces), indent=1))


async def noop(record: JournalRecord) -> None:
    return None


async def fence(scope: str, token: int) -> bool:
    return True


async def live(kubeconfig: str, jaeger: str, namespace: str, case: str) -> list[str]:
    reader = ReadGateway(KubeApi.from_kubeconfig(kubeconfig), default_namespace=namespace)
    tools = GatewayTools(reader, namespace=namespace, jaeger_url=jaeger)
    diagnosis = await RulebookDiagnosisReasoner().diagnose(
        DiagnoseRequest(incident_id=f"live-{case}", scope=namespace), tools
    )
    out = [f"diagnosis: {diagnosis.localisation} {diagnosis.root_cause} :: {diagnosis.summary[:300]}"]
    reflections: list[str] = []
    for attempt, scope in ((1, namespace), (2, "cluster")):
        lease = Lease(scope=scope, holder=case, token=attempt, expires_at=datetime.now(UTC) + timedelta(minutes=5))
        writer = WriteGateway(
            KubeApi.from_kubeconfig(kubeconfig),
            lease=lease,
            check_fence=fence,
            journal_intent=noop,
            journal_outcome=noop,
            max_writes=20,
            default_namespace=namespace,
        )
        ttools = TransactionTools(writer, namespace=namespace, jaeger_url=jaeger)
        request = MitigateRequest(
            incident_id=f"live-{case}",
            scope=namespace,
            tx_id=f"tx-{attempt}",
            attempt=attempt,
            lease=lease,
            diagnosis=diagnosis,
            reflections=reflections,
        )
        result = await RulebookMitigationReasoner(settle_timeout_s=15).mitigate(request, ttools)
        out.append(f"attempt {attempt} ({scope}): {result.reason[:600]}")
        if "cluster scope" not in result.reason:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    registry = Registry()
    names = args.cases or list(CASES)
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp, AppsArena(timing=Timing.fast()) as arena:
        kubeconfig = str(arena.write_kubeconfig(Path(tmp) / "config"))
        kube = Kube.from_kubeconfig(kubeconfig)
        engine = Engine(kube, PlaneClient(arena.plane_url), time_scale=0.25)
        for name in names:
            scenario, _ = registry.get(CASES[name])
            spec = APPS[scenario.app]
            if kube.get("Namespace", None, spec.namespace) is None:
                engine.deploy(spec)
            engine.wait_ready(spec.namespace, 60)
            probe = WorkloadSpec(rate=20, duration_s=1, connections=2)
            wait_for("clean", lambda s=spec, p=probe: engine._plane().workload(s.namespace, p).clean, 60, 0.25)
            engine.inject(scenario)
            if scenario.symptoms:
                engine.wait_symptoms(scenario, timeout=30)
            engine._plane().workload(spec.namespace, WorkloadSpec(rate=20, duration_s=1, connections=2))
            time.sleep(1.0)
            reader = ReadGateway(KubeApi.from_kubeconfig(kubeconfig), default_namespace=spec.namespace)
            tools = GatewayTools(reader, namespace=spec.namespace, jaeger_url=arena.plane_url)
            snap = asyncio.run(collect(tools, spec.namespace))
            if not args.no_write:
                write_case(HERE / name, snap)
            line = f"{name}: captured {sum(len(v) for v in snap.objects.values())} objects, {len(snap.logs)} logs"
            if args.live and scenario.oracle is not None:
                for text in asyncio.run(live(kubeconfig, arena.plane_url, spec.namespace, name)):
                    line += "\n    " + text
                try:
                    verdict = engine.wait_check(scenario, "strict", timeout=30)
                    line += f"\n    strict oracle: {'PASS' if verdict.passed else 'FAIL'} {verdict.reasons[:3]}"
                except Exception as exc:
                    line += f"\n    strict oracle: error {exc!r}"
            results[name] = line
            print(line, flush=True)
            engine.recover(scenario)
            if scenario.app == "hotel-reservation" and "redeploy" in CASES[name]:
                time.sleep(2)
        kube.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
