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
    "network-loss-to-a-service": "network_loss_hotel_res-localization-1",
    "network-delay-to-a-service": "network_delay_hotel_res-localization-1",
    "pod-failure-not-serving": "pod_failure_hotel_res-localization-1",
    "container-killed-once": "container_kill-localization",
    "healthy-hotel": "noop_detection_hotel_reservation-1",
    "healthy-social": "noop_detection_social_network-1",
}

KEEP_META = ("name", "namespace", "uid", "labels", "annotations", "ownerReferences", "deletionTimestamp")
KEEP_CONTAINER = ("name", "image", "command", "args", "env", "ports", "volumeMounts", "readinessProbe")
KEEP_POD_SPEC = ("containers", "volumes", "nodeSelector", "affinity", "nodeName")
KEEP_CONTAINER_STATUS = ("name", "ready", "restartCount", "state", "lastState", "image")
DROP_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def _pick(d: dict[str, Any] | None, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: d[k] for k in keys if d and d.get(k) is not None}


def _pod_spec(spec: dict[str, Any]) -> dict[str, Any]:
    out = _pick(spec, KEEP_POD_SPEC)
    out["containers"] = [_pick(c, KEEP_CONTAINER) for c in spec.get("containers") or []]
    return out


def prune(obj: dict[str, Any]) -> dict[str, Any]:
    """Only what a reader of the case (and the rulebook) looks at: the API's bookkeeping is dropped."""
    obj = json.loads(json.dumps(obj))
    kind = obj.get("kind")
    meta = _pick(obj.get("metadata"), KEEP_META)
    for key in DROP_ANNOTATIONS:
        (meta.get("annotations") or {}).pop(key, None)
    if not meta.get("annotations"):
        meta.pop("annotations", None)
    out: dict[str, Any] = {"kind": kind, "metadata": meta}
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "Pod":
        out["spec"] = _pod_spec(spec)
        st = _pick(status, ("phase", "podIP", "conditions", "containerStatuses"))
        st["conditions"] = [_pick(c, ("type", "status", "reason")) for c in st.get("conditions") or []]
        if st.get("containerStatuses"):
            st["containerStatuses"] = [_pick(c, KEEP_CONTAINER_STATUS) for c in st["containerStatuses"]]
        out["status"] = st
    elif kind in ("Deployment", "ReplicaSet", "StatefulSet"):
        tpl = spec.get("template") or {}
        out["spec"] = {
            **_pick(spec, ("replicas", "selector")),
            "template": {"metadata": _pick(tpl.get("metadata"), ("labels",)), "spec": _pod_spec(tpl.get("spec") or {})},
        }
        out["status"] = _pick(status, ("replicas", "readyReplicas", "availableReplicas"))
    elif kind == "Node":
        out["spec"] = _pick(spec, ("unschedulable", "taints"))
        out["status"] = {"conditions": [_pick(c, ("type", "status")) for c in status.get("conditions") or []]}
    else:
        for key in ("spec", "status", "data", "subsets", "provisioner", "volumeBindingMode", "reclaimPolicy"):
            if obj.get(key) is not None:
                out[key] = obj[key]
    return out


def pick_traces(traces: list[dict[str, Any]], failing_n: int = 10, slow_n: int = 4) -> list[dict[str, Any]]:
    """Failing traces, the slowest healthy ones, and healthy ones covering every operation (so a reader, like the
    bootstrap, can learn which service answers which call)."""

    def failing(t: dict[str, Any]) -> bool:
        return any(
            any(tag.get("key") in ("error", "otel.status_code") for tag in s.get("tags") or []) for s in t["spans"]
        )

    def ops(t: dict[str, Any]) -> set[str]:
        return {str(s.get("operationName")) for s in t["spans"]}

    seen: set[str] = set()
    unique = []
    for t in traces:
        if t["traceID"] not in seen:
            seen.add(t["traceID"])
            unique.append(t)
    bad = [t for t in unique if failing(t)]
    good = [t for t in unique if not failing(t)]
    slowest = sorted(good, key=lambda t: -max(s.get("duration", 0) for s in t["spans"]))[:slow_n]
    chosen = bad[:failing_n] + slowest
    covered = set().union(*(ops(t) for t in chosen)) if chosen else set()
    for t in good:
        if ops(t) - covered:
            chosen.append(t)
            covered |= ops(t)
    for t in chosen:
        t.pop("warnings", None)
        for sp in t["spans"]:
            for key in ("warnings", "flags"):
                sp.pop(key, None)
    return chosen


def write_case(folder: Path, snap: Snapshot) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    objects = [prune({"kind": kind, **o}) for kind, items in snap.objects.items() for o in items]
    (folder / "objects.yaml").write_text(yaml.safe_dump_all(objects, sort_keys=False, width=200))
    events = [
        {k: e.get(k) for k in ("involvedObject", "reason", "message", "type", "count") if k in e} for e in snap.events
    ]
    for e in events:
        e["involvedObject"] = _pick(e.get("involvedObject"), ("kind", "name", "namespace"))
    warnings = [e for e in events if e.get("type") == "Warning"]
    normal = [e for e in events if e.get("type") != "Warning"][-15:]
    (folder / "events.yaml").write_text(yaml.safe_dump(warnings + normal, sort_keys=False, width=200))
    logs = {k: "\n".join(v.splitlines()[-30:]) for k, v in sorted(snap.logs.items()) if v.strip()}
    (folder / "logs.yaml").write_text(yaml.safe_dump(logs, sort_keys=False, width=200, default_style="|"))
    (folder / "traces.json").write_text(json.dumps(pick_traces(snap.traces), separators=(",", ":")))


def reprune(folder: Path) -> None:
    """Apply the current pruning to a captured case (to shrink it without running the arena again)."""
    snap = Snapshot(namespace="")
    for o in yaml.safe_load_all((folder / "objects.yaml").read_text()):
        if o:
            snap.objects.setdefault(o["kind"], []).append(o)
    snap.events = yaml.safe_load((folder / "events.yaml").read_text()) or []
    snap.logs = yaml.safe_load((folder / "logs.yaml").read_text()) or {}
    snap.traces = json.loads((folder / "traces.json").read_text())
    write_case(folder, snap)


async def noop(record: JournalRecord) -> None:
    return None


async def fence(scope: str, token: int) -> bool:
    return True


async def live(kubeconfig: str, jaeger: str, namespace: str, case: str) -> list[str]:
    reader = ReadGateway(KubeApi.from_kubeconfig(kubeconfig), default_namespace=namespace)
    tools = GatewayTools(reader, namespace=namespace, jaeger_url=jaeger)
    t0 = time.monotonic()
    diagnosis = await RulebookDiagnosisReasoner().diagnose(
        DiagnoseRequest(incident_id=f"live-{case}", scope=namespace), tools
    )
    took = time.monotonic() - t0
    out = [f"diagnosis ({took:.1f}s): {diagnosis.localisation} {diagnosis.root_cause} :: {diagnosis.summary[:300]}"]
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
        t0 = time.monotonic()
        result = await RulebookMitigationReasoner(settle_timeout_s=15).mitigate(request, ttools)
        took = time.monotonic() - t0
        out.append(f"attempt {attempt} ({scope}, {took:.1f}s): {result.reason[:600]}")
        if "needs a writer on scope cluster" not in result.reason:
            break
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("cases", nargs="*")
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--reprune", action="store_true", help="only shrink the captured cases again")
    args = parser.parse_args()
    if args.reprune:
        for name in args.cases or list(CASES):
            if (HERE / name / "objects.yaml").exists():
                reprune(HERE / name)
        return 0
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
            if args.live:
                for text in asyncio.run(live(kubeconfig, arena.plane_url, spec.namespace, name)):
                    line += "\n    " + text
                try:
                    if scenario.oracle is None:
                        raise RuntimeError("no oracle (a healthy app): see what the rulebook did above")
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
